"""The rate limit: requests per minute per account, or per client IP without a valid key.

Fixed one-minute windows, counted by every replica and shared through Redis
(`serve_app.edge.counts`). The subject is `account:<id>` for a request with a valid API
key (every key of an account shares its quota: a user who makes more keys gets no more
requests), else `ip:<address>`. A request with the valid admin token is not limited:
operators must be able to halt a market during an incident, whatever the load.
`/health*` and `/metrics` are not limited either (probes and scrapes).
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from starlette.types import Scope

from actors.infra.settings import Settings
from serve_app.auth import ADMIN_TOKEN_HEADER, API_KEY_HEADER
from serve_app.edge.context import RequestContext
from serve_app.edge.counts import WINDOW_S, WindowCounts
from serve_app.errors import ApiError

ClientIp = Literal["peer", "forwarded_for", "none"]
"""Where a request's client IP comes from: the TCP peer, the last `X-Forwarded-For`
address (appended by a load balancer in front), or nowhere (anonymous requests are then
not limited: behind Serve's HAProxy every peer is HAProxy)."""

_API_KEY = API_KEY_HEADER.lower().encode()
_ADMIN_TOKEN = ADMIN_TOKEN_HEADER.lower().encode()
_FORWARDED_FOR = b"x-forwarded-for"


@dataclass(frozen=True, slots=True)
class Quota:
    """A subject's standing in the current window.

    Attributes:
        limit: Requests allowed per window.
        remaining: Requests left in the window.
        reset_epoch_s: When the window ends (Unix time, s).
        retry_after_s: Seconds until the window ends, at least 1.
        over: This request is over the limit.
    """

    limit: int
    remaining: int
    reset_epoch_s: int
    retry_after_s: int
    over: bool

    @classmethod
    def of(cls, limit: int, count: int, now_s: float) -> Quota:
        """Return the quota after `count` requests in the window of `now_s`."""
        reset = (int(now_s // WINDOW_S) + 1) * WINDOW_S
        retry = max(1, math.ceil(reset - now_s))
        return cls(limit, max(0, limit - count), reset, retry, count > limit)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Return the `X-RateLimit-*` headers (and `Retry-After` when over)."""
        out = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_epoch_s).encode()),
        ]
        if self.over:
            out.append((b"retry-after", str(self.retry_after_s).encode()))
        return out


def client_ip(scope: Scope, source: ClientIp) -> str | None:
    """Return the request's client IP as `source` says (None when it has none)."""
    if source == "none":
        return None
    if source == "forwarded_for":
        forwarded: list[bytes] = [v for k, v in scope["headers"] if k == _FORWARDED_FOR]
        if forwarded:
            last = forwarded[-1].decode("latin-1").rsplit(",", 1)[-1].strip()
            if last:
                return last
    client = scope.get("client")
    return str(client[0]) if client else None


def client_ip_source(settings: Settings) -> ClientIp:
    """Return where `clob up`'s gateway finds a request's client IP: behind Serve's HAProxy
    (which adds no X-Forwarded-For) every TCP peer is HAProxy, so none without
    `serve.forwarded_for`."""
    if settings.serve.forwarded_for:
        return "forwarded_for"
    return "none" if settings.serve.haproxy else "peer"


def resolve_client_ip(source: str, environ: Mapping[str, str]) -> ClientIp:
    """Return `source`, with `auto` resolved in the replica's environment: none behind
    Serve's HAProxy (`RAY_SERVE_ENABLE_HA_PROXY=1`: every TCP peer is HAProxy), else the
    peer (Serve's proxy passes the client's address through)."""
    if source == "auto":
        return "none" if environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1" else "peer"
    if source not in ("peer", "forwarded_for", "none"):
        raise ValueError(f"unknown client IP source {source!r}")
    return cast(ClientIp, source)


def exempt_path(path: str) -> bool:
    """Whether a path is never limited (probes and scrapes)."""
    return path in ("/health", "/metrics") or path.startswith("/health/")


class RateLimiter:
    """Count each request against its subject's quota (see the module docstring)."""

    def __init__(self, core: Any, limit: int, source: ClientIp) -> None:
        self._core = core
        self._limit = limit
        self._source = source
        self.counts = WindowCounts(core.redis)

    async def check(self, scope: Scope, context: RequestContext) -> Quota | None:
        """Count the request; return its quota (None: the request is not limited)."""
        subject = await self._subject(scope, context)
        if subject is None:
            return None
        now = time.time()
        return Quota.of(self._limit, self.counts.count(subject, now), now)

    async def _subject(self, scope: Scope, context: RequestContext) -> str | None:
        key, token = _credentials(scope)
        expected = self._core.args.admin_token
        if token is not None and expected and hmac.compare_digest(token, expected.encode()):
            context.admin = True
            return None
        if key is not None:
            try:
                principal = await self._core.auth.authenticate(
                    await self._core.pool(), key.decode("latin-1")
                )
            except ApiError as exc:
                context.auth_error = exc  # the route that needs a key answers it
            except Exception:  # PostgreSQL unreachable: the route's own lookup reports it
                pass
            else:
                context.principal = principal
                return f"account:{principal.account_id}"
        ip = client_ip(scope, self._source)
        return None if ip is None else f"ip:{ip}"


def _credentials(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """Return the first `X-API-Key` and `X-Admin-Token` values (as Starlette reads them)."""
    key = token = None
    for name, value in scope["headers"]:
        if name == _API_KEY and key is None:
            key = value
        elif name == _ADMIN_TOKEN and token is None:
            token = value
    return key, token
