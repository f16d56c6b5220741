"""Rules 1-4: priority, limit GTC/GTD, IOC, FOK."""

from __future__ import annotations

import pytest
from engine_harness import Harness


def test_better_price_matches_first_and_fills_at_makers_price(h: Harness) -> None:
    h.new("s1", "A", "sell", 5, 102)
    h.new("s2", "A", "sell", 5, 101)
    assert h.new("b", "B", "buy", 7, 105) == [
        ("accepted", "b"),
        ("fill", "s2", "b", 101, 5),
        ("fill", "s1", "b", 102, 2),
    ]
    assert h.book() == ([], [(102, 3, 1)])


@pytest.mark.parametrize("side,other", [("buy", "sell"), ("sell", "buy")])
def test_same_price_earlier_arrival_first(h: Harness, side: str, other: str) -> None:
    h.new("m1", "A", side, 2, 100)
    h.new("m2", "B", side, 2, 100)
    assert h.new("t", "C", other, 3, 100) == [
        ("accepted", "t"),
        ("fill", "m1", "t", 100, 2),
        ("fill", "m2", "t", 100, 1),
    ]
    assert h.queue(100) == ["m2"]


def test_limit_gtc_rests_remainder_after_matching(h: Harness) -> None:
    h.new("s", "A", "sell", 2, 100)
    assert h.new("b", "B", "buy", 5, 101) == [("accepted", "b"), ("fill", "s", "b", 100, 2)]
    assert h.book() == ([(101, 3, 1)], [])


def test_limit_does_not_cross_beyond_its_price(h: Harness) -> None:
    h.new("s", "A", "sell", 2, 102)
    assert h.new("b", "B", "buy", 5, 101) == [("accepted", "b")]
    assert h.book() == ([(101, 5, 1)], [(102, 2, 1)])


def test_ioc_remainder_is_cancelled_not_posted(h: Harness) -> None:
    h.new("s", "A", "sell", 2, 100)
    assert h.new("b", "B", "buy", 5, 100, tif="ioc") == [
        ("accepted", "b"),
        ("fill", "s", "b", 100, 2),
        ("cancelled", "b", "ioc_remainder", 3),
    ]
    assert h.book() == ([], [])


def test_ioc_with_nothing_to_match_is_cancelled_ioc_remainder(h: Harness) -> None:
    assert h.new("b", "B", "buy", 5, 100, tif="ioc")[-1] == ("cancelled", "b", "ioc_remainder", 5)


def test_fok_fills_completely_across_levels(h: Harness) -> None:
    h.new("s1", "A", "sell", 2, 100)
    h.new("s2", "A", "sell", 3, 101)
    assert h.new("b", "B", "buy", 5, 101, tif="fok") == [
        ("accepted", "b"),
        ("fill", "s1", "b", 100, 2),
        ("fill", "s2", "b", 101, 3),
    ]


@pytest.mark.parametrize("limit", [100, 101])
def test_fok_that_cannot_fill_changes_nothing(h: Harness, limit: int) -> None:
    h.new("s1", "A", "sell", 2, 100)
    h.new("s2", "A", "sell", 2, 101)
    before = h.engine.dump()
    assert h.new("b", "B", "buy", 5, limit, tif="fok") == [
        ("accepted", "b"),
        ("cancelled", "b", "fok_unfilled", 5),
    ]
    after = h.engine.dump()
    assert after["orders"] == before["orders"]


def test_fok_counts_iceberg_reserve_at_its_level(h: Harness) -> None:
    h.new("s", "A", "sell", 6, 100, display_qty=2)
    assert h.new("b", "B", "buy", 6, 100, tif="fok") == [
        ("accepted", "b"),
        ("fill", "s", "b", 100, 2),
        ("fill", "s", "b", 100, 2),
        ("fill", "s", "b", 100, 2),
    ]


@pytest.mark.parametrize(
    "stp,ok",
    [
        ("none", True),
        ("cancel_oldest", False),
        ("cancel_newest", False),
        ("cancel_both", False),
        ("decrement_and_cancel", False),
    ],
)
def test_fok_applies_stp_before_anything_changes(h: Harness, stp: str, ok: bool) -> None:
    h.new("own", "B", "sell", 2, 100)
    h.new("other", "A", "sell", 3, 100)
    events = h.new("b", "B", "buy", 5, 100, tif="fok", stp=stp)
    if ok:
        assert events[-1] == ("fill", "other", "b", 100, 3)
    else:
        assert events == [("accepted", "b"), ("cancelled", "b", "fok_unfilled", 5)]
        assert h.queue(100) == ["own", "other"]


def test_fok_cancel_oldest_skips_own_orders_and_cancels_them_when_it_fits(h: Harness) -> None:
    h.new("own", "B", "sell", 2, 100)
    h.new("other", "A", "sell", 3, 101)
    assert h.new("b", "B", "buy", 3, 101, tif="fok", stp="cancel_oldest") == [
        ("accepted", "b"),
        ("cancelled", "own", "stp", 2),
        ("fill", "other", "b", 101, 3),
    ]


def test_fok_meets_own_order_behind_a_replenished_iceberg_slice(h: Harness) -> None:
    h.new("ice", "A", "sell", 4, 100, display_qty=1)
    h.new("own", "B", "sell", 5, 100)
    # Matching would take 1 from ice, whose next slice goes behind "own": own met first.
    events = h.new("b", "B", "buy", 3, 100, tif="fok", stp="cancel_newest")
    assert events == [("accepted", "b"), ("cancelled", "b", "fok_unfilled", 3)]


def test_fok_is_fillable_when_it_completes_before_an_own_order(h: Harness) -> None:
    h.new("other", "A", "sell", 3, 100)
    h.new("own", "B", "sell", 5, 100)
    events = h.new("b", "B", "buy", 3, 100, tif="fok", stp="cancel_both")
    assert events == [("accepted", "b"), ("fill", "other", "b", 100, 3)]


def test_gtd_order_expires_at_first_command_at_or_past_expiry(h: Harness) -> None:
    h.new("g", "A", "buy", 5, 100, tif="gtd", expire_at=10, ts=1)
    assert h.tick(ts=9) == []
    assert h.tick(ts=10) == [("cancelled", "g", "expired", 5)]


def test_gtd_expiry_happens_before_the_command_is_processed(h: Harness) -> None:
    h.new("g", "A", "sell", 5, 100, tif="gtd", expire_at=10, ts=1)
    assert h.new("b", "B", "buy", 5, 100, ts=12) == [
        ("cancelled", "g", "expired", 5),
        ("accepted", "b"),
    ]


def test_gtd_expiry_cancels_in_arrival_order_not_expiry_order(h: Harness) -> None:
    h.new("late", "A", "buy", 1, 100, tif="gtd", expire_at=20, ts=1)
    h.new("early", "A", "buy", 1, 99, tif="gtd", expire_at=10, ts=2)
    h.new("stop", "A", "sell", 1, kind="stop_market", stop_price=5, tif="gtd", expire_at=15)
    assert h.tick(ts=30) == [
        ("cancelled", "late", "expired", 1),
        ("cancelled", "early", "expired", 1),
        ("cancelled", "stop", "expired", 1),
    ]


def test_expired_id_can_be_reused_in_the_expiring_command(h: Harness) -> None:
    h.new("g", "A", "buy", 5, 100, tif="gtd", expire_at=10, ts=1)
    assert h.new("g", "A", "buy", 1, 100, ts=10) == [
        ("cancelled", "g", "expired", 5),
        ("accepted", "g"),
    ]


@pytest.mark.parametrize("expire_at", [5, 4])
def test_gtd_expiry_at_or_before_arrival_is_rejected(h: Harness, expire_at: int) -> None:
    assert h.new("g", "A", "buy", 5, 100, tif="gtd", expire_at=expire_at, ts=5) == [
        ("rejected", "g", "invalid_expiry")
    ]


def test_time_may_go_backwards_and_each_command_uses_its_own_ts(h: Harness) -> None:
    h.new("g", "A", "buy", 5, 100, tif="gtd", expire_at=10, ts=8)
    assert h.tick(ts=3) == []
    assert h.tick(ts=11) == [("cancelled", "g", "expired", 5)]


def test_expired_gtd_order_after_amend_is_cancelled_once(h: Harness) -> None:
    h.new("g", "A", "buy", 5, 100, tif="gtd", expire_at=10, ts=1)
    h.amend("g", "A", price=101, ts=2)
    h.amend("g", "A", qty=9, ts=3)
    assert h.tick(ts=10) == [("cancelled", "g", "expired", 9)]


def test_many_cancelled_gtd_orders_do_not_grow_the_expiry_index(h: Harness) -> None:
    for i in range(200):
        h.new(f"g{i}", "A", "buy", 1, 100, tif="gtd", expire_at=10_000, ts=1)
        h.cancel(f"g{i}", "A", ts=1)
    assert len(h.engine._expiry) < 100


@pytest.mark.parametrize("kind,price", [("limit", 100), ("market", None)])
def test_fok_with_nothing_crossing_is_fok_unfilled(
    h: Harness, kind: str, price: int | None
) -> None:
    h.new("s", "A", "buy", 2, 99)
    assert h.new("b", "B", "buy", 1, 100 if kind == "limit" else None, kind=kind, tif="fok")[
        -1
    ] == ("cancelled", "b", "fok_unfilled", 1)
