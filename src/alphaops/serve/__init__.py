"""``alphaops serve``: the HTTP API, the Open Inference Protocol, the dashboard and metrics.

Needs the ``serve`` extra (FastAPI, uvicorn, Jinja2, prometheus-client). The metrics
(:mod:`alphaops.serve.metrics`) and webhooks (:mod:`alphaops.serve.webhooks`) import no web
framework, so a bot can export metrics without FastAPI; :func:`create_app` imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alphaops.serve._config import ServeConfig, WebhookConfig, check_can_start, is_loopback

if TYPE_CHECKING:
    from alphaops.serve._app import create_app

__all__ = ["ServeConfig", "WebhookConfig", "check_can_start", "create_app", "is_loopback"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imports FastAPI: only when asked for
        from alphaops.serve._app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
