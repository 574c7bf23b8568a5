"""The frozen alphaops configuration, built once at the entry point and passed down.

Values come, lowest priority first, from defaults, an optional YAML file, ``ALPHAOPS_*``
environment variables (``__`` separates nested keys), and explicit overrides::

    # alphaops.yaml
    home: /srv/alphaops
    download:
      exchange: binance

    ALPHAOPS_HOME=/tmp/ao ALPHAOPS_DOWNLOAD__EXCHANGE=kraken alphaops data list

An ``ALPHAOPS_*`` variable that is no setting (a typo such as ``ALPHAOPS_REGISTRY__DATABSE_URL``)
is refused, never ignored: the error names it and the closest setting (see
:func:`config_variables`).

>>> cfg = load_config(environ={"ALPHAOPS_DOWNLOAD__PAGE_LIMIT": "500"})
>>> cfg.download.page_limit
500
>>> len(cfg.config_hash)
64
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alphaops.core.errors import ConfigError

__all__ = [
    "DATABASE_URL_FORMS",
    "AlphaOpsConfig",
    "DownloadConfig",
    "RegistryConfig",
    "check_database_url",
    "config_variables",
    "load_config",
    "masked_url",
]

ENV_PREFIX = "ALPHAOPS_"
# Environment variables with the prefix that are not configuration keys: the config file
# itself, and everything the test suite reads (ALPHAOPS_TEST_DATA, ALPHAOPS_TEST_PG_URL, …).
_NOT_CONFIG = {"ALPHAOPS_CONFIG"}
_NOT_CONFIG_PREFIX = "ALPHAOPS_TEST_"

DATABASE_URL_FORMS = (
    "sqlite:///relative/path/registry.db, sqlite:////absolute/path/registry.db "
    "or postgresql://user:password@host:5432/dbname"
)
"""The registry database URLs alphaops accepts, as shown in error messages."""
_SQLITE_SCHEMES = frozenset({"sqlite"})
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})


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

    @field_validator("database_url")
    @classmethod
    def _a_database_url(cls, value: str | None) -> str | None:
        problem = None if value is None else _database_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class AlphaOpsConfig(_Frozen):
    """Everything alphaops reads from the environment, in one frozen, hashable object."""

    home: Path = Field(
        Path(".alphaops"),
        description="The alphaops home: embedded database, data store, datasets, reports.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING",
        description="Least severe log lines printed on stderr (the CLI's -v/-vv override it).",
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
    # Where each value came from, so that an error names the variable, file or argument.
    sources: dict[tuple[str, ...], str] = {path: f"in {file}" for path in _leaf_paths(values)}
    settings = config_variables()
    unknown = []
    for key, raw in sorted(env.items()):
        if (
            not key.startswith(ENV_PREFIX)
            or key in _NOT_CONFIG
            or key.startswith(_NOT_CONFIG_PREFIX)
            or raw == ""
        ):
            continue
        if key.upper() not in settings:
            unknown.append(key)
            continue
        path = tuple(key[len(ENV_PREFIX) :].lower().split("__"))
        _set_nested(values, list(path), raw)
        sources[path] = f"from {key}={masked_url(raw)!r}"
    if unknown:
        raise _unknown_variables(unknown, settings)
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
            sources[(key,)] = f"given as {key}={masked_url(str(value))!r}"
    try:
        return AlphaOpsConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(_describe(e, sources) for e in exc.errors())
        source = f" (file {file})" if file else ""
        raise ConfigError(
            f"invalid configuration{source}: {problems}",
            fix="correct or remove the named keys (env: ALPHAOPS_<KEY>, nested with '__'); "
            f"the settings are {', '.join(settings)}",
        ) from exc


def config_variables() -> dict[str, str]:
    """Return every ``ALPHAOPS_*`` environment variable alphaops reads, with its description.

    >>> list(config_variables())[:3]
    ['ALPHAOPS_CONFIG', 'ALPHAOPS_HOME', 'ALPHAOPS_LOG_LEVEL']
    >>> "ALPHAOPS_REGISTRY__DATABASE_URL" in config_variables()
    True
    """
    found = {"ALPHAOPS_CONFIG": "YAML config file read before the environment."}
    for path, description in _settings(AlphaOpsConfig):
        found[ENV_PREFIX + "__".join(path).upper()] = description
    return found


def _settings(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str]]:
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _settings(kind, (*prefix, name))
        else:
            yield (*prefix, name), field.description or ""


def _unknown_variables(names: list[str], settings: Mapping[str, str]) -> ConfigError:
    # Compared without the shared prefix, which would make every name look close to every other.
    suffixes = {name[len(ENV_PREFIX) :]: name for name in settings}
    described = []
    for name in names:
        close = difflib.get_close_matches(
            name[len(ENV_PREFIX) :].upper(), suffixes, n=1, cutoff=0.75
        )
        described.append(name + (f" (did you mean {suffixes[close[0]]}?)" if close else ""))
    many = len(names) > 1
    return ConfigError(
        f"environment variable{'s' if many else ''} {', '.join(described)} "
        f"{'are' if many else 'is'} not {'' if many else 'an '}alphaops setting{'s' if many else ''}",
        fix=f"rename or unset {'them' if many else 'it'}; the settings are " + ", ".join(settings),
        variables=names,
    )


def _describe(error: Any, sources: Mapping[tuple[str, ...], str]) -> str:
    loc = tuple(str(p) for p in error["loc"])
    where = sources.get(loc)
    name = ".".join(loc) + (f" ({where})" if where else "")
    if error["type"] == "extra_forbidden":
        known = [".".join(path) for path, _ in _settings(AlphaOpsConfig)]
        close = difflib.get_close_matches(".".join(loc), known, n=1, cutoff=0.75)
        return f"{name}: not a setting" + (f" (did you mean {close[0]}?)" if close else "")
    if error["type"] == "value_error":
        return f"{name}: {error['ctx']['error']}"
    return f"{name}: {error['msg']}"


def _leaf_paths(
    values: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        if isinstance(value, Mapping):
            yield from _leaf_paths(value, (*prefix, str(key)))
        else:
            yield (*prefix, str(key))


def masked_url(value: str) -> str:
    """Return ``value`` with the password of a URL in it replaced by ``***``.

    >>> masked_url("postgresql://bot:s3cret@db:5432/alphaops")
    'postgresql://bot:***@db:5432/alphaops'
    """
    return re.sub(r"(://[^:/@\s]*:)[^@/\s]*@", r"\1***@", value)


def _database_url_problem(url: str) -> str | None:
    shown = repr(masked_url(url))
    problem: str | None
    if not url.strip():
        problem = "an empty database URL"
    elif url != url.strip():
        problem = f"{shown} has spaces around it"
    elif "://" not in url:
        problem = f"{shown} is not a database URL (it has no scheme://)"
    else:
        scheme, _, rest = url.partition("://")
        if scheme in _SQLITE_SCHEMES:
            problem = _sqlite_problem(shown, rest)
        elif scheme in _POSTGRES_SCHEMES:
            problem = _postgres_problem(shown, url, rest)
        else:
            problem = f"{shown}: database scheme {scheme!r} is not supported"
    if problem is None:
        return None
    return f"{problem}; accepted forms: {DATABASE_URL_FORMS}"


def _sqlite_problem(shown: str, rest: str) -> str | None:
    if rest in ("", "/:memory:"):
        return None  # in memory (tests)
    if not rest.startswith("/") or rest == "/":
        return f"{shown} names no file (a SQLite URL has three slashes, then the path)"
    return None


def _postgres_problem(shown: str, url: str, rest: str) -> str | None:
    if not rest or rest == "/":
        return f"{shown} names no server or database"
    try:
        urlsplit(url).port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{shown} has a port that is not a number from 0 to 65535"
    return None


def check_database_url(url: str, *, source: str = "registry database URL") -> str:
    """Return ``url`` if it is a registry database URL; raise :class:`ConfigError` otherwise.

    ``source`` names where the URL came from (an option or variable) in the message.

    >>> check_database_url("postgresql://ao@db/registry")
    'postgresql://ao@db/registry'
    >>> check_database_url("not a url", source="--db")
    Traceback (most recent call last):
    ...
    alphaops.core.errors.ConfigError: --db: 'not a url' is not a database URL ...
    """
    problem = _database_url_problem(url)
    if problem is not None:
        raise ConfigError(
            f"{source}: {problem}",
            fix=f"pass a URL of the form {DATABASE_URL_FORMS} (or none for SQLite in the home)",
            url=masked_url(url),
        )
    return url


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
