"""The recovery path of a market (also its normal start), against the pipeline's ports.

1. Acquire the market's epoch (fences every older incarnation).
2. Ask each durable consumer for its high-water mark (the ledger shards have none to give:
   they catch up from the journal themselves, in step 5).
3. Restore the latest snapshot at or before the lowest mark (engine dump, last command
   time, fee numerators), so that every entry a consumer lacks is replayed.
4. Stream the journal tail through the engine; the regenerated events must equal the
   journaled ones (the engine is deterministic: a mismatch is a bug, so raise).
5. Hand each durable consumer the entries after its mark, in one batch (the projection
   writes the rows a crash left unwritten), then rebuild the idempotency index (the last
   `idempotency_window` commands) and the client order id index, and tell every consumer
   the market is ready (the ledger releases orphan holds, the tape loads recent trades).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence

from actors.contracts import OrderResult
from actors.engine import Event, MarketSpec, MatchingEngine
from actors.engine.types import MarketStatus
from actors.journal_codec import StoredEntry, decode_entry, decode_outcome, decode_reservation
from actors.ledger.fees import FeeCounts
from actors.market import routing
from actors.market.core import MarketCore, now_ms
from actors.market.ports import Clock, Ports, SnapshotStore
from actors.market.rows import JournalRow
from actors.market.seam import CommittedBatch, CommittedEntry, Consumer
from actors.market.state import Indexes, StoredResult, decode_snapshot, result_of

log = logging.getLogger(__name__)


class ReplayMismatchError(RuntimeError):
    """Replaying the journal did not regenerate the journaled events (a determinism bug)."""


async def recover(
    spec: MarketSpec,
    ports: Ports,
    consumers: Sequence[Consumer],
    *,
    snapshot_every_events: int,
    max_slippage_bps: int,
    holder: str,
    idempotency_window: int = 20_000,
    clock: Clock = now_ms,
) -> MarketCore:
    """Build a market's core from its journal; see the module docstring for the steps.

    A failure raises, changing nothing a retry depends on: the actor refuses calls and
    retries later (`MarketActor`), while the other markets go on.
    """
    epoch = await ports.journal.acquire_epoch(holder)
    spec = dataclasses.replace(spec, status=MarketStatus.ACTIVE)
    core = MarketCore(
        spec, ports, consumers, epoch, snapshot_every_events=snapshot_every_events,
        max_slippage_bps=max_slippage_bps, clock=clock,
    )  # fmt: skip
    core.indexes = Indexes(idempotency_window)
    head = await ports.journal.high_water()
    marks = {c.name: await c.high_water() for c in consumers if c.durable}
    lowest = min([head, *(m for m in marks.values() if m is not None)])
    snap_seq = await _restore_snapshot(core, ports.snapshots, lowest)
    snap_events = core.engine.seq  # the restored snapshot's event seq (0 without one)
    replay = _Replay(core, snap_seq, lowest, head - idempotency_window)
    async with contextlib.aclosing(ports.journal.load_tail(replay.start())) as tail:
        async for chunk in tail:
            replay.rows(chunk)
    core.fees.prune(core.is_live, everyone=True)
    core.seq = max(head, snap_seq)
    # Count the replayed tail toward the next snapshot: after a long tail the next snapshot
    # comes soon, so a crash right after this recovery does not replay the tail again.
    core.snapshot_event_seq = snap_events
    for consumer in consumers:
        mark = marks.get(consumer.name)
        if mark is not None:
            await _catch_up(core, consumer, mark, replay.entries)
    for (account, coid), (order_id, digest) in (await ports.projection.client_orders()).items():
        core.indexes.client_orders.setdefault((account, coid), (order_id, None, digest))
    for consumer in consumers:
        await consumer.ready(epoch, core.engine)
    log.info("market %s recovered: epoch %d, seq %d, events %d",
             spec.symbol, epoch, core.seq, core.engine.seq)  # fmt: skip
    return core


async def _catch_up(
    core: MarketCore, consumer: Consumer, mark: int, entries: list[CommittedEntry]
) -> None:
    """Hand a durable consumer the replayed entries after its mark, and wait for it."""
    after = tuple(e for e in entries if e.seq > mark)
    if not after:
        return
    batch = CommittedBatch(core.spec.symbol, core.epoch, after[0].seq, after[-1].seq, after)
    finish = consumer.committed(batch, core.engine)
    if finish is not None:
        await finish()


async def _restore_snapshot(core: MarketCore, snapshots: SnapshotStore, max_seq: int) -> int:
    snap = await snapshots.load_latest_snapshot(max_seq=max_seq)
    if snap is None:
        return 0
    dump, last_ts, fees = decode_snapshot(snap.format, snap.state)
    core.engine = MatchingEngine.restore(dump)
    if core.engine.seq != snap.event_seq:
        raise ReplayMismatchError(f"snapshot event seq {snap.event_seq} != {core.engine.seq}")
    core.last_ts, core.seq, core.fees = last_ts, snap.seq, FeeCounts(fees)
    return snap.seq


class _Replay:
    """Replays journal rows: through the engine after the snapshot, into `entries` after
    the lowest consumer mark, into the idempotency index after `window_from`."""

    def __init__(self, core: MarketCore, snap_seq: int, lowest: int, window_from: int) -> None:
        self._core = core
        self._snap_seq = snap_seq
        self._lowest = lowest
        self._window_from = window_from
        self.entries: list[CommittedEntry] = []

    def start(self) -> int:
        """Return the seq after which rows are needed."""
        return max(0, min(self._snap_seq, self._window_from))

    def rows(self, chunk: list[JournalRow]) -> None:
        """Replay a chunk of rows in seq order."""
        indexes = self._core.indexes
        for row in chunk:
            if row.seq <= self._snap_seq:
                if row.seq > self._window_from:  # older results would be evicted at once
                    self._remember_stored(row)
                continue
            stored = decode_entry(row.seq, row.payload)
            events = self._replay(stored)
            if row.seq > self._window_from:
                result = result_of(stored.request_id, row.seq, stored.command, events)
                indexes.remember(stored.account_id, stored.client_order_id, result, stored.digest)

    def _remember_stored(self, row: JournalRow) -> None:
        """Index the answer of a row the snapshot covers, decoded only if asked for."""
        seq, payload = row.seq, row.payload
        outcome = decode_outcome(payload)

        def make() -> OrderResult:
            stored = decode_entry(seq, payload)
            return result_of(stored.request_id, seq, stored.command, stored.events())

        result = StoredResult(outcome.request_id, outcome.reject_code is None,
                              outcome.order_id, make)  # fmt: skip
        self._core.indexes.remember(
            outcome.account_id, outcome.client_order_id, result, outcome.digest
        )

    def _replay(self, stored: StoredEntry) -> tuple[Event, ...]:
        core = self._core
        owners = {}
        if stored.seq > self._lowest:
            owners = routing.owners_before(core.engine, stored.command)
        events = tuple(core.engine.submit(stored.command))
        if not stored.has_events(events):
            raise ReplayMismatchError(
                f"journal seq {stored.seq}: replay gave {events}, journal has "
                f"{stored.stored_events}"
            )
        fees = core.fees.charge_events(core.spec, events)
        core.last_ts = max(core.last_ts, stored.ts)
        if stored.seq > self._lowest:
            reservation = decode_reservation(core.spec.symbol, stored.stored_reservation)
            self.entries.append(CommittedEntry(
                stored.seq, stored.request_id, stored.account_id, stored.client_order_id,
                stored.digest, stored.command, events, fees, reservation, owners,
            ))  # fmt: skip
        return events
