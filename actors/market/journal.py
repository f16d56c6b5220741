"""PostgreSQL adapter of a market actor: journal, snapshots, orders and trades projection.

All of a market actor's SQL lives here. One `Journal` is bound to one market and one
connection. A batch's journal rows are written by `append` in ONE transaction (group
commit, COPY); that commit is the acknowledgement point. The batch's orders projection and
trades follow in a second transaction (`project`, multi-row statements over arrays) that
also raises the market's projection mark. The epoch triggers of migrations 0002 and 0007
reject a stale writer with SQLSTATE CL001, which `append`, `project` and `save_snapshot`
turn into `FencedError`.
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
    """An order accepted in the batch, with its state after the batch (prices in ticks,
    quantities in lots, amounts in quote atoms, times in ms): one row, no update."""

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
    filled_qty_lots: int = 0
    filled_quote_atoms: int = 0
    fee_atoms: int = 0
    reason: str | None = None


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
    display_qty_lots, expire_at, open_qty_lots, status, last_event_seq, filled_qty_lots,
    filled_quote_atoms, fee_atoms, reason)
SELECT u.order_id, u.account_id, $1, u.coid, u.side, u.kind, u.tif, u.post_only, u.stp,
    u.price, u.stop_price, u.qty, u.quote_qty, u.display_qty,
    CASE WHEN u.expire_ms IS NULL THEN NULL ELSE to_timestamp(u.expire_ms / 1000.0) END,
    u.open_qty, u.status, u.seq, u.filled_qty, u.filled_quote, u.fee, u.reason
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[],
    $14::bigint[], $15::bigint[], $16::bigint[], $17::text[], $18::bigint[], $19::bigint[],
    $20::numeric[], $21::numeric[], $22::text[])
    AS u(order_id, account_id, coid, side, kind, tif, post_only, stp, price, stop_price, qty,
         quote_qty, display_qty, expire_ms, open_qty, status, seq, filled_qty, filled_quote,
         fee, reason)
ON CONFLICT (order_id) DO UPDATE
    SET open_qty_lots = EXCLUDED.open_qty_lots, status = EXCLUDED.status,
        price_ticks = EXCLUDED.price_ticks, last_event_seq = EXCLUDED.last_event_seq,
        filled_qty_lots = EXCLUDED.filled_qty_lots,
        filled_quote_atoms = EXCLUDED.filled_quote_atoms, fee_atoms = EXCLUDED.fee_atoms,
        reason = EXCLUDED.reason, updated_at = now()
    WHERE o.status = 'pending_new' AND o.account_id = EXCLUDED.account_id
      AND o.market_id = EXCLUDED.market_id
"""

# One statement per changed order (pipelined by `executemany`): a primary-key lookup each,
# whatever the table's statistics say. A join of the whole batch (UPDATE ... FROM unnest)
# was planned from the statistics, which autovacuum refreshes once a minute at best: on a
# young, fast-growing table the planner scanned every order of the market per key (measured:
# one second for a 300-order batch at 3,300 orders).
_UPDATE_ORDER = """
UPDATE orders AS o
SET open_qty_lots = $3,
    filled_qty_lots = o.filled_qty_lots + $4,
    filled_quote_atoms = o.filled_quote_atoms + $5::numeric,
    fee_atoms = o.fee_atoms + $6::numeric,
    price_ticks = coalesce($7, o.price_ticks),
    status = CASE WHEN $8 = 'open' AND o.filled_qty_lots + $4 > 0
                  THEN 'partially_filled' ELSE $8 END,
    reason = coalesce($9, o.reason),
    last_event_seq = $10,
    updated_at = now()
WHERE o.order_id = $2 AND o.market_id = $1 AND o.last_event_seq < $10
"""

_UPSERT_PROJECTION_MARK = """
INSERT INTO market_projection_marks AS m (market_id, projected_seq, epoch)
VALUES ($1, $2, $3)
ON CONFLICT (market_id) DO UPDATE
    SET projected_seq = greatest(m.projected_seq, EXCLUDED.projected_seq),
        epoch = EXCLUDED.epoch, updated_at = now()
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

    async def append(self, epoch: int, rows: Sequence[JournalRow]) -> None:
        """Write a batch's journal rows in one transaction (COPY): the acknowledgement point.

        Raises:
            FencedError: `epoch` is no longer the market's current epoch.
        """
        try:
            async with self._conn.transaction():
                await self._copy_journal(epoch, rows)
        except asyncpg.PostgresError as exc:
            if _fenced(exc):
                raise FencedError(str(exc)) from exc
            raise

    async def project(
        self,
        epoch: int,
        upto_seq: int,
        order_updates: Sequence[NewOrderRow | OrderUpdate],
        trades: Sequence[TradeRow],
    ) -> None:
        """Write the orders and trades of journal rows up to `upto_seq`, in one transaction.

        The projection mark is raised first: its epoch trigger locks the market's epoch row
        and rejects a stale writer before anything else is written. Orders accepted in the
        batch (`NewOrderRow`) are inserted with their state after it; orders from earlier
        batches get an `OrderUpdate`.

        Raises:
            FencedError: `epoch` is no longer the market's current epoch.
        """
        try:
            async with self._conn.transaction():
                await self._conn.execute(_UPSERT_PROJECTION_MARK, self.market_id, upto_seq, epoch)
                await self._write_orders(order_updates)
                await self._write_trades(trades)
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
                    "status", "event_seq", "filled_qty_lots", "filled_quote_atoms", "fee_atoms",
                    "reason",
                )
            ]  # fmt: skip
            await self._conn.execute(_INSERT_ORDERS, self.market_id, *cols)
        if changed:
            mid = self.market_id
            await self._conn.executemany(
                _UPDATE_ORDER,
                [
                    (mid, c.order_id, c.open_qty_lots, c.filled_qty_delta_lots,
                     c.filled_quote_delta_atoms, c.fee_delta_atoms, c.price_ticks, c.status,
                     c.reason, c.event_seq)
                    for c in changed
                ],
            )  # fmt: skip

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
