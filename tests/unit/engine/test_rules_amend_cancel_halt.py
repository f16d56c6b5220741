"""Rules 10-11 and market state: amend, cancel, cancel_all, halt/resume."""

from __future__ import annotations

import pytest
from engine_harness import Harness


def test_amend_lower_qty_same_price_keeps_priority(h: Harness) -> None:
    h.new("a", "A", "buy", 5, 100)
    h.new("b", "B", "buy", 5, 100)
    assert h.amend("a", "A", qty=3) == [("amended", "a", 100, 3, True)]
    assert h.queue(100) == ["a", "b"]
    assert h.book() == ([(100, 8, 2)], [])


def test_unchanged_amend_is_a_noop_that_still_emits_amended(h: Harness) -> None:
    h.new("a", "A", "buy", 5, 100)
    assert h.amend("a", "A", qty=5, price=100) == [("amended", "a", 100, 5, True)]


@pytest.mark.parametrize("change", [{"qty": 6}, {"price": 99}, {"price": 101, "qty": 2}])
def test_amend_new_price_or_higher_qty_loses_priority(h: Harness, change: dict[str, int]) -> None:
    h.new("a", "A", "buy", 5, 100)
    h.new("b", "B", "buy", 5, 100)
    h.new("c", "B", "buy", 5, change.get("price", 100))
    events = h.amend("a", "A", **change)
    assert events == [("amended", "a", change.get("price", 100), change.get("qty", 5), False)]
    assert h.queue(change.get("price", 100))[-1] == "a"


def test_amend_that_loses_priority_may_match(h: Harness) -> None:
    h.new("s", "A", "sell", 2, 101)
    h.new("b", "B", "buy", 5, 100)
    assert h.amend("b", "B", price=101) == [
        ("amended", "b", 101, 5, False),
        ("fill", "s", "b", 101, 2),
    ]
    assert h.book() == ([(101, 3, 1)], [])


def test_amend_reapplies_post_only(h: Harness) -> None:
    h.new("s", "A", "sell", 2, 101)
    h.new("b", "B", "buy", 5, 100, post_only="reject")
    assert h.amend("b", "B", price=101) == [
        ("amended", "b", 101, 5, False),
        ("cancelled", "b", "post_only", 5),
    ]
    assert h.engine.get_order("b") is None  # type: ignore[arg-type]


def test_amend_iceberg_qty_is_new_total(h: Harness) -> None:
    h.new("ice", "A", "sell", 10, 100, display_qty=4)
    assert h.amend("ice", "A", qty=3) == [("amended", "ice", 100, 3, True)]
    assert h.book() == ([], [(100, 3, 1)])
    assert h.amend("ice", "A", qty=12) == [("amended", "ice", 100, 12, False)]
    assert h.book() == ([], [(100, 4, 1)])


@pytest.mark.parametrize(
    "who,oid,qty,price,reason",
    [
        ("B", "a", 3, None, "not_owner"),
        ("A", "zz", 3, None, "unknown_order"),
        ("A", "a", 0, None, "invalid_qty"),
        ("A", "a", -1, None, "invalid_qty"),
        ("A", "a", 2**63, None, "invalid_qty"),
        ("A", "a", None, 0, "invalid_price"),
        ("A", "a", None, 2**63, "invalid_price"),
    ],
)
def test_amend_rejects_change_nothing(  # noqa: PLR0917 - parametrized
    h: Harness, who: str, oid: str, qty: int | None, price: int | None, reason: str
) -> None:
    h.new("a", "A", "buy", 5, 100)
    assert h.amend(oid, who, qty=qty, price=price) == [("rejected", oid, reason)]
    assert h.book() == ([(100, 5, 1)], [])


@pytest.mark.parametrize("oid,qty", [("a", None), ("", 1), ("a", "1")])
def test_malformed_amend_is_invalid_command(h: Harness, oid: str, qty: object) -> None:
    h.new("a", "A", "buy", 5, 100)
    assert h.amend(oid, "A", qty=qty)[0][-1] == "invalid_command"  # type: ignore[arg-type]


def test_amend_pending_stop_changes_in_place(h: Harness) -> None:
    h.new("x", "A", "buy", 1, kind="stop_market", stop_price=50)
    h.new("y", "A", "buy", 2, 60, kind="stop_limit", stop_price=50)
    assert h.amend("y", "A", qty=7, price=61) == [("amended", "y", 61, 7, True)]
    assert h.amend("x", "A", qty=4) == [("amended", "x", None, 4, True)]
    assert h.amend("x", "A", price=4) == [("rejected", "x", "invalid_price")]
    assert h.amend("y", "A", price=62) == [("amended", "y", 62, 7, True)]
    assert [(s.id, s.remaining_qty) for s in h.engine.stops()] == [("x", 4), ("y", 7)]


def test_amend_with_min_max_qty_spec_bounds() -> None:
    from actors.engine import MarketSpec

    h = Harness(MarketSpec("X", min_qty=2, max_qty=10))
    h.new("a", "A", "buy", 5, 100)
    assert h.amend("a", "A", qty=1) == [("rejected", "a", "invalid_qty")]
    assert h.amend("a", "A", qty=11) == [("rejected", "a", "invalid_qty")]


def test_cancel_removes_open_quantity(h: Harness) -> None:
    h.new("a", "A", "buy", 5, 100)
    assert h.cancel("a", "A") == [("cancelled", "a", "user", 5)]
    assert h.book() == ([], [])


@pytest.mark.parametrize("who,oid,reason", [("B", "a", "not_owner"), ("A", "q", "unknown_order")])
def test_cancel_only_by_owner_of_live_order(h: Harness, who: str, oid: str, reason: str) -> None:
    h.new("a", "A", "buy", 5, 100)
    assert h.cancel(oid, who) == [("rejected", oid, reason)]


def test_cancel_pending_stop_reports_its_qty(h: Harness) -> None:
    h.new("x", "A", "buy", 3, kind="stop_market", stop_price=50)
    assert h.cancel("x", "A") == [("cancelled", "x", "user", 3)]
    assert h.engine.stops() == []


def test_cancel_all_cancels_orders_and_stops_in_arrival_order(h: Harness) -> None:
    h.new("a1", "A", "buy", 1, 100)
    h.new("x", "A", "buy", 1, kind="stop_market", stop_price=500)
    h.new("other", "B", "buy", 1, 100)
    h.new("a2", "A", "sell", 1, 105)
    h.amend("a1", "A", price=99)
    assert h.cancel_all("A") == [
        ("cancelled", "x", "user", 1),
        ("cancelled", "a2", "user", 1),
        ("cancelled", "a1", "user", 1),
    ]
    assert h.cancel_all("A") == []
    assert h.book() == ([(100, 1, 1)], [])


def test_cancel_all_expires_gtd_orders_first(h: Harness) -> None:
    h.new("g", "B", "buy", 1, 100, tif="gtd", expire_at=5, ts=1)
    h.new("a", "A", "buy", 1, 99, ts=2)
    assert h.cancel_all("A", ts=6) == [
        ("cancelled", "g", "expired", 1),
        ("cancelled", "a", "user", 1),
    ]


def test_halt_rejects_new_and_amend_but_cancels_work(h: Harness) -> None:
    h.new("a", "A", "buy", 5, 100)
    assert h.halt() == [("halted",)]
    assert h.halt() == []
    assert h.new("b", "B", "sell", 1, 100) == [("rejected", "b", "market_halted")]
    assert h.amend("a", "A", qty=1) == [("rejected", "a", "market_halted")]
    assert h.cancel("a", "A") == [("cancelled", "a", "user", 5)]
    assert h.resume() == [("resumed",)]
    assert h.resume() == []
    assert h.new("b", "B", "sell", 1, 100) == [("accepted", "b")]


def test_halted_market_still_expires_gtd_orders(h: Harness) -> None:
    h.new("g", "A", "buy", 1, 100, tif="gtd", expire_at=5, ts=1)
    h.halt(ts=2)
    assert h.new("b", "B", "buy", 1, 100, ts=6) == [
        ("cancelled", "g", "expired", 1),
        ("rejected", "b", "market_halted"),
    ]


def test_market_spec_halted_status_starts_halted() -> None:
    from actors.engine import MarketSpec
    from actors.engine.types import MarketStatus

    h = Harness(MarketSpec("X", status=MarketStatus.HALTED))
    assert h.engine.halted
    assert h.new("b", "B", "buy", 1, 100) == [("rejected", "b", "market_halted")]
