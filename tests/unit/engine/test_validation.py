"""Validation of commands: malformed combinations and the first failing parameter check."""

from __future__ import annotations

from typing import Any

import pytest
from engine_harness import Harness

from actors.engine import (
    Cancel,
    CancelAll,
    Halt,
    MarketSpec,
    MatchingEngine,
    Millis,
    NewOrder,
    OrderId,
    OrderKind,
    Owner,
    Rejected,
    Side,
)

BASE: dict[str, Any] = {"oid": "o", "owner": "A", "side": "buy"}


@pytest.mark.parametrize(
    "kw",
    [
        {"qty": 1, "price": 5, "kind": "market", "quote_qty": 10},
        {"kind": "limit", "price": 5, "quote_qty": 10},
        {"kind": "limit", "qty": 1, "price": 5, "quote_qty": 10},
        {"kind": "stop_limit", "qty": 1, "price": 5, "stop_price": 5, "quote_qty": 10},
        {"kind": "market", "quote_qty": 10, "tif": "fok"},
        {"kind": "limit", "price": 5},
        {"kind": "market", "qty": 1, "price": 5},
        {"kind": "stop_market", "qty": 1, "price": 5, "stop_price": 5},
        {"kind": "limit", "qty": 1, "price": 5, "stop_price": 5},
        {"kind": "market", "qty": 1, "post_only": "reject"},
        {"kind": "limit", "qty": 1, "price": 5, "post_only": "slide", "tif": "ioc"},
        {"kind": "stop_limit", "qty": 1, "price": 5, "stop_price": 5, "tif": "ioc"},
        {"kind": "stop_market", "qty": 1, "stop_price": 5, "tif": "fok"},
    ],
)
def test_malformed_combinations_are_invalid_command(h: Harness, kw: dict[str, Any]) -> None:
    assert h.new(**BASE, **kw) == [("rejected", "o", "invalid_command")]


@pytest.mark.parametrize("quote_qty", [0, -1, 2**63])
def test_protected_market_buy_checks_quote_qty_even_with_qty(h: Harness, quote_qty: int) -> None:
    assert h.new("o", "A", "buy", 2, kind="market", quote_qty=quote_qty) == [
        ("rejected", "o", "invalid_qty")
    ]


def test_quote_qty_on_a_market_sell_is_invalid_command(h: Harness) -> None:
    assert h.new("o", "A", "sell", kind="market", quote_qty=10) == [
        ("rejected", "o", "invalid_command")
    ]


@pytest.mark.parametrize(
    "field,value",
    [
        ("id", ""),
        ("owner", 5),
        ("ts", "1"),
        ("side", "buy"),
        ("kind", "limit"),
        ("tif", "gtc"),
        ("stp", "none"),
        ("post_only", "reject"),
        ("qty", True),
        ("price", 1.5),
        ("stop_price", "5"),
        ("expire_at", 1.0),
    ],
)
def test_typed_api_rejects_wrong_field_types(field: str, value: Any) -> None:
    engine = MatchingEngine(MarketSpec("X"))
    kw: dict[str, Any] = {
        "id": OrderId("o"),
        "owner": Owner("A"),
        "side": Side.BUY,
        "kind": OrderKind.LIMIT,
        "ts": Millis(1),
        "qty": 1,
        "price": 5,
    }
    kw[field] = value
    (event,) = engine.submit(NewOrder(**kw))
    assert isinstance(event, Rejected) and event.reason == "invalid_command"


@pytest.mark.parametrize(
    "spec,kw,reason",
    [
        ({}, {"qty": 0, "price": 5}, "invalid_qty"),
        ({}, {"qty": 2**63, "price": 5}, "invalid_qty"),
        ({"min_qty": 2}, {"qty": 1, "price": 5}, "invalid_qty"),
        ({"max_qty": 2}, {"qty": 3, "price": 5}, "invalid_qty"),
        ({"min_notional": 10}, {"qty": 1, "price": 5}, "invalid_qty"),
        ({"min_notional": 10}, {"qty": 2, "price": 5}, None),
        ({}, {"kind": "market", "quote_qty": 0}, "invalid_qty"),
        ({}, {"kind": "market", "quote_qty": 2**63}, "invalid_qty"),
        ({}, {"qty": 1}, "missing_price"),
        ({}, {"qty": 1, "price": 0}, "invalid_price"),
        ({}, {"qty": 1, "price": 2**63}, "invalid_price"),
        ({}, {"qty": 1, "price": 5, "kind": "stop_limit"}, "missing_stop_price"),
        ({}, {"qty": 1, "kind": "stop_market", "stop_price": 0}, "invalid_price"),
        ({}, {"qty": 1, "kind": "market", "display_qty": 1}, "invalid_display_qty"),
        ({}, {"qty": 3, "price": 5, "display_qty": 3}, "invalid_display_qty"),
        ({}, {"qty": 3, "price": 5, "display_qty": 0}, "invalid_display_qty"),
        ({}, {"qty": 3, "price": 5, "tif": "gtd"}, "invalid_expiry"),
        ({}, {"qty": 3, "price": 5, "expire_at": 100}, "invalid_expiry"),
        ({}, {"qty": 3, "price": 5, "tif": "gtd", "expire_at": 100}, None),
    ],
)
def test_new_order_first_failing_check_wins(
    spec: dict[str, Any], kw: dict[str, Any], reason: str | None
) -> None:
    h = Harness(MarketSpec("X", **spec))
    events = h.new("o", "A", "buy", ts=1, **kw)
    if reason is None:
        assert events == [("accepted", "o")]
    else:
        assert events == [("rejected", "o", reason)]


def test_duplicate_live_or_pending_id_is_rejected(h: Harness) -> None:
    h.new("o", "A", "buy", 1, 5)
    h.new("st", "A", "buy", 1, kind="stop_market", stop_price=9)
    assert h.new("o", "B", "sell", 1, 9) == [("rejected", "o", "duplicate_id")]
    assert h.new("st", "B", "sell", 1, 9) == [("rejected", "st", "duplicate_id")]


def test_dead_ids_may_be_reused(h: Harness) -> None:
    h.new("o", "A", "buy", 1, 5)
    h.cancel("o", "A")
    assert h.new("o", "A", "buy", 1, 5) == [("accepted", "o")]


def test_malformed_command_expires_nothing(h: Harness) -> None:
    h.new("g", "A", "buy", 1, 5, tif="gtd", expire_at=3, ts=1)
    assert h.new("o", "A", "buy", 1, kind="market", price=3, ts=10) == [
        ("rejected", "o", "invalid_command")
    ]
    assert h.engine.get_order(OrderId("g")) is not None


@pytest.mark.parametrize(
    "command",
    [
        Cancel(OrderId(""), Owner("A"), Millis(1)),
        CancelAll(Owner(""), Millis(1)),
        Halt("1"),  # type: ignore[arg-type]
    ],
)
def test_malformed_other_commands_are_invalid_command(h: Harness, command: Any) -> None:
    assert h.do(command)[0][-1] == "invalid_command"


def test_unknown_command_object_is_invalid_command(h: Harness) -> None:
    assert h.do("nonsense") == [("rejected", None, "invalid_command")]  # type: ignore[arg-type]
    batch = h.engine.submit_batch([object(), Halt(Millis(1))])  # type: ignore[list-item]
    assert [type(e).__name__ for e in batch] == ["Rejected", "Halted"]
