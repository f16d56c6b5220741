"""What the edge knows about one HTTP request, kept in its ASGI scope.

The edge (`serve_app.edge.stack`) puts a `RequestContext` in the scope before anything else
runs. The routes fill in who the caller is and which error code they answered; the edge
reads it back for the request log line, the metrics and the rate limit. The scope is the
one object that both the lean route and FastAPI (`request.scope`) see.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import Scope, Send

if TYPE_CHECKING:
    from serve_app.auth import Principal
    from serve_app.errors import ApiError

SCOPE_KEY = "clob.request"
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID_LENGTH = 128
"""Longest `X-Request-ID` the gateway takes (a UUID is 36 characters)."""
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_REQUEST_ID_LENGTH)


@dataclass(slots=True)
class RequestContext:
    """One request as the edge sees it.

    Attributes:
        request_id: The caller's `X-Request-ID`, else one made here.
        started_ns: `time.perf_counter_ns()` when the edge received the request.
        principal: The caller's key, once authenticated (by the rate limit or the route).
        auth_error: Why the key presented was refused, raised again by the route that
            needs a key (so one request costs at most one failed lookup).
        admin: The request carried the valid admin token.
        status: The HTTP status answered (0 until the response starts).
        code: The error code answered, if any.
        route: The route template that answered (None: no route matched).
    """

    request_id: str
    started_ns: int
    principal: Principal | None = None
    auth_error: ApiError | None = None
    admin: bool = False
    status: int = 0
    code: str | None = None
    route: str | None = None


def context_of(scope: Scope) -> RequestContext | None:
    """Return the request's context (None outside the edge, e.g. in unit tests)."""
    context: RequestContext | None = scope.get(SCOPE_KEY)
    return context


def note_error(scope: Scope, code: str) -> None:
    """Record the error code a request is answered with (for its log line and metrics)."""
    context = context_of(scope)
    if context is not None:
        context.code = code


def route_path(scope: Scope) -> str:
    """Return the request's path below the app's route prefix (Serve's `root_path`: an
    app deployed at `/x` sees `/x/api/v1/orders` as its path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def new_request_id() -> str:
    """Return a fresh request id (a UUID4 in hex)."""
    return uuid.uuid4().hex


def valid_request_id(value: bytes) -> bool:
    """Whether a caller's `X-Request-ID` is 1-128 visible ASCII characters."""
    return _REQUEST_ID.fullmatch(value) is not None


async def answer(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = (),
    content_type: bytes = b"application/json",
) -> None:  # fmt: skip
    """Send a whole HTTP answer on a raw ASGI `send`: `body` with its type and length, and
    `headers` after them (the edge's own answers, the lean route's, the WebSocket app's)."""
    head = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
