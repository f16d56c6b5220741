"""The ledger shard actor: a thin async shell around `LedgerCore`, persisted in PostgreSQL.

Start one per shard with `ray.remote(LedgerShard).options(**ledger_shard_options(i))`.
Recovery starts in the constructor (and the first call waits for it, or retries it):
bump the shard's epoch, load its state from PostgreSQL and catch up every market from the
journal, past the shard's marks.

Every call runs under one lock (one message at a time, as the design wants) and works in
memory. `reserve` answers holds under the shard's epoch (`holds.py`); `apply` makes
journaled reservations and their events part of the durable state, which is a function of
the credits and the journals: a background flusher writes what changed (`store.save`,
one statement) behind the calls, and a restart rebuilds the rest from the journal. Only
`credit` and `debit` wait for their writes (they are in no journal). If a write fails, the in-memory
state is thrown away and rebuilt on the next call (a new epoch: the holds are gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from actors.accounts import AccountId
from actors.contracts import (
    BalanceView,
    LedgerEntry,
    Reservation,
    StaleMarketEpochError,
    UnavailableError,
)
from actors.direct import DirectServer, Endpoint
from actors.infra.ray_env import start_in_constructor
from actors.ledger import store
from actors.ledger.catchup import JournalCatchUp, apply_entry
from actors.ledger.containment import (
    EntryApplyError,
    MarketSetAsideError,
    SetAside,
    ShardUnavailableError,
)
from actors.ledger.core import LedgerCore, shard_of
from actors.ledger.rules import (
    AmountBoundError,
    CreditReferenceError,
    DebitReferenceError,
    Holdings,
    LedgerRequestError,
    check_credit,
)
from actors.stream.balances import balance_messages
from actors.stream.sink import RedisSink

__all__ = [
    "DIRECT_METHODS",
    "LedgerShard",
    "MarketSetAsideError",
    "ShardUnavailableError",
    "ledger_shard_options",
    "shard_of",
]

# What the market actors (and, for `balances`, the gateway) call on a shard's direct channel
# (`actors.direct`); the rest goes by Ray.
DIRECT_METHODS = ("reserve", "apply", "sync", "release_orphans", "balances")

_T = TypeVar("_T")
log = logging.getLogger(__name__)

WRITE_BEHIND_INTERVAL_S = 0.05
"""Least time between the starts of two background writes, in seconds. The writes only
shorten a restart's catch-up (the journals are the record, and nothing reads the tables
while the shard runs), but each costs PostgreSQL a transaction: under a stream of small
passes one write now carries the changes of many. A write after a quiet spell starts at
once."""


def ledger_shard_options(shard_id: int) -> dict[str, Any]:
    """Return the Ray actor options of shard `shard_id` (named, detached, restartable)."""
    return {
        "name": f"ledger:{shard_id}",
        "namespace": "clob",
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": 0,
        "num_cpus": 0,
    }


class LedgerShard:
    """One ledger shard: owns the accounts with `account_id % shard_count == shard_id`.

    Args:
        shard_id: This shard's number.
        shard_count: Number of shards.
        database_url: PostgreSQL URL (the shard acts as `clob_system` when it may).
        redis_url: Where to publish balance changes (`actors.stream`); None: off.
    """

    def __init__(
        self, shard_id: int, shard_count: int, database_url: str, redis_url: str | None = None
    ) -> None:
        self._shard_id = shard_id
        self._shard_count = shard_count
        self._url = database_url
        self._lock = asyncio.Lock()
        # One connection, not a pool: calls run one at a time under the lock anyway, and a
        # pool's release runs a reset query (one more round trip per call) whose RESET ALL
        # also drops the `SET ROLE clob_system` made when the connection opened.
        self._conn: asyncpg.Connection | None = None
        self._core: LedgerCore | None = None
        self._registry = store.Registry()
        self.set_aside = SetAside(shard_id)  # markets with an entry it cannot apply
        self._journal = JournalCatchUp(self._registry, self.set_aside)
        self.epoch = 0  # this incarnation's epoch (0 until recovered)
        # The background writer of what changed; its own connection, one write at a time.
        self._flush_lock = asyncio.Lock()
        self._flush_conn: asyncpg.Connection | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._dirty = False
        self._last_write = 0.0  # `time.monotonic()` at the start of the last background write
        self.pid = os.getpid()  # this incarnation's process, for operators and tests
        self._failure: str | None = None  # why the last recovery failed, until one succeeds
        self._direct = DirectServer(self, DIRECT_METHODS)
        self._sink = None if redis_url is None else RedisSink(redis_url)
        # Recover now: the epoch moves at once and the first reserve does not wait.
        self._eager = start_in_constructor(self.ping, log)

    # -- public interface ------------------------------------------------------------------

    async def direct_endpoint(self) -> Endpoint:
        """Return where this incarnation serves `DIRECT_METHODS` (listening from the first
        call; see `actors.direct`)."""
        return await self._direct.endpoint()

    async def ping(self) -> int:
        """Recover if needed, then return the shard id."""
        await self._locked(lambda conn, core: _done(None))
        return self._shard_id

    async def reserve(
        self, reservations: list[Reservation], market_epoch: int = 0
    ) -> tuple[int, list[bool]]:
        """Hold funds for orders before matching, in memory (see `holds.py`).

        Args:
            reservations: One per order.
            market_epoch: The calling market actor's epoch (an older one is refused).

        Returns:
            This shard's epoch (journal the holds with it) and, per reservation, whether
            its funds are held (False: short of funds).
        """

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> tuple[int, list[bool]]:
            for r in reservations:  # validate all first: a refusal changes nothing
                self.set_aside.check(r.market)
                core.check_owner(r.account_id)
                if r.amount_atoms < 0:
                    raise LedgerRequestError(f"negative reservation {r.amount_atoms}")
                await self._registry.asset_id(conn, r.asset)
                await self._registry.spec(conn, r.market)
                core.holds.check_epoch(r.market, market_epoch)
            held = [core.hold(r, market_epoch) for r in reservations]
            if not all(held) and await self._catch_up_all(conn, core):
                # Funds an account was answered about (a fill, a cancel in another market)
                # may still be on their way here: applied now from the journal, they can
                # only add to what is available.
                again = zip(held, reservations, strict=True)
                held = [ok or core.hold(r, market_epoch) for ok, r in again]
            return self.epoch, held

        return await self._locked(run)

    async def apply(
        self,
        market: str,
        entries: Sequence[LedgerEntry],
        since: int | None = None,
        through: int | None = None,
    ) -> None:
        """Apply journal entries of a market, in ascending seq.

        The caller vouches that `entries` hold every entry in `(since, through]` that
        concerns this shard (a routed apply, `actors.market.routing`; by default
        `entries` is every entry from its first to its last). If the shard's mark is below
        `since`, the entries up to `since` are first read from the journal table; entries
        at or below the mark are skipped; then the mark moves to `through`. In memory;
        written to PostgreSQL in the background.
        """
        if not entries and (since is None or through is None):
            raise LedgerRequestError("an apply without entries needs since and through")

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> None:
            self.set_aside.check(market)
            spec = await self._registry.spec(conn, market)
            first = entries[0].seq - 1 if since is None else since
            if core.mark(market) < first:
                await self._catch_up(conn, core, market, first + 1)
            for entry in entries:
                apply_entry(core, spec, market, entry)  # skipped at or below the mark
            core.advance(market, entries[-1].seq if through is None else through)

        await self._mutate(run)

    async def sync(self, market: str) -> int:
        """Catch a market up from the journal; return the shard's mark of it."""

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> int:
            self.set_aside.check(market)
            await self._catch_up(conn, core, market, None)
            return core.mark(market)

        return await self._mutate(run)

    async def release_orphans(
        self, market: str, live_order_ids: list[str], market_epoch: int = 0
    ) -> int:
        """Catch up, then release every reservation of the market whose order is not live
        and every hold of its incarnations older than `market_epoch` (which holds no more
        from then on).

        Returns:
            How many reservations and holds were released.
        """
        live = set(live_order_ids)

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> int:
            self.set_aside.check(market)
            await self._catch_up(conn, core, market, None)
            orphans = [oid for oid in core.order_ids(market) if oid not in live]
            for order_id in orphans:
                core.release(market, order_id)
            return len(orphans) + core.holds.release_market(market, market_epoch)

        return await self._mutate(run)

    async def credit(
        self, account_id: AccountId, asset: str, amount_atoms: int, reference: str
    ) -> BalanceView:
        """Credit an account's available balance once per reference; return the balance.

        Raises:
            LedgerRequestError: Not positive, account of another shard, unknown account or
                asset; `AmountBoundError` when the asset's total over every shard would
                pass `MAX_ATOMS` (nothing is credited).
            CreditReferenceError: The reference was used for another account, asset or
                amount (a repeat of the same credit changes nothing).
        """

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> BalanceView:
            core.check_owner(account_id)
            await store.check_account(conn, account_id)
            asset_id = await self._registry.asset_id(conn, asset)
            earlier = await store.credit_terms(conn, reference)
            if earlier is None:
                check_credit(amount_atoms, await store.supply_total(conn, asset_id))
                core.credit(account_id, asset, amount_atoms, reference)
            elif earlier != (account_id, asset, amount_atoms):
                raise CreditReferenceError(f"reference {reference!r} was used for another credit")
            return BalanceView(asset, *core.balance(account_id, asset))

        view = await self._mutate(run)
        try:
            await self.flush()  # a credit is in no journal: written before it is answered
        except asyncpg.CheckViolationError as exc:
            # Another shard credited the same asset at the same moment and the total's
            # CHECK refused this write: the state in memory was thrown away, and the
            # next call rebuilds it without this credit.
            if exc.constraint_name != store.SUPPLY_BOUND_CONSTRAINT:
                raise
            raise AmountBoundError("total_too_large", f"the total of {asset} is full") from None
        return view

    async def debit(
        self, account_id: AccountId, asset: str, amount_atoms: int, reference: str
    ) -> tuple[bool, BalanceView]:
        """Take funds from an account's available balance once per reference (a
        withdrawal: `withdrawal:<id>`), with every journal entry committed before the call
        applied first (a cancel just answered may release what is asked).

        Returns:
            Whether it was debited now (False: the same debit was made before with this
            reference, nothing changed) and the balance after.

        Raises:
            LedgerRequestError: Not positive, account of another shard, unknown account or
                asset; `InsufficientBalanceError` when less is available (nothing changed).
            DebitReferenceError: The reference was used for another account, asset or
                amount.
        """

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> tuple[bool, BalanceView]:
            core.check_owner(account_id)
            await store.check_account(conn, account_id)
            await self._registry.asset_id(conn, asset)
            earlier = await store.debit_terms(conn, reference)
            if earlier is None:
                await self._catch_up_all(conn, core)
                done = core.debit(account_id, asset, amount_atoms, reference)
            elif earlier != (account_id, asset, amount_atoms):
                raise DebitReferenceError(f"reference {reference!r} was used for another debit")
            else:
                done = False
            return done, BalanceView(asset, *core.balance(account_id, asset))

        result = await self._mutate(run)
        await self.flush()  # a debit is in no journal: written before it is answered
        return result

    async def flush(self) -> None:
        """Write everything changed so far to PostgreSQL; return once it is written."""
        await self.ping()  # recovered, and the calls before this one are done
        await self._write()

    async def balances(self, account_id: AccountId) -> list[BalanceView]:
        """Return every balance of an account of this shard, with every journal entry
        committed before the call applied (see `_catch_up_all`)."""

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> list[BalanceView]:
            core.check_owner(account_id)
            await self._catch_up_all(conn, core)
            return core.balances(account_id)

        return await self._locked(run)

    async def totals(self) -> dict[str, dict[str, int]]:
        """Return per asset the shard's sums: available, locked, fees, credited, debited
        (atoms), with every journal entry committed before the call applied."""

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> dict[str, dict[str, int]]:
            await self._catch_up_all(conn, core)
            return {asset: t._asdict() for asset, t in core.totals().items()}

        return await self._locked(run)

    async def holdings(self) -> Holdings:
        """Return every account's balance per asset, the totals and the marks (see
        `Holdings`), with every journal entry committed before the call applied."""

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> Holdings:
            await self._catch_up_all(conn, core)
            return core.holdings()

        return await self._locked(run)

    async def health(self) -> dict[str, Any]:
        """Return the shard's state without waiting for it: `up`, `degraded` (markets set
        aside, each with the first seq not applied and why) or `down` (its state cannot be
        loaded: `error`)."""
        state = "down" if self._failure is not None else "degraded" if self.set_aside else "up"
        return {
            "name": f"ledger:{self._shard_id}",
            "status": state,
            "epoch": self.epoch,
            "pid": self.pid,
            "error": self._failure,
            "set_aside": self.set_aside.report(),
            "stream": None if self._sink is None else self._sink.counters(),
        }

    async def readmit(self, market: str) -> dict[str, Any]:
        """Take a market back after an operator fixed why its journal was set aside: the
        state is rebuilt, applying its entries again (set aside again if they still fail).

        Returns:
            `health()` after the rebuild.
        """
        async with self._lock:
            self.set_aside.readmit(market)
            self._core = None
        with contextlib.suppress(UnavailableError):
            await self.ping()  # rebuild now; a failure shows in the health below
        return await self.health()

    # -- the shell -------------------------------------------------------------------------

    async def _catch_up(
        self, conn: asyncpg.Connection, core: LedgerCore, market: str, before: int | None
    ) -> None:
        await self._journal.catch_up(conn, core, market, before)

    async def _catch_up_all(self, conn: asyncpg.Connection, core: LedgerCore) -> bool:
        """Apply every market's journal entries committed so far (`JournalCatchUp.all`),
        starting to write them behind; return whether any market was behind."""
        behind = await self._journal.all(conn, core)
        if behind:
            self._write_behind()
        return behind

    async def _mutate(self, run: Callable[[asyncpg.Connection, LedgerCore], Awaitable[_T]]) -> _T:
        """Run a call that changes the durable state, then start writing it behind."""
        result = await self._locked(run)
        self._write_behind()
        return result

    def _write_behind(self) -> None:
        self._dirty = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_behind())

    async def _flush_behind(self) -> None:
        """Write changes while there are any (each write takes all of them so far), at
        most one write per `WRITE_BEHIND_INTERVAL_S`."""
        while self._dirty:
            wait = self._last_write + WRITE_BEHIND_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_write = time.monotonic()
            try:
                await self._write()
            except Exception:
                return  # `_write` threw the state away; the next call rebuilds it

    async def _write(self) -> None:
        """Write what changed since the last write, in one statement."""
        async with self._flush_lock:
            self._dirty = False
            core = self._core
            if core is None:
                return
            changes = core.take_changes()  # synchronous: a consistent cut of the state
            try:
                if self._flush_conn is None or self._flush_conn.is_closed():
                    self._flush_conn = await store.connect(self._url)
                await store.save(self._flush_conn, self._registry, core, changes)
            except BaseException:
                # Those changes are not in PostgreSQL and no later write would carry them:
                # rebuild from PostgreSQL and the journals (a new epoch) on the next call.
                if self._core is core:
                    self._core = None
                if self._flush_conn is not None:
                    self._flush_conn.terminate()
                    self._flush_conn = None
                raise

    async def _locked(self, run: Callable[[asyncpg.Connection, LedgerCore], Awaitable[_T]]) -> _T:
        """Run a call under the lock on a recovered state. An entry that cannot be applied
        sets its market aside and the call runs again on a state rebuilt without it (each
        market at most once, so this ends)."""
        async with self._lock:
            while True:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await store.connect(self._url)
                conn = self._conn
                try:
                    if self._core is None:
                        self._core = await self._recover_or_report(conn)
                    result = await run(conn, self._core)
                    self._publish(self._core)
                    return result
                except (LedgerRequestError, StaleMarketEpochError):
                    raise  # refused before anything changed: the state stays
                except EntryApplyError as exc:
                    self._drop_state(conn)
                    self.set_aside.add(exc)  # then rebuild without it, and run the call again
                    log.error("ledger shard %d set market %s aside: %s", self._shard_id,
                              exc.market, exc)  # fmt: skip
                except BaseException:
                    self._drop_state(conn)
                    raise

    def _publish(self, core: LedgerCore) -> None:
        """Publish the balances the call changed: one message per account, whatever
        number of moves and holds the call made (never waits: the sink queues)."""
        touched = core.take_touched()
        if self._sink is None or not touched:
            return
        now = time.time_ns() // 1_000_000
        for channel, data in balance_messages(touched, core.balance, now):
            self._sink.publish(channel, data)

    def _drop_state(self, conn: asyncpg.Connection) -> None:
        self._core = None  # reload from PostgreSQL on the next call
        self._conn = None  # and on a fresh connection
        conn.terminate()

    async def _recover_or_report(self, conn: asyncpg.Connection) -> LedgerCore:
        try:
            core = await self._recover(conn)
        except EntryApplyError:
            raise  # `_locked` sets the market aside and rebuilds
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"[:500]
            log.error("ledger shard %d cannot recover: %s", self._shard_id, self._failure)
            raise ShardUnavailableError(
                f"ledger shard {self._shard_id} cannot load its state: {self._failure}"
            ) from exc
        self._failure = None
        return core

    async def _recover(self, conn: asyncpg.Connection) -> LedgerCore:
        # The epoch first: appends that rely on the old incarnation's holds are committed
        # before it (and caught up below) or fail after it.
        self.epoch = await store.acquire_epoch(conn, self._shard_id)
        async with self._flush_lock:  # no write of the old state from now on
            return await self._journal.rebuild(conn, self._shard_id, self._shard_count)


async def _done(value: _T) -> _T:
    return value
