"""Full-state dump and restore of an engine, and the internal-consistency check.

The dump is a JSON-serialisable dict. Derived structures (the level heaps, the GTD expiry
heap, the stop trigger bounds) are not stored: ``load_state`` rebuilds them, and none of them
changes which events the engine emits. Queue order is stored explicitly (orders are listed
bids best first, then asks, each level in queue order).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.engine.book import BookSide, Order, new_order
from actors.engine.types import AccountId, OrderId, OrderKind, PostOnly, StpMode, TimeInForce

if TYPE_CHECKING:
    from actors.engine.engine import MatchingEngine

DUMP_VERSION = 1


def _order_dict(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "owner": o.owner,
        "side": "buy" if o.is_buy else "sell",
        "kind": o.kind.value,
        "price": o.price,
        "qty": o.qty,
        "visible": o.visible,
        "display": o.display,
        "tif": o.tif.value,
        "expire_at": o.expire_at,
        "post_only": None if o.post_only is None else o.post_only.value,
        "stp": o.stp.value,
        "stop_price": o.stop_price,
        "arrival": o.arrival,
        "budget": o.budget,
    }


# Value -> member tables: `Enum(value)` costs ~2 µs a call, and a restore makes three per
# order (a million-order book took seconds in enum lookups alone).
_KINDS = {m.value: m for m in OrderKind}
_TIFS = {m.value: m for m in TimeInForce}
_POST_ONLY = {m.value: m for m in PostOnly}
_STPS = {m.value: m for m in StpMode}


def _order_from(d: dict[str, Any]) -> Order:
    post_only = d["post_only"]
    o = new_order(
        OrderId(d["id"]),
        AccountId(d["owner"]),
        d["side"] == "buy",
        _KINDS[d["kind"]],
        d["price"],
        d["qty"],
        d["display"],
        _TIFS[d["tif"]],
        d["expire_at"],
        None if post_only is None else _POST_ONLY[post_only],
        _STPS[d["stp"]],
        d["stop_price"],
        d["arrival"],
        d.get("budget", 0),
    )
    o.visible = d["visible"]
    return o


def dump_state(engine: MatchingEngine) -> dict[str, Any]:
    """Return the engine's full state as a JSON-serialisable dict."""
    return {
        "version": DUMP_VERSION,
        "spec": engine.spec.to_dict(),
        "seq": engine._seq,
        "arrival": engine._arrival,
        "last_price": engine._last_price,
        "halted": engine._halted,
        "orders": [
            _order_dict(o)
            for side in (engine._bids, engine._asks)
            for lv in side.sorted_levels()
            for o in lv.orders()
        ],
        "stops": [_order_dict(s) for s in engine._stops.values()],
    }


def load_state(engine: MatchingEngine, dump: dict[str, Any]) -> None:
    """Load a ``dump_state`` dict into a freshly built engine."""
    if dump.get("version") != DUMP_VERSION:
        raise ValueError(f"unsupported engine dump version {dump.get('version')!r}")
    engine._seq = dump["seq"]
    engine._arrival = dump["arrival"]
    engine._last_price = dump["last_price"]
    engine._halted = dump["halted"]
    for d in dump["orders"]:
        o = _order_from(d)
        (engine._bids if o.is_buy else engine._asks).append(o)
        engine._orders[o.id] = o
    for d in dump["stops"]:
        s = _order_from(d)
        engine._stops[s.id] = s
    engine._reset_stop_bounds()
    engine._rebuild_expiry()


def _check_side(engine: MatchingEngine, side: BookSide) -> int:
    """Check one side's levels and return its order count."""
    heap_keys = set(side.heap)
    n = 0
    for k, lv in side.levels.items():
        assert k == side.key(lv.price), f"level key {k} != key of price {lv.price}"
        assert k in heap_keys, f"level {lv.price} missing from the heap"
        assert lv.count > 0 and lv.head is not None, f"empty level {lv.price} kept"
        prev: Order | None = None
        total = count = 0
        for o in lv.orders():
            assert o.prev is prev, f"broken prev link at {o.id}"
            assert engine._orders.get(o.id) is o, f"{o.id} in book but not in index"
            assert o.price == lv.price and o.is_buy == side.is_bid, f"{o.id} on wrong level"
            assert 0 < o.visible <= o.qty, f"{o.id} visible {o.visible} qty {o.qty}"
            if o.display:
                assert o.visible <= o.display, f"{o.id} slice larger than display"
            else:
                assert o.visible == o.qty, f"{o.id} plain order with hidden quantity"
            assert prev is None or prev.arrival < o.arrival, f"{o.id} queued out of order"
            total += o.visible
            count += 1
            prev = o
        assert lv.tail is prev, f"level {lv.price} tail mismatch"
        assert total == lv.total, f"level {lv.price} total {lv.total} != sum {total}"
        assert count == lv.count, f"level {lv.price} count {lv.count} != {count}"
        n += count
    return n


def check_invariants(engine: MatchingEngine) -> None:
    """Raise ``AssertionError`` if the book is crossed or any index disagrees with it."""
    n = _check_side(engine, engine._bids) + _check_side(engine, engine._asks)
    assert n == len(engine._orders), f"index has {len(engine._orders)} orders, book {n}"
    bid, ask = engine.best_bid(), engine.best_ask()
    assert bid is None or ask is None or bid < ask, f"crossed book: bid {bid} >= ask {ask}"
    in_expiry = {id(entry[2]) for entry in engine._expiry}
    for s in engine._stops.values():
        assert s.kind in (OrderKind.STOP_LIMIT, OrderKind.STOP_MARKET), f"{s.id} not a stop"
        assert s.stop_price is not None and s.id not in engine._orders, f"bad stop {s.id}"
    for o in [*engine._orders.values(), *engine._stops.values()]:
        if o.expire_at is not None:
            assert id(o) in in_expiry, f"GTD order {o.id} missing from the expiry index"
