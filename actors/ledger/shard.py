"""The ledger shard actor: a thin async shell around `LedgerCore`, durable in PostgreSQL.

Start one per shard with `ray.remote(LedgerShard).options(**ledger_shard_options(i))`.
The constructor is the recovery path: the first call (any method) loads the shard's state
from PostgreSQL and catches up every market from the journal, past the shard's marks.

Every mutating call runs under one lock (one message at a time, as the design wants) and is
durable before it returns: the core changes in memory, then one statement writes what
changed (`store.save`). If that write fails, the in-memory state is thrown away and reloaded from
PostgreSQL on the next call, so memory never runs ahead of the database.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from actors.contracts import BalanceView, JsonDict, Reservation
from actors.ledger import store
from actors.ledger.core import LedgerCore, shard_of
from actors.ledger.rules import LedgerRequestError

__all__ = ["LedgerShard", "ledger_shard_options", "shard_of"]

_T = TypeVar("_T")
Entries = list[tuple[int, list[JsonDict]]]


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
    """

    def __init__(self, shard_id: int, shard_count: int, database_url: str) -> None:
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
        self.pid = os.getpid()  # this incarnation's process, for operators and tests

    # -- public interface ------------------------------------------------------------------

    async def ping(self) -> int:
        """Recover if needed, then return the shard id."""
        await self._locked(lambda conn, core: _done(None))
        return self._shard_id

    async def reserve(self, reservations: list[Reservation]) -> list[bool]:
        """Lock funds for orders before matching; durable before it returns.

        Returns:
            Per reservation, whether its funds are locked (False: short of funds).
        """

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> list[bool]:
            for r in reservations:  # validate all first: a refusal changes nothing
                core.check_owner(r.account_id)
                if r.amount_atoms < 0:
                    raise LedgerRequestError(f"negative reservation {r.amount_atoms}")
                await self._registry.asset_id(conn, r.asset)
                await self._registry.spec(conn, r.market)
            return [core.reserve(r) for r in reservations]

        return await self._mutate(run)

    async def apply(self, market: str, entries: list[tuple[int, list[JsonDict]]]) -> None:
        """Apply journal entries `(journal_seq, events)` of a market, in ascending seq.

        Entries at or below the shard's mark are skipped; a gap before an entry is first
        filled from the journal table. Durable before it returns.
        """

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> None:
            await self._apply(conn, core, market, entries)

        await self._mutate(run)

    async def sync(self, market: str) -> int:
        """Catch a market up from the journal; return the shard's mark of it."""

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> int:
            await self._apply(conn, core, market, [])
            return core.mark(market)

        return await self._mutate(run)

    async def release(self, market: str, order_ids: list[str]) -> None:
        """Release the reservations of orders that never reached the journal."""

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> None:
            for order_id in order_ids:
                core.release(market, order_id)

        await self._mutate(run)

    async def release_orphans(self, market: str, live_order_ids: list[str]) -> int:
        """Catch up, then release every reservation of the market whose order is not live.

        Returns:
            How many reservations were released.
        """
        live = set(live_order_ids)

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> int:
            await self._apply(conn, core, market, [])
            orphans = [oid for oid in core.order_ids(market) if oid not in live]
            for order_id in orphans:
                core.release(market, order_id)
            return len(orphans)

        return await self._mutate(run)

    async def credit(
        self, account_id: int, asset: str, amount_atoms: int, reference: str
    ) -> BalanceView:
        """Credit an account's available balance once per reference; return the balance.

        Raises:
            LedgerRequestError: Not positive, account of another shard, unknown account or
                asset.
        """

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> BalanceView:
            core.check_owner(account_id)
            await store.check_account(conn, account_id)
            await self._registry.asset_id(conn, asset)
            if not await store.credit_applied(conn, reference):
                core.credit(account_id, asset, amount_atoms, reference)
            return BalanceView(asset, *core.balance(account_id, asset))

        return await self._mutate(run)

    async def balances(self, account_id: int) -> list[BalanceView]:
        """Return every balance of an account of this shard."""

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> list[BalanceView]:
            core.check_owner(account_id)
            return core.balances(account_id)

        return await self._locked(run)

    async def totals(self) -> dict[str, dict[str, int]]:
        """Return per asset the shard's sums: available, locked, fees, credited (atoms)."""

        async def run(conn: asyncpg.Connection, core: LedgerCore) -> dict[str, dict[str, int]]:
            return {asset: t._asdict() for asset, t in core.totals().items()}

        return await self._locked(run)

    # -- the shell -------------------------------------------------------------------------

    async def _apply(
        self, conn: asyncpg.Connection, core: LedgerCore, market: str, entries: Entries
    ) -> None:
        spec = await self._registry.spec(conn, market)
        market_id = self._registry.market_ids[market]
        for seq, events in entries:
            if seq > core.mark(market) + 1:
                await self._catch_up(conn, core, market, market_id, seq)
            core.apply_events(spec, market, seq, events)
        if not entries:
            await self._catch_up(conn, core, market, market_id, None)

    async def _catch_up(
        self, conn: asyncpg.Connection, core: LedgerCore, market: str, market_id: int,
        before: int | None,
    ) -> None:  # fmt: skip
        spec = await self._registry.spec(conn, market)
        for seq, events in await store.journal_entries(conn, market_id, core.mark(market), before):
            core.apply_events(spec, market, seq, events)

    async def _mutate(self, run: Callable[[asyncpg.Connection, LedgerCore], Awaitable[_T]]) -> _T:
        async def then_save(conn: asyncpg.Connection, core: LedgerCore) -> _T:
            # `run` only reads (registry, journal catch-up); the save is one statement,
            # atomic on its own: no BEGIN/COMMIT round trips around it.
            result = await run(conn, core)
            await store.save(conn, self._registry, core, core.take_changes())
            return result

        return await self._locked(then_save)

    async def _locked(self, run: Callable[[asyncpg.Connection, LedgerCore], Awaitable[_T]]) -> _T:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await store.connect(self._url)
            conn = self._conn
            try:
                if self._core is None:
                    self._core = await self._recover(conn)
                return await run(conn, self._core)
            except LedgerRequestError:
                raise  # refused before anything changed
            except BaseException:
                self._core = None  # reload from PostgreSQL on the next call
                self._conn = None  # and on a fresh connection
                conn.terminate()
                raise

    async def _recover(self, conn: asyncpg.Connection) -> LedgerCore:
        core = await store.load(conn, self._registry, self._shard_id, self._shard_count)
        async with conn.transaction():
            for market in sorted(self._registry.market_ids):
                await self._apply(conn, core, market, [])
            await store.save(conn, self._registry, core, core.take_changes())
        return core


async def _done(value: _T) -> _T:
    return value
