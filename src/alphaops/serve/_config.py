"""The frozen configuration of ``alphaops serve`` and the check that refuses unsafe starts."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alphaops.core.errors import ConfigError
from alphaops.registry import parse_key

__all__ = ["ServeConfig", "WebhookConfig", "check_can_start", "is_loopback"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookConfig(_Frozen):
    """One webhook endpoint: where events are POSTed and the secret they are signed with."""

    url: str
    """``http://`` or ``https://`` URL receiving ``POST`` requests with a JSON event."""
    secret: str = Field(min_length=16, repr=False)
    """Shared HMAC-SHA256 key (at least 16 characters); the receiver verifies each request."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL {value!r} must start with http:// or https://")
        return value


class ServeConfig(_Frozen):
    """How ``alphaops serve`` runs (built once by the CLI or the caller, passed down)."""

    host: str = "127.0.0.1"
    """Address to listen on. Anything but loopback needs at least one API token."""
    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port (0 picks a free one)."""
    predict: tuple[str, ...] = ()
    """``SYMBOL/TYPE`` models served on ``/v2/models/SYMBOL.TYPE/infer`` (their champions)."""
    anonymous_read: bool = False
    """Let requests without a token read (never mutate); only allowed on loopback."""
    poll_interval_s: float = Field(default=1.0, gt=0)
    """How often served models check the registry for a new champion or rollout step."""
    load_in: Literal["process", "thread"] = "process"
    """Where served models load new versions (see ``LivePredictor``)."""
    webhooks: tuple[WebhookConfig, ...] = ()
    """Endpoints that receive signed events (alias moves, rollouts, alarms)."""
    webhook_poll_s: float = Field(default=1.0, gt=0)
    """How often the webhook dispatcher reads new events from the audit log."""
    metrics_refresh_s: float = Field(default=30.0, ge=0)
    """How stale ``/metrics``' live win rates and drift may be (re-read sooner on any move)."""

    @field_validator("predict")
    @classmethod
    def _keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        keys = [str(parse_key(k)) for k in value]
        names = [k.replace("/", ".") for k in keys]
        if len(set(names)) != len(names):
            raise ValueError(f"models {keys} are listed twice")
        return tuple(keys)


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_can_start(serve: ServeConfig, active_tokens: int) -> None:
    """Refuse to listen beyond loopback without tokens, or anonymously beyond loopback."""
    if is_loopback(serve.host):
        return
    if active_tokens == 0:
        raise ConfigError(
            f"refusing to listen on {serve.host}: the registry holds no active API token, so "
            "anyone who can reach the port could read it",
            fix="create one first (alphaops token create NAME --role viewer|operator|admin), "
            "or listen on 127.0.0.1",
            host=serve.host,
        )
    if serve.anonymous_read:
        raise ConfigError(
            f"--anonymous-read on {serve.host} would let anyone on the network read the registry",
            fix="drop --anonymous-read (clients send a viewer token), or listen on 127.0.0.1",
            host=serve.host,
        )
