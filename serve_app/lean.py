"""Lean ASGI routes: the hottest endpoint answered without FastAPI's request machinery.

FastAPI's middleware stack, router, dependency injection and response-model handling cost
the gateway replica about 400 µs of CPU per request on the reference machine: an empty
FastAPI endpoint behind Serve's HAProxy ingress used 710 µs per request, the same endpoint
as a plain ASGI branch 320 µs. That is more than the order's own work, and the gateway
replica is what limits REST throughput (`bench/rest_bench.py`).

`ExchangeAPI` is the FastAPI application with a table of lean routes that it tries before
its own router. The one lean route, `POST /api/v1/orders`, answers a well-formed request
itself: it reads the body, validates it with the same `OrderCreate` model, authenticates
with the same `authorize` and places the order with the same `orders.place` as the FastAPI
route. Anything else goes to FastAPI with the body replayed: a body that does not
validate, a media type other than JSON, a query string, a body over `MAX_BODY_BYTES`. So
errors keep one implementation and one shape, and the FastAPI route stays the documented
(OpenAPI) and reachable definition of the endpoint. Nothing is placed before the
hand-over is decided.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors import jsonx
from serve_app.edge.context import answer, context_of, note_error, route_path
from serve_app.errors import ApiError, error_body
from serve_app.gateway import orders
from serve_app.gateway.models import OrderCreate
from serve_app.http.deps import authorize, replica_core
from serve_app.ws.connection import ASGI_SEND

LeanRoute = Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
"""A larger body is handed to FastAPI (no valid order comes near it)."""

_API_KEY = b"x-api-key"
_CONTENT_TYPE = b"content-type"
_JSON = b"application/json"


class ExchangeAPI(FastAPI):
    """FastAPI with lean routes, keyed by (method, path), tried before its router, and an
    optional edge (`serve_app.edge`) around both.

    A lean route runs before FastAPI's middleware stack: middleware added to the app
    (`add_middleware`, `@app.middleware`) does not see its requests; the edge does.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lean_routes: dict[tuple[str, str], LeanRoute] = {}
        self.edge: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a request through the edge, when one is installed."""
        if self.edge is not None:
            await self.edge(scope, receive, send)
        else:
            await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a request: a lean route when one matches, else FastAPI."""
        if scope["type"] == "websocket":  # the WebSocket's frames skip Starlette's wrappers
            scope[ASGI_SEND] = send
        elif scope["type"] == "http":
            path = route_path(scope)
            route = self.lean_routes.get((scope["method"], path))
            if route is not None:
                context = context_of(scope)
                if context is not None:
                    context.route = path
                await route(scope, receive, send, super().__call__)
                return
        await super().__call__(scope, receive, send)


async def post_orders(scope: Scope, receive: Receive, send: Send, fallback: ASGIApp) -> None:
    """`POST /api/v1/orders` for a JSON body that validates; anything else to `fallback`."""
    body, complete = await _read_body(receive)
    if body is None:  # the client went away
        return
    headers = _headers(scope, (_API_KEY, _CONTENT_TYPE))
    # A query string is refused by FastAPI's route (unknown parameters, see
    # `serve_app.http.contract`), a media type other than JSON too (415).
    if not complete or scope.get("query_string") or not _is_json(headers.get(_CONTENT_TYPE)):
        await fallback(scope, _replay(body, complete, receive), send)
        return
    try:
        order = OrderCreate.model_validate_json(body)
    except ValidationError:
        await fallback(scope, _replay(body, complete, receive), send)
        return
    raw_key = headers.get(_API_KEY)
    core = replica_core()
    try:
        caller = await authorize(
            core, raw_key.decode("latin-1") if raw_key else None, context_of(scope)
        )
        status, view = await orders.place(core, caller, order)
    except ApiError as exc:
        note_error(scope, exc.code)
        await answer(send, exc.status, jsonx.dumpb(error_body(exc.code, exc.message, exc.details)))
        return
    await answer(send, status, view.model_dump_json(by_alias=True).encode())


def _headers(scope: Scope, names: tuple[bytes, ...]) -> dict[bytes, bytes]:
    """Return the first value of each of `names` that the request has (as Starlette's
    `Headers.get` does; ASGI header names are lower case)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value
    return found


def _is_json(content_type: bytes | None) -> bool:
    """Whether FastAPI would read the body as plain JSON (no header counts as JSON)."""
    return content_type is None or content_type.split(b";", 1)[0].strip().lower() == _JSON


async def _read_body(receive: Receive) -> tuple[bytes | None, bool]:
    """Read the request body up to `MAX_BODY_BYTES`; return it and whether it is all
    (None when the client disconnected)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None, False
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_BODY_BYTES:
            return b"".join(chunks), False


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """Return a `receive` that hands out `body` first, then whatever `receive` has left."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": not complete}

    return replayed
