"""Hand-written examples for the reference model, one per major rule, so it is not trusted blindly.

Each expected event list is written out literally from ENGINE_SPEC.md and
docs/engine-decisions.md; `seq` is left out except where numbering is the rule under test.
"""

from __future__ import annotations

from typing import Any

from tests.support.reference_engine import ReferenceEngine

Event = dict[str, Any]


def _new(oid: str, owner: str, side: str, qty: int | None, price: int | None, **kw: Any) -> Event:
    cmd: Event = {"type": "new", "id": oid, "owner": owner, "side": side, "ts": kw.pop("ts", 1)}
    cmd["kind"] = kw.pop("kind", "limit" if price is not None else "market")
    if qty is not None:
        cmd["qty"] = qty
    if price is not None:
        cmd["price"] = price
    return {**cmd, **kw}


def _run(engine: ReferenceEngine, cmd: Event | str) -> list[Event]:
    return [{k: v for k, v in e.items() if k != "seq"} for e in engine.apply(cmd)]


def _setup(*cmds: Event) -> ReferenceEngine:
    engine = ReferenceEngine({"symbol": "X"})
    for cmd in cmds:
        engine.apply(cmd)
    return engine


def _acc(oid: str, owner: str, side: str, kind: str = "limit") -> Event:
    return {"type": "accepted", "id": oid, "owner": owner, "side": side, "kind": kind}


def _fill(maker: str, taker: str, mo: str, to: str, price: int, qty: int, side: str) -> Event:  # noqa: PLR0917
    return {
        "type": "fill",
        "maker_id": maker,
        "taker_id": taker,
        "maker_owner": mo,
        "taker_owner": to,
        "price": price,
        "qty": qty,
        "taker_side": side,
    }


def _cxl(oid: str, reason: str, remaining: int, **extra: int) -> Event:
    return {"type": "cancelled", "id": oid, "reason": reason, "remaining_qty": remaining, **extra}


def test_seq_counts_every_event_rejects_included() -> None:
    engine = ReferenceEngine({"symbol": "X"})
    assert engine.apply("not json") == [
        {"seq": 1, "type": "rejected", "id": None, "reason": "invalid_command"}
    ]
    assert engine.apply(_new("a", "A", "sell", 1, 10)) == [
        {"seq": 2, "type": "accepted", "id": "a", "owner": "A", "side": "sell", "kind": "limit"}
    ]


def test_better_price_then_earlier_arrival_fills_first_at_maker_price() -> None:
    engine = _setup(_new("a", "A", "sell", 2, 11), _new("b", "B", "sell", 2, 10))
    engine.apply(_new("c", "C", "sell", 2, 10))
    assert _run(engine, _new("t", "T", "buy", 5, 12)) == [
        _acc("t", "T", "buy"),
        _fill("b", "t", "B", "T", 10, 2, "buy"),
        _fill("c", "t", "C", "T", 10, 2, "buy"),
        _fill("a", "t", "A", "T", 11, 1, "buy"),
    ]
    assert engine.book() == {
        "bids": [],
        "asks": [{"price": 11, "orders": [_lvl("a", "A", 1, 1)]}],
        "stops": [],
    }


def _lvl(oid: str, owner: str, visible: int, remaining: int) -> Event:
    return {"id": oid, "owner": owner, "visible_qty": visible, "remaining_qty": remaining}


def test_ioc_remainder_is_cancelled_not_posted() -> None:
    engine = _setup(_new("a", "A", "sell", 2, 10))
    assert _run(engine, _new("t", "T", "buy", 5, 10, tif="ioc")) == [
        _acc("t", "T", "buy"),
        _fill("a", "t", "A", "T", 10, 2, "buy"),
        _cxl("t", "ioc_remainder", 3),
    ]
    assert engine.book()["bids"] == []


def test_fok_that_cannot_fill_changes_nothing() -> None:
    engine = _setup(_new("a", "A", "sell", 2, 10), _new("b", "T", "sell", 5, 10))
    before = engine.book()
    fok = _new("t", "T", "buy", 4, 10, tif="fok", stp="cancel_newest")
    assert _run(engine, fok) == [_acc("t", "T", "buy"), _cxl("t", "fok_unfilled", 4)]
    assert engine.book() == before


def test_fok_with_cancel_oldest_skips_own_orders_then_matches_for_real() -> None:
    engine = _setup(_new("o", "T", "sell", 5, 9), _new("a", "A", "sell", 4, 10))
    assert _run(engine, _new("t", "T", "buy", 4, 10, tif="fok", stp="cancel_oldest")) == [
        _acc("t", "T", "buy"),
        _cxl("o", "stp", 5),
        _fill("a", "t", "A", "T", 10, 4, "buy"),
    ]


def test_market_remainder_is_no_liquidity_or_ioc_remainder() -> None:
    engine = ReferenceEngine({"symbol": "X"})
    assert _run(engine, _new("m", "T", "buy", 3, None)) == [
        _acc("m", "T", "buy", "market"),
        _cxl("m", "no_liquidity", 3),
    ]
    engine.apply(_new("a", "A", "sell", 1, 10))
    assert _run(engine, _new("n", "T", "buy", 3, None)) == [
        _acc("n", "T", "buy", "market"),
        _fill("a", "n", "A", "T", 10, 1, "buy"),
        _cxl("n", "ioc_remainder", 2),
    ]


def test_quote_budget_takes_whole_affordable_lots_and_reports_unspent_budget() -> None:
    engine = _setup(_new("a", "A", "sell", 2, 10), _new("b", "B", "sell", 5, 12))
    assert _run(engine, _new("m", "T", "buy", None, None, quote_qty=50)) == [
        _acc("m", "T", "buy", "market"),
        _fill("a", "m", "A", "T", 10, 2, "buy"),
        _fill("b", "m", "B", "T", 12, 2, "buy"),
        _cxl("m", "quote_budget", 0, remaining_quote_qty=6),
    ]
    assert _run(engine, _new("e", "T", "buy", None, None, quote_qty=36)) == [
        _acc("e", "T", "buy", "market"),
        _fill("b", "e", "B", "T", 12, 3, "buy"),
    ]


def test_post_only_reject_cancels_and_slide_reprices_one_tick_inside() -> None:
    engine = _setup(_new("a", "A", "sell", 2, 10))
    assert _run(engine, _new("r", "T", "buy", 1, 10, post_only="reject")) == [
        _acc("r", "T", "buy"),
        _cxl("r", "post_only", 1),
    ]
    assert _run(engine, _new("s", "T", "buy", 1, 12, post_only="slide")) == [_acc("s", "T", "buy")]
    assert engine.book()["bids"] == [{"price": 9, "orders": [_lvl("s", "T", 1, 1)]}]


def test_iceberg_slice_goes_to_back_and_incoming_meets_it_again() -> None:
    engine = _setup(_new("i", "A", "sell", 5, 10, display_qty=2), _new("b", "B", "sell", 1, 10))
    assert engine.book()["asks"] == [
        {"price": 10, "orders": [_lvl("i", "A", 2, 5), _lvl("b", "B", 1, 1)]}
    ]
    assert _run(engine, _new("t", "T", "buy", 4, 10)) == [
        _acc("t", "T", "buy"),
        _fill("i", "t", "A", "T", 10, 2, "buy"),
        _fill("b", "t", "B", "T", 10, 1, "buy"),
        _fill("i", "t", "A", "T", 10, 1, "buy"),
    ]
    assert engine.book()["asks"] == [{"price": 10, "orders": [_lvl("i", "A", 1, 2)]}]


def test_stop_cascade_runs_in_placement_order_and_joins_the_queue_end() -> None:
    engine = _setup(
        _new("a", "A", "sell", 1, 10),
        _new("b", "B", "sell", 1, 12),
        _new("c", "C", "sell", 1, 13),
        _new("s1", "S", "buy", 1, None, kind="stop_market", stop_price=12),
        _new("s2", "S", "buy", 1, 13, kind="stop_limit", stop_price=10),
    )
    assert engine.book()["stops"] == [
        {
            "id": "s1",
            "owner": "S",
            "side": "buy",
            "kind": "stop_market",
            "stop_price": 12,
            "qty": 1,
        },
        {"id": "s2", "owner": "S", "side": "buy", "kind": "stop_limit", "stop_price": 10, "qty": 1},
    ]
    assert _run(engine, _new("t", "T", "buy", 1, 10)) == [
        _acc("t", "T", "buy"),
        _fill("a", "t", "A", "T", 10, 1, "buy"),
        {"type": "triggered", "id": "s2"},
        _fill("b", "s2", "B", "S", 12, 1, "buy"),
        {"type": "triggered", "id": "s1"},
        _fill("c", "s1", "C", "S", 13, 1, "buy"),
    ]


def test_stop_whose_condition_holds_on_arrival_triggers_at_once() -> None:
    engine = _setup(_new("a", "A", "sell", 2, 10), _new("t", "T", "buy", 1, 10))
    stop = _new("s", "S", "sell", 1, 9, kind="stop_limit", stop_price=11)
    assert _run(engine, stop) == [
        _acc("s", "S", "sell", "stop_limit"),
        {"type": "triggered", "id": "s"},
    ]
    assert engine.book()["asks"][0]["price"] == 9


def test_stp_cancel_newest_and_cancel_oldest() -> None:
    engine = _setup(_new("o", "T", "sell", 2, 10), _new("a", "A", "sell", 2, 11))
    assert _run(engine, _new("n", "T", "buy", 3, 11, stp="cancel_newest")) == [
        _acc("n", "T", "buy"),
        _cxl("n", "stp", 3),
    ]
    assert _run(engine, _new("m", "T", "buy", 3, 11, stp="cancel_oldest")) == [
        _acc("m", "T", "buy"),
        _cxl("o", "stp", 2),
        _fill("a", "m", "A", "T", 11, 2, "buy"),
    ]
    assert engine.book()["bids"] == [{"price": 11, "orders": [_lvl("m", "T", 1, 1)]}]


def test_stp_cancel_both_reports_resting_first() -> None:
    engine = _setup(_new("o", "T", "sell", 2, 10))
    assert _run(engine, _new("n", "T", "buy", 3, 11, stp="cancel_both")) == [
        _acc("n", "T", "buy"),
        _cxl("o", "stp", 2),
        _cxl("n", "stp", 3),
    ]


def test_stp_decrement_and_cancel_takes_reserve_first_and_continues() -> None:
    engine = _setup(_new("o", "T", "sell", 5, 10, display_qty=2), _new("a", "A", "sell", 4, 10))
    assert _run(engine, _new("n", "T", "buy", 3, 10, stp="decrement_and_cancel")) == [
        _acc("n", "T", "buy"),
        {"type": "stp_decrement", "maker_id": "o", "taker_id": "n", "qty": 3},
        _cxl("n", "stp", 0),
    ]
    assert engine.book()["asks"][0]["orders"][0] == _lvl("o", "T", 2, 2)
    assert _run(engine, _new("m", "T", "buy", 3, 10, stp="decrement_and_cancel")) == [
        _acc("m", "T", "buy"),
        {"type": "stp_decrement", "maker_id": "o", "taker_id": "m", "qty": 2},
        _cxl("o", "stp", 0),
        _fill("a", "m", "A", "T", 10, 1, "buy"),
    ]


def test_amend_lower_qty_keeps_priority_and_new_price_requeues_and_may_match() -> None:
    engine = _setup(_new("a", "A", "sell", 5, 10), _new("b", "B", "sell", 5, 10))
    amend = {"type": "amend", "id": "a", "owner": "A", "qty": 3, "ts": 2}
    assert _run(engine, amend) == [
        {"type": "amended", "id": "a", "price": 10, "qty": 3, "priority_kept": True}
    ]
    amend = {"type": "amend", "id": "a", "owner": "A", "qty": 4, "ts": 3}
    assert _run(engine, amend) == [
        {"type": "amended", "id": "a", "price": 10, "qty": 4, "priority_kept": False}
    ]
    assert engine.book()["asks"] == [
        {"price": 10, "orders": [_lvl("b", "B", 5, 5), _lvl("a", "A", 4, 4)]}
    ]
    engine.apply(_new("c", "C", "buy", 1, 8))
    amend = {"type": "amend", "id": "b", "owner": "B", "price": 8, "ts": 4}
    assert _run(engine, amend) == [
        {"type": "amended", "id": "b", "price": 8, "qty": 5, "priority_kept": False},
        _fill("c", "b", "C", "B", 8, 1, "sell"),
    ]


def test_amend_checks_owner_and_pending_stop_market_price() -> None:
    engine = _setup(_new("s", "S", "buy", 2, None, kind="stop_market", stop_price=5))
    assert _run(engine, {"type": "amend", "id": "s", "owner": "X", "qty": 1, "ts": 2}) == [
        {"type": "rejected", "id": "s", "reason": "not_owner"}
    ]
    assert _run(engine, {"type": "amend", "id": "s", "owner": "S", "price": 3, "ts": 2}) == [
        {"type": "rejected", "id": "s", "reason": "invalid_price"}
    ]
    assert _run(engine, {"type": "amend", "id": "s", "owner": "S", "qty": 7, "ts": 2}) == [
        {"type": "amended", "id": "s", "price": None, "qty": 7, "priority_kept": True}
    ]


def test_cancel_all_cancels_orders_and_stops_in_arrival_order() -> None:
    engine = _setup(
        _new("b", "A", "buy", 2, 5),
        _new("s", "A", "sell", 3, 9, kind="stop_limit", stop_price=4),
        _new("i", "A", "sell", 7, 20, display_qty=2),
        _new("x", "B", "sell", 1, 20),
    )
    assert _run(engine, {"type": "cancel", "id": "i", "owner": "B", "ts": 2}) == [
        {"type": "rejected", "id": "i", "reason": "not_owner"}
    ]
    assert _run(engine, {"type": "cancel_all", "owner": "A", "ts": 2}) == [
        _cxl("b", "user", 2),
        _cxl("s", "user", 3),
        _cxl("i", "user", 7),
    ]


def test_gtd_expires_before_the_command_at_or_past_expire_at() -> None:
    engine = _setup(
        _new("g", "A", "sell", 2, 10, tif="gtd", expire_at=100),
        _new("h", "A", "sell", 2, 11, tif="gtd", expire_at=50),
    )
    assert _run(engine, _new("t", "T", "buy", 1, 11, ts=100)) == [
        _cxl("g", "expired", 2),
        _cxl("h", "expired", 2),
        _acc("t", "T", "buy"),
    ]
    assert _run(engine, _new("u", "T", "buy", 1, 11, tif="gtd", expire_at=100, ts=100)) == [
        {"type": "rejected", "id": "u", "reason": "invalid_expiry"}
    ]


def test_halted_market_rejects_new_and_amend_but_cancels_work() -> None:
    engine = _setup(_new("a", "A", "sell", 2, 10))
    assert _run(engine, {"type": "halt", "ts": 2}) == [{"type": "halted"}]
    assert _run(engine, {"type": "halt", "ts": 2}) == []
    assert _run(engine, _new("b", "B", "sell", 1, 10)) == [
        {"type": "rejected", "id": "b", "reason": "market_halted"}
    ]
    assert _run(engine, {"type": "amend", "id": "a", "owner": "A", "qty": 1, "ts": 2}) == [
        {"type": "rejected", "id": "a", "reason": "market_halted"}
    ]
    assert _run(engine, {"type": "cancel", "id": "a", "owner": "A", "ts": 2}) == [
        _cxl("a", "user", 2)
    ]
    assert _run(engine, {"type": "resume", "ts": 2}) == [{"type": "resumed"}]


def test_validation_precedence_first_failing_check_wins() -> None:
    engine = _setup(_new("a", "A", "sell", 2, 10))
    cases: list[tuple[Event | str, str]] = [
        ('["new"]', "invalid_command"),
        (_new("q", "A", "buy", 1, 10, quote_qty=5), "invalid_command"),
        (
            _new("q", "A", "buy", 1, None, kind="stop_market", tif="ioc", stop_price=3),
            "invalid_command",
        ),
        (_new("q", "A", "buy", 1, 10, post_only="slide", tif="ioc"), "invalid_command"),
        (_new("q", "A", "buy", 1, 10, price_extra=True, qty_bool=True, ts=True), "invalid_command"),
        (_new("a", "A", "buy", 0, -1), "duplicate_id"),
        (_new("q", "A", "buy", 0, -1), "invalid_qty"),
        (_new("q", "A", "buy", 2**63, 5), "invalid_qty"),
        (_new("q", "A", "buy", 1, None, kind="limit", display_qty=5), "missing_price"),
        (_new("q", "A", "buy", 1, 0, display_qty=5), "invalid_price"),
        (_new("q", "A", "buy", 1, 5, kind="stop_limit"), "missing_stop_price"),
        (_new("q", "A", "buy", 2, 5, display_qty=2, expire_at=9), "invalid_display_qty"),
        (_new("q", "A", "buy", 2, 5, expire_at=9), "invalid_expiry"),
    ]
    for cmd, reason in cases:
        events = engine.apply(cmd)
        assert [(e["type"], e["reason"]) for e in events] == [("rejected", reason)], cmd
    engine.apply({"type": "halt", "ts": 1})
    assert engine.apply(_new("a", "A", "buy", 0, -1))[0]["reason"] == "market_halted"


def test_malformed_commands_reject_with_null_or_string_id_and_expire_nothing() -> None:
    engine = _setup(_new("g", "A", "sell", 2, 10, tif="gtd", expire_at=5))
    assert _run(engine, {"type": "new", "id": "z", "owner": "A", "side": "up", "ts": 9}) == [
        {"type": "rejected", "id": "z", "reason": "invalid_command"}
    ]
    assert _run(engine, {"type": "fly", "id": 7, "ts": 9}) == [
        {"type": "rejected", "id": None, "reason": "invalid_command"}
    ]
    assert _run(engine, {"type": "tick"}) == [
        {"type": "rejected", "id": None, "reason": "invalid_command"}
    ]
    assert _run(engine, {"type": "tick", "ts": 9}) == [_cxl("g", "expired", 2)]


def test_price_protected_market_buy_stops_at_qty_or_budget_whichever_binds_first() -> None:
    engine = _setup(_new("a", "A", "sell", 5, 10))
    assert _run(engine, _new("q", "T", "buy", 2, None, quote_qty=100)) == [
        _acc("q", "T", "buy", "market"),
        _fill("a", "q", "A", "T", 10, 2, "buy"),
    ]
    assert _run(engine, _new("b", "T", "buy", 3, None, quote_qty=25)) == [
        _acc("b", "T", "buy", "market"),
        _fill("a", "b", "A", "T", 10, 2, "buy"),
        _cxl("b", "quote_budget", 1, remaining_quote_qty=5),
    ]


def test_pending_budget_stop_cancel_reports_its_qty_without_budget() -> None:
    stop = _new("s", "T", "buy", None, None, kind="stop_market", stop_price=9, quote_qty=50)
    engine = _setup(stop)
    assert engine.book()["stops"][0]["qty"] == 0
    assert _run(engine, {"type": "cancel", "id": "s", "owner": "T", "ts": 2}) == [
        _cxl("s", "user", 0)
    ]


def test_blank_line_carries_no_command_and_no_seq() -> None:
    engine = ReferenceEngine({"symbol": "X"})
    assert engine.apply("  \n") == []
    assert engine.apply("{}")[0]["seq"] == 1
