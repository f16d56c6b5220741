"""PostgreSQL adapter of a market actor: journal, snapshots, orders and trades projection.

All of a market actor's SQL lives here. One `Journal` is bound to one market and one
connection. A batch is written by `append` in ONE transaction (group commit): the journal
rows by COPY, the orders projection and the trades by multi-row statements over arrays.
The epoch trigger of migration 0002 rejects a stale writer with SQLSTATE CL001, which
`append` and `save_snapshot` turn into `FencedError`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

JsonDict = dict[str, Any]
STALE_EPOCH_SQLSTATE = "CL001"
TAIL_CHUNK_ROWS = 20_000


class FencedError(RuntimeError):
    """Another incarnation of the market took over (stale epoch): stop writing."""


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One journaled command: `payload` = request_id, account_id, command, events."""

    seq: int
    kind: str
    payload: JsonDict


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A stored engine snapshot taken after journal row `seq` and engine event `event_seq`."""

    seq: int
    event_seq: int
    epoch: int
    format: str
    state: bytes


@dataclass(frozen=True, slots=True)
class NewOrderRow:
    """An order as accepted (prices in ticks, quantities in lots, times in ms)."""

    order_id: str
    account_id: int
    client_order_id: str | None
    side: str
    kind: str
    tif: str
    post_only: str | None
    stp: str
    price_ticks: int | None
    stop_price_ticks: int | None
    qty_lots: int | None
    quote_qty_tick_lots: int | None
    display_qty_lots: int | None
    expire_at_ms: int | None
    open_qty_lots: int
    status: str
    event_seq: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A change of one order: absolute open qty and status, deltas of fills and fees.

    `price_ticks` None leaves the stored price unchanged. Quote amounts are atoms.
    """

    order_id: str
    open_qty_lots: int
    filled_qty_delta_lots: int
    filled_quote_delta_atoms: int
    fee_delta_atoms: int
    price_ticks: int | None
    status: str
    reason: str | None
    event_seq: int


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One fill: `seq` is the fill's engine event seq; amounts in quote atoms."""

    seq: int
    maker_order_id: str
    taker_order_id: str
    maker_account_id: int
    taker_account_id: int
    taker_side: str
    price_ticks: int
    qty_lots: int
    quote_qty_atoms: int
    maker_fee_atoms: int
    taker_fee_atoms: int
    executed_at_ms: int


_INSERT_ORDERS = """
INSERT INTO orders AS o (order_id, account_id, market_id, client_order_id, side, kind, tif,
    post_only, stp, price_ticks, stop_price_ticks, qty_lots, quote_qty_tick_lots,
    display_qty_lots, expire_at, open_qty_lots, status, last_event_seq)
SELECT u.order_id, u.account_id, $1, u.coid, u.side, u.kind, u.tif, u.post_only, u.stp,
    u.price, u.stop_price, u.qty, u.quote_qty, u.display_qty,
    CASE WHEN u.expire_ms IS NULL THEN NULL ELSE to_timestamp(u.expire_ms / 1000.0) END,
    u.open_qty, u.status, u.seq
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[],
    $14::bigint[], $15::bigint[], $16::bigint[], $17::text[], $18::bigint[])
    AS u(order_id, account_id, coid, side, kind, tif, post_only, stp, price, stop_price, qty,
         quote_qty, display_qty, expire_ms, open_qty, status, seq)
ON CONFLICT (order_id) DO UPDATE
    SET open_qty_lots = EXCLUDED.open_qty_lots, status = EXCLUDED.status,
        price_ticks = EXCLUDED.price_ticks, last_event_seq = EXCLUDED.last_event_seq,
        updated_at = now()
    WHERE o.status = 'pending_new' AND o.account_id = EXCLUDED.account_id
      AND o.market_id = EXCLUDED.market_id
"""

_UPDATE_ORDERS = """
UPDATE orders AS o
SET open_qty_lots = u.open_qty,
    filled_qty_lots = o.filled_qty_lots + u.filled_qty,
    filled_quote_atoms = o.filled_quote_atoms + u.filled_quote,
    fee_atoms = o.fee_atoms + u.fee,
    price_ticks = coalesce(u.price, o.price_ticks),
    status = CASE WHEN u.status = 'open' AND o.filled_qty_lots + u.filled_qty > 0
                  THEN 'partially_filled' ELSE u.status END,
    reason = coalesce(u.reason, o.reason),
    last_event_seq = u.seq,
    updated_at = now()
FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::numeric[], $6::numeric[],
    $7::bigint[], $8::text[], $9::text[], $10::bigint[])
    AS u(order_id, open_qty, filled_qty, filled_quote, fee, price, status, reason, seq)
WHERE o.order_id = u.order_id AND o.market_id = $1 AND o.last_event_seq < u.seq
"""

_INSERT_TRADES = """
INSERT INTO trades (market_id, seq, maker_order_id, taker_order_id, maker_account_id,
    taker_account_id, taker_side, price_ticks, qty_lots, quote_qty_atoms, maker_fee_atoms,
    taker_fee_atoms, executed_at)
SELECT $1, u.seq, u.maker, u.taker, u.maker_acc, u.taker_acc, u.side, u.price, u.qty,
    u.quote, u.maker_fee, u.taker_fee, to_timestamp(u.ts / 1000.0)
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[],
    $8::bigint[], $9::bigint[], $10::numeric[], $11::numeric[], $12::numeric[],
    $13::bigint[])
    AS u(seq, maker, taker, maker_acc, taker_acc, side, price, qty, quote, maker_fee,
         taker_fee, ts)
ON CONFLICT (market_id, seq) DO NOTHING
"""


async def connect(database_url: str) -> asyncpg.Connection:
    """Connect as the URL's user and `SET ROLE clob_system` when that role exists."""
    conn = await asyncpg.connect(database_url)
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'clob_system'")
    if exists:
        # Not a member: keep the login role's own rights.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET ROLE clob_system")
    return conn


def _fenced(exc: asyncpg.PostgresError) -> bool:
    return getattr(exc, "sqlstate", None) == STALE_EPOCH_SQLSTATE


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

    async def append(
        self,
        epoch: int,
        rows: Sequence[JournalRow],
        order_updates: Sequence[NewOrderRow | OrderUpdate],
        trades: Sequence[TradeRow],
    ) -> None:
        """Write a batch in one transaction: journal rows, orders projection, trades.

        New orders (`NewOrderRow`) are inserted before the updates are applied.

        Raises:
            FencedError: `epoch` is no longer the market's current epoch.
        """
        try:
            async with self._conn.transaction():
                await self._copy_journal(epoch, rows)
                await self._write_orders(order_updates)
                await self._write_trades(trades)
        except asyncpg.PostgresError as exc:
            if _fenced(exc):
                raise FencedError(str(exc)) from exc
            raise

    async def _copy_journal(self, epoch: int, rows: Sequence[JournalRow]) -> None:
        if not rows:
            return
        mid = self.market_id
        records = [(mid, r.seq, epoch, r.kind, json.dumps(r.payload)) for r in rows]
        await self._conn.copy_records_to_table(
            "journal", records=records, columns=("market_id", "seq", "epoch", "kind", "payload")
        )

    async def _write_orders(self, updates: Sequence[NewOrderRow | OrderUpdate]) -> None:
        new = [u for u in updates if isinstance(u, NewOrderRow)]
        changed = [u for u in updates if isinstance(u, OrderUpdate)]
        if new:
            cols = [
                [getattr(n, f) for n in new]
                for f in (
                    "order_id", "account_id", "client_order_id", "side", "kind", "tif",
                    "post_only", "stp", "price_ticks", "stop_price_ticks", "qty_lots",
                    "quote_qty_tick_lots", "display_qty_lots", "expire_at_ms", "open_qty_lots",
                    "status", "event_seq",
                )
            ]  # fmt: skip
            await self._conn.execute(_INSERT_ORDERS, self.market_id, *cols)
        if changed:
            cols = [
                [getattr(c, f) for c in changed]
                for f in (
                    "order_id", "open_qty_lots", "filled_qty_delta_lots",
                    "filled_quote_delta_atoms", "fee_delta_atoms", "price_ticks", "status",
                    "reason", "event_seq",
                )
            ]  # fmt: skip
            await self._conn.execute(_UPDATE_ORDERS, self.market_id, *cols)

    async def _write_trades(self, trades: Sequence[TradeRow]) -> None:
        if not trades:
            return
        cols = [
            [getattr(t, f) for t in trades]
            for f in (
                "seq", "maker_order_id", "taker_order_id", "maker_account_id",
                "taker_account_id", "taker_side", "price_ticks", "qty_lots", "quote_qty_atoms",
                "maker_fee_atoms", "taker_fee_atoms", "executed_at_ms",
            )
        ]  # fmt: skip
        await self._conn.execute(_INSERT_TRADES, self.market_id, *cols)

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

    async def load_latest_snapshot(self) -> SnapshotRow | None:
        """Return the snapshot with the highest seq, or None."""
        row = await self._conn.fetchrow(
            "SELECT seq, event_seq, epoch, format, state FROM engine_snapshots "
            "WHERE market_id = $1 ORDER BY seq DESC LIMIT 1",
            self.market_id,
        )
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
    ) -> AsyncIterator[list[JournalRow]]:
        """Yield the journal rows with seq > `after_seq` in seq order, in chunks.

        Keyset pagination on the primary key: each chunk is one index range scan, and
        the payloads are parsed here (as text, faster than the jsonb codec).
        """
        last = after_seq
        while True:
            records = await self._conn.fetch(
                "SELECT seq, kind, payload::text AS p FROM journal "
                "WHERE market_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                self.market_id, last, chunk_rows,
            )  # fmt: skip
            if not records:
                return
            loads = json.loads
            chunk = [JournalRow(int(r["seq"]), r["kind"], loads(r["p"])) for r in records]
            yield chunk
            last = chunk[-1].seq
            if len(records) < chunk_rows:
                return

    async def client_orders(self) -> dict[tuple[int, str], str]:
        """Return (account_id, client_order_id) -> order_id for the market's orders."""
        rows = await self._conn.fetch(
            "SELECT account_id, client_order_id, order_id FROM orders "
            "WHERE market_id = $1 AND client_order_id IS NOT NULL",
            self.market_id,
        )
        return {(int(r["account_id"]), r["client_order_id"]): r["order_id"] for r in rows}

    async def recent_trades(self, limit: int) -> list[JsonDict]:
        """Return the market's last `limit` trades, newest first."""
        rows = await self._conn.fetch(
            "SELECT seq, maker_order_id, taker_order_id, taker_side, price_ticks, qty_lots, "
            "(extract(epoch FROM executed_at) * 1000)::bigint AS ts FROM trades "
            "WHERE market_id = $1 ORDER BY seq DESC LIMIT $2",
            self.market_id, limit,
        )  # fmt: skip
        return [trade_dict(r) for r in rows]


def trade_dict(r: Any) -> JsonDict:
    """Return the public form of a trade (a record or a `TradeRow`-like mapping)."""
    return {
        "seq": int(r["seq"]),
        "maker_order_id": r["maker_order_id"],
        "taker_order_id": r["taker_order_id"],
        "taker_side": r["taker_side"],
        "price": int(r["price_ticks"]),
        "qty": int(r["qty_lots"]),
        "ts": int(r["ts"]),
    }
