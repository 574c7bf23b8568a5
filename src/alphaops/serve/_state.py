"""What every route of ``alphaops serve`` reaches: the open registry, stores, metrics, models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from starlette.requests import Request

from alphaops.core.config import AlphaOpsConfig
from alphaops.registry import ModelKey, Registry
from alphaops.serve._config import ServeConfig
from alphaops.serve.metrics import ModelMetrics
from alphaops.services.api import IdempotencyStore
from alphaops.services.tokens import TokenStore

if TYPE_CHECKING:
    from alphaops.runtime import LivePredictor
    from alphaops.serve.webhooks import WebhookDispatcher

__all__ = ["ServerState", "state_of"]


@dataclass
class ServerState:
    """Built once by the app's lifespan; closed when the server stops."""

    config: AlphaOpsConfig
    serve: ServeConfig
    registry: Registry
    tokens: TokenStore
    idempotency: IdempotencyStore
    metrics_registry: CollectorRegistry
    model_metrics: ModelMetrics
    predictors: dict[str, LivePredictor] = field(default_factory=dict)
    """Served models by their Open Inference Protocol name (``SYMBOL.TYPE``)."""
    keys: dict[str, ModelKey] = field(default_factory=dict)
    dispatcher: WebhookDispatcher | None = None


def state_of(request: Request) -> ServerState:
    """Return the server state of the app handling ``request``."""
    state = request.app.state.alphaops
    assert isinstance(state, ServerState), "the lifespan stores the state before serving"
    return state
