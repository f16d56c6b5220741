"""The edge: the ASGI layers every HTTP request of the gateway passes, lean route included.

`ExchangeAPI` (`serve_app.lean`) hands each request to its `Edge`, which runs, outermost
first:

1. the request context (`RequestContext` in the scope; the request id from `X-Request-ID`,
   refused with 400 `invalid_request_id` unless 1-128 visible ASCII characters), and when
   the answer is done, the request's log line and metrics;
2. CORS (Starlette's `CORSMiddleware`: preflights answered here, headers on every answer;
   a refused preflight answers the error shape);
3. the rate limit (`serve_app.edge.ratelimit`: 429 `rate_limited` with `Retry-After`, and
   `X-RateLimit-*` headers on every counted answer);
4. the dispatch: a lean route or FastAPI.

Serve's own HTTP server already honours an incoming `X-Request-ID`, makes one when there
is none and returns it in the response; the edge only reads it (and adds the header
itself when it runs without Serve, e.g. under a plain ASGI server).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors import jsonx
from serve_app.edge.context import (
    MAX_REQUEST_ID_LENGTH,
    REQUEST_ID_HEADER,
    SCOPE_KEY,
    RequestContext,
    answer,
    context_of,
    new_request_id,
    note_error,
    route_path,
    valid_request_id,
)
from serve_app.edge.metrics import GatewayMetrics
from serve_app.edge.ratelimit import ClientIp, RateLimiter, client_ip, exempt_path
from serve_app.edge.requestlog import RequestLog
from serve_app.errors import error_body

CORS_METHODS = ("GET", "POST", "PATCH", "DELETE")
CORS_HEADERS = ("X-API-Key", "X-Admin-Token", "X-Request-ID", "Content-Type")
CORS_EXPOSED = (
    "X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
    "Retry-After",
)  # fmt: skip
CORS_MAX_AGE_S = 600


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """How the edge of one replica behaves.

    Attributes:
        cors_origins: Origins allowed by CORS (`*`: any); empty: no CORS headers at all.
        rate_limit_per_minute: Requests per minute per account or client IP; 0: off.
        client_ip: Where a request's client IP comes from (`ratelimit.ClientIp`).
        request_log_dir: Directory of the request log files; None: no request log.
        rank: The replica's rank in its deployment (names its log file).
        replica: The replica's id (the `replica` label of its metrics).
    """

    cors_origins: Sequence[str] = ("*",)
    rate_limit_per_minute: int = 0
    client_ip: ClientIp = "peer"
    request_log_dir: str | None = None
    rank: int = 0
    replica: str = "local"


class Edge:
    """The layers above, around `dispatch` (see the module docstring)."""

    def __init__(self, dispatch: ASGIApp, config: EdgeConfig, core: Any) -> None:
        self.metrics = GatewayMetrics(config.replica)
        self.request_log = RequestLog.open(config.request_log_dir, config.rank)
        self._dispatch = dispatch
        self._client_ip: ClientIp = "peer" if config.client_ip == "none" else config.client_ip
        inner = dispatch
        if config.rate_limit_per_minute > 0:
            limiter = RateLimiter(core, config.rate_limit_per_minute, config.client_ip)
            inner = RateLimitGate(inner, limiter)
        if config.cors_origins:
            inner = Cors(
                inner,
                allow_origins=list(config.cors_origins),
                allow_methods=CORS_METHODS,
                allow_headers=CORS_HEADERS,
                expose_headers=CORS_EXPOSED,
                max_age=CORS_MAX_AGE_S,
            )
        self._inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (HTTP through every layer, the rest as is)."""
        if scope["type"] != "http":
            await self._dispatch(scope, receive, send)
            return
        started = time.perf_counter_ns()
        raw_id = _first(scope, REQUEST_ID_HEADER)
        usable = raw_id is not None and valid_request_id(raw_id)
        # A refused id is still logged (cut to the longest valid length) to be found.
        if raw_id is None:
            request_id = new_request_id()
        else:
            request_id = raw_id[:MAX_REQUEST_ID_LENGTH].decode("latin-1")
        context = RequestContext(request_id, started)
        scope[SCOPE_KEY] = context
        added = [] if raw_id is not None else [(b"x-request-id", context.request_id.encode())]

        async def send_noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                context.status = message["status"]
                if added:
                    message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        try:
            if raw_id is not None and not usable:
                await _refuse_request_id(scope, send_noted)
            else:
                await self._inner(scope, receive, send_noted)
        except BaseException:
            context.status = context.status or 500
            raise
        finally:
            self._finish(scope, context)

    def _finish(self, scope: Scope, context: RequestContext) -> None:
        """Log and count a request once it is answered (or abandoned: 499)."""
        elapsed_ns = time.perf_counter_ns() - context.started_ns
        context.status = context.status or 499  # the client left before an answer
        if context.route is None:
            context.route = route_template(scope)
        method = scope["method"]
        self.metrics.observe(
            method, context.route or "unmatched", context.status, elapsed_ns / 1e9, context.code
        )
        if self.request_log is not None:
            client = client_ip(scope, self._client_ip) or ""
            self.request_log.write(context, method, scope["path"], elapsed_ns / 1e6, client)


class RateLimitGate:
    """Count each request against its subject's quota; refuse it over the quota."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self._app = app
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the request through with its quota's headers, or answer 429."""
        context: RequestContext = scope[SCOPE_KEY]
        path = route_path(scope)
        quota = None if exempt_path(path) else await self._limiter.check(scope, context)
        if quota is None:
            await self._app(scope, receive, send)
            return
        headers = quota.headers()
        if quota.over:
            note_error(scope, "rate_limited")
            body = error_body(
                "rate_limited",
                f"more than {quota.limit} requests a minute",
                {"limit": quota.limit, "retry_after_s": quota.retry_after_s},
            )
            await answer(send, 429, jsonx.dumpb(body), headers)
            return

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self._app(scope, receive, send_with_quota)


class Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the one error shape."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a request; note a refused preflight's code for the log and metrics."""
        await super().__call__(scope, receive, send)
        context = context_of(scope)
        refused = context is not None and context.status == 400 and context.code is None
        if refused and scope["method"] == "OPTIONS" and context is not None:
            context.code = "cors_refused"

    def preflight_response(self, request_headers: Headers) -> Response:
        """Answer a preflight: 200, or 400 `cors_refused` naming what was refused."""
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ").split(", ")
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("access-")}
        body = error_body(
            "cors_refused",
            "the CORS preflight asks for what this API does not allow",
            {"refused": refused},
        )
        return JSONResponse(body, status_code=400, headers=headers)


def route_template(scope: Scope) -> str | None:
    """Return the template of the route that answered (`/api/v1/orders/{order_id}`), or
    None when none matched.

    FastAPI leaves the route of an included router in the scope, whose path lacks the
    router's prefix: the prefix is what the request's path has before the route's part.
    """
    template: str | None = getattr(scope.get("route"), "path_format", None)
    if template is None:
        return None
    params = scope.get("path_params") or {}
    try:
        rendered = template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template
    path = route_path(scope)
    return path[: len(path) - len(rendered)] + template if path.endswith(rendered) else template


def _first(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _refuse_request_id(scope: Scope, send: Send) -> None:
    note_error(scope, "invalid_request_id")
    body = error_body(
        "invalid_request_id",
        f"X-Request-ID must be 1 to {MAX_REQUEST_ID_LENGTH} visible ASCII characters",
        {"header": "X-Request-ID", "max_length": MAX_REQUEST_ID_LENGTH},
    )
    await answer(send, 400, jsonx.dumpb(body))
