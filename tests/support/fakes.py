"""In-memory fakes of the market pipeline's ports (`actors/market/ports.py`), the way
exchange-core tests with its dummy serialization processor: no PostgreSQL, no Ray.

- `MemoryStore`: the journal, snapshot and projection store of one market. It keeps what
  PostgreSQL would: payloads pass through JSON (the stored form), appends are fenced by
  the epoch and by the ledger shards' epochs, the projection mark moves with its rows.
- `MemoryLedger`: ledger shards made of the real, pure `LedgerCore`, catching up from a
  `MemoryStore` as the real shards catch up from the journal table.
- `Gate`: holds an awaited step until a test opens it (to see what runs before what).

Each fake can be made to fail (`fail_*`) to test the pipeline's failure paths.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from actors.accounts import AccountId
from actors.contracts import LedgerEntry, Reservation
from actors.engine import MarketSpec
from actors.journal_codec import ledger_entry
from actors.ledger.core import LedgerCore, shard_of
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

_LIVE = ("open", "untriggered", "partially_filled")


class Gate:
    """A step that waits until the test opens it (open from the start unless `closed`)."""

    def __init__(self, closed: bool = False) -> None:
        self._open = asyncio.Event()
        if not closed:
            self._open.set()

    def close(self) -> None:
        """Make later waits wait."""
        self._open.clear()

    def open(self) -> None:
        """Let every wait through."""
        self._open.set()

    async def wait(self) -> None:
        """Wait until open."""
        await self._open.wait()


@dataclass
class MemoryStore:
    """A market's journal, snapshots, and orders and trades tables, in memory.

    Attributes:
        rows: The journal, in seq order (payloads as read back from JSON).
        ledger_epochs: Each ledger shard's current epoch (a hold of another is lost).
        project_gate: Holds `project` (the projection's transaction) while closed.
        fail_append / fail_project: Raised by the next call, once.
    """

    epoch: int = 0
    rows: list[JournalRow] = field(default_factory=list)
    snapshots: list[SnapshotRow] = field(default_factory=list)
    mark: int = 0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    trades: list[TradeRow] = field(default_factory=list)
    ledger_epochs: dict[int, int] = field(default_factory=dict)
    project_gate: Gate = field(default_factory=Gate)
    fail_append: Exception | None = None
    fail_project: Exception | None = None
    appends: int = 0

    def _fence(self, epoch: int) -> None:
        if epoch != self.epoch:
            raise FencedError(f"epoch {epoch} is stale: the market's is {self.epoch}")

    # -- JournalStore ----------------------------------------------------------------------

    async def acquire_epoch(self, holder: str) -> int:
        """Take the market over (a newer incarnation)."""
        self.epoch += 1
        return self.epoch

    async def append(self, epoch: int, rows: Sequence[JournalRow]) -> None:
        """Store a batch's rows, all or none (fenced like the journal's triggers)."""
        self.appends += 1
        await asyncio.sleep(0)  # a round trip: other tasks run meanwhile
        self._fence(epoch)
        if self.fail_append is not None:
            exc, self.fail_append = self.fail_append, None
            raise exc
        for row in rows:
            if row.hold is not None and self.ledger_epochs.get(row.hold[0], 1) != row.hold[1]:
                raise LostHoldError(f"hold of ledger shard {row.hold[0]} is lost")
        expected = len(self.rows) + 1
        if [r.seq for r in rows] != list(range(expected, expected + len(rows))):
            raise AssertionError(
                f"journal seqs {[r.seq for r in rows]} do not follow {expected - 1}"
            )
        self.rows += [replace(r, payload=json.loads(json.dumps(r.payload))) for r in rows]

    async def high_water(self) -> int:
        """Return the last seq."""
        return len(self.rows)

    async def load_tail(self, after_seq: int) -> AsyncGenerator[list[JournalRow]]:
        """Yield the rows after `after_seq` in chunks of 3 (chunking is part of the port)."""
        tail = self.rows[after_seq:]
        for start in range(0, len(tail), 3):
            yield tail[start : start + 3]

    # -- SnapshotStore ---------------------------------------------------------------------

    async def load_latest_snapshot(self, max_seq: int | None = None) -> SnapshotRow | None:
        """Return the latest snapshot at or before `max_seq`."""
        found = [s for s in self.snapshots if max_seq is None or s.seq <= max_seq]
        return max(found, key=lambda s: s.seq, default=None)

    async def save_snapshot(
        self, epoch: int, seq: int, event_seq: int, state: bytes, fmt: str = "json+zlib"
    ) -> None:
        """Store a snapshot (fenced)."""
        self._fence(epoch)
        self.snapshots = [s for s in self.snapshots if s.seq != seq]
        self.snapshots.append(SnapshotRow(seq, event_seq, epoch, fmt, state))

    # -- ProjectionStore -------------------------------------------------------------------

    async def projection_mark(self) -> int:
        """Return the projection mark."""
        return self.mark

    async def project(
        self,
        epoch: int,
        upto_seq: int,
        order_updates: Sequence[NewOrderRow | OrderUpdate],
        trades: Sequence[TradeRow],
    ) -> None:
        """Write rows and raise the mark together (fenced), after the gate."""
        await self.project_gate.wait()
        self._fence(epoch)
        if self.fail_project is not None:
            exc, self.fail_project = self.fail_project, None
            raise exc
        assert upto_seq > self.mark, (upto_seq, self.mark)
        for u in order_updates:
            self._project_order(u)
        self.trades += trades
        self.mark = upto_seq

    def _project_order(self, u: NewOrderRow | OrderUpdate) -> None:
        """Apply a row as `clob_project_json` (migrations 0010, 0016) does, written out
        here on its own: the reference the stream publisher's copy is tested against."""
        if isinstance(u, NewOrderRow):
            row = asdict(u)
            for key in ("event_seq", "request_digest"):
                row.pop(key)
            row.update(last_event_seq=u.event_seq, updated_at_ms=u.created_at_ms)
            self.orders[u.order_id] = {
                **row, "open": u.open_qty_lots, "filled": u.filled_qty_lots, "fee": u.fee_atoms,
                "digest": u.request_digest,
            }  # fmt: skip
            return
        o = self.orders[u.order_id]
        if o["last_event_seq"] >= u.event_seq:
            return
        filled_before = o["filled_qty_lots"]
        filled = filled_before + u.filled_qty_delta_lots
        if u.amended_open_lots is not None and o["qty_lots"] is not None:
            o["qty_lots"] = filled_before + u.filled_before_amend_lots + u.amended_open_lots
        o["open_qty_lots"] = o["open"] = u.open_qty_lots
        o["filled_qty_lots"] = o["filled"] = filled
        o["filled_quote_atoms"] += u.filled_quote_delta_atoms
        o["fee_atoms"] += u.fee_delta_atoms
        o["fee"] = o["fee_atoms"]
        if u.price_ticks is not None:
            o["price_ticks"] = u.price_ticks
        o["status"] = "partially_filled" if u.status == "open" and filled > 0 else u.status
        if u.reason is not None:
            o["reason"] = u.reason
        o["last_event_seq"] = u.event_seq
        if u.updated_at_ms is not None:
            o["updated_at_ms"] = u.updated_at_ms

    def order_row(self, order_id: str) -> OrderRow:
        """Return an order as the table holds it."""
        o = self.orders[order_id]
        return OrderRow(**{f: o[f] for f in OrderRow.__dataclass_fields__})

    async def live_orders(self) -> list[OrderRow]:
        """Return the live orders as stored."""
        return [self.order_row(oid) for oid, o in self.orders.items() if o["status"] in _LIVE]

    async def client_orders(self) -> dict[tuple[AccountId, str], tuple[str, str | None]]:
        """Return the live orders' client order ids."""
        return {
            (o["account_id"], o["client_order_id"]): (oid, o["digest"])
            for oid, o in self.orders.items()
            if o["client_order_id"] is not None and o["status"] in _LIVE
        }

    async def recent_trades(self, limit: int) -> list[JsonDict]:
        """Return the last trades in their public form, newest first."""
        rows = [
            {"seq": t.seq, "maker_order_id": t.maker_order_id, "taker_order_id": t.taker_order_id,
             "taker_side": t.taker_side, "price_ticks": t.price_ticks, "qty_lots": t.qty_lots,
             "ts": t.executed_at_ms}
            for t in reversed(self.trades[-limit:])
        ]  # fmt: skip
        return [trade_dict(r) for r in rows]


class MemoryLedger:
    """Ledger shards of real `LedgerCore`s, for one market whose journal is `store`.

    Applies reach every shard (each ignores the orders it holds no record of). Raising a
    shard's epoch in `store.ledger_epochs` is what a restart of it does to the holds
    made before: the journal refuses them.

    Attributes:
        reserves: The reservations of each `reserve` call, in order.
        applies: The journal seqs of each `start_apply`, in order.
        apply_gate: Holds the end of every apply while closed (the sending is immediate).
        fail_reserve / fail_apply: Raised by the next call, once.
    """

    def __init__(self, spec: MarketSpec, store: MemoryStore, shard_count: int = 2) -> None:
        self.spec = spec
        self.store = store
        self.shards = [LedgerCore(i, shard_count) for i in range(shard_count)]
        self.reserves: list[list[Reservation]] = []
        self.applies: list[list[int]] = []
        self.apply_gate = Gate()
        self.fail_reserve: Exception | None = None
        self.fail_apply: Exception | None = None
        for i in range(shard_count):
            store.ledger_epochs[i] = 1

    def shard(self, account: int) -> LedgerCore:
        """Return the shard owning an account."""
        return self.shards[shard_of(account, len(self.shards))]

    def fund(self, account: int, asset: str, atoms: int) -> None:
        """Credit an account."""
        self.shard(account).credit(account, asset, atoms, f"fund-{account}-{asset}-{atoms}")

    async def reserve(
        self, reservations: list[Reservation], market_epoch: int
    ) -> list[tuple[int, int] | None]:
        """Hold funds; (shard, shard epoch) per reservation, None where short."""
        self.reserves.append(list(reservations))
        await asyncio.sleep(0)
        if self.fail_reserve is not None:
            exc, self.fail_reserve = self.fail_reserve, None
            raise exc
        out: list[tuple[int, int] | None] = []
        for r in reservations:
            index = shard_of(r.account_id, len(self.shards))
            held = self.shards[index].hold(r, market_epoch)
            out.append((index, self.store.ledger_epochs[index]) if held else None)
        return out

    def start_apply(
        self, market: str, entries: list[LedgerEntry], accounts: Sequence[set[AccountId] | None]
    ) -> asyncio.Future[None]:
        """Apply the entries on every shard now (in the order sent); the returned wait
        ends when the gate opens."""
        self.applies.append([e.seq for e in entries])
        failure, self.fail_apply = self.fail_apply, None
        if failure is None:
            for shard in self.shards:
                for entry in entries:
                    shard.apply_events(
                        self.spec, market, entry.seq, entry.events, entry.reservation
                    )

        async def wait() -> None:
            await self.apply_gate.wait()
            if failure is not None:
                raise failure

        return asyncio.ensure_future(wait())

    async def sync_all(self, market: str) -> list[int]:
        """Catch every shard up from the journal; return their marks."""
        for shard in self.shards:
            for row in self.store.rows[shard.mark(market) :]:
                p = row.payload
                entry = ledger_entry(market, row.seq, p["events"], p.get("reservation"))
                shard.apply_events(self.spec, market, entry.seq, entry.events, entry.reservation)
        return [shard.mark(market) for shard in self.shards]

    async def release_orphans(
        self, market: str, live_order_ids: Sequence[str], market_epoch: int
    ) -> int:
        """Release reservations of orders not live and older incarnations' holds."""
        live = set(live_order_ids)
        released = 0
        for shard in self.shards:
            orphans = [oid for oid in shard.order_ids(market) if oid not in live]
            for oid in orphans:
                shard.release(market, oid)
            released += len(orphans) + shard.holds.release_market(market, market_epoch)
        return released


class Clock:
    """A settable clock in milliseconds."""

    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


class MemorySink:
    """A stream sink in memory (the `actors.stream.ports.Sink` port): keeps every message.

    Attributes:
        messages: (channel, data) in publish order.
        down: While True, publishes are dropped and counted, as a sink without Redis does.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.down = False
        self.dropped = 0

    def publish(self, channel: str, data: bytes) -> None:
        """Keep the message (or drop it while `down`)."""
        if self.down:
            self.dropped += 1
        else:
            self.messages.append((channel, data))

    def counters(self) -> dict[str, int]:
        """Return the counters a real sink reports."""
        return {"published": len(self.messages), "dropped": self.dropped, "errors": 0,
                "queued": 0, "connected": int(not self.down)}  # fmt: skip

    def on(self, channel: str) -> list[bytes]:
        """Return the messages of one channel, in order."""
        return [data for c, data in self.messages if c == channel]
