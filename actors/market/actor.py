"""`MarketActor`: the thin Ray shell around one market's pipeline (`MarketCore`).

Ray runs the constructor again on every restart, so the constructor is the recovery path;
because a constructor cannot await, it starts `_ready()` as a task and every method first
awaits it: it opens the real adapters (`journal.open_stores`, the `LedgerClient`), builds
the consumers of committed batches (`consumers.market_consumers`) and runs
`recovery.recover` once. Calls are serialised by one lock: the market is single-threaded,
like the engine.

A journal write that fails for any reason but fencing leaves the in-memory engine ahead of
the database, so the process exits and Ray restarts it (crash-only). A fenced incarnation
(a newer one took over) answers `FencedError` to every call and writes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import time
from typing import Any

import ray

from actors.accounts import AccountId, owner_of
from actors.contracts import OrderRequest, OrderResult, UnavailableError
from actors.direct import DirectServer, Endpoint
from actors.engine import OrderId
from actors.engine.engine import GC_THRESHOLDS
from actors.engine.views import OrderView
from actors.infra.ray_env import start_in_constructor
from actors.market.consumers import TradeTape, market_consumers
from actors.market.core import JournalWriteError, MarketCore, now_ms
from actors.market.journal import FencedError, open_stores
from actors.market.ledger_client import LedgerClient
from actors.market.passes import PASS_SIZE_BOUNDS, GroupCommit, SizeCounts
from actors.market.ports import Ports
from actors.market.recovery import recover
from actors.market.reservations import DEFAULT_MAX_SLIPPAGE_BPS
from actors.market.seam import Consumer
from actors.stream.publisher import StreamPublisher
from actors.stream.sink import RedisSink

log = logging.getLogger(__name__)
TICK_INTERVAL_S = 1.0
# After a failed recovery, calls are refused at once until the next attempt is due; the
# pause doubles from the first to the last (an operator's `retry` tries at once).
RECOVERY_RETRY_S = (1.0, 60.0)


class MarketUnavailableError(UnavailableError):
    """The market's recovery failed (its journal cannot be replayed, or a ledger shard set
    the market aside): every call is refused, changing nothing, until a recovery succeeds."""


__all__ = [
    "FencedError",
    "MarketActor",
    "MarketUnavailableError",
    "market_actor_name",
    "market_actor_options",
]


def market_actor_name(symbol: str) -> str:
    """Return the Ray actor name of a market."""
    return f"market:{symbol}"


def market_actor_options(symbol: str, namespace: str | None = None) -> dict[str, Any]:
    """Return the `.options(...)` of a market's actor (named, detached, restarted forever)."""
    options: dict[str, Any] = {
        "name": market_actor_name(symbol),
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": 0,
        "num_cpus": 0,
        "scheduling_strategy": "SPREAD",
    }
    if namespace is not None:
        options["namespace"] = namespace
    return options


def _view_dict(view: OrderView) -> dict[str, Any]:
    out = dataclasses.asdict(view)
    for key in ("side", "kind", "tif", "post_only", "stp"):
        value = out[key]
        out[key] = getattr(value, "value", value)
    return out


# What the gateway calls on a market's direct channel (`actors.direct`); the rest goes by Ray.
DIRECT_METHODS = ("submit", "l2", "recent_trades")


class MarketActor:
    """The market actor of one symbol.

    Args:
        symbol: Market symbol (a row of the `markets` table).
        database_url: PostgreSQL URL.
        shard_count: Number of ledger shards.
        namespace: Ray namespace of the ledger shards.
        snapshot_every_events: Engine events between snapshots.
        max_slippage_bps: Protection budget of market buys by quantity, basis points.
        redis_url: Where to publish the real-time stream (`actors.stream`); None: off.
    """

    def __init__(
        self,
        symbol: str,
        database_url: str,
        shard_count: int,
        namespace: str = "clob",
        *,
        snapshot_every_events: int = 50_000,
        max_slippage_bps: int = DEFAULT_MAX_SLIPPAGE_BPS,
        redis_url: str | None = None,
    ) -> None:
        gc.set_threshold(*GC_THRESHOLDS)  # this process hosts an engine
        self._symbol = symbol
        self._database_url = database_url
        self._ledger = LedgerClient(namespace, shard_count)
        self._snapshot_every = snapshot_every_events
        self._slippage = max_slippage_bps
        self._core: MarketCore | None = None
        self._tape: TradeTape | None = None  # the consumer holding the recent trades
        # The real-time stream's sink, one per incarnation (its sender starts on first use).
        self._sink = None if redis_url is None else RedisSink(redis_url)
        self._publisher: StreamPublisher | None = None
        self._init_lock: asyncio.Lock | None = None
        self._lock: asyncio.Lock | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._watched: asyncio.Task[None] | None = None  # the last tail `_on_tail` watches
        self._pass_sizes = SizeCounts(PASS_SIZE_BOUNDS)
        self._passes = GroupCommit(self._pass, self._pass_sizes)
        self._created = time.monotonic()
        self._startup: dict[str, float] = {}
        # The last failed recovery (why, attempts so far, when the next may run), if any.
        self._failure: str | None = None
        self._attempts = 0
        self._retry_at = 0.0
        self._direct = DirectServer(self, DIRECT_METHODS)
        self._eager = start_in_constructor(self._ready, log)

    async def _ready(self) -> MarketCore:
        if self._core is not None:
            return self._core
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        async with self._init_lock:
            if self._core is None:
                began = time.monotonic()
                self._core = await self._recover_or_refuse(began)
                done = time.monotonic()
                self._startup = {
                    "recovery": round(done - began, 3),
                    "since_constructed": round(done - self._created, 3),
                }
                self._lock = asyncio.Lock()
                self._ticker = asyncio.create_task(self._tick_loop())
        return self._core

    async def _recover_or_refuse(self, began: float) -> MarketCore:
        """Recover, unless a failed attempt's pause is still running: refuse then."""
        if self._failure is not None and began < self._retry_at:
            raise MarketUnavailableError(
                f"market {self._symbol} failed to recover: {self._failure}"
            )
        try:
            core = await self._recover()
        except Exception as exc:
            self._attempts += 1
            self._failure = f"{type(exc).__name__}: {exc}"[:500]
            first, most = RECOVERY_RETRY_S
            self._retry_at = time.monotonic() + min(most, first * 2 ** (self._attempts - 1))
            log.error("market %s failed to recover (attempt %d): %s", self._symbol,
                      self._attempts, self._failure)  # fmt: skip
            raise MarketUnavailableError(
                f"market {self._symbol} failed to recover: {self._failure}"
            ) from exc
        self._failure, self._attempts = None, 0
        return core

    async def _recover(self) -> MarketCore:
        """Open the market's stores and recover its core over them (closing them again if
        the recovery fails)."""
        stores = await open_stores(self._database_url, self._symbol)
        try:
            own = market_consumers(stores.spec, self._ledger, stores.projection)
            consumers: list[Consumer] = list(own)
            publisher = None
            if self._sink is not None:
                publisher = StreamPublisher(
                    stores.spec, self._sink, stores.projection, now_ms, own[1].rows_of
                )
                consumers.append(publisher)
            ports = Ports(stores.journal, stores.snapshots, stores.projection, self._ledger)
            core = await recover(
                stores.spec, ports, consumers, snapshot_every_events=self._snapshot_every,
                max_slippage_bps=self._slippage, holder=_holder(),
            )  # fmt: skip
        except BaseException:
            stores.terminate()
            raise
        self._tape, self._publisher = own[-1], publisher
        return core

    async def health(self) -> dict[str, Any]:
        """Return the market's state without waiting for its recovery: `up`, `recovering`,
        `failed` (with the `error` and the attempts so far) or `down` (fenced: a newer
        incarnation took over)."""
        core = self._core
        if core is not None:
            status = "down" if core.fenced else "up"
        else:
            status = "recovering" if self._failure is None else "failed"
        return {
            "name": market_actor_name(self._symbol),
            "status": status,
            "error": self._failure if core is None else None,
            "attempts": self._attempts,
            "pid": os.getpid(),
        }

    async def retry(self) -> dict[str, Any]:
        """Try a failed recovery again now (operators, after fixing its cause); return
        `status()`."""
        self._retry_at = 0.0
        return await self.status()

    async def _guarded(self, run: Any) -> Any:
        core = await self._ready()
        assert self._lock is not None
        async with self._lock:
            try:
                return await run(core)
            except JournalWriteError:  # PassFailedError included
                log.exception("market %s: a pass was not journaled; restarting", self._symbol)
                os._exit(1)

    async def direct_endpoint(self) -> Endpoint:
        """Return where this incarnation serves `DIRECT_METHODS` (listening from the first
        call; see `actors.direct`)."""
        return await self._direct.endpoint()

    async def submit(self, requests: list[OrderRequest]) -> list[OrderResult]:
        """Run a batch through the pipeline; answer each request after it is journaled.

        Calls that arrive while an earlier pass is in flight are merged into the next pass
        (group commit), so concurrent callers share one reserve, one journal transaction
        and one ledger apply; each call still gets exactly its own answers, in order.
        """
        await self._ready()
        return await self._passes.submit(requests)

    async def _pass(self, requests: list[OrderRequest]) -> list[OrderResult]:
        answers: list[OrderResult] = await self._guarded(lambda core: core.submit(requests))
        # The pass is journaled: its callers are answered now. Its ledger apply and
        # projection finish in the background while the next pass runs; one that fails
        # restarts the market (the shards and the projection catch up from the journal).
        tail = self._core.seam.tail if self._core is not None else None
        if tail is not None and tail is not self._watched:
            self._watched = tail
            tail.add_done_callback(self._on_tail)
        return answers

    def _on_tail(self, tail: asyncio.Task[None]) -> None:
        exc = None if tail.cancelled() else tail.exception()
        if isinstance(exc, JournalWriteError):
            log.error(
                "market %s: ledger apply or projection failed; restarting",
                self._symbol,
                exc_info=exc,
            )
            os._exit(1)

    async def halt(self) -> OrderResult:
        """Halt the market (journaled)."""
        result: OrderResult = await self._guarded(lambda core: core.admin("halt"))
        return result

    async def resume(self) -> OrderResult:
        """Resume the market (journaled)."""
        result: OrderResult = await self._guarded(lambda core: core.admin("resume"))
        return result

    async def tick(self) -> OrderResult | None:
        """Journal a `tick` if a GTD order or stop is due to expire; else do nothing."""

        async def run(core: MarketCore) -> OrderResult | None:
            return await core.admin("tick") if core.expiry_due() else None

        result: OrderResult | None = await self._guarded(run)
        return result

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            core = self._core
            if core is None or core.fenced or not core.expiry_due():
                continue
            try:
                await self.tick()
            except FencedError:
                return
            except Exception:
                log.exception("market %s: tick failed", self._symbol)

    async def l2(self, depth: int | None = None) -> dict[str, Any]:
        """Return the aggregated book: bids and asks best first, and the event seq."""
        core = await self._ready()
        book = core.engine.l2(depth)

        def side(levels: list[Any]) -> list[dict[str, int]]:
            return [{"price": lv.price, "qty": lv.qty, "count": lv.order_count} for lv in levels]

        return {"bids": side(book.bids), "asks": side(book.asks), "seq": core.engine.seq}

    async def l3(self) -> list[dict[str, Any]]:
        """Return every resting order and pending stop (book order, then stops)."""
        core = await self._ready()
        return [_view_dict(v) for v in (*core.engine.l3(), *core.engine.stops())]

    async def get_order(self, order_id: str) -> dict[str, Any] | None:
        """Return a live order or pending stop, or None."""
        core = await self._ready()
        view = core.engine.get_order(OrderId(order_id))
        return None if view is None else _view_dict(view)

    async def orders_of(self, account_id: AccountId) -> list[dict[str, Any]]:
        """Return an account's live orders and pending stops in arrival order."""
        core = await self._ready()
        return [_view_dict(v) for v in core.engine.orders_of(owner_of(account_id))]

    async def recent_trades(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return up to `limit` recent fills (at most the last 1,000), newest first."""
        await self._ready()
        assert self._tape is not None
        return self._tape.recent(limit)

    async def status(self) -> dict[str, Any]:
        """Return the market's identity, epoch, sequence numbers, size, lags (journal entries
        whose ledger apply or orders/trades projection has not completed) and pass sizes;
        for a market whose recovery failed, its `status` `failed`, the `error` and the
        attempts."""
        try:
            core = await self._ready()
        except MarketUnavailableError:
            return {
                "symbol": self._symbol,
                "status": "failed",
                "error": self._failure,
                "attempts": self._attempts,
                "retry_in_s": round(max(0.0, self._retry_at - time.monotonic()), 1),
                "node_id": ray.get_runtime_context().get_node_id(),
                "pid": os.getpid(),
            }
        ledger_lag, projection_lag = core.lag()
        return {
            "symbol": self._symbol,
            "status": "up",
            "epoch": core.epoch,
            "seq": core.seq,
            "event_seq": core.engine.seq,
            "halted": core.engine.halted,
            "fenced": core.fenced,
            "orders": core.engine.live_order_count(),
            "events_since_snapshot": core.engine.seq - core.snapshot_event_seq,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "stage_seconds": {k: round(v, 3) for k, v in core.stage_s.items()},
            "startup_seconds": self._startup,
            "ledger_lag": ledger_lag,
            "projection_lag": projection_lag,
            "pass_commands": self._pass_sizes.to_dict(),
            "consumer_failures": dict(core.seam.failures),
            "stream": self._stream_status(),
        }

    def _stream_status(self) -> dict[str, int] | None:
        """Return the stream's counters (None when publishing is off): the sink's, the
        market's messages and the order updates it could not place."""
        if self._sink is None:
            return None
        publisher = self._publisher
        return {
            **self._sink.counters(),
            "batches": 0 if publisher is None else publisher.batches,
            "unknown_orders": 0 if publisher is None else publisher.orders.unknown,
        }

    async def settled(self) -> int:
        """Wait until every pass journaled so far is applied to the ledger and projected to
        the orders and trades tables; return the journal seq it covers (tests, operators)."""
        core = await self._ready()
        seq = core.seq
        await core.settled()
        return seq

    async def snapshot_now(self) -> int:
        """Take a snapshot now and wait for it; return its journal seq (tests, operators)."""

        async def run(core: MarketCore) -> int:
            await core.settled()
            await core.wait_snapshot()
            core.snapshot_event_seq = -(10**18)
            core.maybe_snapshot()
            await core.wait_snapshot()
            return core.seq

        seq: int = await self._guarded(run)
        return seq


def _holder() -> str:
    ctx = ray.get_runtime_context()
    return f"node={ctx.get_node_id()[:12]} pid={os.getpid()}"
