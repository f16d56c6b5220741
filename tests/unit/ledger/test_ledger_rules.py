"""One test per ledger rule, driven through the real engine (see `ledger_harness.Desk`).

Market B-Q: a lot is 10 base atoms, a tick-lot 10 quote atoms, so `notional = price * qty
* 10`; taker 30 bps, maker 10 bps (max fee 30 bps) unless a test says otherwise.
"""

from __future__ import annotations

import pytest
from ledger_harness import SPEC, Desk

from actors.contracts import Reservation
from actors.engine import MarketSpec
from actors.engine.codec import event_from_dict
from actors.engine.events import EVENT_TYPE_NAMES
from actors.ledger.core import LedgerCore, Move
from actors.ledger.rules import (
    CreditReferenceError,
    LedgerInvariantError,
    amend_reservation,
    fill_fee_atoms,
    required_reservation,
)

BUYER, SELLER = 1, 2
REBATE_SPEC = MarketSpec(
    symbol="B-Q", base_asset="B", quote_asset="Q", tick_size=1, lot_size=10,
    maker_fee_bps=-5, taker_fee_bps=10,
)  # fmt: skip


def _desk(spec: MarketSpec = SPEC, shard_count: int = 1) -> Desk:
    desk = Desk(spec, shard_count)
    for account in (BUYER, SELLER):
        desk.fund(account, "Q", 100_000)
        desk.fund(account, "B", 1_000)
    return desk


def _conserved(desk: Desk) -> None:
    for asset, (held, credited) in desk.conserved().items():
        assert held == credited, asset


# --- required reservation ----------------------------------------------------------------


def test_buy_reserves_notional_plus_max_fee_rounded_up() -> None:
    assert required_reservation(SPEC, "buy", "limit", 100, 5) == 5_000 + 15
    assert required_reservation(SPEC, "buy", "limit", 3, 1) == 30 + 1


def test_sell_reserves_base_quantity() -> None:
    assert required_reservation(SPEC, "sell", "limit", 100, 5) == 50
    assert required_reservation(SPEC, "sell", "market", None, 7) == 70


def test_market_buy_reserves_budget_plus_fee() -> None:
    assert required_reservation(SPEC, "buy", "market", None, None, 1_000) == 10_000 + 30


def test_unbounded_market_buy_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        required_reservation(SPEC, "buy", "market", None, 5)


def test_amend_reservation_covers_the_raise_with_one_atom_of_slack() -> None:
    assert amend_reservation(SPEC, "buy", "limit", (100, 5), (100, 8)) == 8_024 - 5_015 + 1
    assert amend_reservation(SPEC, "buy", "limit", (100, 5), (90, 5)) == 0
    assert amend_reservation(SPEC, "sell", "limit", (100, 5), (100, 8)) == 30


# --- reserve -----------------------------------------------------------------------------


def test_reserve_locks_funds_and_is_idempotent() -> None:
    core = LedgerCore()
    core.credit(1, "Q", 100, "dep")
    r = Reservation("B-Q", "o1", 1, "Q", 60, "buy", 1, 6)
    assert core.reserve(r) and core.reserve(r)
    assert core.balance(1, "Q") == (40, 60)


def test_reserve_short_of_funds_changes_nothing() -> None:
    core = LedgerCore()
    core.credit(1, "Q", 100, "dep")
    assert not core.reserve(Reservation("B-Q", "o1", 1, "Q", 101, "buy", 1, 6))
    assert core.balance(1, "Q") == (100, 0)
    assert core.reservation("B-Q", "o1") is None


def test_reserve_of_another_accounts_order_is_refused() -> None:
    core = LedgerCore()
    core.credit(1, "Q", 100, "a")
    core.credit(2, "Q", 100, "b")
    assert core.reserve(Reservation("B-Q", "o1", 1, "Q", 10, "buy", 1, 1))
    assert not core.reserve(Reservation("B-Q", "o1", 2, "Q", 20, "buy", 1, 2))
    assert core.balance(2, "Q") == (100, 0)


def test_accounts_of_other_shards_are_refused() -> None:
    core = LedgerCore(0, 2)
    with pytest.raises(ValueError, match="shard 1"):
        core.credit(1, "Q", 10, "x")


# --- settle ------------------------------------------------------------------------------


def test_fill_moves_funds_charges_fees_and_releases_price_improvement() -> None:
    desk = _desk()
    assert desk.place(SELLER, "s", "sell", price=90, qty=5)
    assert desk.place(BUYER, "b", "buy", price=100, qty=5)
    # 5 lots at 90: notional 4,500; taker fee ceil(13.5) = 14, maker fee ceil(4.5) = 5.
    assert desk.balance(BUYER, "Q") == (100_000 - 4_514, 0)
    assert desk.balance(BUYER, "B") == (1_050, 0)
    assert desk.balance(SELLER, "Q") == (100_000 + 4_495, 0)
    assert desk.balance(SELLER, "B") == (950, 0)
    assert desk.fees() == 19
    assert desk.shards[0].reservation("B-Q", "b") is None
    _conserved(desk)


def test_partial_fill_trues_up_to_the_remainder_requirement() -> None:
    desk = _desk()
    desk.place(SELLER, "s", "sell", price=90, qty=4)
    desk.place(BUYER, "b", "buy", price=100, qty=10)
    # Paid 3,600 + 11; the 6 open lots need 6,000 + ceil((3,600 + 6,000) * 30 / 1e4) - 11.
    assert desk.balance(BUYER, "Q") == (100_000 - 3_611 - 6_018, 6_018)
    record = desk.shards[0].reservation("B-Q", "b")
    assert record is not None and (record.reserved_atoms, record.open_qty_lots) == (6_018, 6)


def test_ioc_remainder_is_released() -> None:
    desk = _desk()
    desk.place(SELLER, "s", "sell", price=90, qty=4)
    desk.place(BUYER, "b", "buy", price=100, qty=10, tif="ioc")
    assert desk.events[-1].reason == "ioc_remainder"
    assert desk.balance(BUYER, "Q") == (100_000 - 3_611, 0)


def test_cancel_releases_everything() -> None:
    desk = _desk()
    desk.place(BUYER, "b", "buy", price=100, qty=10)
    assert desk.balance(BUYER, "Q") == (100_000 - 10_030, 10_030)
    desk.cancel(BUYER, "b")
    assert desk.balance(BUYER, "Q") == (100_000, 0)
    assert desk.shards[0].reservation("B-Q", "b") is None


def test_expiry_releases_everything() -> None:
    desk = _desk()
    desk.place(SELLER, "s", "sell", price=100, qty=3, tif="gtd", expire_at=2)
    desk.submit({"type": "tick"})
    assert desk.events[-1].reason == "expired"
    assert desk.balance(SELLER, "B") == (1_000, 0)


def test_engine_reject_of_a_new_order_releases_its_reservation() -> None:
    desk = _desk()
    assert desk.place(BUYER, "b", "buy", price=100, qty=1, tif="gtd", expire_at=0)
    assert desk.events[-1].reason == "invalid_expiry"
    assert desk.balance(BUYER, "Q") == (100_000, 0)


def test_taker_fee_is_rounded_on_the_orders_cumulative_notional() -> None:
    desk = _desk()
    for i in range(3):
        desk.place(SELLER, f"s{i}", "sell", price=1, qty=1)
    desk.place(BUYER, "b", "buy", price=1, qty=3)
    # Three fills of 10 atoms: ceil(0.03), then ceil(0.06) - 1, then ceil(0.09) - 1 = 1 in
    # all; each maker (three orders) pays ceil(0.01) = 1.
    assert desk.balance(BUYER, "Q") == (100_000 - 31, 0)
    assert desk.fees() == 1 + 3


def test_maker_fee_is_rounded_on_the_orders_cumulative_notional() -> None:
    desk = _desk()
    desk.place(SELLER, "s", "sell", price=1, qty=3)
    for i in range(3):
        desk.place(BUYER, f"b{i}", "buy", price=1, qty=1)
    assert desk.balance(SELLER, "Q") == (100_000 + 30 - 1, 0)
    assert fill_fee_atoms(0, 10, 10) == (1, 100)
    assert fill_fee_atoms(100, 10, 10) == (0, 200)


def test_maker_rebate_is_paid_from_the_makers_shard_fee_account() -> None:
    desk = _desk(REBATE_SPEC, shard_count=2)
    desk.place(SELLER, "maker", "buy", price=100, qty=10)  # account 2: shard 0
    desk.place(BUYER, "taker", "sell", price=100, qty=10)  # account 1: shard 1
    assert desk.balance(SELLER, "Q") == (100_000 - 10_000 + 5, 0)
    assert desk.balance(BUYER, "Q") == (100_000 + 10_000 - 10, 0)
    assert (desk.shards[0].fees("Q"), desk.shards[1].fees("Q")) == (-5, 10)
    _conserved(desk)


def test_rebate_rounds_toward_zero() -> None:
    desk = _desk(REBATE_SPEC)
    desk.place(SELLER, "maker", "sell", price=3, qty=1)
    desk.place(BUYER, "taker", "buy", price=3, qty=1)
    # Maker: ceil(30 * -5 / 1e4) = 0 rebate; taker: ceil(30 * 10 / 1e4) = 1.
    assert desk.balance(SELLER, "Q") == (100_000 + 30, 0)
    assert desk.fees() == 1


def test_market_buy_with_budget_releases_what_it_did_not_spend() -> None:
    desk = _desk()
    desk.place(SELLER, "s", "sell", price=100, qty=3)
    desk.place(BUYER, "b", "buy", kind="market", quote_qty=1_000)
    assert desk.events[-1].reason == "ioc_remainder"
    assert desk.balance(BUYER, "Q") == (100_000 - 3_000 - 9, 0)
    assert desk.balance(BUYER, "B") == (1_030, 0)


def test_amend_up_uses_the_pre_reservation_and_amend_down_releases() -> None:
    desk = _desk()
    desk.place(BUYER, "b", "buy", price=100, qty=5)
    assert desk.amend(BUYER, "b", None, 8)
    assert desk.balance(BUYER, "Q") == (100_000 - 8_024, 8_024)
    assert desk.amend(BUYER, "b", 90, 3)
    assert desk.balance(BUYER, "Q") == (100_000 - 2_709, 2_709)


def test_amend_short_of_funds_is_not_sent() -> None:
    desk = Desk()
    desk.fund(BUYER, "Q", 6_000)
    desk.place(BUYER, "b", "buy", price=100, qty=5)
    assert not desk.amend(BUYER, "b", None, 10)
    assert desk.balance(BUYER, "Q") == (6_000 - 5_015, 5_015)


def test_rejected_amend_releases_its_pre_reservation() -> None:
    desk = _desk()
    desk.place(BUYER, "b", "buy", price=100, qty=5)
    desk.submit({"type": "halt"})
    assert desk.amend(BUYER, "b", None, 8)
    assert desk.events[-1].reason == "market_halted"
    assert desk.balance(BUYER, "Q") == (100_000 - 5_015, 5_015)


def test_stp_decrement_reduces_both_orders() -> None:
    desk = _desk()
    desk.place(BUYER, "s", "sell", price=100, qty=5)
    desk.place(BUYER, "b", "buy", price=100, qty=3, stp="decrement_and_cancel")
    assert [EVENT_TYPE_NAMES[type(e)] for e in desk.events] == [
        "accepted",
        "stp_decrement",
        "cancelled",
    ]
    assert desk.balance(BUYER, "B") == (1_000 - 20, 20)
    assert desk.balance(BUYER, "Q") == (100_000, 0)


def test_triggered_stop_moves_no_money() -> None:
    desk = _desk()
    desk.place(BUYER, "stop", "buy", kind="stop_limit", price=110, stop_price=105, qty=2)
    locked = desk.balance(BUYER, "Q")
    desk.place(SELLER, "s1", "sell", price=105, qty=1)
    desk.place(SELLER, "s2", "buy", price=105, qty=1)
    assert "triggered" in [EVENT_TYPE_NAMES[type(e)] for e in desk.events]
    assert desk.balance(BUYER, "Q") == locked


# --- idempotency, ownership, errors ------------------------------------------------------


def test_an_entry_is_applied_once() -> None:
    desk = _desk()
    desk.place(SELLER, "s", "sell", price=100, qty=5)
    desk.place(BUYER, "b", "buy", price=100, qty=5)
    before = desk.balance(BUYER, "Q")
    moves = desk.shards[0].apply_events(SPEC, "B-Q", desk.journal_seq, desk.events)
    assert moves == [] and desk.balance(BUYER, "Q") == before


def test_other_shards_orders_are_ignored() -> None:
    desk = _desk(shard_count=2)
    desk.place(SELLER, "s", "sell", price=100, qty=5)
    desk.place(BUYER, "b", "buy", price=100, qty=5)
    assert {m.account_id for m in desk.shards[0].apply_events(SPEC, "B-Q", 99, desk.events)} <= {
        SELLER,
        None,
    }


def test_release_drops_a_reservation_that_never_reached_the_journal() -> None:
    core = LedgerCore()
    core.credit(1, "Q", 100, "dep")
    core.reserve(Reservation("B-Q", "o1", 1, "Q", 60, "buy", 1, 6))
    assert core.release("B-Q", "o1") == [Move(1, "Q", 60, -60)]
    assert core.release("B-Q", "o1") == []
    assert core.balance(1, "Q") == (100, 0)


def test_a_fill_beyond_the_reservation_crashes() -> None:
    core = LedgerCore()
    core.credit(1, "Q", 10_000, "dep")
    core.reserve(Reservation("B-Q", "b", 1, "Q", 10, "buy", 100, 5))
    fill = event_from_dict({"seq": 2, "type": "fill", "maker_id": "s", "taker_id": "b",
                            "maker_owner": "2", "taker_owner": "1", "price": 100, "qty": 5,
                            "taker_side": "buy"})  # fmt: skip
    with pytest.raises(LedgerInvariantError, match="reserved"):
        core.apply_events(SPEC, "B-Q", 1, [fill])


def test_credit_is_idempotent_by_reference_and_positive() -> None:
    core = LedgerCore()
    assert core.credit(1, "Q", 5, "ref") and not core.credit(1, "Q", 5, "ref")
    assert core.totals()["Q"] == (5, 0, 0, 5, 0)
    with pytest.raises(ValueError, match="positive"):
        core.credit(1, "Q", 0, "zero")


@pytest.mark.parametrize(
    "other", [(2, "Q", 5), (1, "B", 5), (1, "Q", 6)], ids=["account", "asset", "amount"]
)
def test_a_credit_reference_reused_for_another_credit_is_refused(
    other: tuple[int, str, int],
) -> None:
    core = LedgerCore()
    core.credit(1, "Q", 5, "ref")
    with pytest.raises(CreditReferenceError):
        core.credit(*other, "ref")
    assert core.totals()["Q"] == (5, 0, 0, 5, 0)
    assert core.balance(other[0], other[1]) == ((5, 0) if other[:2] == (1, "Q") else (0, 0))


def test_take_changes_reports_what_to_persist_once() -> None:
    desk = _desk()
    desk.place(BUYER, "b", "buy", price=100, qty=5)
    changes = desk.shards[0].take_changes()
    assert {(a, s) for a, s, _, _ in changes.balances} == {(1, "Q"), (1, "B"), (2, "Q"), (2, "B")}
    assert [r.order_id for r in changes.reservations] == ["b"]
    assert changes.marks == [("B-Q", 1)] and len(changes.credits) == 4
    desk.cancel(BUYER, "b")
    changes = desk.shards[0].take_changes()
    assert changes.dropped == [("B-Q", "b")] and changes.credits == []
