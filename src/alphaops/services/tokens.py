"""API tokens of ``alphaops serve``: bearer tokens with a role, stored hashed in the registry.

A token is shown once, when it is created; the database keeps only its SHA-256 (a token is 256
random bits, so a fast hash cannot be brute-forced) and a short prefix to recognise it by.
Roles are ordered: a ``viewer`` reads, an ``operator`` also promotes, rolls back and drives
rollouts, an ``admin`` may also force a move past failed gates. There is no default token.

>>> import tempfile, pathlib
>>> from alphaops.registry import open_registry
>>> reg = open_registry(pathlib.Path(tempfile.mkdtemp()) / "home")
>>> store = TokenStore(reg.database)
>>> token, secret = store.create("ci-bot", Role.OPERATOR, actor="alice")
>>> store.authenticate(secret).name, store.authenticate(secret).role.allows(Role.VIEWER)
('ci-bot', True)
>>> _ = store.revoke("ci-bot", actor="alice")
>>> store.authenticate(secret)
Traceback (most recent call last):
...
alphaops.core.errors.AuthenticationError: API token aops_... was revoked ...
>>> reg.close()
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from alphaops.core.config import AlphaOpsConfig
from alphaops.core.errors import AuthenticationError, NotFoundError, UsageError
from alphaops.core.names import validate_name
from alphaops.registry import Database
from alphaops.services._common import open_configured_registry
from alphaops.services.registry import RegistryLocation

__all__ = [
    "TOKEN_PREFIX",
    "ApiToken",
    "Role",
    "TokenStore",
    "api_tokens_table",
    "create_token",
    "list_tokens",
    "revoke_token",
    "token_to_dict",
]

TOKEN_PREFIX = "aops_"
"""Every token starts with this, so that secret scanners and people recognise one."""

_metadata = MetaData()
api_tokens_table = Table(
    "api_tokens",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_sha256", String(64), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", String(128), nullable=True),
    UniqueConstraint("name", name="uq_api_tokens_name"),
    UniqueConstraint("token_sha256", name="uq_api_tokens_sha256"),
    CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="ck_api_tokens_role"),
)
"""The ``api_tokens`` table (created by registry migration 0006)."""


class Role(StrEnum):
    """What a token may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Return 0 for viewer, 1 for operator, 2 for admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Return whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank

    @classmethod
    def parse(cls, text: str) -> Role:
        """Return the role named ``text``, or raise a usage error listing the roles."""
        try:
            return cls(text.lower())
        except ValueError:
            raise UsageError(
                f"unknown role {text!r}",
                fix="use one of: " + ", ".join(r.value for r in cls),
                role=text,
            ) from None


@dataclass(frozen=True)
class ApiToken:
    """A stored token (never its secret): who it is, its role, and whether it was revoked."""

    name: str
    role: Role
    prefix: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        """Return whether the token still authenticates."""
        return self.revoked_at is None

    @property
    def actor(self) -> str:
        """Return the identity written into the audit log for this token's requests."""
        return f"token:{self.name}"


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _shown(secret: str) -> str:
    return secret[: len(TOKEN_PREFIX) + 6] + "…"


class TokenStore:
    """Create, list, revoke and check API tokens in the registry database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def create(self, name: str, role: Role, *, actor: str) -> tuple[ApiToken, str]:
        """Create a token; return it and its secret (shown once: only its hash is kept)."""
        validate_name(name, kind="token name")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = _now()
        try:
            with self.database.write() as conn:
                conn.execute(
                    insert(api_tokens_table).values(
                        name=name,
                        role=role.value,
                        token_sha256=_sha256(secret),
                        prefix=secret[: len(TOKEN_PREFIX) + 6],
                        created_at=now,
                        created_by=actor,
                    )
                )
        except SqlIntegrityError:
            raise UsageError(
                f"an API token named {name!r} already exists",
                fix=f"pick another name, or revoke it first: alphaops token revoke {name}",
                name=name,
            ) from None
        return self.get(name), secret

    def get(self, name: str) -> ApiToken:
        """Return the token called ``name`` (revoked or not)."""
        with self.database.read() as conn:
            row = conn.execute(
                select(api_tokens_table).where(api_tokens_table.c.name == name)
            ).first()
        if row is None:
            raise NotFoundError(
                f"no API token is named {name!r}",
                fix="list them: alphaops token list",
                name=name,
            )
        return _token(row)

    def list(self) -> list[ApiToken]:
        """Return every token, oldest first."""
        with self.database.read() as conn:
            rows = conn.execute(select(api_tokens_table).order_by(api_tokens_table.c.id)).all()
        return [_token(r) for r in rows]

    def count_active(self) -> int:
        """Return how many tokens are not revoked."""
        with self.database.read() as conn:
            found = conn.execute(
                select(func.count())
                .select_from(api_tokens_table)
                .where(api_tokens_table.c.revoked_at.is_(None))
            ).scalar()
        return int(found or 0)

    def revoke(self, name: str, *, actor: str) -> ApiToken:
        """Revoke the token called ``name``; its next request gets 401."""
        with self.database.write() as conn:
            done = conn.execute(
                update(api_tokens_table)
                .where(api_tokens_table.c.name == name, api_tokens_table.c.revoked_at.is_(None))
                .values(revoked_at=_now(), revoked_by=actor)
            ).rowcount
        token = self.get(name)
        if not done:
            raise UsageError(
                f"API token {name!r} was already revoked at {token.revoked_at}",
                fix="nothing to do; create a new token if one is needed",
                name=name,
            )
        return token

    def authenticate(self, secret: str) -> ApiToken:
        """Return the active token whose secret is ``secret``; raise ``AuthenticationError``."""
        if not secret.startswith(TOKEN_PREFIX):
            raise AuthenticationError(
                "the bearer token is not an alphaops API token",
                fix="send 'Authorization: Bearer aops_…' with a token from alphaops token create",
            )
        digest = _sha256(secret)
        with self.database.read() as conn:
            row = conn.execute(
                select(api_tokens_table).where(api_tokens_table.c.token_sha256 == digest)
            ).first()
        # The lookup is by hash; compare again in constant time so timing reveals nothing.
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            raise AuthenticationError(
                f"API token {_shown(secret)} is unknown",
                fix="create one with: alphaops token create NAME --role viewer|operator|admin",
            )
        token = _token(row)
        if not token.active:
            raise AuthenticationError(
                f"API token {_shown(secret)} was revoked at {token.revoked_at} by "
                f"{token.revoked_by}",
                fix="ask an admin for a new token: alphaops token create NAME --role ROLE",
            )
        return token


def _token(row: Row[Any]) -> ApiToken:
    return ApiToken(
        name=row.name,
        role=Role(row.role),
        prefix=row.prefix,
        created_at=_utc(row.created_at),
        created_by=row.created_by,
        revoked_at=None if row.revoked_at is None else _utc(row.revoked_at),
        revoked_by=row.revoked_by,
    )


def _utc(value: datetime) -> datetime:
    # SQLite gives naive datetimes back; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def token_to_dict(token: ApiToken) -> dict[str, object]:
    """Return a JSON-ready token (never its secret)."""
    return {
        "name": token.name,
        "role": token.role.value,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "created_by": token.created_by,
        "revoked_at": None if token.revoked_at is None else token.revoked_at.isoformat(),
        "revoked_by": token.revoked_by,
        "active": token.active,
    }


def create_token(
    config: AlphaOpsConfig, where: RegistryLocation, name: str, role: str, *, actor: str
) -> tuple[ApiToken, str]:
    """Create an API token in the configured registry; return it and its one-time secret."""
    parsed = Role.parse(role)
    validate_name(name, kind="token name")
    with open_configured_registry(
        config, database_url=where.database_url, artifacts=where.artifacts, create=False
    ) as registry:
        return TokenStore(registry.database).create(name, parsed, actor=actor)


def list_tokens(config: AlphaOpsConfig, where: RegistryLocation) -> list[ApiToken]:
    """Return the API tokens of the configured registry (never their secrets)."""
    with open_configured_registry(
        config, database_url=where.database_url, artifacts=where.artifacts, create=False
    ) as registry:
        return TokenStore(registry.database).list()


def revoke_token(
    config: AlphaOpsConfig, where: RegistryLocation, name: str, *, actor: str
) -> ApiToken:
    """Revoke an API token of the configured registry."""
    with open_configured_registry(
        config, database_url=where.database_url, artifacts=where.artifacts, create=False
    ) as registry:
        return TokenStore(registry.database).revoke(name, actor=actor)
