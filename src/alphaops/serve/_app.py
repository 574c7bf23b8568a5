"""Build the ``alphaops serve`` application: API, Open Inference Protocol, dashboard, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from alphaops._version import __version__
from alphaops.core.config import AlphaOpsConfig
from alphaops.serve import _api, _dashboard, _oip
from alphaops.serve._auth import authorize
from alphaops.serve._config import ServeConfig, check_can_start
from alphaops.serve._problems import install_handlers
from alphaops.serve._state import ServerState, state_of
from alphaops.serve.journal_metrics import JournalCollector
from alphaops.serve.metrics import ModelMetrics, RegistryCollector
from alphaops.services._common import open_configured_registry
from alphaops.services.api import IdempotencyStore
from alphaops.services.registry import RegistryLocation
from alphaops.services.tokens import ApiToken, Role, TokenStore

__all__ = ["create_app", "open_state"]


def open_state(
    config: AlphaOpsConfig, serve: ServeConfig, where: RegistryLocation | None = None
) -> ServerState:
    """Open the registry (it must exist), check the start is safe, load the served models."""
    where = where or RegistryLocation()
    registry = open_configured_registry(
        config, database_url=where.database_url, artifacts=where.artifacts, create=False
    )
    try:
        tokens = TokenStore(registry.database)
        check_can_start(serve, tokens.count_active())
        metrics_registry = CollectorRegistry()
        state = ServerState(
            config=config,
            serve=serve,
            registry=registry,
            tokens=tokens,
            idempotency=IdempotencyStore(registry.database),
            metrics_registry=metrics_registry,
            model_metrics=ModelMetrics(metrics_registry),
        )
        metrics_registry.register(RegistryCollector(registry, registry.list_models))
        metrics_registry.register(
            JournalCollector(registry, registry.list_models, refresh_s=serve.metrics_refresh_s)
        )
        if serve.predict:
            from alphaops.runtime import LivePredictor

            for text in serve.predict:
                name = text.replace("/", ".")
                state.predictors[name] = LivePredictor(
                    registry,
                    text,
                    poll_interval_s=serve.poll_interval_s,
                    on_event=state.model_metrics.event_hook(text),
                    load_in=serve.load_in,
                )
                state.keys[name] = state.predictors[name].key
        if serve.webhooks:
            from alphaops.serve.webhooks import WebhookDispatcher

            state.dispatcher = WebhookDispatcher(
                registry.database, serve.webhooks, poll_s=serve.webhook_poll_s
            )
            state.dispatcher.start()
        return state
    except BaseException:
        registry.close()
        raise


def close_state(state: ServerState) -> None:
    """Stop the webhook dispatcher and served models, then close the registry."""
    if state.dispatcher is not None:
        state.dispatcher.close()
    for predictor in state.predictors.values():
        predictor.close()
    state.registry.close()


def create_app(
    config: AlphaOpsConfig, serve: ServeConfig, where: RegistryLocation | None = None
) -> FastAPI:
    """Return the ASGI application (the registry is opened when it starts, not before)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(open_state, config, serve, where)
        app.state.alphaops = state
        try:
            yield
        finally:
            await run_in_threadpool(close_state, state)

    app = FastAPI(
        title="alphaops",
        version=__version__,
        description="Model registry, rollouts and predictions of alphaops. Authenticate with "
        "'Authorization: Bearer aops_…' (alphaops token create).",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.include_router(_oip.router)  # first: the hot path is matched before the API's routes
    app.include_router(_api.router)
    app.include_router(_dashboard.router)

    @app.get("/healthz", summary="Process health (no token needed)", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/metrics",
        summary="Prometheus metrics (viewer token, or anonymous reads on loopback)",
        response_class=Response,
        tags=["ops"],
    )
    def metrics(
        request: Request,
        _token: Annotated[ApiToken | None, Depends(authorize(Role.VIEWER))],
    ) -> Response:
        return Response(
            generate_latest(state_of(request).metrics_registry), media_type=CONTENT_TYPE_LATEST
        )

    return app
