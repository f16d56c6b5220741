"""The engine's fast paths emit exactly what its general paths emit.

``MatchingEngine`` takes plain limit and market orders, and cancels of resting orders, on
inlined fast paths. ``GeneralOnly`` below routes every new order through the general path
(``_on_new_general``) instead; seeded streams of plain orders, near-plain variants (each
one field away from plain), invalid values and cancels must give both engines the same
events, command by command, and the same dump.
"""

from __future__ import annotations

import gc
import random
from typing import Any

import pytest

from actors.engine import (
    Cancel,
    Command,
    Halt,
    Lots,
    MarketSpec,
    MatchingEngine,
    Millis,
    NewOrder,
    OrderId,
    OrderKind,
    Owner,
    PostOnly,
    Resume,
    Side,
    StpMode,
    Tick,
    TickLots,
    Ticks,
    TimeInForce,
)
from actors.engine.events import Event

OWNERS = [Owner(name) for name in ("a", "b", "c")]
SPECS = (
    MarketSpec("X"),
    MarketSpec("X", min_qty=2, max_qty=8, min_notional=300),
    MarketSpec("X", max_qty=2**70),
)
# One field away from a plain order: each forces the general path (or is invalid).
VARIANTS: tuple[dict[str, Any], ...] = (
    {"tif": TimeInForce.FOK},
    {"tif": TimeInForce.GTD, "expire_at": 10**9},
    {"expire_at": 10**9},
    {"stp": StpMode.CANCEL_OLDEST},
    {"stp": StpMode.DECREMENT_AND_CANCEL},
    {"post_only": PostOnly.SLIDE},
    {"display_qty": Lots(1)},
    {"stop_price": Ticks(100)},
    {"quote_qty": TickLots(500)},
    {"qty": None},
    {"qty": Lots(0)},
    {"qty": Lots(2**63)},
    {"qty": Lots(2**63 - 1)},
    {"qty": Lots(2**40)},
    {"qty": Lots(2**30)},
    {"qty": True},
    {"price": Ticks(0)},
    {"price": Ticks(2**63)},
    {"price": Ticks(2**63 - 1)},
    {"price": Ticks(2**30)},
    {"price": None},
    {"price": "100"},
    {"id": OrderId("")},
    {"id": 7},
    {"owner": Owner("")},
    {"owner": None},
    {"ts": "1"},
    {"side": "buy"},
    {"kind": OrderKind.STOP_LIMIT},
    {"kind": "limit"},
    {"tif": "gtc"},
    {"stp": None},
)


class GeneralOnly(MatchingEngine):
    """The engine with every new order on the general path."""

    __slots__ = ()

    def _on_new(self, cmd: NewOrder, out: list[Event]) -> None:
        self._on_new_general(cmd, out)


def _new(rng: random.Random, ts: int, live: list[tuple[OrderId, Owner]]) -> NewOrder:
    owner = rng.choice(OWNERS)
    side = rng.choice((Side.BUY, Side.SELL))
    oid = OrderId(f"o{rng.randrange(60)}")  # few ids: duplicates happen
    kind = OrderKind.MARKET if rng.random() < 0.15 else OrderKind.LIMIT
    price = None if kind is OrderKind.MARKET else Ticks(rng.randint(95, 105))
    tif = TimeInForce.IOC if rng.random() < 0.15 else TimeInForce.GTC
    fields: dict[str, Any] = {
        "id": oid,
        "owner": owner,
        "side": side,
        "kind": kind,
        "ts": Millis(ts),
        "qty": Lots(rng.randint(1, 12)),
        "price": price,
        "tif": tif,
    }
    if rng.random() < 0.3:
        fields.update(rng.choice(VARIANTS))
    cmd = NewOrder(**fields)
    live.append((oid, owner))
    return cmd


def _command(rng: random.Random, ts: int, live: list[tuple[OrderId, Owner]]) -> Command:
    r = rng.random()
    if r < 0.65:
        return _new(rng, ts, live)
    if r < 0.9 and live:
        oid, owner = rng.choice(live)
        if rng.random() < 0.1:
            owner = rng.choice(OWNERS)  # not_owner, sometimes
        return Cancel(oid, owner, Millis(ts))
    if r < 0.93:
        return Halt(Millis(ts))
    if r < 0.97:
        return Resume(Millis(ts))
    return Tick(Millis(ts))


@pytest.mark.parametrize("spec", SPECS, ids=("default", "bounded", "huge_max_qty"))
@pytest.mark.parametrize("seed", range(12))
def test_fast_paths_emit_what_the_general_path_emits(spec: MarketSpec, seed: int) -> None:
    rng = random.Random(seed)
    fast = MatchingEngine(spec)
    general = GeneralOnly(spec)
    live: list[tuple[OrderId, Owner]] = []
    for ts in range(400):
        cmd = _command(rng, ts, live)
        assert fast.submit(cmd) == general.submit(cmd), f"command {ts}: {cmd}"
    fast.validate_internal_state()
    assert fast.dump() == general.dump()


def test_fast_path_order_resting_then_swept_gives_the_same_events() -> None:
    """A plain order rests on the fast path; a general-path order takes it, and back."""
    for engine in (MatchingEngine(MarketSpec("X")), GeneralOnly(MarketSpec("X"))):
        a, b = OWNERS[0], OWNERS[1]
        engine.submit(
            NewOrder(OrderId("m"), a, Side.SELL, OrderKind.LIMIT, Millis(1), Lots(5), Ticks(10))
        )
        events = engine.submit_batch(
            [
                NewOrder(
                    OrderId("t"),
                    b,
                    Side.BUY,
                    OrderKind.LIMIT,
                    Millis(2),
                    Lots(2),
                    Ticks(10),
                    stp=StpMode.CANCEL_BOTH,
                ),
                NewOrder(OrderId("u"), b, Side.BUY, OrderKind.MARKET, Millis(3), Lots(9)),
            ]
        )
        assert [type(e).__name__ for e in events] == [
            "Accepted",
            "Fill",
            "Accepted",
            "Fill",
            "Cancelled",
        ]
        assert events[-1].reason == "ioc_remainder"  # type: ignore[union-attr]


@pytest.mark.parametrize("collector_on", [True, False], ids=("gc_on", "gc_off"))
def test_submit_batch_emits_what_submit_emits_and_restores_the_collector(
    collector_on: bool,
) -> None:
    """``submit_batch`` pauses the garbage collector for the batch and restores its state."""
    rng = random.Random(7)
    live: list[tuple[OrderId, Owner]] = []
    commands = [_command(rng, ts, live) for ts in range(400)]
    one_by_one = MatchingEngine(SPECS[0])
    expected = [e for c in commands for e in one_by_one.submit(c)]
    was_on = gc.isenabled()
    if collector_on:
        gc.enable()
    else:
        gc.disable()
    try:
        assert MatchingEngine(SPECS[0]).submit_batch(commands) == expected
        assert gc.isenabled() is collector_on
    finally:
        if was_on:
            gc.enable()
        else:
            gc.disable()
