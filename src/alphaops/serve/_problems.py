"""Errors as RFC 9457 problem documents: the error tree's code and HTTP status, the fix."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from alphaops.core.errors import ERROR_TABLE, AlphaOpsError

__all__ = ["PROBLEM_RESPONSES", "Problem", "install_handlers", "problem_body", "problem_response"]

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An error: ``code`` is the stable alphaops error code, ``fix`` says what to do."""

    type: str
    title: str
    status: int
    detail: Any
    code: str
    fix: str | None = None
    details: dict[str, Any] = {}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": text, "content": {MEDIA_TYPE: {}}}
    for status, text in (
        (400, "Bad input (code names the problem)"),
        (401, "No valid API token"),
        (403, "The token's role does not allow this"),
        (404, "Not found"),
        (409, "Conflict: stale expectation or a lifecycle that forbids the move"),
        (422, "Unusable input or a failed gate"),
        (503, "The registry database or another service is unavailable"),
    )
}
"""Documented error responses of every API route (schemathesis checks the server keeps them)."""


def problem_body(exc: AlphaOpsError) -> dict[str, Any]:
    """Return the problem document of an alphaops error."""
    data = exc.to_dict()
    return {
        "type": f"urn:alphaops:error:{exc.code}",
        "title": ERROR_TABLE[exc.code].meaning,
        "status": exc.http_status,
        "detail": exc.message,
        "code": exc.code,
        "fix": exc.fix,
        "details": data["details"],
    }


def problem_response(status: int, body: dict[str, Any]) -> JSONResponse:
    """Return a problem response (401 carries the ``WWW-Authenticate`` challenge)."""
    headers = {"WWW-Authenticate": 'Bearer realm="alphaops"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def _alphaops_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AlphaOpsError)
    return problem_response(exc.http_status, problem_body(exc))


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # ``detail`` keeps FastAPI's list of {loc, msg, type}: the documented 422 shape.
    body = {
        "type": "urn:alphaops:error:usage_error",
        "title": "the request does not match the API schema",
        "status": 422,
        "detail": jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"}),
        "code": "usage_error",
        "fix": "correct the fields listed in detail (see /openapi.json)",
        "details": {},
    }
    return problem_response(422, body)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "usage_error"}.get(exc.status_code, "usage_error")
    body = {
        "type": f"urn:alphaops:error:{code}",
        "title": str(exc.detail),
        "status": exc.status_code,
        "detail": str(exc.detail),
        "code": code,
        "fix": "see /docs for the routes and methods",
        "details": {},
    }
    response = problem_response(exc.status_code, body)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install_handlers(app: FastAPI) -> None:
    """Render alphaops errors, validation errors and HTTP errors as problem documents."""
    app.add_exception_handler(AlphaOpsError, _alphaops_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
