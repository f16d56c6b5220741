"""The market pipeline (`MarketCore`) over in-memory ports: dedupe and retries, early
rejects, reservations, segments, the answer at the journal commit, bounded lag, fencing
and failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from market_harness import BUYER, SELLER, Market, limit, request

from actors.engine import Accepted, Fill
from actors.market.ports import FencedError, JournalWriteError, LostHoldError, PassFailedError

pytestmark = pytest.mark.timeout(30)


async def _market() -> Market:
    market = Market()
    await market.start()
    return market


async def test_a_retry_gets_the_first_answer_and_nothing_is_journaled_twice() -> None:
    m = await _market()
    sell = limit(SELLER, "s1", "sell", 100, 5)
    [first] = await m.submit(sell)
    [again, twin] = await m.submit(sell, sell)
    assert first.ok and first.seq == 1 and not first.duplicate
    assert [type(e) for e in first.events] == [Accepted]
    for retry in (again, twin):
        assert retry.duplicate and (retry.seq, retry.events) == (first.seq, first.events)
    assert len(m.store.rows) == 1 and m.balance(SELLER, "T") == (995, 5)


async def test_the_same_request_twice_in_one_pass_runs_once() -> None:
    m = await _market()
    sell = limit(SELLER, "s1", "sell", 100, 5)
    first, second = await m.submit(sell, sell)
    assert first.ok and not first.duplicate and second.duplicate and second.seq == first.seq
    assert len(m.store.rows) == 1


async def test_a_client_order_id_reused_with_other_terms_is_refused_unjournaled() -> None:
    m = await _market()
    cmd = {"type": "new", "id": "o1", "side": "sell", "kind": "limit", "price": 100, "qty": 5}
    [placed] = await m.submit(request("c1", SELLER, cmd, client_order_id="c1", digest="d1"))
    other = {**cmd, "id": "o2", "qty": 6}
    [reused] = await m.submit(request("c1", SELLER, other, client_order_id="c1", digest="d2"))
    [retry] = await m.submit(request("c1", SELLER, {**cmd, "id": "o3"}, client_order_id="c1",
                                     digest="d1"))  # fmt: skip
    assert placed.ok and (reused.ok, reused.code) == (False, "duplicate_client_order_id")
    assert retry.duplicate and retry.order_id == "o1" and len(m.store.rows) == 1


def _new(oid: str, side: str, price: int, qty: int, **extra: Any) -> dict[str, Any]:
    return {"type": "new", "id": oid, "side": side, "kind": "limit", "price": price, "qty": qty,
            **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        ({**_new("x", "buy", 100, 1), "kind": "market"}, "invalid_command"),  # a priced market
        ({**_new("x", "buy", 100, 1), "qty": True}, "invalid_command"),  # not an integer
        (_new("s1", "buy", 100, 1), "duplicate_id"),  # s1 rests on the book
        (_new("x", "buy", 0, 1), "invalid_price"),
        (_new("x", "buy", 2**62, 2**62), "amount_too_large"),
        (_new("x", "buy", 1_000, 1_000), "insufficient_funds"),  # 1,002,000 > 100,000 Q
    ],
)
async def test_early_rejects_are_answered_unjournaled_and_hold_nothing(
    cmd: dict[str, Any], code: str
) -> None:
    m = await _market()
    await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    before = (m.balance(BUYER, "Q"), m.balance(BUYER, "T"), len(m.store.rows))
    [result] = await m.submit(request("r", BUYER, cmd))
    assert (result.ok, result.code, result.seq, result.events) == (False, code, None, ())
    assert (m.balance(BUYER, "Q"), m.balance(BUYER, "T"), len(m.store.rows)) == before


async def test_a_halted_market_refuses_new_orders_before_the_engine() -> None:
    m = await _market()
    await m.core.admin("halt")
    [result] = await m.submit(limit(BUYER, "b", "buy", 100, 1))
    assert (result.code, result.seq) == ("market_halted", None)
    assert [p["command"]["type"] for p in m.payloads()] == ["halt"]


async def test_a_reservation_is_held_before_matching_and_journaled_with_its_command() -> None:
    m = await _market()
    [buy] = await m.submit(limit(BUYER, "b1", "buy", 100, 10))
    # 1,000 Q of notional plus the fee at the higher rate (20 bps), rounded up.
    assert buy.ok and m.balance(BUYER, "Q") == (100_000 - 1_002, 1_002)
    [row] = m.store.rows
    assert row.hold == (0, 1)  # account 2 is shard 0's; its epoch
    assert row.payload["reservation"] == {
        "order_id": "b1", "account_id": BUYER, "asset": "Q", "amount_atoms": 1_002,
        "side": "buy", "limit_price_ticks": 100, "qty_lots": 10, "quote_budget_tick_lots": None,
    }  # fmt: skip
    assert row.payload["command"] == {"type": "new", "id": "b1", "owner": "2", "side": "buy",
                                      "kind": "limit", "ts": m.clock.now_ms, "qty": 10,
                                      "price": 100}  # fmt: skip


async def test_a_pass_is_cut_where_a_command_reads_what_an_earlier_one_changed() -> None:
    m = await _market()
    reserves = len(m.ledger.reserves)
    market_buy = {"type": "new", "id": "mb", "side": "buy", "kind": "market", "qty": 3}
    results = await m.submit(
        limit(SELLER, "s1", "sell", 100, 5),
        request("a1", SELLER, {"type": "amend", "id": "s1", "qty": 8}),  # reads s1
        limit(SELLER, "s2", "sell", 100, 5),
        request("mb", BUYER, market_buy),  # its budget reads the book
    )
    assert [r.ok for r in results] == [True, True, True, True]
    # Three segments, each reserved on its own: [s1], [a1, s2], [mb].
    assert [len(r) for r in m.ledger.reserves[reserves:]] == [1, 2, 1]
    amended, bought = m.payloads()[1], m.payloads()[3]
    assert amended["reservation"]["amount_atoms"] == 3  # 8 lots against s1's 5, seen placed
    assert bought["reservation"]["quote_budget_tick_lots"] == 315  # ceil(100 * 1.05) * 3
    assert bought["command"]["quote_qty"] == 315
    assert [type(e) for e in results[3].events] == [Accepted, Fill]


async def test_callers_are_answered_at_the_journal_commit_before_the_projection() -> None:
    m = await _market()
    m.store.project_gate.close()
    [sell] = await asyncio.wait_for(m.submit(limit(SELLER, "s1", "sell", 100, 5)), 5)
    assert sell.ok and len(m.store.rows) == 1 and m.store.mark == 0
    await asyncio.sleep(0.01)
    assert m.core.lag() == (0, 1)  # applied to the ledger, not yet projected
    m.store.project_gate.open()
    await m.settled()
    assert m.store.mark == 1 and m.store.orders["s1"]["status"] == "open"
    assert m.core.lag() == (0, 0)


async def test_a_pass_waits_while_two_earlier_passes_are_not_projected() -> None:
    m = await _market()
    m.store.project_gate.close()
    await m.submit(limit(SELLER, "s1", "sell", 100, 1))
    await m.submit(limit(SELLER, "s2", "sell", 101, 1))
    third = asyncio.ensure_future(m.submit(limit(SELLER, "s3", "sell", 102, 1)))
    await asyncio.sleep(0.05)
    assert not third.done() and len(m.store.rows) == 2  # held back before matching
    m.store.project_gate.open()
    [placed] = await asyncio.wait_for(third, 5)
    assert placed.seq == 3


async def test_a_fenced_journal_stops_the_market() -> None:
    m = await _market()
    await m.store.acquire_epoch("a newer incarnation")
    with pytest.raises(FencedError):
        await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    appends = m.store.appends
    assert m.core.fenced
    with pytest.raises(FencedError):
        await m.submit(limit(SELLER, "s2", "sell", 100, 5))
    assert m.store.appends == appends and m.store.rows == []


@pytest.mark.parametrize("failure", [RuntimeError("disk"), LostHoldError("shard restarted")])
async def test_a_failed_journal_write_asks_for_a_restart(failure: Exception) -> None:
    m = await _market()
    m.store.fail_append = failure
    with pytest.raises(JournalWriteError) as caught:
        await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    assert not isinstance(caught.value, PassFailedError) and m.store.rows == []


async def test_a_pass_that_fails_before_its_commit_asks_for_a_restart() -> None:
    m = await _market()
    m.ledger.fail_reserve = RuntimeError("shard out of reach")
    with pytest.raises(PassFailedError):
        await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    assert m.store.rows == []
