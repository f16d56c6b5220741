"""The engine dump's columnar format (version 2): version-1 dumps still load, malformed
dumps are refused, and a dump or restore leaves the garbage collector as it found it."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from engine_harness import Harness

from actors.engine import (
    MarketSpec,
    MatchingEngine,
    OrderId,
    OrderKind,
    Owner,
    StpMode,
    TimeInForce,
)
from actors.engine.book import BookSide, new_order
from actors.engine.codec import command_from_dict
from actors.engine.snapshot import _PLAIN, _SPECIAL


def _populate(h: Harness) -> None:
    h.new("b1", "A", "buy", 5, 99)
    h.new("b2", "B", "buy", 2, 99, stp="cancel_newest")
    h.new("b3", "A", "buy", 1, 97, post_only="reject")
    h.new("s1", "C", "sell", 10, 101, display_qty=3)
    h.new("s2", "C", "sell", 4, 103, tif="gtd", expire_at=1_000)
    h.new("s3", "D", "sell", 1, 101)
    h.new("st", "A", "sell", 4, 90, kind="stop_limit", stop_price=95)
    h.new("sm", "B", "buy", None, None, kind="stop_market", stop_price=102, quote_qty=500)


def _as_v1(cols: dict[str, Any]) -> list[dict[str, Any]]:
    """The version-1 shape of a version-2 order list: one object per order."""
    columns = zip(*(cols[k] for k in _PLAIN), strict=True)
    rows = [dict(zip(_PLAIN, values, strict=True)) for values in columns]
    for row in rows:
        row["side"] = "buy" if row.pop("buy") else "sell"
        row.update(kind="limit", display=0, tif="gtc", expire_at=None, post_only=None,
                   stp="none", stop_price=None, budget=0)  # fmt: skip
    for special in cols["special"]:
        rows[special[0]].update(zip(_SPECIAL, special[1:], strict=True))
    return rows


def test_dump_is_columnar_with_special_orders_apart(h: Harness) -> None:
    _populate(h)
    dump = h.engine.dump()
    assert dump["version"] == 2
    book = dump["orders"]
    assert book["id"] == ["b1", "b2", "b3", "s1", "s2", "s3"]  # the index's order
    assert [row[0] for row in book["special"]] == [1, 2, 3, 4]  # b2 stp, b3 post-only, ...
    assert sorted(dump["stops"]["id"]) == ["sm", "st"]


def test_queue_order_is_restored_from_arrival_order(h: Harness) -> None:
    """The dump lists orders in the index's order. An iceberg that replenishes goes to the
    back of its level with a new arrival number but keeps its place in the index, so index
    order and queue order differ, and the restore must follow the arrivals."""
    _populate(h)
    assert [o.id for o in h.engine.l3() if o.price == 101] == ["s1", "s3"]
    h.new("t", "E", "buy", 3, 101)  # takes s1's visible slice; s1 replenishes behind s3
    assert [o.id for o in h.engine.l3() if o.price == 101] == ["s3", "s1"]
    dump = json.loads(json.dumps(h.engine.dump()))
    assert dump["orders"]["id"].index("s1") < dump["orders"]["id"].index("s3")
    restored = MatchingEngine.restore(dump)
    assert [o.id for o in restored.l3() if o.price == 101] == ["s3", "s1"]
    assert restored.dump() == h.engine.dump()


def test_a_version_1_dump_restores_the_same_engine(h: Harness) -> None:
    _populate(h)
    dump = json.loads(json.dumps(h.engine.dump()))
    v1 = {**dump, "version": 1, "orders": _as_v1(dump["orders"]), "stops": _as_v1(dump["stops"])}
    restored = MatchingEngine.restore(v1)
    restored.validate_internal_state()
    assert restored.dump() == h.engine.dump()
    cross = command_from_dict(
        {"type": "new", "id": "x", "owner": "E", "side": "buy", "kind": "limit", "qty": 20,
         "price": 125, "ts": 50}
    )  # fmt: skip
    events = h.engine.submit(cross)
    assert any(type(e).__name__ == "Triggered" for e in events)  # the stop-market fires
    assert restored.submit(cross) == events
    assert restored.dump() == h.engine.dump()


@pytest.mark.parametrize(
    "corrupt,message",
    [
        (lambda d: d["orders"]["qty"].pop(), "lengths"),
        (lambda d: d["orders"]["id"].__setitem__(1, "b1"), "twice"),
        (lambda d: d["orders"]["buy"].__setitem__(0, False), "crossed"),
        (lambda d: d["orders"].pop("owner"), "malformed"),
        # b1 and b2 share level 99: the same arrival number leaves their queue order unknown.
        (lambda d: d["orders"]["arrival"].__setitem__(1, d["orders"]["arrival"][0]), "arrival"),
    ],
    ids=["short column", "duplicate id", "crossed", "missing column", "same arrival"],
)
def test_a_malformed_dump_is_refused(h: Harness, corrupt: Any, message: str) -> None:
    _populate(h)
    dump = json.loads(json.dumps(h.engine.dump()))
    dump["orders"]["special"] = []
    corrupt(dump)
    with pytest.raises(ValueError, match=message):
        MatchingEngine.restore(dump)


@pytest.mark.parametrize("enabled", [True, False])
def test_dump_and_restore_leave_the_collector_as_they_found_it(h: Harness, enabled: bool) -> None:
    _populate(h)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        MatchingEngine.restore(h.engine.dump())
        assert gc.isenabled() is enabled
        with pytest.raises(ValueError):
            MatchingEngine.restore({**h.engine.dump(), "orders": {"id": [1]}})
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_an_empty_engine_round_trips() -> None:
    engine = MatchingEngine(MarketSpec("X"))
    assert MatchingEngine.restore(engine.dump()).dump() == engine.dump()


def test_book_side_load_refuses_a_filled_side_or_an_order_of_the_other_side() -> None:
    bids = BookSide(is_bid=True)
    with pytest.raises(ValueError, match="belong"):
        bids.load([new_order(OrderId("a"), Owner("A"), False, *_PLAIN_REST)])
    bids.load([new_order(OrderId("b"), Owner("A"), True, *_PLAIN_REST)])
    with pytest.raises(ValueError, match="not empty"):
        bids.load([])


_PLAIN_REST: tuple[Any, ...] = (
    OrderKind.LIMIT,
    100,
    1,
    0,
    TimeInForce.GTC,
    None,
    None,
    StpMode.NONE,
    None,
    1,
)
