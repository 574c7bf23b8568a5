"""Bearer-token authentication and role checks (FastAPI dependencies)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from alphaops.core.errors import AuthenticationError, PermissionDeniedError
from alphaops.serve._state import state_of
from alphaops.services.tokens import ApiToken, Role

__all__ = ["COOKIE", "authorize", "require_admin_to_force"]

COOKIE = "alphaops_token"
"""The dashboard keeps the token in this HttpOnly, SameSite=Strict cookie after sign-in."""


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError(
                "the Authorization header is not 'Bearer TOKEN'",
                fix="send 'Authorization: Bearer aops_…' with a token from alphaops token create",
            )
        return value.strip()
    return request.cookies.get(COOKIE)


def authorize(needed: Role) -> Callable[[Request], Awaitable[ApiToken | None]]:
    """Return a dependency that lets through a token whose role allows ``needed``.

    No token: 401 (:class:`AuthenticationError`), unless the server allows anonymous reads
    and ``needed`` is viewer (then the caller is ``None``). A weaker role: 403.
    """

    async def dependency(request: Request) -> ApiToken | None:
        # Async: an anonymous read costs no thread hop; a token's lookup (a database read)
        # runs in the thread pool.
        state = state_of(request)
        secret = _secret(request)
        if secret is None:
            if needed is Role.VIEWER and state.serve.anonymous_read:
                return None
            raise AuthenticationError(
                f"{request.method} {request.url.path} needs an API token with role "
                f"{needed.value} or above",
                fix="send 'Authorization: Bearer aops_…' (alphaops token create NAME --role "
                f"{needed.value})",
            )
        token = await run_in_threadpool(state.tokens.authenticate, secret)
        if not token.role.allows(needed):
            raise PermissionDeniedError(
                f"token {token.name!r} has role {token.role.value}; {request.method} "
                f"{request.url.path} needs {needed.value} or above",
                fix=f"use a token with role {needed.value} (alphaops token create NAME --role "
                f"{needed.value})",
                token=token.name,
            )
        return token

    return dependency


def require_admin_to_force(token: ApiToken, force: bool) -> None:
    """Refuse ``force`` (a move past failed gates or a drift alarm) to anyone but an admin."""
    if force and not token.role.allows(Role.ADMIN):
        raise PermissionDeniedError(
            f"token {token.name!r} has role {token.role.value}; forcing a move past the gates "
            "needs admin",
            fix="fix the model so that its gates pass, or ask an admin to force it with a reason",
            token=token.name,
        )
