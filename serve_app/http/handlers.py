"""FastAPI's error handlers: every error a route raises, or FastAPI meets before it, is
answered in the one error shape (`serve_app.errors`) and noted for the request log."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from serve_app.edge.context import note_error
from serve_app.errors import ApiError, error_body

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    note_error(request.scope, exc.code)
    return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    note_error(request.scope, code)
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; a path served by
        # several routes (GET, POST and DELETE /orders) allows all of theirs.
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                        headers=headers)  # fmt: skip


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Return the methods some route serves at the request's path (asked of each route, so
    routers included into the app are asked too)."""
    routes = request.app.router.routes
    allowed = [
        method for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]  # fmt: skip
    return ", ".join(allowed)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
    malformed = any(err["type"] == "json_invalid" for err in exc.errors())
    code = "malformed_json" if malformed else "invalid_request"
    message = "the body is not valid JSON" if malformed else "the request has invalid fields"
    note_error(request.scope, code)
    return JSONResponse(
        error_body(code, message, {"errors": errors}), status_code=400 if malformed else 422
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every error raised by the app through the one error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
