"""Rules 5-7: market orders and quote budgets, post-only, iceberg."""

from __future__ import annotations

import pytest
from engine_harness import Harness


def test_market_order_sweeps_levels_until_filled(h: Harness) -> None:
    h.new("s1", "A", "sell", 2, 100)
    h.new("s2", "A", "sell", 2, 105)
    assert h.new("m", "B", "buy", 3, kind="market") == [
        ("accepted", "m"),
        ("fill", "s1", "m", 100, 2),
        ("fill", "s2", "m", 105, 1),
    ]


def test_market_order_on_empty_book_is_cancelled_no_liquidity(h: Harness) -> None:
    assert h.new("m", "B", "sell", 3, kind="market")[-1] == ("cancelled", "m", "no_liquidity", 3)


def test_market_order_partly_filled_is_cancelled_ioc_remainder(h: Harness) -> None:
    h.new("b1", "A", "buy", 1, 100)
    assert h.new("m", "B", "sell", 3, kind="market")[-1] == ("cancelled", "m", "ioc_remainder", 2)


@pytest.mark.parametrize("tif", ["gtc", "ioc"])
def test_market_order_ignores_tif_other_than_fok(h: Harness, tif: str) -> None:
    assert h.new("m", "B", "buy", 3, kind="market", tif=tif)[-1][2] == "no_liquidity"
    assert h.book() == ([], [])


def test_market_order_with_gtd_tif_never_rests(h: Harness) -> None:
    h.new("m", "B", "buy", 3, kind="market", tif="gtd", expire_at=100)
    assert h.book() == ([], [])


def test_market_fok_cancels_fok_unfilled_when_book_is_short(h: Harness) -> None:
    h.new("s", "A", "sell", 2, 100)
    assert h.new("m", "B", "buy", 3, kind="market", tif="fok")[-1] == (
        "cancelled",
        "m",
        "fok_unfilled",
        3,
    )


def test_quote_budget_takes_whole_affordable_lots_at_each_price(h: Harness) -> None:
    h.new("s1", "A", "sell", 2, 10)
    h.new("s2", "A", "sell", 5, 15)
    assert h.new("m", "B", "buy", kind="market", quote_qty=55) == [
        ("accepted", "m"),
        ("fill", "s1", "m", 10, 2),
        ("fill", "s2", "m", 15, 2),
        ("cancelled", "m", "quote_budget", 0, 5),
    ]


def test_quote_budget_spent_exactly_ends_without_cancel(h: Harness) -> None:
    h.new("s1", "A", "sell", 5, 10)
    assert h.new("m", "B", "buy", kind="market", quote_qty=30) == [
        ("accepted", "m"),
        ("fill", "s1", "m", 10, 3),
    ]


def test_quote_budget_on_empty_book_is_no_liquidity(h: Harness) -> None:
    assert h.new("m", "B", "buy", kind="market", quote_qty=30)[-1] == (
        "cancelled",
        "m",
        "no_liquidity",
        0,
        30,
    )


def test_quote_budget_book_exhausted_after_fills_is_ioc_remainder(h: Harness) -> None:
    h.new("s1", "A", "sell", 1, 10)
    assert h.new("m", "B", "buy", kind="market", quote_qty=30)[-1] == (
        "cancelled",
        "m",
        "ioc_remainder",
        0,
        20,
    )


def test_quote_budget_too_small_for_one_lot_is_quote_budget(h: Harness) -> None:
    h.new("s1", "A", "sell", 1, 10)
    assert h.new("m", "B", "buy", kind="market", quote_qty=9)[-1] == (
        "cancelled",
        "m",
        "quote_budget",
        0,
        9,
    )


def test_quote_budget_meets_iceberg_slices_again(h: Harness) -> None:
    h.new("ice", "A", "sell", 5, 10, display_qty=2)
    assert h.new("m", "B", "buy", kind="market", quote_qty=40) == [
        ("accepted", "m"),
        ("fill", "ice", "m", 10, 2),
        ("fill", "ice", "m", 10, 2),
    ]
    assert h.book() == ([], [(10, 1, 1)])


def test_protected_market_buy_stops_when_qty_is_filled(h: Harness) -> None:
    h.new("s1", "A", "sell", 2, 10)
    h.new("s2", "A", "sell", 5, 11)
    assert h.new("m", "B", "buy", 3, kind="market", quote_qty=1000) == [
        ("accepted", "m"),
        ("fill", "s1", "m", 10, 2),
        ("fill", "s2", "m", 11, 1),
    ]
    assert h.book() == ([], [(11, 4, 1)])


def test_protected_market_buy_stops_when_budget_binds_first(h: Harness) -> None:
    h.new("s1", "A", "sell", 2, 10)
    h.new("s2", "A", "sell", 5, 20)
    assert h.new("m", "B", "buy", 4, kind="market", quote_qty=45) == [
        ("accepted", "m"),
        ("fill", "s1", "m", 10, 2),
        ("fill", "s2", "m", 20, 1),
        ("cancelled", "m", "quote_budget", 1, 5),
    ]


def test_protected_market_buy_whose_budget_hits_zero_reports_unfilled_lots(h: Harness) -> None:
    h.new("s", "B", "sell", 5, 10)
    assert h.new("m", "C", "buy", 3, kind="market", quote_qty=20) == [
        ("accepted", "m"),
        ("fill", "s", "m", 10, 2),
        ("cancelled", "m", "quote_budget", 1, 0),
    ]


def test_protected_market_buy_budget_and_book_run_out_together_is_ioc_remainder(
    h: Harness,
) -> None:
    h.new("s", "B", "sell", 2, 10)
    assert h.new("m", "C", "buy", 3, kind="market", quote_qty=20)[-1] == (
        "cancelled",
        "m",
        "ioc_remainder",
        1,
        0,
    )


def test_protected_market_buy_on_a_thin_book_reports_unfilled_lots(h: Harness) -> None:
    h.new("s1", "A", "sell", 1, 10)
    assert h.new("m", "B", "buy", 3, kind="market", quote_qty=100)[-1] == (
        "cancelled",
        "m",
        "ioc_remainder",
        2,
        90,
    )


def test_protected_market_buy_decrement_stp_counts_against_both_limits(h: Harness) -> None:
    h.new("own", "B", "sell", 2, 10)
    h.new("s2", "A", "sell", 5, 10)
    assert h.new("m", "B", "buy", 3, kind="market", quote_qty=100, stp="decrement_and_cancel") == [
        ("accepted", "m"),
        ("stp_decrement", "own", "m", 2),
        ("cancelled", "own", "stp", 0),
        ("fill", "s2", "m", 10, 1),
    ]


def test_stop_market_buy_keeps_its_budget_until_triggered(h: Harness) -> None:
    h.new("s0", "A", "sell", 1, 10)
    h.new("b0", "C", "buy", 1, 10)
    h.new("s1", "A", "sell", 5, 30)
    assert h.new("st", "B", "buy", 4, kind="stop_market", stop_price=10, quote_qty=70) == [
        ("accepted", "st"),
        ("triggered", "st"),
        ("fill", "s1", "st", 30, 2),
        ("cancelled", "st", "quote_budget", 2, 10),
    ]


def test_post_only_reject_is_cancelled_without_matching(h: Harness) -> None:
    h.new("s", "A", "sell", 2, 100)
    assert h.new("b", "B", "buy", 2, 100, post_only="reject") == [
        ("accepted", "b"),
        ("cancelled", "b", "post_only", 2),
    ]
    assert h.book() == ([], [(100, 2, 1)])


@pytest.mark.parametrize(
    "side,opp_side,opp_price,price,slid",
    [("buy", "sell", 100, 105, 99), ("sell", "buy", 100, 95, 101)],
)
def test_post_only_slide_reprices_to_best_non_crossing_price(  # noqa: PLR0917 - parametrized
    h: Harness, side: str, opp_side: str, opp_price: int, price: int, slid: int
) -> None:
    h.new("o", "A", opp_side, 2, opp_price)
    assert h.new("p", "B", side, 3, price, post_only="slide") == [("accepted", "p")]
    view = h.engine.get_order("p")  # type: ignore[arg-type]
    assert view is not None and view.price == slid


def test_post_only_slide_to_zero_or_below_is_cancelled(h: Harness) -> None:
    h.new("s", "A", "sell", 2, 1)
    assert h.new("b", "B", "buy", 2, 5, post_only="slide")[-1] == (
        "cancelled",
        "b",
        "post_only",
        2,
    )


@pytest.mark.parametrize("mode", ["reject", "slide"])
def test_post_only_that_does_not_cross_rests_unchanged(h: Harness, mode: str) -> None:
    h.new("s", "A", "sell", 2, 101)
    assert h.new("b", "B", "buy", 2, 100, post_only=mode) == [("accepted", "b")]
    assert h.new("b2", "B", "buy", 2, 90, post_only=mode, ts=5) == [("accepted", "b2")]
    assert h.book() == ([(100, 2, 1), (90, 2, 1)], [(101, 2, 1)])


def test_post_only_with_empty_opposite_side_rests(h: Harness) -> None:
    assert h.new("b", "B", "buy", 2, 100, post_only="slide") == [("accepted", "b")]


def test_post_only_crossing_own_order_counts_as_taking(h: Harness) -> None:
    h.new("s", "B", "sell", 2, 100)
    assert h.new("b", "B", "buy", 2, 100, post_only="reject")[-1][2] == "post_only"


def test_iceberg_shows_only_its_visible_slice(h: Harness) -> None:
    h.new("ice", "A", "sell", 10, 100, display_qty=3)
    assert h.book() == ([], [(100, 3, 1)])
    view = h.engine.get_order("ice")  # type: ignore[arg-type]
    assert view is not None and (view.visible_qty, view.remaining_qty) == (3, 10)


def test_iceberg_replenishes_at_back_of_queue_with_new_arrival(h: Harness) -> None:
    h.new("ice", "A", "sell", 10, 100, display_qty=3)
    h.new("plain", "C", "sell", 2, 100)
    assert h.new("b", "B", "buy", 4, 100) == [
        ("accepted", "b"),
        ("fill", "ice", "b", 100, 3),
        ("fill", "plain", "b", 100, 1),
    ]
    assert h.queue(100) == ["plain", "ice"]
    assert h.book() == ([], [(100, 4, 2)])


def test_incoming_order_meets_the_new_iceberg_slice_again(h: Harness) -> None:
    h.new("ice", "A", "sell", 7, 100, display_qty=3)
    assert h.new("b", "B", "buy", 8, 100) == [
        ("accepted", "b"),
        ("fill", "ice", "b", 100, 3),
        ("fill", "ice", "b", 100, 3),
        ("fill", "ice", "b", 100, 1),
    ]
    assert h.book() == ([(100, 1, 1)], [])


def test_iceberg_last_slice_is_min_of_display_and_reserve(h: Harness) -> None:
    h.new("ice", "A", "sell", 5, 100, display_qty=3)
    h.new("b", "B", "buy", 3, 100)
    assert h.book() == ([], [(100, 2, 1)])


def test_cancel_of_iceberg_removes_reserve_too(h: Harness) -> None:
    h.new("ice", "A", "sell", 10, 100, display_qty=3)
    assert h.cancel("ice", "A") == [("cancelled", "ice", "user", 10)]
