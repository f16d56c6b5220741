"""Holds (reservations in memory) and the rebuild of a shard from its persisted state plus
the journals, which is what a shard restart does."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_harness import SPEC, Desk
from test_ledger_properties import OWNERS, _op, _run

from actors.contracts import Reservation
from actors.engine import (
    Accepted,
    Amended,
    Cancelled,
    CancelReason,
    Lots,
    MarketSpec,
    OrderId,
    OrderKind,
    Owner,
    Side,
    Ticks,
)
from actors.ledger.core import Changes, LedgerCore
from actors.ledger.holds import StaleMarketEpochError
from actors.ledger.rules import Key, LedgerInvariantError, OrderReservation


def _funded(atoms: int = 100) -> LedgerCore:
    core = LedgerCore()
    core.credit(1, "Q", atoms, "dep-1")
    core.take_changes()
    return core


def _accepted(oid: str, seq: int = 1) -> Accepted:
    return Accepted(seq, OrderId(oid), Owner("1"), Side.BUY, OrderKind.LIMIT)


def _cancelled(oid: str, seq: int) -> Cancelled:
    return Cancelled(seq, OrderId(oid), CancelReason.USER, Lots(0))


def _buy(oid: str, atoms: int, market: str = "B-Q", account: int = 1) -> Reservation:
    return Reservation(market, oid, account, "Q", atoms, "buy", 1, atoms)


def test_a_hold_sets_funds_aside_in_memory_only() -> None:
    core = _funded()
    assert core.hold(_buy("o1", 60))
    assert core.balance(1, "Q") == (40, 60)
    assert core.durable_balance(1, "Q") == (100, 0)
    assert not core.hold(_buy("o2", 41))  # 40 left to hold
    assert core.hold(_buy("o1", 60))  # a retry: the same hold
    assert core.balance(1, "Q") == (40, 60)
    assert core.take_changes() == Changes()  # nothing to persist
    totals = core.totals()["Q"]
    assert (totals.available, totals.locked, totals.credited) == (40, 60, 100)


def test_holdings_count_a_hold_once_as_the_accounts_balance() -> None:
    core = _funded()
    assert core.hold(_buy("o1", 60))
    holdings = core.holdings()
    assert holdings.accounts == {(1, "Q"): 100}
    assert (holdings.totals["Q"].available, holdings.totals["Q"].locked) == (40, 60)


def test_the_journal_entry_makes_a_hold_durable() -> None:
    core = _funded()
    r = _buy("o1", 60)
    assert core.hold(r)
    spec = dataclasses.replace(SPEC, symbol="B-Q")
    moves = core.apply_events(spec, "B-Q", 1, [_accepted("o1")], r)
    assert [(m.available_delta_atoms, m.locked_delta_atoms) for m in moves] == [(-60, 60)]
    assert len(core.holds) == 0
    assert core.balance(1, "Q") == core.durable_balance(1, "Q") == (40, 60)
    record = core.reservation("B-Q", "o1")
    assert record is not None and record.accepted and record.reserved_atoms == 60
    assert core.take_changes().balances == [(1, "Q", 40, 60)]


def test_a_reservation_whose_hold_was_lost_is_taken_from_the_journal() -> None:
    core = _funded()
    spec = dataclasses.replace(SPEC, symbol="B-Q")
    core.apply_events(spec, "B-Q", 1, [], _buy("o1", 60))  # no hold: a restarted shard
    assert core.durable_balance(1, "Q") == (40, 60)


def test_holds_of_another_accounts_order_are_refused() -> None:
    core = _funded()
    core.credit(2, "Q", 100, "dep-2")
    spec = dataclasses.replace(SPEC, symbol="B-Q")
    core.apply_events(spec, "B-Q", 1, [], _buy("o1", 10))
    assert not core.hold(_buy("o1", 20, account=2))
    assert core.balance(2, "Q") == (100, 0)


def test_a_recovered_market_releases_the_holds_of_its_dead_incarnations() -> None:
    core = _funded()
    assert core.hold(_buy("a", 10), market_epoch=1)
    assert core.hold(_buy("b", 20, market="X-Q"), market_epoch=1)
    assert core.hold(_buy("c", 30), market_epoch=2)
    assert core.holds.release_market("B-Q", 2) == 1
    assert core.balance(1, "Q") == (50, 50)  # b (other market) and c (epoch 2) stay
    with pytest.raises(StaleMarketEpochError):
        core.hold(_buy("d", 1), market_epoch=1)
    assert core.hold(_buy("d", 1), market_epoch=3)


def test_an_amend_shortfall_does_not_take_held_funds() -> None:
    core = _funded(100)
    spec = dataclasses.replace(SPEC, symbol="B-Q", lot_size=1, maker_fee_bps=0, taker_fee_bps=0)
    r = Reservation("B-Q", "o1", 1, "Q", 10, "buy", 1, 10)
    core.apply_events(spec, "B-Q", 1, [_accepted("o1")], r)
    assert core.hold(_buy("o2", 90))  # nothing left to spend
    amended = Amended(2, OrderId("o1"), Ticks(2), Lots(10), False)
    with pytest.raises(LedgerInvariantError, match="not pre-reserved"):
        core.apply_events(spec, "B-Q", 2, [amended])


def test_replaying_markets_out_of_order_may_dip_below_zero_on_the_way() -> None:
    spec = dataclasses.replace(SPEC, symbol="B-Q")
    other = dataclasses.replace(SPEC, symbol="X-Q")
    first = _funded(100)
    # X-Q's order held 100 and was cancelled; then B-Q held the freed 100.
    first.apply_events(other, "X-Q", 1, [_accepted("x")], _buy("x", 100, "X-Q"))
    durable = first.take_changes()
    first.apply_events(other, "X-Q", 2, [_cancelled("x", 2)])
    first.apply_events(spec, "B-Q", 1, [], _buy("b", 100))
    journals = {"B-Q": [(1, [], _buy("b", 100))],
                "X-Q": [(2, [_cancelled("x", 2)], None)]}  # fmt: skip
    for replaying in (False, True):
        core = _rebuilt({"": durable}, {})
        core.replaying = replaying
        if not replaying:  # B-Q first: 100 more locked before X-Q frees them
            with pytest.raises(LedgerInvariantError, match="would leave"):
                _replay(core, journals, {"B-Q": spec, "X-Q": other})
            continue
        _replay(core, journals, {"B-Q": spec, "X-Q": other})
        core.check_balances()
        assert core.durable_balance(1, "Q") == first.durable_balance(1, "Q") == (0, 100)


# -- property: a shard rebuilt from any persisted cut plus the journals is the live shard ----


class _Persisted:
    """What `store.save` keeps of one shard, absorbed change set by change set."""

    def __init__(self) -> None:
        self.balances: dict[tuple[int, str], tuple[int, int]] = {}
        self.fees: dict[str, int] = {}
        self.records: dict[Key, OrderReservation] = {}
        self.credited: dict[str, int] = {}
        self.debited: dict[str, int] = {}
        self.marks: dict[str, int] = {}

    def absorb(self, changes: Changes) -> None:
        for _, _, asset, amount in changes.credits:
            self.credited[asset] = self.credited.get(asset, 0) + amount
        for _, _, asset, amount in changes.debits:
            self.debited[asset] = self.debited.get(asset, 0) + amount
        for account, asset, available, locked in changes.balances:
            self.balances[(account, asset)] = (available, locked)
        self.fees.update(dict(changes.fees))
        for key in changes.dropped:
            self.records.pop(key, None)
        for record in changes.reservations:
            self.records[(record.market, record.order_id)] = dataclasses.replace(record)
        self.marks.update(dict(changes.marks))


def _rebuilt(cuts: dict[str, Changes], persisted: dict[int, _Persisted], shard: int = 0,
             count: int = 1) -> LedgerCore:  # fmt: skip
    store = persisted.get(shard) or _Persisted()
    for changes in cuts.values():
        store.absorb(changes)
    core = LedgerCore(shard, count)
    for (account, asset), (available, locked) in store.balances.items():
        core.load_balance(account, asset, available, locked)
    for asset, amount in store.fees.items():
        core.load_fees(asset, amount)
    for asset, amount in store.credited.items():
        core.load_credited(asset, amount)
    for asset, amount in store.debited.items():
        core.load_debited(asset, amount)
    for record in store.records.values():
        core.load_reservation(dataclasses.replace(record))
    for market, seq in store.marks.items():
        core.load_mark(market, seq)
    return core


def _replay(core: LedgerCore, journals: dict[str, Any], specs: dict[str, MarketSpec]) -> None:
    for market in sorted(journals):  # one market after the other, as recovery does
        for seq, events, reservation in journals[market]:
            core.apply_events(specs[market], market, seq, events, reservation)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(st.tuples(st.booleans(), _op, st.booleans()), min_size=10, max_size=50),
    funds=st.lists(st.integers(500, 30_000), min_size=8, max_size=8),
)
def test_rebuild_from_any_persisted_cut_and_the_journals_gives_the_live_state(
    ops: list[tuple[bool, tuple[str, int, Any], bool]], funds: list[int]
) -> None:
    a = Desk(dataclasses.replace(SPEC, symbol="A-Q"), shard_count=2)
    b = Desk(dataclasses.replace(SPEC, symbol="B-Q"), shard_count=2)
    b.shards = a.shards  # two markets, one ledger
    for owner in OWNERS:
        a.fund(owner, "B", funds[2 * owner])
        a.fund(owner, "Q", funds[2 * owner + 1])
    persisted = {i: _Persisted() for i in range(2)}
    for i, shard in enumerate(a.shards):  # credits are written before they are answered
        persisted[i].absorb(shard.take_changes())
    for n, (on_b, op, cut) in enumerate(ops):
        _run(b if on_b else a, op, n)
        if cut or op[0] == "withdraw":  # the writer ran (a debit is written before its answer)
            for i, shard in enumerate(a.shards):
                persisted[i].absorb(shard.take_changes())
    specs = {"A-Q": a.spec, "B-Q": b.spec}
    for i, live in enumerate(a.shards):
        core = _rebuilt({}, persisted, i, 2)
        core.replaying = True
        marks = {m: core.mark(m) for m in specs}
        _replay(core, {"A-Q": [e for e in a.journal if e[0] > marks["A-Q"]],
                       "B-Q": [e for e in b.journal if e[0] > marks["B-Q"]]}, specs)  # fmt: skip
        core.check_balances()
        assert len(live.holds) == 0
        assert core.totals() == live.totals()
        for owner in OWNERS:
            assert core.balances(owner) == live.balances(owner)
        assert sorted(map(repr, core.records())) == sorted(map(repr, live.records()))
