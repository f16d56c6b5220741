"""Chaos: kill market actors and ledger shards at random moments during a long stream of
orders on two markets; nothing acknowledged is lost, nothing is applied twice, every asset
is conserved and no reservation leaks.

At each checkpoint (the last one at the end) the stream pauses, every killed actor is back,
and the test checks that:
- the journal holds every acknowledged command exactly once, at the seq it was answered
  with and with the events it was answered with, and nothing else;
- each market's answers and book equal its oracle's (`tests.support.chaos`);
- the orders/trades projection has every accepted order and one trade per fill;
- every asset is conserved over the shards, and every account's balances (holds count as
  locked, so a hold left behind shows) and the fees equal what the credits and the whole
  journal, applied once to one in-process ledger, give.

The size comes from the environment (`ChaosSize.from_env`): CI runs 10 kills, `make soak`
1,000. The test retries a batch, with the same request ids, until it is acknowledged,
so each market actor sees its commands in the order its oracle does.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import asyncpg
import pytest

from actors.bootstrap import start_core
from actors.contracts import BalanceView
from actors.engine import Accepted, Fill, MarketSpec
from actors.engine.codec import event_to_dict
from actors.journal_codec import ledger_entry
from actors.ledger import store
from actors.ledger.core import LedgerCore
from tests.support.chaos import ChaosSize, Killer, Lane, OrderFlow, Pace
from tests.support.market_kit import credit, eventually, new_accounts, shard, submit_until_acked

SIZE = ChaosSize.from_env()
SHARDS = 2
SEED = 20_240_611
OWNERS = 6
ASSETS = ("CHAOS", "BETA", "USD")
SPECS = (
    MarketSpec(symbol="CHAOS-USD", base_asset="CHAOS", quote_asset="USD",
               maker_fee_bps=-2, taker_fee_bps=7, tick_size=3),
    MarketSpec(symbol="BETA-USD", base_asset="BETA", quote_asset="USD",
               maker_fee_bps=1, taker_fee_bps=4, tick_size=2, lot_size=10),
)  # fmt: skip

pytestmark = pytest.mark.timeout(SIZE.timeout_s)


async def test_kills_lose_nothing_and_conserve_every_asset(
    db_url: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    lanes, reference = await _start(db_url, namespace)
    conn = await asyncpg.connect(db_url)  # the killer's own
    try:
        market_ids = {lane.spec.symbol: await _market_id(conn, lane.spec) for lane in lanes}
        killer = Killer(namespace, conn, market_ids, SHARDS, random.Random(SEED + 1))
        pace = Pace(SIZE, len(lanes))
        for checkpoint in range(SIZE.checkpoints):
            await _phase(checkpoint, lanes, killer, pace, url=db_url, namespace=namespace,
                         market_ids=market_ids, reference=reference)  # fmt: skip
            await _report(checkpoint, lanes, killer, time.monotonic() - started, capsys)
        assert sum(killer.kills.values()) == SIZE.kills
        assert min(killer.kills[t] for t in killer.targets) >= SIZE.kills // len(killer.targets)
    finally:
        await conn.close()


async def _phase(
    checkpoint: int,
    lanes: list[Lane],
    killer: Killer,
    pace: Pace,
    *,
    url: str,
    namespace: str,
    market_ids: dict[str, int],
    reference: LedgerCore,
) -> None:
    """Run the batches and kills before `checkpoint`, wait for every kill's recovery and
    check every invariant."""
    pace.until(checkpoint)
    async with asyncio.TaskGroup() as group:  # a failure cancels the others
        group.create_task(killer.run(SIZE.kill_range(checkpoint), pace))
        for lane in lanes:
            group.create_task(_stream(lane, namespace, pace, SIZE.batch_range(checkpoint)))
    await killer.recovered()
    for lane in lanes:
        await _check_lane(url, namespace, lane, market_ids[lane.spec.symbol], reference)
    await _check_ledger(namespace, lanes[0].flow.owners, reference)


async def _report(
    checkpoint: int,
    lanes: list[Lane],
    killer: Killer,
    elapsed_s: float,
    out: pytest.CaptureFixture[str],
) -> None:
    """Print, past pytest's capture, the kills survived, the commands acknowledged and
    each actor's incarnations (a shard's kill may restart the markets too)."""
    kills = ", ".join(f"{t} {n}" for t, n in sorted(killer.kills.items()))
    epochs = ", ".join(f"{t} {n}" for t, n in sorted((await killer.incarnations()).items()))
    with out.disabled():
        print(
            f"chaos checkpoint {checkpoint + 1}/{SIZE.checkpoints} at {elapsed_s:.0f} s: "
            f"{sum(killer.kills.values())} kills survived ({kills}); "
            f"{sum(lane.commands for lane in lanes)} commands acknowledged; "
            f"incarnations {epochs}",
            flush=True,
        )


async def _start(db_url: str, namespace: str) -> tuple[list[Lane], LedgerCore]:
    """Start the core and the markets, credit the owners; return the lanes and a reference
    ledger that owns every account, holding the credits."""
    controller = await asyncio.to_thread(start_core, db_url, SHARDS, namespace)
    for spec in SPECS:
        await controller.create_market.remote(spec.to_dict())
    owners = await new_accounts(db_url, OWNERS)
    for owner in owners:
        for asset in ASSETS:
            await credit(namespace, SHARDS, owner, asset, 10**9 if asset != "USD" else 10**12)
    # A seeded flow per market: the markets run concurrently, each stream stays the same.
    lanes = [Lane(spec, OrderFlow(spec.base_asset[0], owners, random.Random(SEED + n)))
             for n, spec in enumerate(SPECS, start=2)]  # fmt: skip
    reference = LedgerCore(0, 1)
    connection = await asyncpg.connect(db_url)
    try:
        credits = await connection.fetch(
            "SELECT c.reference, c.account_id, a.symbol, c.amount_atoms "
            "FROM ledger_credits c JOIN assets a USING (asset_id) ORDER BY c.created_at"
        )
    finally:
        await connection.close()
    for c in credits:
        reference.credit(int(c["account_id"]), c["symbol"], int(c["amount_atoms"]), c["reference"])
    return lanes, reference


async def _market_id(conn: asyncpg.Connection, spec: MarketSpec) -> int:
    return int(await conn.fetchval("SELECT market_id FROM markets WHERE symbol = $1", spec.symbol))


async def _stream(lane: Lane, namespace: str, pace: Pace, batches: range) -> None:
    """Submit `batches` until acknowledged, never running ahead of the kills due before
    them; check each answer against the oracle."""
    for number in batches:
        await pace.before_batch()
        batch = lane.flow.batch(number)
        results = await submit_until_acked(
            lambda: lane.handle(namespace), batch, timeout_s=120, pause_s=0.05
        )
        for request, result in zip(batch, results, strict=True):
            assert result.seq is not None, result
            assert result.code != "insufficient_funds", result
            assert result.events == lane.expect(request), (request, result)
        lane.acked.extend(zip(batch, results, strict=True))
        lane.commands += len(batch)
        await pace.acked()


async def _check_lane(
    url: str, namespace: str, lane: Lane, market_id: int, reference: LedgerCore
) -> None:
    """Check one market's journal, book and projection since the last checkpoint; apply
    its new journal entries to the reference ledger."""
    await eventually(lambda: lane.handle(namespace).settled.remote())  # noqa: PLW0108 (fresh handle)
    connection = await asyncpg.connect(url)
    try:
        await _check_journal(connection, lane, market_id)
        await _check_projection(connection, lane, market_id)
        entries = await store.journal_entries(connection, market_id, lane.checked_seq)
    finally:
        await connection.close()
    for seq, events, raw in entries:
        entry = ledger_entry(lane.spec.symbol, seq, events, raw)
        reference.apply_events(lane.spec, lane.spec.symbol, seq, entry.events, entry.reservation)
    await _check_book(namespace, lane)
    lane.checked_seq = entries[-1][0] if entries else lane.checked_seq
    lane.checked_event_seq = lane.oracle.seq
    lane.acked.clear()


async def _check_journal(conn: asyncpg.Connection, lane: Lane, market_id: int) -> None:
    """The journal after the last checkpoint is exactly the acknowledged commands."""
    rows = await conn.fetch(
        "SELECT seq, payload->>'request_id' AS rid, (payload->>'account_id')::bigint AS owner, "
        "payload->'events' AS events FROM journal WHERE market_id = $1 AND seq > $2 "
        "ORDER BY seq",
        market_id, lane.checked_seq,
    )  # fmt: skip
    got = [(r["seq"], r["rid"], r["owner"], json.loads(r["events"])) for r in rows]
    expected = [(res.seq, req.request_id, req.account_id, [event_to_dict(e) for e in res.events])
                for req, res in lane.acked]  # fmt: skip
    assert got == expected


async def _check_projection(conn: asyncpg.Connection, lane: Lane, market_id: int) -> None:
    accepted = [res.order_id for _, res in lane.acked
                if res.events and isinstance(res.events[0], Accepted)]  # fmt: skip
    known = await conn.fetchval(
        "SELECT count(*) FROM orders WHERE market_id = $1 AND order_id = ANY($2::text[])",
        market_id, accepted,
    )  # fmt: skip
    assert known == len(accepted)
    trades = await conn.fetch(
        "SELECT seq FROM trades WHERE market_id = $1 AND seq > $2 ORDER BY seq",
        market_id, lane.checked_event_seq,
    )  # fmt: skip
    fills = [e.seq for _, res in lane.acked for e in res.events if isinstance(e, Fill)]
    assert [t["seq"] for t in trades] == fills  # one trade per fill, by the fill's event seq


async def _check_book(namespace: str, lane: Lane) -> None:
    views = await eventually(lambda: lane.handle(namespace).l3.remote())  # noqa: PLW0108
    expected = [(v.id, v.owner, v.price, v.visible_qty, v.remaining_qty, v.arrival)
                for v in lane.oracle.l3()]  # fmt: skip
    got = [(v["id"], v["owner"], v["price"], v["visible_qty"], v["remaining_qty"], v["arrival"])
           for v in views if v["status"] == "resting"]  # fmt: skip
    assert got == expected, lane.spec.symbol


async def _check_ledger(namespace: str, owners: list[int], reference: LedgerCore) -> None:
    """Conservation per asset over the shards; every balance and fee as the reference."""
    totals = await eventually(
        lambda: asyncio.gather(
            *(shard(namespace, i, SHARDS).totals.remote() for i in range(SHARDS))
        )
    )
    for asset in ASSETS:
        parts = [t[asset] for t in totals if asset in t]
        held = sum(p["available"] + p["locked"] + p["fees"] for p in parts)
        assert held == sum(p["credited"] - p["debited"] for p in parts), asset
        assert sum(p["fees"] for p in parts) == reference.fees(asset), asset
    for owner in owners:
        views: list[BalanceView] = await eventually(
            lambda owner=owner: shard(namespace, owner, SHARDS).balances.remote(owner)
        )
        assert views == reference.balances(owner), owner
