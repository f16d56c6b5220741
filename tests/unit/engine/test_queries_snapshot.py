"""Queries (best prices, L2, L3, get_order), dump/restore and the invariant checker."""

from __future__ import annotations

import json
import random

import pytest
from engine_harness import Harness

from actors.engine import MarketSpec, MatchingEngine, OrderId, Owner, Side, Ticks
from actors.engine.codec import command_from_dict


def _populate(h: Harness) -> None:
    h.new("b1", "A", "buy", 5, 99)
    h.new("b2", "B", "buy", 2, 99)
    h.new("b3", "A", "buy", 1, 97)
    h.new("s1", "C", "sell", 10, 101, display_qty=3)
    h.new("s2", "C", "sell", 4, 103, tif="gtd", expire_at=1_000)
    h.new("st", "A", "sell", 4, 90, kind="stop_limit", stop_price=95)


def test_best_bid_and_ask(h: Harness) -> None:
    assert (h.engine.best_bid(), h.engine.best_ask()) == (None, None)
    _populate(h)
    assert (h.engine.best_bid(), h.engine.best_ask()) == (99, 101)
    assert h.engine.last_trade_price is None
    h.new("x", "D", "buy", 1, 101)
    assert h.engine.last_trade_price == 101


@pytest.mark.parametrize("depth,n", [(None, 2), (1, 1), (5, 2)])
def test_l2_aggregates_visible_qty_and_counts(h: Harness, depth: int | None, n: int) -> None:
    _populate(h)
    l2 = h.engine.l2(depth)
    assert [tuple(x) for x in l2.bids] == [(99, 7, 2), (97, 1, 1)][:n]
    assert [tuple(x) for x in l2.asks] == [(101, 3, 1), (103, 4, 1)][:n]


def test_level_and_resting_level_agree_with_l2(h: Harness) -> None:
    _populate(h)
    buy, sell = Side.BUY, Side.SELL
    for side, levels in ((buy, h.engine.l2().bids), (sell, h.engine.l2().asks)):
        for lv in levels:
            assert h.engine.level(side, lv.price) == (lv.qty, lv.order_count)
    assert h.engine.level(buy, Ticks(101)) == (0, 0) and h.engine.level(sell, Ticks(99)) == (0, 0)
    assert h.engine.resting_level(OrderId("b2")) == (buy, 99)
    assert h.engine.resting_level(OrderId("s1")) == (sell, 101)
    assert h.engine.resting_level(OrderId("st")) is None  # a pending stop rests nowhere
    assert h.engine.resting_level(OrderId("nope")) is None


def test_l3_lists_every_order_in_queue_order(h: Harness) -> None:
    _populate(h)
    assert [(v.id, v.visible_qty, v.remaining_qty) for v in h.engine.l3()] == [
        ("b1", 5, 5),
        ("b2", 2, 2),
        ("b3", 1, 1),
        ("s1", 3, 10),
        ("s2", 4, 4),
    ]


def test_live_order_ids_are_the_resting_orders_and_the_pending_stops(h: Harness) -> None:
    _populate(h)
    h.cancel("b2", "B")
    views = [*h.engine.l3(), *h.engine.stops()]
    assert sorted(h.engine.live_order_ids()) == sorted(v.id for v in views)
    assert "st" in h.engine.live_order_ids() and "b2" not in h.engine.live_order_ids()
    assert h.engine.live_order_count() == len(views)


def test_get_order_and_orders_of(h: Harness) -> None:
    _populate(h)
    st = h.engine.get_order(OrderId("st"))
    assert st is not None and st.status == "pending_stop" and st.stop_price == 95
    assert h.engine.get_order(OrderId("nope")) is None
    s2 = h.engine.get_order(OrderId("s2"))
    assert s2 is not None and s2.expire_at == 1_000 and s2.display_qty is None
    assert [v.id for v in h.engine.orders_of(Owner("A"))] == ["b1", "b3", "st"]


def test_next_expiry_is_the_earliest_queued_expiry_until_it_passes(h: Harness) -> None:
    assert h.engine.next_expiry() is None
    h.new("g1", "A", "buy", 1, 90, tif="gtd", expire_at=2_000)
    h.new("g2", "A", "buy", 1, 91, tif="gtd", expire_at=1_500)
    assert h.engine.next_expiry() == 1_500
    h.cancel("g2", "A")  # lazy deletion: still queued until its time
    assert h.engine.next_expiry() == 1_500
    h.tick(1_600)
    assert h.engine.next_expiry() == 2_000
    h.tick(2_000)
    assert h.engine.next_expiry() is None


def _random_commands(seed: int, n: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for i in range(n):
        ts = i
        oid = f"o{rng.randrange(30)}"
        owner = rng.choice("ABC")
        r = rng.random()
        if r < 0.6:
            kind = rng.choice(["limit", "limit", "limit", "market", "stop_limit", "stop_market"])
            c: dict[str, object] = {
                "type": "new",
                "id": oid,
                "owner": owner,
                "side": rng.choice(["buy", "sell"]),
                "kind": kind,
                "qty": rng.randrange(1, 9),
                "ts": ts,
                "stp": rng.choice(["none", "cancel_oldest", "decrement_and_cancel"]),
            }
            if kind in ("limit", "stop_limit"):
                c["price"] = rng.randrange(95, 106)
                if rng.random() < 0.3:
                    c["display_qty"] = 1
                if rng.random() < 0.3:
                    c["tif"] = "gtd"
                    c["expire_at"] = ts + rng.randrange(1, 30)
            if kind.startswith("stop"):
                c["stop_price"] = rng.randrange(95, 106)
            out.append(c)
        elif r < 0.8:
            out.append({"type": "cancel", "id": oid, "owner": owner, "ts": ts})
        else:
            out.append(
                {
                    "type": "amend",
                    "id": oid,
                    "owner": owner,
                    "ts": ts,
                    "qty": rng.randrange(1, 9),
                    "price": rng.randrange(95, 106),
                }
            )
    return out


@pytest.mark.parametrize("seed", range(5))
def test_restored_engine_emits_exactly_the_same_events(seed: int) -> None:
    commands = [command_from_dict(c) for c in _random_commands(seed, 400)]
    original = MatchingEngine(MarketSpec("X"))
    original.submit_batch(commands[:200])
    dump = json.loads(json.dumps(original.dump()))
    restored = MatchingEngine.restore(dump)
    restored.validate_internal_state()
    assert restored.dump() == original.dump()
    for command in commands[200:]:
        assert restored.submit(command) == original.submit(command)
        restored.validate_internal_state()
    assert restored.seq == original.seq


def test_restore_rejects_unknown_dump_version() -> None:
    dump = MatchingEngine(MarketSpec("X")).dump()
    dump["version"] = 99
    with pytest.raises(ValueError, match="version"):
        MatchingEngine.restore(dump)


def test_restore_keeps_halted_flag_and_last_price(h: Harness) -> None:
    h.new("s", "A", "sell", 1, 100)
    h.new("b", "B", "buy", 1, 100)
    h.halt()
    restored = MatchingEngine.restore(h.engine.dump())
    assert restored.halted and restored.last_trade_price == 100


def test_validate_internal_state_detects_a_corrupted_level_total(h: Harness) -> None:
    _populate(h)
    h.engine._bids.best().total += 1  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="total"):
        h.engine.validate_internal_state()


def test_validate_internal_state_detects_a_crossed_book() -> None:
    engine = MatchingEngine(MarketSpec("X"))
    engine.submit_batch([command_from_dict(c) for c in _random_commands(1, 50)])
    engine.validate_internal_state()
    h = Harness()
    h.new("b", "A", "buy", 1, 100)
    h.new("s", "B", "sell", 1, 101)
    ask = h.engine._asks.best()
    assert ask is not None
    ask.price = 100
    ask_key = next(iter(h.engine._asks.levels))
    h.engine._asks.levels[100] = h.engine._asks.levels.pop(ask_key)
    h.engine._asks.heap[:] = [100]
    assert ask.head is not None
    ask.head.price = 100
    with pytest.raises(AssertionError, match="crossed"):
        h.engine.validate_internal_state()


def test_stale_level_keys_are_dropped_and_heap_rebuilt(h: Harness) -> None:
    h.new("top", "A", "buy", 1, 2000, ts=1)
    for i in range(100):
        h.new(f"b{i}", "A", "buy", 1, 1000 - i, ts=1)
        h.cancel(f"b{i}", "A", ts=1)
    h.new("last", "A", "buy", 1, 5, ts=1)
    assert len(h.engine._bids.heap) < 100
    h.cancel("top", "A", ts=1)
    assert h.engine.best_bid() == 5


def test_stale_best_key_is_skipped_while_matching(h: Harness) -> None:
    h.new("a100", "A", "sell", 1, 100)
    h.new("a101", "A", "sell", 1, 101)
    h.cancel("a101", "A")
    h.cancel("a100", "A")
    h.new("a105", "A", "sell", 1, 105)
    assert h.new("b", "B", "buy", 1, 110)[-1] == ("fill", "a105", "b", 105, 1)
