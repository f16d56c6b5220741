"""The JSON-lines replay format: codec, ReplaySession, run and replay_main."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from actors.engine import (
    Amend,
    Halt,
    Malformed,
    MarketSpec,
    MatchingEngine,
    Millis,
    NewOrder,
    OrderId,
)
from actors.engine.codec import (
    command_from_dict,
    command_from_line,
    command_to_dict,
    event_from_dict,
    event_to_dict,
)
from actors.engine.replay import ReplaySession, replay_main, run

NEW = {
    "type": "new",
    "id": "a",
    "owner": "A",
    "side": "buy",
    "kind": "limit",
    "qty": 2,
    "price": 10,
    "ts": 1,
}


@pytest.mark.parametrize(
    "line,rid",
    [
        ("not json", None),
        ("[1, 2]", None),
        ("null", None),
        ('{"type": 5, "id": "x"}', "x"),
        ('{"type": "bogus", "id": "x"}', "x"),
        ('{"type": "new", "id": 7}', None),
        (json.dumps({**NEW, "qty": True}), "a"),
        (json.dumps({**NEW, "qty": 1.0}), "a"),
        (json.dumps({**NEW, "side": "long"}), "a"),
        (json.dumps({**NEW, "side": 1}), "a"),
        (json.dumps({**NEW, "side": None}), "a"),
        (json.dumps({**NEW, "tif": "day"}), "a"),
        (json.dumps({**NEW, "ts": None}), "a"),
        (json.dumps({**NEW, "owner": ""}), "a"),
        ('{"type": "cancel", "id": "a", "ts": 1}', "a"),
        ('{"type": "amend", "id": "a", "owner": "A", "ts": 1, "qty": "2"}', "a"),
        ('{"type": "cancel_all", "ts": 1}', None),
        ('{"type": "halt"}', None),
        ("[" * 100_000, None),
    ],
)
def test_malformed_line_is_rejected_invalid_command(line: str, rid: str | None) -> None:
    session = ReplaySession({"symbol": "X"})
    assert session.apply(line) == [
        {"seq": 1, "type": "rejected", "id": rid, "reason": "invalid_command"}
    ]


def test_null_counts_as_absent_for_optional_fields() -> None:
    cmd = command_from_dict(
        {**NEW, "tif": None, "stp": None, "post_only": None, "display_qty": None}
    )
    assert isinstance(cmd, NewOrder) and cmd.tif == "gtc" and cmd.display_qty is None


def test_replay_goes_on_after_a_malformed_line() -> None:
    lines = ["garbage\n", json.dumps(NEW) + "\n", "\n", "   \n"]
    out = [json.loads(x) for x in run({"symbol": "X"}, lines)]
    assert [(e["seq"], e["type"]) for e in out] == [(1, "rejected"), (2, "accepted")]


def test_every_command_type_decodes() -> None:
    lines = [
        NEW,
        {"type": "amend", "id": "a", "owner": "A", "qty": 1, "price": 11, "ts": 2},
        {"type": "cancel", "id": "a", "owner": "A", "ts": 3},
        {"type": "cancel_all", "owner": "A", "ts": 4},
        {"type": "halt", "ts": 5},
        {"type": "resume", "ts": 6},
        {"type": "tick", "ts": 7},
    ]
    session = ReplaySession({"symbol": "X"})
    types = [e["type"] for line in lines for e in session.apply(json.dumps(line))]
    assert types == ["accepted", "amended", "cancelled", "halted", "resumed"]


def test_book_format_matches_book_out() -> None:
    session = ReplaySession({"symbol": "X"})
    for c in [
        {**NEW, "id": "b1", "price": 9},
        {**NEW, "id": "b2", "price": 9, "owner": "B"},
        {**NEW, "id": "b3", "price": 10},
        {**NEW, "id": "s1", "side": "sell", "price": 12, "qty": 5, "display_qty": 2},
        {
            "type": "new",
            "id": "st",
            "owner": "C",
            "side": "sell",
            "kind": "stop_market",
            "qty": 3,
            "stop_price": 5,
            "ts": 2,
        },
    ]:
        session.apply(c)
    assert session.book() == {
        "bids": [
            {
                "price": 10,
                "orders": [{"id": "b3", "owner": "A", "visible_qty": 2, "remaining_qty": 2}],
            },
            {
                "price": 9,
                "orders": [
                    {"id": "b1", "owner": "A", "visible_qty": 2, "remaining_qty": 2},
                    {"id": "b2", "owner": "B", "visible_qty": 2, "remaining_qty": 2},
                ],
            },
        ],
        "asks": [
            {
                "price": 12,
                "orders": [{"id": "s1", "owner": "A", "visible_qty": 2, "remaining_qty": 5}],
            }
        ],
        "stops": [
            {
                "id": "st",
                "owner": "C",
                "side": "sell",
                "kind": "stop_market",
                "stop_price": 5,
                "qty": 3,
            }
        ],
    }


def test_session_dump_and_restore_continue_identically() -> None:
    session = ReplaySession({"symbol": "X", "tick_size": 1})
    session.apply(NEW)
    clone = ReplaySession.restore(json.loads(json.dumps(session.dump())))
    nxt = {**NEW, "id": "s", "side": "sell", "ts": 3}
    assert clone.apply(nxt) == session.apply(nxt)
    assert clone.book() == session.book()


def test_replay_main_writes_events_and_book() -> None:
    out = io.StringIO()
    book: list[str] = []
    status = replay_main({"symbol": "X"}, [json.dumps(NEW)], out.write, book.append)
    assert status == 0
    assert json.loads(out.getvalue().splitlines()[0])["type"] == "accepted"
    assert json.loads(book[0])["bids"][0]["price"] == 10


def test_replay_main_without_book_out() -> None:
    out = io.StringIO()
    assert replay_main({"symbol": "X"}, ["x"], out.write) == 0


@pytest.mark.parametrize("err", [True, False])
def test_replay_main_invalid_spec_exits_2(err: bool) -> None:
    errors: list[str] = []
    status = replay_main({"tick_size": 1}, [], print, None, errors.append if err else None)
    assert status == 2
    assert bool(errors) is err


@pytest.mark.parametrize(
    "command",
    [
        command_from_dict({**NEW, "price": None}),
        Amend(OrderId("a"), "A", Millis(2), qty=3),  # type: ignore[arg-type]
        Halt(Millis(3)),
        Malformed(),
    ],
)
def test_command_to_dict_omits_absent_fields(command: Any) -> None:
    d = command_to_dict(command)
    assert None not in d.values()
    assert "tif" not in d


def test_command_round_trips_through_dict() -> None:
    cmd = command_from_line(json.dumps({**NEW, "tif": "gtd", "expire_at": 9, "stp": "cancel_both"}))
    assert command_from_dict(command_to_dict(cmd)) == cmd


def test_every_event_decodes_back_to_itself() -> None:
    engine = MatchingEngine(MarketSpec(symbol="X"))
    lines = [
        {**NEW, "id": "s", "owner": "B", "side": "sell", "qty": 5, "price": 10},
        {**NEW, "id": "stop", "kind": "stop_limit", "stop_price": 10, "price": 12, "ts": 2},
        {**NEW, "id": "t", "qty": 2, "ts": 3},  # fills, triggers the stop
        {"type": "amend", "id": "s", "owner": "B", "qty": 1, "ts": 4},
        {
            **NEW,
            "id": "q",
            "kind": "market",
            "price": None,
            "qty": None,
            "quote_qty": 1,
            "ts": 5,
        },
        {
            **NEW,
            "id": "d",
            "owner": "B",
            "side": "sell",
            "qty": 3,
            "price": 9,
            "stp": "decrement_and_cancel",
            "ts": 6,
        },
        {"type": "cancel", "id": "nope", "owner": "A", "ts": 7},
        {"type": "halt", "ts": 8},
        {"type": "resume", "ts": 9},
    ]
    events = [e for line in lines for e in engine.submit(command_from_dict(line))]
    assert {type(e).__name__ for e in events} >= {
        "Accepted", "Fill", "Triggered", "Amended", "Cancelled", "Rejected", "Halted", "Resumed",
    }  # fmt: skip
    for event in events:
        assert event_from_dict(event_to_dict(event)) == event


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "bogus", "seq": 1},
        {"type": "fill", "seq": 1},
        {"type": "accepted", "seq": 1, "id": "a", "owner": "A", "side": "long", "kind": "limit"},
    ],
)
def test_an_event_the_engine_could_not_have_written_does_not_decode(obj: Any) -> None:
    with pytest.raises(ValueError):
        event_from_dict(obj)
