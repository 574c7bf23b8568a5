"""``/v2``: the Open Inference Protocol (KServe v2 / Triton) REST shape over served champions.

A model is named ``SYMBOL.TYPE`` (``BTCUSDT.lightgbm``). Its ``LivePredictor`` follows the
registry: a promotion, rollback or rollout step is served after the next poll, without a
restart, and canary routing uses the request's ``parameters.routing_key``.
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from alphaops._version import __version__
from alphaops.core.errors import AlphaOpsError, NotFoundError, UsageError
from alphaops.serve._auth import authorize
from alphaops.serve._problems import PROBLEM_RESPONSES
from alphaops.serve._state import ServerState, state_of
from alphaops.services.tokens import ApiToken, Role

__all__ = ["router"]

router = APIRouter(prefix="/v2", responses=PROBLEM_RESPONSES, tags=["inference"])
Viewer = Annotated[ApiToken | None, Depends(authorize(Role.VIEWER))]
ModelName = Annotated[str, Path(min_length=1, max_length=130, examples=["BTCUSDT.lightgbm"])]
MAX_ROWS = 10_000
"""Rows per request: bigger batches are refused (split them)."""
INLINE_ROWS = 16
"""Requests with at most this many rows are predicted on the event loop, bigger in a thread."""

Number = float | int
Data = list[Number] | list[list[Number]] | list[list[list[Number]]]


class InferInput(BaseModel):
    """One input tensor: ``input`` of shape ``[N, F]`` (or ``[N, T, F]`` for sequence models)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    shape: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(min_length=1, max_length=3)
    datatype: Literal["FP32", "FP64", "INT32", "INT64"]
    data: Data
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """An inference request; ``parameters.routing_key`` picks champion or canary challenger."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, max_length=128)
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput] = Field(min_length=1, max_length=1)
    outputs: list[dict[str, Any]] | None = None


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] = {}
    outputs: list[InferOutput]


def _served(state: ServerState, name: str) -> Any:
    live = state.predictors.get(name)
    if live is None:
        raise NotFoundError(
            f"model {name!r} is not served here",
            fix="use one of: "
            + (
                ", ".join(sorted(state.predictors))
                or "(none: start alphaops serve with --predict SYMBOL/TYPE)"
            ),
            model=name,
        )
    return live


def _rows(tensor: InferInput) -> np.ndarray:
    values = np.asarray(tensor.data, dtype=np.float64).reshape(-1)
    expected = math.prod(tensor.shape)
    if values.size != expected:
        raise UsageError(
            f"input {tensor.name!r} has {values.size} values but shape {tensor.shape} needs "
            f"{expected}",
            fix="send shape [N, F] with N*F values (row-major)",
        )
    if tensor.name != "input":
        raise UsageError(
            f"unknown input tensor {tensor.name!r}", fix="name the feature tensor 'input'"
        )
    shape = tensor.shape if len(tensor.shape) > 1 else [1, *tensor.shape]
    if shape[0] > MAX_ROWS:
        raise UsageError(f"{shape[0]} rows in one request", fix=f"send at most {MAX_ROWS}")
    return values.reshape(shape).astype(np.float32)


def _routing_key(parameters: dict[str, Any] | None) -> str | int | None:
    key = (parameters or {}).get("routing_key")
    if key is None or (isinstance(key, str | int) and not isinstance(key, bool)):
        return key
    raise UsageError(
        f"parameters.routing_key {key!r} is not a string or an integer",
        fix="send the order id, account or bar time the canary split should hash",
    )


def _predict(
    state: ServerState, model: str, predictor: Any, rows: np.ndarray, routing_key: str | int | None
) -> list[Any]:
    predictions = []
    for row in rows:
        started = time.perf_counter()
        prediction = predictor.predict(row, routing_key=routing_key)
        state.model_metrics.observe(model, prediction, time.perf_counter() - started)
        predictions.append(prediction)
    return predictions


@router.post("/models/{name}/infer", summary="Predict", response_model=InferResponse)
async def infer(request: Request, name: ModelName, body: InferRequest, _token: Viewer) -> Response:
    # Async: a few rows (a prediction takes microseconds) are predicted on the event loop,
    # sparing the thread pool's hops; bigger batches go to the pool, not to block the loop.
    state = state_of(request)
    predictor = _served(state, name)
    model = str(state.keys[name])
    try:
        rows = _rows(body.inputs[0])
        routing_key = _routing_key(body.parameters)
        if len(rows) <= INLINE_ROWS:
            predictions = _predict(state, model, predictor, rows, routing_key)
        else:
            predictions = await run_in_threadpool(
                _predict, state, model, predictor, rows, routing_key
            )
    except AlphaOpsError as exc:
        state.model_metrics.error(model, exc.code)
        raise
    n, classes = len(predictions), predictions[0].classes
    # The InferResponse shape, written directly: FastAPI's re-validation and encoding of
    # the returned model cost more than the prediction itself.
    document = {
        "model_name": name,
        "model_version": str(predictions[0].version),
        "id": body.id,
        "parameters": {"classes": list(classes)},
        "outputs": [
            {"name": "probabilities", "shape": [n, len(classes)], "datatype": "FP32",
             "data": [float(p) for pred in predictions for p in pred.probabilities]},
            {"name": "action", "shape": [n], "datatype": "INT32",
             "data": [int(p.action) for p in predictions]},
            {"name": "version", "shape": [n], "datatype": "INT64",
             "data": [int(p.version) for p in predictions]},
            {"name": "role", "shape": [n], "datatype": "BYTES",
             "data": [str(p.role) for p in predictions]},
        ],
    }  # fmt: skip
    return Response(json.dumps(document, separators=(",", ":")), media_type="application/json")


# Declared after infer: routes are matched in order, and infer is the hot path.
@router.get("", summary="Server metadata")
def server_metadata() -> dict[str, Any]:
    return {"name": "alphaops", "version": __version__, "extensions": []}


@router.get("/health/live", summary="Liveness")
def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", summary="Readiness: every served model has a champion loaded")
def ready(request: Request) -> dict[str, bool]:
    return {"ready": bool(state_of(request).predictors) or not state_of(request).serve.predict}


@router.get("/models/{name}", summary="Model metadata: versions, input and output tensors")
def model_metadata(request: Request, name: ModelName, _token: Viewer) -> dict[str, Any]:
    state = state_of(request)
    predictor = _served(state, name)
    manifest = state.registry.resolve(f"{state.keys[name]}@champion").manifest
    n = len(manifest.features)
    lookback = getattr(manifest.input, "lookback", None)
    shape = [-1, n] if lookback is None else [-1, int(lookback), n]
    return {
        "name": name,
        "versions": [str(predictor.version)],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": shape}],
        "outputs": [
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [-1, len(manifest.label.class_order)],
            },
            {"name": "action", "datatype": "INT32", "shape": [-1]},
            {"name": "version", "datatype": "INT64", "shape": [-1]},
            {"name": "role", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {
            "features": [f.name for f in manifest.features],
            "classes": list(manifest.label.class_order),
        },
    }


@router.get("/models/{name}/ready", summary="Whether the model is served")
def model_ready(request: Request, name: ModelName, _token: Viewer) -> dict[str, Any]:
    _served(state_of(request), name)
    return {"name": name, "ready": True}
