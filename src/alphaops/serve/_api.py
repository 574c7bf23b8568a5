"""``/api/v1``: read the registry; promote, roll back and drive rollouts as the token's owner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from alphaops.core.errors import AlphaOpsError, NotFoundError
from alphaops.registry.refs import CHAMPION, MAX_VERSION
from alphaops.serve._auth import authorize, require_admin_to_force
from alphaops.serve._problems import PROBLEM_RESPONSES, problem_body, problem_response
from alphaops.serve._state import state_of
from alphaops.services import api as svc
from alphaops.services.api import StoredResponse, request_fingerprint
from alphaops.services.tokens import ApiToken, Role, token_to_dict

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", responses=PROBLEM_RESPONSES)

Viewer = Annotated[ApiToken | None, Depends(authorize(Role.VIEWER))]
Operator = Annotated[ApiToken, Depends(authorize(Role.OPERATOR))]
NAME_PATTERN = r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$"
"""Safe names (symbols, model types, aliases, files): no path separators, no '..'."""
Symbol = Annotated[
    str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN, examples=["BTCUSDT"])
]
ModelType = Annotated[
    str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN, examples=["lightgbm"])
]
VersionNo = Annotated[int, Path(ge=1, le=MAX_VERSION)]
Expect = Annotated[int, Field(ge=1, le=MAX_VERSION)] | Literal["none", "any"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromoteBody(_Body):
    """Promote a version to an alias by compare-and-swap."""

    version: int = Field(ge=1, le=MAX_VERSION)
    expect: Expect = Field(
        description="The version the alias points at now ('none': unset; 'any': skip the check)"
    )
    reason: str = Field(min_length=1, max_length=2000)
    alias: str = Field(default=CHAMPION, min_length=1, max_length=64)
    force: bool = Field(default=False, description="Past failed gates or alarms (admin only)")


class RollbackBody(_Body):
    """Make ``previous`` (or the former champion ``to``) the champion again."""

    reason: str = Field(min_length=1, max_length=2000)
    expect: Expect = "any"
    to: int | None = Field(default=None, ge=1, le=MAX_VERSION)


class RolloutStartBody(_Body):
    """Make a version the challenger and start its rollout."""

    version: int = Field(ge=1, le=MAX_VERSION)
    steps: str = Field(default="shadow,10,50,100", min_length=1, max_length=200)
    interval_s: float = Field(default=3600.0, gt=0, le=365 * 86400)
    max_failures: int = Field(default=3, ge=1, le=1000)
    reason: str = Field(default="rollout", min_length=1, max_length=2000)
    force: bool = False


class RolloutActionBody(_Body):
    """Why (the audit log keeps it); required to abort."""

    reason: str | None = Field(default=None, min_length=1, max_length=2000)


def _key(symbol: str, model_type: str) -> str:
    return f"{symbol}/{model_type}"


async def _mutate(request: Request, token: ApiToken, action: Callable[[], Any]) -> Response:
    # With an Idempotency-Key the first answer (success or a 4xx problem) is stored and
    # replayed to retries of the same request; an unexpected failure forgets the claim.
    state = state_of(request)
    key = request.headers.get("idempotency-key")
    if key is None:
        return JSONResponse(await run_in_threadpool(action))
    fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
    stored = await run_in_threadpool(state.idempotency.claim, token.name, key, fingerprint)
    if stored is not None:
        return _answer(stored, replayed=True)
    try:
        answer = StoredResponse(200, await run_in_threadpool(action))
    except AlphaOpsError as exc:
        if exc.http_status >= 500:
            await run_in_threadpool(state.idempotency.release, token.name, key)
            raise
        answer = StoredResponse(exc.http_status, problem_body(exc))
    except BaseException:
        await run_in_threadpool(state.idempotency.release, token.name, key)
        raise
    await run_in_threadpool(state.idempotency.store, token.name, key, answer)
    return _answer(answer, replayed=False)


def _answer(answer: StoredResponse, *, replayed: bool) -> Response:
    response = (
        JSONResponse(answer.body)
        if answer.status == 200
        else problem_response(answer.status, answer.body)
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


# -- reads ---------------------------------------------------------------------------------


@router.get("/whoami", summary="The caller's token (name and role)")
def whoami(token: Viewer) -> dict[str, Any]:
    return {"anonymous": True} if token is None else token_to_dict(token)


@router.get("/models", summary="Every model with its aliases and active rollout")
def models(request: Request, _token: Viewer) -> list[dict[str, Any]]:
    return svc.models_overview(state_of(request).registry)


@router.get("/models/{symbol}/{model_type}", summary="One model: aliases, versions, alarms")
def model(
    request: Request, symbol: Symbol, model_type: ModelType, _token: Viewer
) -> dict[str, Any]:
    return svc.model_detail(state_of(request).registry, _key(symbol, model_type))


@router.get(
    "/models/{symbol}/{model_type}/versions/{version}",
    summary="One version: manifest, metrics and newest gate run",
)
def version(
    request: Request, symbol: Symbol, model_type: ModelType, version: VersionNo, _token: Viewer
) -> dict[str, Any]:
    return svc.version_detail(state_of(request).registry, f"{symbol}/{model_type}/{version}")


@router.get(
    "/models/{symbol}/{model_type}/aliases/{alias}",
    summary="The version an alias names (champion, challenger, previous, latest …)",
)
def alias(
    request: Request,
    symbol: Symbol,
    model_type: ModelType,
    alias: Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)],
    _token: Viewer,
) -> dict[str, Any]:
    registry = state_of(request).registry
    from alphaops.services.registry import version_to_dict

    return version_to_dict(registry.resolve(f"{symbol}/{model_type}@{alias}"))


@router.get(
    "/models/{symbol}/{model_type}/versions/{version}/gates/{name}",
    summary="A report attached to the version's newest gate run",
    response_class=Response,
)
def gate_attachment(
    request: Request,
    symbol: Symbol,
    model_type: ModelType,
    version: VersionNo,
    name: Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)],
    _token: Viewer,
) -> Response:
    registry = state_of(request).registry
    run = registry.latest_gates(f"{symbol}/{model_type}/{version}")
    if run is None:
        raise NotFoundError(
            f"{symbol}/{model_type}/{version} has no gate run",
            fix=f"run its gates: alphaops gate run {symbol}/{model_type}/{version}",
        )
    data = registry.read_gate_attachment(run, name)
    kinds = {
        ".png": "image/png",
        ".svg": "image/svg+xml",
        ".html": "text/html",
        ".json": "application/json",
    }
    kind = next((v for k, v in kinds.items() if name.endswith(k)), "text/plain; charset=utf-8")
    return Response(data, media_type=kind)


@router.get("/models/{symbol}/{model_type}/history", summary="The model's audit log")
def history(
    request: Request,
    symbol: Symbol,
    model_type: ModelType,
    _token: Viewer,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> list[dict[str, Any]]:
    return svc.history_of(state_of(request).registry, _key(symbol, model_type), limit)


@router.get("/models/{symbol}/{model_type}/rollouts", summary="Rollouts and their events")
def rollouts(
    request: Request, symbol: Symbol, model_type: ModelType, _token: Viewer
) -> list[dict[str, Any]]:
    return svc.rollouts_of(state_of(request).registry, _key(symbol, model_type))


# -- mutations -------------------------------------------------------------------------------


@router.post("/models/{symbol}/{model_type}/promote", summary="Promote a version (CAS)")
async def promote(
    request: Request,
    symbol: Symbol,
    model_type: ModelType,
    token: Operator,
    body: Annotated[PromoteBody, Body()],
) -> Response:
    require_admin_to_force(token, body.force)
    registry = state_of(request).registry
    return await _mutate(
        request,
        token,
        lambda: svc.promote(
            registry,
            _key(symbol, model_type),
            body.version,
            expect=body.expect,
            reason=body.reason,
            actor=token.actor,
            alias=body.alias,
            force=body.force,
        ),
    )


@router.post("/models/{symbol}/{model_type}/rollback", summary="Roll the champion back")
async def rollback(
    request: Request,
    symbol: Symbol,
    model_type: ModelType,
    token: Operator,
    body: Annotated[RollbackBody, Body()],
) -> Response:
    registry = state_of(request).registry
    return await _mutate(
        request,
        token,
        lambda: svc.rollback(
            registry,
            _key(symbol, model_type),
            reason=body.reason,
            actor=token.actor,
            expect=body.expect,
            to=body.to,
        ),
    )


@router.post("/models/{symbol}/{model_type}/rollouts", summary="Start a rollout")
async def start_rollout(
    request: Request,
    symbol: Symbol,
    model_type: ModelType,
    token: Operator,
    body: Annotated[RolloutStartBody, Body()],
) -> Response:
    require_admin_to_force(token, body.force)
    registry = state_of(request).registry
    return await _mutate(
        request,
        token,
        lambda: svc.start_rollout(
            registry,
            _key(symbol, model_type),
            body.version,
            actor=token.actor,
            steps=body.steps,
            interval_s=body.interval_s,
            max_failures=body.max_failures,
            reason=body.reason,
            force=body.force,
        ),
    )


@router.post(
    "/models/{symbol}/{model_type}/rollout/{action}",
    summary="Advance, pause, resume or abort the active rollout",
)
async def rollout_action(
    request: Request,
    symbol: Symbol,
    model_type: ModelType,
    action: svc.RolloutAction,
    token: Operator,
    body: Annotated[RolloutActionBody, Body()],
) -> Response:
    registry = state_of(request).registry
    return await _mutate(
        request,
        token,
        lambda: svc.rollout_action(
            registry, _key(symbol, model_type), action, reason=body.reason, actor=token.actor
        ),
    )
