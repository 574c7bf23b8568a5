"""The frozen alphaops configuration, built once at the entry point and passed down.

Values come, lowest priority first, from defaults, an optional YAML file, ``ALPHAOPS_*``
environment variables (``__`` separates nested keys), and explicit overrides::

    # alphaops.yaml
    home: /srv/alphaops
    download:
      exchange: binance

    ALPHAOPS_HOME=/tmp/ao ALPHAOPS_DOWNLOAD__EXCHANGE=kraken alphaops data list

>>> cfg = load_config(environ={"ALPHAOPS_DOWNLOAD__PAGE_LIMIT": "500"})
>>> cfg.download.page_limit
500
>>> len(cfg.config_hash)
64
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alphaops.core.errors import ConfigError

__all__ = ["AlphaOpsConfig", "DownloadConfig", "RegistryConfig", "load_config"]

ENV_PREFIX = "ALPHAOPS_"
# Environment variables with the prefix that are not configuration keys: the config file
# itself, and everything the test suite reads (ALPHAOPS_TEST_DATA, ALPHAOPS_TEST_PG_URL, …).
_NOT_CONFIG = {"ALPHAOPS_CONFIG"}
_NOT_CONFIG_PREFIX = "ALPHAOPS_TEST_"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class DownloadConfig(_Frozen):
    """How ``alphaops data download`` talks to exchanges."""

    exchange: str = Field("binance", description="ccxt exchange id used when none is given.")
    page_limit: int = Field(
        1000, ge=1, le=5000, description="Candles asked for per request (exchange maximum)."
    )
    max_retries: int = Field(
        5, ge=0, le=50, description="Retries of one request after network or rate-limit errors."
    )
    retry_backoff_s: float = Field(
        1.0, ge=0, description="First retry delay in seconds; doubles on each retry."
    )


class RegistryConfig(_Frozen):
    """Where the model registry keeps its metadata and artifacts."""

    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the registry database (e.g. postgresql://…); "
        "default: SQLite in the home.",
    )
    artifacts: str | None = Field(
        None, description="Artifact folder or s3://bucket/prefix; default: <home>/artifacts."
    )


class AlphaOpsConfig(_Frozen):
    """Everything alphaops reads from the environment, in one frozen, hashable object."""

    home: Path = Field(
        Path(".alphaops"),
        description="The alphaops home: embedded database, data store, datasets, reports.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level for alphaops loggers."
    )
    download: DownloadConfig = Field(default_factory=lambda: DownloadConfig())
    registry: RegistryConfig = Field(default_factory=lambda: RegistryConfig())

    @property
    def config_hash(self) -> str:
        """Return the sha256 of the canonical JSON of this config (goes into manifests)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_config(
    file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> AlphaOpsConfig:
    """Build the configuration from defaults, a YAML file, the environment and overrides.

    ``file`` defaults to ``$ALPHAOPS_CONFIG`` when set. Unknown keys anywhere are refused with
    a :class:`ConfigError` naming the key.
    """
    env = dict(os.environ if environ is None else environ)
    if file is None and env.get("ALPHAOPS_CONFIG"):
        file = Path(env["ALPHAOPS_CONFIG"])
    values: dict[str, Any] = _read_yaml(file) if file is not None else {}
    for key, raw in sorted(env.items()):
        if (
            not key.startswith(ENV_PREFIX)
            or key in _NOT_CONFIG
            or key.startswith(_NOT_CONFIG_PREFIX)
            or raw == ""
        ):
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        _set_nested(values, path, raw)
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
    try:
        return AlphaOpsConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        source = f" (file {file})" if file else ""
        raise ConfigError(
            f"invalid configuration{source}: {problems}",
            fix="correct or remove the named keys (env: ALPHAOPS_<KEY>, nested with '__')",
        ) from exc


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {file}: {exc.strerror}",
            fix="check the path given by --config or ALPHAOPS_CONFIG",
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config file {file} is not valid YAML: {exc}", fix="fix its syntax"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {file} must hold a mapping of keys, not {type(data).__name__}",
            fix="write 'key: value' lines, e.g. 'home: /srv/alphaops'",
        )
    return data


def _set_nested(target: dict[str, Any], path: list[str], value: str) -> None:
    node = target
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {part!r} is not a section", fix="check nesting")
        node = child
    node[path[-1]] = value
