"""``/ui``: the server-rendered dashboard (Jinja2, no JavaScript build).

Pages: models (champion/challenger/previous, rollout, alarms), a model (versions with gate
verdicts, rollout progress with interval verdicts, audit history, promote and rollback
forms), a version (metrics, gate report and plots). Reading needs a viewer token (or
anonymous reads on loopback); the forms need an operator token. Sign-in stores the token in
an HttpOnly, SameSite=Strict cookie; form posts from another origin are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from alphaops._version import __version__
from alphaops.core.errors import AlphaOpsError, PermissionDeniedError, UsageError
from alphaops.serve._auth import COOKIE, authorize
from alphaops.serve._state import state_of
from alphaops.services import api as svc
from alphaops.services.tokens import ApiToken, Role

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(version=__version__, **context)
    return HTMLResponse(html, status_code=status)


def _error_page(exc: AlphaOpsError) -> HTMLResponse:
    return _page("error.html", exc.http_status, error=exc)


async def _caller(request: Request, needed: Role) -> ApiToken | None:
    return await authorize(needed)(request)


async def _form(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise PermissionDeniedError(
            f"form posted from another origin ({origin})",
            fix="use the dashboard served by this alphaops server",
        )
    fields = parse_qs((await request.body()).decode(), keep_blank_values=True)
    return {k: v[-1] for k, v in fields.items()}


@router.get("/login", response_class=HTMLResponse)
def login_page(next: str = "/ui") -> HTMLResponse:
    return _page("login.html", next=next if next.startswith("/ui") else "/ui")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    state = state_of(request)
    try:
        token = await run_in_threadpool(state.tokens.authenticate, form.get("token", "").strip())
    except AlphaOpsError as exc:
        return _page("login.html", 401, next="/ui", error=exc)
    target = form.get("next", "/ui")
    response = RedirectResponse(target if target.startswith("/ui") else "/ui", status_code=303)
    response.set_cookie(
        COOKIE, form["token"].strip(), httponly=True, samesite="strict",
        secure=request.url.scheme == "https", max_age=12 * 3600,
    )  # fmt: skip
    del token
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await _form(request)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


async def _view(request: Request, render: Any) -> Response:
    try:
        who = await _caller(request, Role.VIEWER)
        return await run_in_threadpool(render, who)
    except AlphaOpsError as exc:
        if exc.http_status == 401:
            return RedirectResponse(f"/ui/login?next={quote(request.url.path)}", status_code=303)
        return _error_page(exc)


@router.get("", response_class=HTMLResponse)
async def models(request: Request) -> Response:
    registry = state_of(request).registry

    def render(who: ApiToken | None) -> HTMLResponse:
        return _page("models.html", who=who, models=svc.models_overview(registry))

    return await _view(request, render)


@router.get("/models/{symbol}/{model_type}", response_class=HTMLResponse)
async def model(request: Request, symbol: str, model_type: str) -> Response:
    registry = state_of(request).registry
    key = f"{symbol}/{model_type}"

    def render(who: ApiToken | None) -> HTMLResponse:
        return _page(
            "model.html",
            who=who,
            model=svc.model_detail(registry, key),
            rollouts=svc.rollouts_of(registry, key),
            history=list(reversed(svc.history_of(registry, key, 200))),
            message=request.query_params.get("message"),
            can_mutate=who is not None and who.role.allows(Role.OPERATOR),
        )

    return await _view(request, render)


@router.get("/models/{symbol}/{model_type}/versions/{version}", response_class=HTMLResponse)
async def version(request: Request, symbol: str, model_type: str, version: int) -> Response:
    registry = state_of(request).registry

    def render(who: ApiToken | None) -> HTMLResponse:
        detail = svc.version_detail(registry, f"{symbol}/{model_type}/{version}")
        return _page("version.html", who=who, v=detail)

    return await _view(request, render)


async def _act(request: Request, symbol: str, model_type: str, action: str) -> Response:
    key = f"{symbol}/{model_type}"
    try:
        form = await _form(request)
        token = await _caller(request, Role.OPERATOR)
        assert token is not None  # operator never passes anonymously
        registry = state_of(request).registry
        reason = form.get("reason", "").strip()
        if not reason:
            raise UsageError(f"{action} needs a reason", fix="write why in the reason field")
        if action == "promote":
            version = form.get("version", "")
            if not version.isdigit():
                raise UsageError(f"version {version!r} is not a number", fix="pick a version")
            move = await run_in_threadpool(
                lambda: svc.promote(
                    registry,
                    key,
                    int(version),
                    expect=form.get("expect") or "any",
                    reason=reason,
                    actor=token.actor,
                )
            )
        else:
            move = await run_in_threadpool(
                lambda: svc.rollback(
                    registry,
                    key,
                    reason=reason,
                    actor=token.actor,
                    expect=form.get("expect") or "any",
                )
            )
        message = f"{move['alias']}: {move['from_version']} → {move['to_version']}"
    except AlphaOpsError as exc:
        if exc.http_status == 401:
            return RedirectResponse(f"/ui/login?next=/ui/models/{key}", status_code=303)
        return _error_page(exc)
    return RedirectResponse(f"/ui/models/{key}?message={quote(message)}", status_code=303)


@router.post("/models/{symbol}/{model_type}/promote")
async def promote(request: Request, symbol: str, model_type: str) -> Response:
    return await _act(request, symbol, model_type, "promote")


@router.post("/models/{symbol}/{model_type}/rollback")
async def rollback(request: Request, symbol: str, model_type: str) -> Response:
    return await _act(request, symbol, model_type, "rollback")
