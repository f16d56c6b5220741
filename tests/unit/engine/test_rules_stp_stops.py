"""Rules 8-9: stop orders and cascades, self-trade prevention."""

from __future__ import annotations

import pytest
from engine_harness import Harness


def test_stp_none_lets_own_orders_trade(h: Harness) -> None:
    h.new("s", "A", "sell", 2, 100)
    assert h.new("b", "A", "buy", 2, 100)[-1] == ("fill", "s", "b", 100, 2)


def test_stp_cancel_newest_cancels_incoming_and_stops_matching(h: Harness) -> None:
    h.new("other", "B", "sell", 1, 99)
    h.new("own", "A", "sell", 2, 100)
    assert h.new("b", "A", "buy", 5, 100, stp="cancel_newest") == [
        ("accepted", "b"),
        ("fill", "other", "b", 99, 1),
        ("cancelled", "b", "stp", 4),
    ]
    assert h.book() == ([], [(100, 2, 1)])


def test_stp_cancel_oldest_cancels_resting_and_continues(h: Harness) -> None:
    h.new("own", "A", "sell", 2, 100)
    h.new("other", "B", "sell", 3, 100)
    assert h.new("b", "A", "buy", 3, 100, stp="cancel_oldest") == [
        ("accepted", "b"),
        ("cancelled", "own", "stp", 2),
        ("fill", "other", "b", 100, 3),
    ]


def test_stp_cancel_both_cancels_resting_first_then_incoming(h: Harness) -> None:
    h.new("own", "A", "sell", 2, 100)
    assert h.new("b", "A", "buy", 3, 100, stp="cancel_both") == [
        ("accepted", "b"),
        ("cancelled", "own", "stp", 2),
        ("cancelled", "b", "stp", 3),
    ]
    assert h.book() == ([], [])


@pytest.mark.parametrize(
    "resting,incoming,expected,book",
    [
        (
            2,
            5,
            [("stp_decrement", "own", "b", 2), ("cancelled", "own", "stp", 0)],
            ([(100, 3, 1)], []),
        ),
        (
            5,
            2,
            [("stp_decrement", "own", "b", 2), ("cancelled", "b", "stp", 0)],
            ([], [(100, 3, 1)]),
        ),
        (
            3,
            3,
            [
                ("stp_decrement", "own", "b", 3),
                ("cancelled", "own", "stp", 0),
                ("cancelled", "b", "stp", 0),
            ],
            ([], []),
        ),
    ],
)
def test_stp_decrement_and_cancel_removes_min_from_both_without_trade(
    h: Harness, resting: int, incoming: int, expected: list[tuple[object, ...]], book: object
) -> None:
    h.new("own", "A", "sell", resting, 100)
    events = h.new("b", "A", "buy", incoming, 100, stp="decrement_and_cancel")
    assert events == [("accepted", "b"), *expected]
    assert h.book() == book


def test_stp_decrement_takes_from_iceberg_reserve_first(h: Harness) -> None:
    h.new("ice", "A", "sell", 10, 100, display_qty=3)
    h.new("b", "A", "buy", 6, 99)
    assert h.new("b2", "A", "buy", 6, 100, stp="decrement_and_cancel") == [
        ("accepted", "b2"),
        ("stp_decrement", "ice", "b2", 6),
        ("cancelled", "b2", "stp", 0),
    ]
    view = h.engine.get_order("ice")  # type: ignore[arg-type]
    assert view is not None and (view.visible_qty, view.remaining_qty) == (3, 4)
    h.new("b3", "A", "buy", 2, 100, stp="decrement_and_cancel")
    view = h.engine.get_order("ice")  # type: ignore[arg-type]
    assert view is not None and (view.visible_qty, view.remaining_qty) == (2, 2)


def test_stp_resting_iceberg_counts_with_whole_quantity(h: Harness) -> None:
    h.new("ice", "A", "sell", 10, 100, display_qty=3)
    assert h.new("b", "A", "buy", 20, 100, stp="cancel_oldest")[1] == (
        "cancelled",
        "ice",
        "stp",
        10,
    )


@pytest.mark.parametrize(
    "stp,tail",
    [
        ("cancel_newest", [("cancelled", "m", "stp", 0, 50)]),
        ("cancel_both", [("cancelled", "own", "stp", 2), ("cancelled", "m", "stp", 0, 50)]),
        (
            "decrement_and_cancel",
            [("stp_decrement", "own", "m", 2), ("cancelled", "own", "stp", 0)],
        ),
    ],
)
def test_stp_with_quote_budget_market_buy(
    h: Harness, stp: str, tail: list[tuple[object, ...]]
) -> None:
    h.new("own", "A", "sell", 2, 10)
    events = h.new("m", "A", "buy", kind="market", quote_qty=50, stp=stp)
    assert events[1 : 1 + len(tail)] == tail


def test_stp_decrement_zeroing_a_quote_budget_cancels_it_with_budget_left(h: Harness) -> None:
    h.new("own", "A", "sell", 9, 10)
    assert h.new("m", "A", "buy", kind="market", quote_qty=25, stp="decrement_and_cancel") == [
        ("accepted", "m"),
        ("stp_decrement", "own", "m", 2),
        ("cancelled", "m", "stp", 0, 5),
    ]


def test_stop_waits_before_any_trade(h: Harness) -> None:
    assert h.new("st", "A", "buy", 1, kind="stop_market", stop_price=1) == [("accepted", "st")]
    assert [s.id for s in h.engine.stops()] == ["st"]


@pytest.mark.parametrize(
    "side,stop_price,fires",
    [("buy", 100, True), ("buy", 101, False), ("sell", 100, True), ("sell", 99, False)],
)
def test_stop_triggers_on_last_trade_price(
    h: Harness, side: str, stop_price: int, fires: bool
) -> None:
    h.new("st", "C", side, 1, kind="stop_market", stop_price=stop_price)
    h.new("s", "A", "sell", 5, 100)
    events = h.new("b", "B", "buy", 1, 100)
    assert (("triggered", "st") in events) is fires


def test_stop_whose_condition_holds_on_arrival_triggers_at_once(h: Harness) -> None:
    h.new("s", "A", "sell", 5, 100)
    h.new("b", "B", "buy", 1, 100)
    assert h.new("st", "C", "buy", 2, kind="stop_market", stop_price=90) == [
        ("accepted", "st"),
        ("triggered", "st"),
        ("fill", "s", "st", 100, 2),
    ]


def test_stop_limit_triggers_as_limit_gtc_and_rests(h: Harness) -> None:
    h.new("st", "C", "buy", 4, 99, kind="stop_limit", stop_price=100)
    h.new("s", "A", "sell", 1, 100)
    assert h.new("b", "B", "buy", 1, 100)[-1] == ("triggered", "st")
    view = h.engine.get_order("st")  # type: ignore[arg-type]
    assert view is not None and view.status == "resting" and view.kind == "limit"


def test_triggered_gtd_stop_limit_keeps_its_expiry(h: Harness) -> None:
    h.new("st", "C", "buy", 4, 99, kind="stop_limit", stop_price=100, tif="gtd", expire_at=50)
    h.new("s", "A", "sell", 1, 100)
    h.new("b", "B", "buy", 1, 100)
    assert h.tick(ts=50) == [("cancelled", "st", "expired", 4)]


def test_stop_cascade_runs_in_placement_order_and_appends_new_triggers(h: Harness) -> None:
    h.new("s1", "A", "sell", 1, 100)
    h.new("s2", "A", "sell", 1, 101)
    h.new("s3", "A", "sell", 1, 102)
    h.new("x2", "C", "buy", 1, kind="stop_market", stop_price=101)
    h.new("x1", "C", "buy", 1, kind="stop_market", stop_price=100)
    h.new("y", "D", "buy", 1, 98, kind="stop_limit", stop_price=102)
    assert h.new("b", "B", "buy", 1, 100) == [
        ("accepted", "b"),
        ("fill", "s1", "b", 100, 1),
        ("triggered", "x1"),
        ("fill", "s2", "x1", 101, 1),
        ("triggered", "x2"),
        ("fill", "s3", "x2", 102, 1),
        ("triggered", "y"),
    ]
    assert h.book() == ([(98, 1, 1)], [])


def test_sell_stop_cascade_and_untriggered_stop_stays_pending(h: Harness) -> None:
    h.new("b1", "A", "buy", 1, 100)
    h.new("b2", "A", "buy", 1, 99)
    h.new("x", "C", "sell", 1, kind="stop_market", stop_price=100)
    h.new("far", "C", "sell", 1, kind="stop_market", stop_price=10)
    h.new("up", "C", "buy", 1, kind="stop_market", stop_price=500)
    assert h.new("s", "B", "sell", 1, 100)[-2:] == [("triggered", "x"), ("fill", "b2", "x", 99, 1)]
    assert [s.id for s in h.engine.stops()] == ["far", "up"]


def test_stop_triggered_by_amend_reprocessing(h: Harness) -> None:
    h.new("s", "A", "sell", 1, 100)
    h.new("b", "B", "buy", 1, 90)
    h.new("st", "C", "buy", 1, kind="stop_market", stop_price=100)
    assert h.amend("b", "B", price=100)[-3:] == [
        ("fill", "s", "b", 100, 1),
        ("triggered", "st"),
        ("cancelled", "st", "no_liquidity", 1),
    ]


def test_triggered_stop_keeps_owner_stp_and_display(h: Harness) -> None:
    h.new(
        "st", "A", "buy", 6, 99, kind="stop_limit", stop_price=100, display_qty=2, stp="cancel_both"
    )
    h.new("s", "B", "sell", 1, 100)
    h.new("b", "C", "buy", 1, 100)
    view = h.engine.get_order("st")  # type: ignore[arg-type]
    assert view is not None
    assert (view.owner, view.stp, view.visible_qty, view.remaining_qty) == (
        "A",
        "cancel_both",
        2,
        6,
    )
