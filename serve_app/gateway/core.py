"""Per-replica state of the gateway: connections, the market registry, actor handles and the
order batcher.

One `GatewayCore` lives in each `Gateway` replica. Routes reach it through the `core`
dependency (`serve_app.http.deps`). Orders, cancels and amends all go through
`submit`, a `serve.batch` method: the requests that arrive within `batch_wait_timeout_s`
are grouped by market and each market gets ONE `MarketActor.submit` call per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
import ray
import redis.asyncio as aioredis
from ray import serve
from ray.exceptions import RayError, RayTaskError

from actors.contracts import OrderRequest, OrderResult, UnavailableError
from actors.direct import ChannelClosedError, DirectClient, client_of
from actors.ledger.shard import DIRECT_METHODS as LEDGER_DIRECT_METHODS
from actors.market.actor import DIRECT_METHODS as MARKET_DIRECT_METHODS
from serve_app.auth import Authenticator
from serve_app.errors import ApiError
from serve_app.gateway import stats_cache
from serve_app.gateway.args import AppArgs
from serve_app.gateway.registry import MarketRegistry

log = logging.getLogger(__name__)
MAX_BATCH_SIZE = 256
# Methods called over an actor's direct channel (`actors.direct`), by the actor name's prefix.
DIRECT = {"market": frozenset(MARKET_DIRECT_METHODS), "ledger": frozenset(LEDGER_DIRECT_METHODS)}
BATCH_WAIT_TIMEOUT_S = 0.002
MAX_CONCURRENT_BATCHES = 16


def next_batch_wait(batch_size: int) -> float:
    """Return how long the next order batch waits for more requests, in seconds: none
    after a batch of one request, `BATCH_WAIT_TIMEOUT_S` after a larger one."""
    return 0.0 if batch_size <= 1 else BATCH_WAIT_TIMEOUT_S


class Submission(NamedTuple):
    """One command for one market's actor."""

    market: str
    request: OrderRequest


def unavailable(what: str, exc: BaseException | None = None) -> ApiError:
    """Return the 503 error of an unreachable component."""
    detail = {"component": what, "error": f"{type(exc).__name__}: {exc}"[:200]} if exc else None
    return ApiError(503, "unavailable", f"{what} is unavailable; retry", detail)


class GatewayCore:
    """Connections, registry, actor handles and the batcher of one gateway replica."""

    def __init__(self, args: AppArgs) -> None:
        self.args = args
        self.auth = Authenticator(ttl_s=args.auth_cache_ttl_s)
        self.registry = MarketRegistry()
        self._pool: asyncpg.Pool | None = None
        self._redis: aioredis.Redis | None = None
        self._init_lock = asyncio.Lock()
        self._handles: dict[str, Any] = {}
        self._direct: dict[str, DirectClient] = {}
        self._shard_count: int | None = None

    async def connections(self) -> tuple[asyncpg.Pool, aioredis.Redis]:
        """Return the PostgreSQL pool and the Redis client, creating them on first use."""
        async with self._init_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.args.database_url, min_size=1, max_size=8, reset=_no_session_state
                )
            if self._redis is None:
                self._redis = aioredis.from_url(self.args.redis_url)
        return self._pool, self._redis

    async def pool(self) -> asyncpg.Pool:
        """Return the PostgreSQL pool."""
        return (await self.connections())[0]

    async def redis(self) -> aioredis.Redis:
        """Return the Redis client."""
        return (await self.connections())[1]

    # -- actor handles ----------------------------------------------------------------------

    def actor(self, name: str) -> Any:
        """Return the handle of a named actor of the cluster (cached).

        Raises:
            ApiError: 503 `unavailable` when no such actor runs.
        """
        handle = self._handles.get(name)
        if handle is None:
            try:
                handle = ray.get_actor(name, namespace=self.args.ray_namespace)
            except ValueError as exc:
                raise unavailable(name, exc) from None
            self._handles[name] = handle
        return handle

    async def call(self, name: str, method: str, *args: Any) -> Any:
        """Call a method of a named actor and await its answer: over the actor's direct
        channel when it serves the method there (`DIRECT`), else through Ray.

        Raises:
            ApiError: 503 `unavailable` when the actor is dead or unreachable.
            RayTaskError: The method itself raised (a Ray call).
            Exception: The method itself raised (a direct call: its own exception).
        """
        if method in DIRECT.get(name.split(":", 1)[0], ()):
            return await self._call_direct(name, method, *args)
        handle = self.actor(name)
        try:
            return await getattr(handle, method).remote(*args)
        except RayTaskError as exc:  # the method raised: the caller decides what that means
            if isinstance(exc.cause, UnavailableError):
                raise unavailable(name, exc.cause) from None
            raise
        except RayError as exc:
            self._handles.pop(name, None)
            raise unavailable(name, exc) from None

    async def call_again_once(self, name: str, method: str, *args: Any) -> Any:
        """`call` an idempotent method, once more if the actor was unreachable: a restarted
        or replaced actor is then found afresh (the first failure dropped its handle).

        Raises:
            ApiError: 503 `unavailable` when the second call fails too.
        """
        try:
            return await self.call(name, method, *args)
        except ApiError as exc:
            if exc.code != "unavailable":
                raise
        return await self.call(name, method, *args)

    async def _call_direct(self, name: str, method: str, *args: Any) -> Any:
        client = self._direct.get(name)
        if client is None:
            client = self._direct[name] = client_of(self.actor(name))
        try:
            return await client.call(method, *args)
        except UnavailableError as exc:  # up, but it cannot serve (a failed recovery)
            raise unavailable(name, exc) from None
        except (ChannelClosedError, RayError) as exc:  # the connection, or finding the actor
            if self._direct.get(name) is client:
                del self._direct[name]
                client.close()
            self._handles.pop(name, None)
            raise unavailable(name, exc) from None

    async def ledger_of(self, account_id: int) -> str:
        """Return the actor name of the ledger shard that owns an account."""
        if self._shard_count is None:
            self._shard_count = int(await self.call("controller", "shard_count"))
        return f"ledger:{account_id % self._shard_count}"

    # -- the order batcher ------------------------------------------------------------------

    async def submit_one(self, market: str, request: OrderRequest) -> OrderResult:
        """Send one command to its market through the batcher; return its result.

        Raises:
            ApiError: 503 `unavailable` when the market actor cannot be reached.
        """
        result = await self._submit_batch(Submission(market, request))
        if isinstance(result, BaseException):
            raise result
        return result

    # Several batches in flight: the market actor merges what arrives while its pipeline is
    # busy (group commit), so batches grow with load instead of waiting for each other.
    @serve.batch(
        max_batch_size=MAX_BATCH_SIZE,
        batch_wait_timeout_s=BATCH_WAIT_TIMEOUT_S,
        max_concurrent_batches=MAX_CONCURRENT_BATCHES,
    )
    async def _submit_batch(self, items: list[Submission]) -> list[OrderResult | BaseException]:
        # The wait gathers requests that come together (a burst of clients); after a batch
        # of one, the next lone request would wait for company that is not coming, so it
        # goes at once. Serve reads the wait when a batch's first request arrives.
        wait = next_batch_wait(len(items))
        GatewayCore._submit_batch.set_batch_wait_timeout_s(wait)  # type: ignore[attr-defined]
        by_market: dict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            by_market[item.market].append(index)
        out: list[OrderResult | BaseException] = [unavailable("market")] * len(items)
        markets = list(by_market)
        answers = await asyncio.gather(
            *(self._submit_market(m, [items[i].request for i in by_market[m]]) for m in markets)
        )
        for market, answer in zip(markets, answers, strict=True):
            for index, result in zip(by_market[market], answer, strict=True):
                out[index] = result
        return out

    async def _submit_market(
        self, market: str, requests: Sequence[OrderRequest]
    ) -> Sequence[OrderResult | BaseException]:
        try:
            results: list[OrderResult] = await self.call(
                f"market:{market}", "submit", list(requests)
            )
        except ApiError as exc:
            return [exc] * len(requests)
        except Exception as exc:  # this market's failure must not fail another's requests
            log.exception("market %s: submit failed", market)
            return [unavailable(f"market:{market}", exc)] * len(requests)
        if any(stats_cache.has_fill(r.events) for r in results):
            await stats_cache.trade_landed(self, market)  # before any answer: once per batch
        return results


async def _no_session_state(conn: asyncpg.Connection) -> None:
    """Reset nothing when a connection goes back to the pool (asyncpg still rolls back an
    open transaction). The gateway sets roles and the acting account with `SET LOCAL` and
    `set_config(..., true)` only, which end with their transaction; the default reset
    query would cost one more round trip per request."""
    del conn
