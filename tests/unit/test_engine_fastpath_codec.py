"""The codec's fast paths decode and encode exactly as its general rules say.

``command_from_dict`` looks enum values up in value tables and falls back to ``cls(value)``
on a miss; ``event_to_dict`` writes the hottest events field by field and falls back to
the generic StrEnum check for unusual field types. These tests pin the fallbacks.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.engine import (
    Accepted,
    Amended,
    Cancelled,
    CancelReason,
    Fill,
    Lots,
    Malformed,
    NewOrder,
    OrderId,
    OrderKind,
    Owner,
    Rejected,
    RejectReason,
    Side,
    StpMode,
    TickLots,
    Ticks,
    TimeInForce,
)
from actors.engine.codec import command_from_dict, event_to_dict

NEW: dict[str, Any] = {
    "type": "new",
    "id": "a",
    "owner": "A",
    "side": "buy",
    "kind": "limit",
    "qty": 2,
    "price": 10,
    "ts": 1,
}


class Name(str):
    """A str subclass: not an exact ``str``, so it misses the lookup tables."""


@pytest.mark.parametrize(
    "field,value,want",
    [
        ("side", Name("sell"), Side.SELL),
        ("side", Side.SELL, Side.SELL),
        ("kind", Name("market"), OrderKind.MARKET),
        ("tif", TimeInForce.IOC, TimeInForce.IOC),
        ("tif", Name("fok"), TimeInForce.FOK),
        ("stp", StpMode.CANCEL_BOTH, StpMode.CANCEL_BOTH),
        ("stp", Name("cancel_oldest"), StpMode.CANCEL_OLDEST),
    ],
)
def test_enum_value_off_the_table_decodes_like_the_enum_call(
    field: str, value: object, want: object
) -> None:
    cmd = command_from_dict({**NEW, field: value})
    assert isinstance(cmd, NewOrder)
    assert getattr(cmd, field) is want


@pytest.mark.parametrize(
    "field,value",
    [("side", "BUY"), ("side", ["buy"]), ("kind", Name("limitless")), ("tif", 1), ("stp", "")],
)
def test_unknown_enum_value_is_malformed(field: str, value: object) -> None:
    assert command_from_dict({**NEW, field: value}) == Malformed(OrderId("a"))


def test_str_subclass_ids_are_kept_as_given() -> None:
    cmd = command_from_dict({**NEW, "id": Name("a"), "owner": Name("A")})
    assert isinstance(cmd, NewOrder)
    given: list[object] = [cmd.id, cmd.owner]
    assert [type(x) for x in given] == [Name, Name]


def test_cancel_needs_non_empty_names_and_an_int_ts() -> None:
    cancel = {"type": "cancel", "id": "a", "owner": "A", "ts": 1}
    assert command_from_dict(cancel) != Malformed(OrderId("a"))
    for field, value in (("id", ""), ("owner", 5), ("ts", True), ("ts", None)):
        got = command_from_dict({**cancel, field: value})
        assert isinstance(got, Malformed), (field, value)


def _typed(d: dict[str, Any]) -> list[tuple[str, Any, type]]:
    return [(k, v, type(v)) for k, v in d.items()]


def test_hot_events_encode_enum_members_anywhere_as_their_values() -> None:
    """Hand-built events with enum members or str subclasses where ids go."""
    sid = OrderId(Side.BUY)
    name = Owner(Name("u"))
    accepted = Accepted(1, sid, name, Side.SELL, OrderKind.LIMIT)
    assert _typed(event_to_dict(accepted)) == [
        ("seq", 1, int),
        ("type", "accepted", str),
        ("id", "buy", str),
        ("owner", "u", Name),
        ("side", "sell", str),
        ("kind", "limit", str),
    ]
    fill = Fill(2, sid, OrderId("t"), name, Owner("v"), Ticks(5), Lots(1), "sell")  # type: ignore[arg-type]
    assert event_to_dict(fill)["maker_id"] == "buy" and event_to_dict(fill)["taker_side"] == "sell"
    cancelled = Cancelled(3, sid, "user", Lots(RejectReason.NOT_OWNER), TickLots(7))  # type: ignore[arg-type]
    assert _typed(event_to_dict(cancelled)) == [
        ("seq", 3, int),
        ("type", "cancelled", str),
        ("id", "buy", str),
        ("reason", "user", str),
        ("remaining_qty", "not_owner", str),
        ("remaining_quote_qty", 7, int),
    ]


def test_other_events_encode_through_the_generic_path() -> None:
    assert event_to_dict(Rejected(4, None, RejectReason.NOT_OWNER)) == {
        "seq": 4,
        "type": "rejected",
        "id": None,
        "reason": "not_owner",
    }
    assert event_to_dict(Amended(5, OrderId("a"), None, Lots(3), True)) == {
        "seq": 5,
        "type": "amended",
        "id": "a",
        "price": None,
        "qty": 3,
        "priority_kept": True,
    }
    assert event_to_dict(Cancelled(6, OrderId("a"), CancelReason.USER, Lots(1))) == {
        "seq": 6,
        "type": "cancelled",
        "id": "a",
        "reason": "user",
        "remaining_qty": 1,
    }
