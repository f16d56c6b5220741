"""The recovery path of a market actor (also its normal start).

1. Acquire the market's epoch (fences every older incarnation).
2. Restore the latest snapshot, if any (engine dump, last command time, fee state).
3. Stream the journal tail through the engine; the regenerated events must equal the
   journaled ones (the engine is deterministic: a mismatch is a bug, so raise).
   Rows after the projection mark (journaled, but the crash came before their orders and
   trades rows were written) are projected on the way, in one transaction. The snapshot
   used is the latest one at or before that mark, so every such row is replayed.
4. Rebuild the idempotency index from the last `idempotency_window` journaled commands and
   the client order id index from the orders table; reload the recent trades.
5. Let every ledger shard catch up with the journal (`sync`) and release reservations of
   orders that are not live (crash between reserve and journal).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from actors.engine import MatchingEngine
from actors.engine.codec import command_from_dict, event_to_dict
from actors.engine.types import MarketStatus
from actors.market.core import RECENT_TRADES, MarketCore
from actors.market.journal import Journal, JournalRow
from actors.market.ledger_client import LedgerClient
from actors.market.projection import Projection, prune_cum, track_cum
from actors.market.state import Indexes, decode_snapshot, result_of
from actors.markets_repo import load_market

log = logging.getLogger(__name__)


class ReplayMismatchError(RuntimeError):
    """Replaying the journal did not regenerate the journaled events (a determinism bug)."""


class UnknownMarketError(LookupError):
    """No market with this symbol exists."""


async def recover(
    symbol: str,
    database_url: str,
    ledger: LedgerClient,
    *,
    snapshot_every_events: int,
    max_slippage_bps: int,
    holder: str,
    idempotency_window: int = 20_000,
) -> MarketCore:
    """Build a market's core from the database; see the module docstring for the steps.

    A failure closes what it opened and raises: the actor refuses calls and retries later
    (`MarketActor`), while the other markets go on.
    """
    journal = await Journal.open(database_url, 0)
    try:
        return await _recover(journal, symbol, database_url, ledger, snapshot_every_events,
                              max_slippage_bps, holder, idempotency_window)  # fmt: skip
    except BaseException:
        journal.conn.terminate()
        raise


async def _recover(  # noqa: PLR0917 (the arguments of `recover`, passed on)
    journal: Journal,
    symbol: str,
    database_url: str,
    ledger: LedgerClient,
    snapshot_every_events: int,
    max_slippage_bps: int,
    holder: str,
    idempotency_window: int,
) -> MarketCore:
    record = await load_market(journal.conn, symbol)
    if record is None:
        raise UnknownMarketError(symbol)
    journal.market_id = record.market_id
    epoch = await journal.acquire_epoch(holder)
    spec = dataclasses.replace(record.spec, status=MarketStatus.ACTIVE)
    core = MarketCore(
        spec, journal, ledger, epoch,
        snapshot_every_events=snapshot_every_events, max_slippage_bps=max_slippage_bps,
    )  # fmt: skip
    core.indexes = Indexes(idempotency_window)
    projected = await journal.projection_mark()
    snap_seq = await _restore_snapshot(core, projected)
    snap_events = core.engine.seq  # the restored snapshot's event seq (0 without one)
    high = await journal.high_water()
    start = max(0, min(snap_seq, high - idempotency_window))
    # Rows after the projection mark were journaled (acknowledged or not) but their orders
    # and trades rows were not written: collect them while replaying, write them below.
    projection = Projection(spec, core.cum)
    window_from = high - idempotency_window  # rows after it feed the idempotency index
    async with contextlib.aclosing(journal.load_tail(start)) as tail:
        async for chunk in tail:
            _replay_chunk(core, chunk, (snap_seq, projected, window_from), projection)
    if high > projected:
        await journal.project(epoch, high, projection.finish(core.engine), projection.trades)
    prune_cum(core.cum, core.engine)
    core.seq = max(high, snap_seq)
    # Count the replayed tail toward the next snapshot: after a long tail the next snapshot
    # comes soon, so a crash right after this recovery does not replay the tail again.
    core.snapshot_event_seq = snap_events
    for (account, coid), (order_id, digest) in (await journal.client_orders()).items():
        core.indexes.client_orders.setdefault((account, coid), (order_id, None, digest))
    core.trades.extend(reversed(await journal.recent_trades(RECENT_TRADES)))
    await ledger.sync_all(symbol)
    released = await ledger.release_orphans(symbol, core.engine.live_order_ids(), epoch)
    core.snapshot_journal = await Journal.open(database_url, record.market_id)
    core.projection_journal = await Journal.open(database_url, record.market_id)
    log.info(
        "market %s recovered: epoch %d, seq %d, events %d, %d orphan reservations released",
        symbol, epoch, core.seq, core.engine.seq, released,
    )  # fmt: skip
    return core


async def _restore_snapshot(core: MarketCore, projected: int) -> int:
    # Not past the projection mark: the rows after it are replayed to re-project them.
    snap = await core.journal.load_latest_snapshot(max_seq=projected)
    if snap is None:
        return 0
    dump, last_ts, cum = decode_snapshot(snap.format, snap.state)
    core.engine = MatchingEngine.restore(dump)
    if core.engine.seq != snap.event_seq:
        raise ReplayMismatchError(f"snapshot event seq {snap.event_seq} != {core.engine.seq}")
    core.last_ts, core.cum, core.seq = last_ts, cum, snap.seq
    return snap.seq


def _replay_chunk(
    core: MarketCore,
    chunk: list[JournalRow],
    marks: tuple[int, int, int],
    projection: Projection,
) -> None:
    """Replay rows after the snapshot, project rows after the projection mark, and
    remember the results of rows in the idempotency window (`marks`: the three seqs)."""
    snap_seq, projected, window_from = marks
    engine, spec, cum, indexes = core.engine, core.spec, core.cum, core.indexes
    for row in chunk:
        p = row.payload
        cmd = p["command"]
        journaled = p["events"]
        if row.seq > snap_seq:
            events = engine.submit(command_from_dict(cmd))
            regenerated = [event_to_dict(e) for e in events]
            if regenerated != journaled:
                raise ReplayMismatchError(
                    f"journal seq {row.seq}: replay gave {regenerated}, journal has {journaled}"
                )
            if row.seq > projected:
                coid = p.get("client_order_id")
                projection.add(p.get("account_id"), coid, cmd, events, p.get("digest"))
            else:
                track_cum(spec, cum, events)
            core.last_ts = max(core.last_ts, int(cmd.get("ts", 0)))
        if row.seq > window_from:  # older results would be evicted at once
            result = result_of(p["request_id"], row.seq, cmd, journaled)
            indexes.remember(p.get("account_id"), p.get("client_order_id"), result, p.get("digest"))
