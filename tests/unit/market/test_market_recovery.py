"""Recovery (`actors/market/recovery.py`) over in-memory ports: the book, the answers and
the fee counts survive a restart, with or without a snapshot; a journal in the stored form
earlier versions wrote recovers; a replay that differs from the journal stops."""

from __future__ import annotations

from typing import Any

import pytest
from market_harness import BUYER, SELLER, SPEC, Market, limit, request

from actors.engine import MatchingEngine
from actors.engine.codec import command_from_dict, event_to_dict
from actors.market.recovery import ReplayMismatchError
from actors.market.rows import JournalRow

pytestmark = pytest.mark.timeout(30)


async def _trade(m: Market, restart_after: int | None) -> list[tuple[int, int, int]]:
    """Fill one resting sell in three buys, restarting after the `restart_after`-th pass;
    return each trade's (qty, maker fee, taker fee)."""
    passes = [
        [limit(SELLER, "s1", "sell", 333, 9)],
        [limit(BUYER, "b1", "buy", 333, 2)],
        [limit(BUYER, "b2", "buy", 333, 3)],
        [limit(BUYER, "b3", "buy", 333, 4)],
    ]
    for n, batch in enumerate(passes, 1):
        assert all(r.ok for r in await m.submit(*batch))
        if n == restart_after:
            await m.settled()
            await m.core.wait_snapshot()
            await m.start()
    await m.settled()
    return [(t.qty_lots, t.maker_fee_atoms, t.taker_fee_atoms) for t in m.store.trades]


@pytest.mark.parametrize("snapshots", [False, True])
async def test_fees_on_the_cumulative_notional_survive_a_restart(snapshots: bool) -> None:
    reference = Market()
    await reference.start()
    expected = await _trade(reference, restart_after=None)
    # The maker's numerator carries over: 666*10 -> 1 atom, +999*10 -> 2 in all, +1332*10 -> 3.
    assert expected == [(2, 1, 2), (3, 1, 2), (4, 1, 3)]
    m = Market(snapshot_every_events=2 if snapshots else 1_000_000)
    await m.start()
    assert await _trade(m, restart_after=2) == expected
    assert bool(m.store.snapshots) == snapshots


async def test_a_restart_keeps_the_book_the_answers_and_the_client_order_ids() -> None:
    m = Market()
    await m.start()
    sell = limit(SELLER, "s1", "sell", 100, 5)
    [first] = await m.submit(sell)
    await m.submit(limit(BUYER, "b1", "buy", 100, 2))
    await m.settled()
    book = m.core.engine.l2()
    await m.start()
    assert m.core.engine.l2() == book and m.core.seq == 2
    [again] = await m.submit(sell)
    assert again.duplicate and (again.seq, again.events) == (first.seq, first.events)
    assert m.balance(SELLER, "T") == (995, 3) and len(m.store.rows) == 2


def _stored(seq: int, engine: MatchingEngine, command: dict[str, Any], **more: Any) -> JournalRow:
    """A journal row as the market wrote it before its records were typed: the gateway's
    command dict with `owner` and `ts` added, the codec's events, the reservation dict."""
    events = [event_to_dict(e) for e in engine.submit(command_from_dict(command))]
    payload = {"request_id": more.pop("request_id"), "account_id": more.pop("account_id"),
               "client_order_id": more.pop("client_order_id", None), "command": command,
               "events": events, **more}  # fmt: skip
    return JournalRow(seq, command["type"], payload)


async def test_a_journal_in_the_stored_form_of_earlier_versions_recovers() -> None:
    engine = MatchingEngine(SPEC)
    sell = {"type": "new", "id": "s1", "side": "sell", "kind": "limit", "price": 100,
            "qty": 5, "tif": "gtc", "owner": "1", "ts": 1_000}  # fmt: skip
    buy = {"type": "new", "id": "b1", "side": "buy", "kind": "market", "qty": 2, "tif": "ioc",
           "owner": "2", "ts": 1_001, "quote_qty": 210}  # the protection budget  # fmt: skip
    m = Market()
    m.store.rows = [
        _stored(1, engine, sell, request_id="c1", account_id=1, client_order_id="c1",
                digest="d1", reservation={"order_id": "s1", "account_id": 1, "asset": "T",
                "amount_atoms": 5, "side": "sell", "limit_price_ticks": 100, "qty_lots": 5,
                "quote_budget_tick_lots": None}),
        _stored(2, engine, buy, request_id="b1", account_id=2,
                reservation={"order_id": "b1", "account_id": 2, "asset": "Q",
                "amount_atoms": 211, "side": "buy", "limit_price_ticks": None, "qty_lots": 2,
                "quote_budget_tick_lots": 210}),
        _stored(3, engine, {"type": "tick", "ts": 1_002}, request_id="tick:3:1", account_id=None),
    ]  # fmt: skip
    await m.start()
    assert m.core.engine.l2() == engine.l2() and m.core.seq == 3 and m.core.last_ts == 1_002
    assert m.store.mark == 3 and m.store.orders["s1"]["filled"] == 2  # projected on the way
    assert m.balance(SELLER, "T") == (995, 3) and m.balance(BUYER, "T") == (1_002, 0)
    again = {k: v for k, v in sell.items() if k not in ("owner", "ts")}
    [retry] = await m.submit(request("c1", SELLER, again, client_order_id="c1", digest="d1"))
    assert retry.duplicate and retry.seq == 1 and len(m.store.rows) == 3


async def test_a_replay_that_differs_from_the_journal_stops_the_recovery() -> None:
    m = Market()
    await m.start()
    await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    await m.settled()
    m.store.rows[0].payload["events"][0]["side"] = "buy"
    with pytest.raises(ReplayMismatchError, match="journal seq 1"):
        await m.start()


async def test_answers_of_commands_a_snapshot_covers_are_kept_for_retries() -> None:
    m = Market(snapshot_every_events=1)  # a snapshot after every pass
    await m.start()
    cmd = {"type": "new", "id": "s1", "side": "sell", "kind": "limit", "price": 100, "qty": 5}
    placed = request("c1", SELLER, cmd, client_order_id="c1", digest="d1")
    [first] = await m.submit(placed)
    await m.core.wait_snapshot()
    [refused] = await m.submit(request("bad", BUYER, {"type": "amend", "id": "s1", "qty": 2}))
    await m.settled()
    await m.core.wait_snapshot()
    await m.start()
    assert max(s.seq for s in m.store.snapshots) == 2  # both rows are before the snapshot
    [again, refused_again] = await m.submit(
        placed, request("bad", BUYER, {"type": "amend", "id": "s1", "qty": 2})
    )
    assert again.duplicate and (again.seq, again.events, again.ts_ms) == (
        first.seq, first.events, first.ts_ms,
    )  # fmt: skip
    assert (refused_again.ok, refused_again.code, refused_again.seq) == (False, "not_owner", 2)
    assert refused.code == "not_owner" and refused_again.events == refused.events
    other_id = request("c1-retry", SELLER, {**cmd, "id": "s9"}, client_order_id="c1",
                       digest="d1")  # fmt: skip
    [by_client_id] = await m.submit(other_id)
    assert by_client_id.duplicate and by_client_id.order_id == "s1" and len(m.store.rows) == 2
