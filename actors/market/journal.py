"""PostgreSQL adapter of a market actor: journal, snapshots, orders and trades projection.

All of a market actor's SQL lives here. One `Journal` is bound to one market and one
connection. A batch's journal rows are written by `append` in ONE transaction (group
commit, COPY); that commit is the acknowledgement point. The batch's orders projection and
trades follow in a second transaction (`project`, multi-row statements over JSON rows) that
also raises the market's projection mark. The epoch triggers of migrations 0002 and 0007
reject a stale writer with SQLSTATE CL001, which `append`, `project` and `save_snapshot`
turn into `FencedError`. `Journal` implements the pipeline's `JournalStore`,
`SnapshotStore` and `ProjectionStore` ports (`ports.py`); `open_stores` opens the three a
market actor uses, each on its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from actors import jsonx
from actors.accounts import AccountId
from actors.engine import MarketSpec
from actors.market.ports import FencedError, LostHoldError
from actors.market.rows import (
    JournalRow,
    JsonDict,
    NewOrderRow,
    OrderRow,
    OrderUpdate,
    SnapshotRow,
    TradeRow,
    trade_dict,
)
from actors.markets_repo import load_market

__all__ = [
    "FencedError",
    "Journal",
    "JournalRow",
    "LostHoldError",
    "NewOrderRow",
    "OrderUpdate",
    "SnapshotRow",
    "Stores",
    "TradeRow",
    "UnknownMarketError",
    "connect",
    "open_stores",
]
STALE_EPOCH_SQLSTATE = "CL001"
LOST_HOLD_SQLSTATE = "CL003"
TAIL_CHUNK_ROWS = 20_000


_TAIL_SQL = (
    "SELECT seq, kind, payload::text AS p FROM journal "
    "WHERE market_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
)


_PROJECT = "SELECT clob_project_json($1, $2, $3, $4, $5, $6)"
_JOURNAL_COLUMNS = ("market_id", "seq", "epoch", "kind", "payload", "ledger_shard", "ledger_epoch")


async def connect(database_url: str) -> asyncpg.Connection:
    """Connect as the URL's user and `SET ROLE clob_system` when that role exists."""
    conn = await asyncpg.connect(database_url)
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'clob_system'")
    if exists:
        # Not a member: keep the login role's own rights.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET ROLE clob_system")
    return conn


def _sqlstate(exc: asyncpg.PostgresError) -> str | None:
    return getattr(exc, "sqlstate", None)


def _fenced(exc: asyncpg.PostgresError) -> bool:
    return _sqlstate(exc) == STALE_EPOCH_SQLSTATE


class Journal:
    """The journal store of one market over one connection.

    Args:
        conn: An open connection (see `connect`); the journal owns and closes it.
        market_id: The market's database id.
    """

    def __init__(self, conn: asyncpg.Connection, market_id: int) -> None:
        self._conn = conn
        self.market_id = market_id

    @property
    def conn(self) -> asyncpg.Connection:
        """Return the underlying connection (for the registry lookups at start)."""
        return self._conn

    @classmethod
    async def open(cls, database_url: str, market_id: int) -> Journal:
        """Connect and return the journal of `market_id`."""
        return cls(await connect(database_url), market_id)

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def acquire_epoch(self, holder: str) -> int:
        """Take the market over: bump and return its epoch (committed on return)."""
        epoch: int = await self._conn.fetchval(
            "SELECT clob_acquire_market_epoch($1, $2)", self.market_id, holder
        )
        return epoch

    async def append(self, epoch: int, rows: Sequence[JournalRow]) -> None:
        """Write a batch's journal rows with one COPY: the acknowledgement point.

        A single statement outside a transaction block is its own transaction, so the
        batch commits whole or not at all in one round trip (an explicit BEGIN and COMMIT
        would add two, each a context switch to the database on a busy machine).

        Raises:
            FencedError: `epoch` is no longer the market's current epoch.
            LostHoldError: A row's hold was made by a ledger shard incarnation that is gone.
        """
        try:
            await self._copy_journal(epoch, rows)
        except asyncpg.PostgresError as exc:
            if _fenced(exc):
                raise FencedError(str(exc)) from exc
            if _sqlstate(exc) == LOST_HOLD_SQLSTATE:
                raise LostHoldError(str(exc)) from exc
            raise

    async def project(
        self,
        epoch: int,
        upto_seq: int,
        order_updates: Sequence[NewOrderRow | OrderUpdate],
        trades: Sequence[TradeRow],
    ) -> None:
        """Write the orders and trades of journal rows up to `upto_seq`, atomically.

        One call of `clob_project_json` (migration 0010): one statement, so one implicit
        transaction and one round trip. The projection mark is raised first: its epoch
        trigger locks the market's epoch row and rejects a stale writer. Orders accepted in
        the batch (`NewOrderRow`) are inserted with their state after it; orders from
        earlier batches get an `OrderUpdate`.

        Raises:
            FencedError: `epoch` is no longer the market's current epoch.
        """
        new = [u for u in order_updates if isinstance(u, NewOrderRow)]
        changed = [u for u in order_updates if isinstance(u, OrderUpdate)]
        # Rows as JSON objects keyed by field name (migration 0010 reads them by name).
        args = (jsonx.dumps(new), jsonx.dumps(changed), jsonx.dumps(trades))
        try:
            await self._conn.execute(_PROJECT, self.market_id, upto_seq, epoch, *args)
        except asyncpg.PostgresError as exc:
            if _fenced(exc):
                raise FencedError(str(exc)) from exc
            raise

    async def projection_mark(self) -> int:
        """Return the last journal seq reflected in orders and trades (0 when none)."""
        seq = await self._conn.fetchval(
            "SELECT projected_seq FROM market_projection_marks WHERE market_id = $1",
            self.market_id,
        )
        return int(seq or 0)

    async def _copy_journal(self, epoch: int, rows: Sequence[JournalRow]) -> None:
        if not rows:
            return
        mid = self.market_id
        records = [
            (mid, r.seq, epoch, r.kind, jsonx.dumps(r.payload), *(r.hold or (None, None)))
            for r in rows
        ]
        await self._conn.copy_records_to_table("journal", records=records, columns=_JOURNAL_COLUMNS)

    async def save_snapshot(
        self, epoch: int, seq: int, event_seq: int, state: bytes, fmt: str = "json+zlib"
    ) -> None:
        """Store a snapshot taken after journal row `seq` (replaces one at the same seq).

        Raises:
            FencedError: `epoch` is no longer the market's current epoch.
        """
        try:
            async with self._conn.transaction():
                await self._conn.execute(
                    "DELETE FROM engine_snapshots WHERE market_id = $1 AND seq = $2",
                    self.market_id,
                    seq,
                )
                await self._conn.execute(
                    "INSERT INTO engine_snapshots (market_id, seq, epoch, event_seq, format, "
                    "state) VALUES ($1, $2, $3, $4, $5, $6)",
                    self.market_id, seq, epoch, event_seq, fmt, state,
                )  # fmt: skip
        except asyncpg.PostgresError as exc:
            if _fenced(exc):
                raise FencedError(str(exc)) from exc
            raise

    async def load_latest_snapshot(self, max_seq: int | None = None) -> SnapshotRow | None:
        """Return the snapshot with the highest seq (at most `max_seq` if given), or None."""
        row = await self._conn.fetchrow(
            "SELECT seq, event_seq, epoch, format, state FROM engine_snapshots "
            "WHERE market_id = $1 AND ($2::bigint IS NULL OR seq <= $2) "
            "ORDER BY seq DESC LIMIT 1",
            self.market_id, max_seq,
        )  # fmt: skip
        if row is None:
            return None
        return SnapshotRow(
            int(row["seq"]), int(row["event_seq"]), int(row["epoch"]), row["format"],
            bytes(row["state"]),
        )  # fmt: skip

    async def high_water(self) -> int:
        """Return the last journal seq (0 when empty)."""
        seq: int = await self._conn.fetchval(
            "SELECT coalesce(max(seq), 0) FROM journal WHERE market_id = $1", self.market_id
        )
        return seq

    async def load_tail(
        self, after_seq: int, chunk_rows: int = TAIL_CHUNK_ROWS
    ) -> AsyncGenerator[list[JournalRow]]:
        """Yield the journal rows with seq > `after_seq` in seq order, in chunks.

        Keyset pagination on the primary key: each chunk is one index range scan, and
        the payloads are parsed here (as text, faster than the jsonb codec). The next
        chunk's query runs while the caller consumes this one, so PostgreSQL's work
        overlaps the replay (the connection must not be used until the iteration ends).
        """

        def fetch(last: int) -> asyncio.Task[list[asyncpg.Record]]:
            query = self._conn.fetch(_TAIL_SQL, self.market_id, last, chunk_rows)
            return asyncio.ensure_future(query)

        pending = fetch(after_seq)
        try:
            while True:
                records = await pending
                if not records:
                    return
                loads = jsonx.loads
                chunk = [JournalRow(int(r["seq"]), r["kind"], loads(r["p"])) for r in records]
                if len(records) < chunk_rows:
                    yield chunk
                    return
                pending = fetch(chunk[-1].seq)
                yield chunk
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, asyncpg.PostgresError):
                    await pending

    async def client_orders(self) -> dict[tuple[AccountId, str], tuple[str, str | None]]:
        """Return (account_id, client_order_id) -> (order_id, request digest) for the
        market's live orders.

        Live ones only, so recovery reads what the book holds, not the market's history;
        the gateway checks a client order id against every order before routing, and the
        idempotency window covers the recent finished ones.
        """
        rows = await self._conn.fetch(
            "SELECT account_id, client_order_id, order_id, request_digest FROM orders "
            "WHERE market_id = $1 AND client_order_id IS NOT NULL "
            "AND status IN ('pending_new', 'open', 'untriggered', 'partially_filled')",
            self.market_id,
        )
        return {
            (AccountId(int(r["account_id"])), r["client_order_id"]): (
                r["order_id"],
                r["request_digest"],
            )
            for r in rows
        }

    async def recent_trades(self, limit: int) -> list[JsonDict]:
        """Return the market's last `limit` trades, newest first."""
        rows = await self._conn.fetch(
            "SELECT seq, maker_order_id, taker_order_id, taker_side, price_ticks, qty_lots, "
            "(extract(epoch FROM executed_at) * 1000)::bigint AS ts FROM trades "
            "WHERE market_id = $1 ORDER BY seq DESC LIMIT $2",
            self.market_id, limit,
        )  # fmt: skip
        return [trade_dict(r) for r in rows]

    async def live_orders(self) -> list[OrderRow]:
        """Return the market's live orders as the orders table holds them."""
        rows = await self._conn.fetch(_LIVE_ORDERS_SQL, self.market_id)
        return [_order_row(r) for r in rows]


_MS = "(extract(epoch FROM {0}) * 1000)::bigint AS {0}_ms"
_LIVE_ORDERS_SQL = (
    "SELECT order_id, account_id, client_order_id, side, kind, tif, post_only, stp, "
    "price_ticks, stop_price_ticks, qty_lots, quote_qty_tick_lots, display_qty_lots, "
    "open_qty_lots, filled_qty_lots, filled_quote_atoms, fee_atoms, status, reason, "
    f"last_event_seq, {_MS.format('expire_at')}, {_MS.format('created_at')}, "
    f"{_MS.format('updated_at')} FROM orders WHERE market_id = $1 "
    "AND status IN ('open', 'untriggered', 'partially_filled')"
)


def _order_row(r: asyncpg.Record) -> OrderRow:
    values: dict[str, Any] = {k: (int(v) if k.endswith("_atoms") else v) for k, v in r.items()}
    values["account_id"] = AccountId(int(r["account_id"]))
    return OrderRow(**values)


class UnknownMarketError(LookupError):
    """No market with this symbol exists."""


@dataclass(frozen=True, slots=True)
class Stores:
    """A market's stores, each on its own connection: the journal (appends on the order
    path, and the reads of recovery), snapshots (written in the background) and the
    orders/trades projection (written behind the journal)."""

    spec: MarketSpec
    journal: Journal
    snapshots: Journal
    projection: Journal

    def terminate(self) -> None:
        """Close every connection now (a recovery that failed)."""
        for store in (self.journal, self.snapshots, self.projection):
            store.conn.terminate()


async def open_stores(database_url: str, symbol: str) -> Stores:
    """Open a market's three stores.

    Raises:
        UnknownMarketError: No market has this symbol.
    """
    journal = await Journal.open(database_url, 0)
    opened = [journal]
    try:
        record = await load_market(journal.conn, symbol)
        if record is None:
            raise UnknownMarketError(symbol)
        journal.market_id = record.market_id
        for _ in range(2):
            opened.append(await Journal.open(database_url, record.market_id))
    except BaseException:
        for store in opened:
            store.conn.terminate()
        raise
    return Stores(record.spec, journal, opened[1], opened[2])
