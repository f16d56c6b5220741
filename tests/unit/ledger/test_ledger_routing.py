"""Routed applies (`actors.market.routing`): an entry sent only to the shards of the
accounts it concerns leaves every shard exactly as sending it to every shard does.

The property runs one random order flow through two desks with three shards each: one
sends every entry to every shard, the other routes them. The flow has what makes routing
hard: GTD orders that expire inside other accounts' commands, ticks, stops, self-trade
prevention, cancel-all, and cancels and amends naming other accounts' orders.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_harness import FLOW_SPEC, MARKET_ORDERS, PRICES, QUANTITIES, SIDES, Desk, limit_orders

from actors.contracts import LedgerEntry, Reservation
from actors.engine import Fill
from actors.engine.codec import event_from_dict
from actors.market.ledger_client import MARK_LAG_ENTRIES, plan_apply
from actors.market.routing import entry_accounts

OWNERS = (0, 1, 2, 3, 4)
SHARDS = 3
SPEC = FLOW_SPEC

_limit = limit_orders(["gtc", "ioc", "fok", "gtd"], post_only=st.sampled_from(["reject", "slide"]))
_stop = st.fixed_dictionaries(
    {"side": SIDES, "kind": st.sampled_from(["stop_limit", "stop_market"]), "price": PRICES,
     "stop_price": PRICES, "qty": QUANTITIES}
)  # fmt: skip
_owner = st.sampled_from(OWNERS)
_pick = st.integers(0, 1_000)
_op = st.one_of(
    st.tuples(st.just("new"), _owner, st.one_of(_limit, _limit, _limit, MARKET_ORDERS, _stop)),
    st.tuples(st.just("cancel"), _owner, _pick),  # the owner may not be the order's
    st.tuples(st.just("amend"), _owner, st.tuples(_pick, PRICES, QUANTITIES)),
    st.tuples(st.just("cancel_all"), _owner, st.none()),
    st.tuples(st.just("tick"), st.just(0), st.integers(1, 4)),
)


def _run(desk: Desk, op: tuple[str, int, Any], n: int) -> None:
    kind, owner, arg = op
    if kind == "new":
        fields = dict(arg)
        if fields.get("kind") == "stop_market":
            fields.pop("price")
            if fields["side"] == "buy":  # by quantity it needs a protection budget the desk
                # does not make: a budget buy (as the API allows) instead
                fields["quote_qty"] = fields.pop("qty") * fields["stop_price"]
        if fields.get("tif") == "gtd":
            fields["expire_at"] = desk.ts + 1 + n % 4
        desk.place(owner, f"o{n}", **fields)
    elif kind == "cancel_all":
        desk.submit({"type": "cancel_all", "owner": str(owner)})
    elif kind == "tick":
        desk.ts += arg
        desk.submit({"type": "tick"})
    else:
        live = desk.engine.l3() + desk.engine.stops()
        oid = live[(arg if kind == "cancel" else arg[0]) % len(live)].id if live else f"o{n}"
        if kind == "cancel":
            desk.cancel(owner, oid)
        else:
            desk.amend(owner, oid, arg[1], arg[2])


def _state(desk: Desk) -> list[Any]:
    out = []
    for shard in desk.shards:
        records = sorted(shard.records(), key=lambda r: (r.market, r.order_id))
        balances = [shard.balances(a) for a in OWNERS if shard.owns(a)]
        out.append((records, shard.totals(), balances, shard.mark(SPEC.symbol)))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(_op, min_size=20, max_size=80),
    funds=st.lists(st.integers(0, 30_000), min_size=10, max_size=10),
)
def test_routed_applies_leave_every_shard_as_broadcast_ones_do(
    ops: list[tuple[str, int, Any]], funds: list[int]
) -> None:
    broadcast = Desk(SPEC, shard_count=SHARDS)
    routed = Desk(SPEC, shard_count=SHARDS, routed=True)
    for desk in (broadcast, routed):
        for owner in OWNERS:
            for asset, amount in zip(("P", "Q"), funds[2 * owner : 2 * owner + 2], strict=True):
                if amount:
                    desk.fund(owner, asset, amount)
    for n, op in enumerate(ops):
        for desk in (broadcast, routed):
            _run(desk, op, n)
        assert broadcast.events == routed.events
        assert _state(routed) == _state(broadcast), (n, op, broadcast.events)
    for owner in OWNERS:
        for desk in (broadcast, routed):
            desk.submit({"type": "cancel_all", "owner": str(owner)})
        assert _state(routed) == _state(broadcast)


def test_routing_reaches_only_the_shards_concerned() -> None:
    desk = Desk(SPEC, shard_count=SHARDS, routed=True)
    for owner in (0, 1):
        desk.fund(owner, "Q", 10_000)
        desk.fund(owner, "P", 1_000)
    desk.place(0, "a", "sell", price=100, qty=3)  # rests: its owner's shard only
    desk.place(1, "b", "buy", price=100, qty=1)  # fills owner 0's order: both shards
    desk.cancel(0, "a")  # the target's owner was read before the cancel: one shard
    desk.place(0, "g", "sell", price=101, qty=1, tif="gtd", expire_at=desk.ts + 2)
    desk.ts += 5
    desk.submit({"type": "tick"})  # expiry of an order no event gives the owner of: all
    assert desk.reached == [1, 2, 1, 1, SHARDS]
    assert all(shard.mark(SPEC.symbol) == desk.journal_seq for shard in desk.shards)


def _fill(maker: str, taker: str, maker_owner: str, taker_owner: str) -> Fill:
    return event_from_dict({"type": "fill", "seq": 2, "maker_id": maker, "taker_id": taker,
                            "maker_owner": maker_owner, "taker_owner": taker_owner,
                            "price": 100, "qty": 1, "taker_side": "buy"})  # type: ignore[return-value]  # fmt: skip


class _Novel(NamedTuple):
    """An event type routing does not list."""

    seq: int
    id: str


def test_entry_accounts_learns_owners_from_the_entry_and_gives_up_on_strangers() -> None:
    reservation = Reservation("P-Q", "t", 7, "Q", 100, "buy", 100, 2)
    accepted = event_from_dict({"type": "accepted", "seq": 1, "id": "t", "owner": "7",
                                "side": "buy", "kind": "limit"})  # fmt: skip
    # The taker's IOC remainder: its owner comes from the fill, the maker's too.
    remainder = event_from_dict({"type": "cancelled", "seq": 3, "id": "t",
                                 "reason": "ioc_remainder", "remaining_qty": 1})  # fmt: skip
    events = [accepted, _fill("m", "t", "9", "7"), remainder]
    assert entry_accounts(events, reservation, {}) == {7, 9}
    # A cancel whose target the engine showed before the command ran.
    cancel = [event_from_dict({"type": "cancelled", "seq": 4, "id": "x", "reason": "user",
                               "remaining_qty": 1})]  # fmt: skip
    assert entry_accounts(cancel, None, {"x": 3}) == {3}
    # The same cancel with no known owner (an expiry on the way): every account.
    assert entry_accounts(cancel, None, {}) is None
    # An event type routing does not know, or an owner that is not an account id.
    assert entry_accounts([_Novel(5, "x")], None, {"x": 3}) is None  # type: ignore[list-item]
    assert entry_accounts([_fill("m", "t", "mm", "7")], None, {}) is None
    assert entry_accounts([_fill("m", "t", "\u0663", "7")], None, {}) is None  # an Arabic 3
    # A command rejected before naming any order, and a halt: nobody.
    invalid = event_from_dict({"type": "rejected", "seq": 6, "id": None,
                               "reason": "invalid_command"})  # fmt: skip
    assert entry_accounts([invalid], None, {}) == set()
    assert entry_accounts([event_from_dict({"type": "halted", "seq": 7})], None, {}) == set()


def test_plan_apply_vouches_for_each_shards_range_and_moves_lagging_marks() -> None:
    entry = lambda seq: LedgerEntry(seq, (), None)  # noqa: E731
    complete = {0: 10, 1: 10, 2: 10}
    plan = plan_apply([entry(11), entry(12)], [{0}, None], 3, complete)
    assert [(s, [e[0] for e in b], since, through) for s, b, since, through in plan] == [
        (0, [11, 12], 10, 12), (1, [12], 10, 12), (2, [12], 10, 12),
    ]  # fmt: skip
    plan = plan_apply([entry(13)], [{1}], 3, complete)
    assert [(s, since, through) for s, _, since, through in plan] == [(1, 12, 13)]
    assert complete == {0: 12, 1: 13, 2: 12}
    # Shards that no entry concerned for long get an empty call that moves their mark.
    far = 12 + MARK_LAG_ENTRIES
    plan = plan_apply([entry(far)], [{1}], 3, complete)
    assert [(s, len(b), since) for s, b, since, _ in plan] == [(0, 0, 12), (1, 1, 13), (2, 0, 12)]
    # Before the shards' marks are known (no sync yet), a call vouches for nothing.
    plan = plan_apply([entry(5)], [{0}], 3, {})
    assert [(s, since, through) for s, _, since, through in plan] == [(0, 5, 5)]
