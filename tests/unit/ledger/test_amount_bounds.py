"""Amount bounds: no balance, total, notional, fee or reservation may pass `MAX_ATOMS` (a
u64, what an SPL token amount holds). Credits are refused past the asset's total, orders
and amends past their own terms, before anything is journaled; the rules are tight (the
largest allowed order is allowed, one lot more is not) and, with them, trading at the
extremes never takes a balance out of range."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.engine import Lots, MarketSpec, Millis, NewOrder, OrderId, OrderKind, Owner, Side, Ticks
from actors.engine.types import MAX_ATOMS, MAX_INT64_EXCLUSIVE
from actors.ledger.core import LedgerCore
from actors.ledger.rules import (
    AmountBoundError,
    LedgerInvariantError,
    exceeds_amount_bounds,
    required_reservation,
)
from actors.market.reservations import new_order_too_large
from tests.unit.ledger.ledger_harness import FLOW_SPEC, Desk

INT64_MAX = MAX_INT64_EXCLUSIVE - 1

SPECS = st.builds(
    lambda base_decimals, tick, lot, maker, taker: MarketSpec(
        symbol="P-Q",
        base_asset="P",
        quote_asset="Q",
        base_decimals=base_decimals,
        tick_size=tick * 10**base_decimals,
        lot_size=lot,
        maker_fee_bps=maker,
        taker_fee_bps=taker,
    ),
    st.integers(0, 9),
    st.integers(1, 10**6),
    st.integers(1, 10**6),
    st.integers(-10, 50),
    st.integers(10, 100),
)
PRICES = st.one_of(st.integers(1, 1_000), st.integers(1, INT64_MAX))


def _largest(allowed: object, low: int, high: int) -> int:
    """Return the largest `x` in `[low, high]` with `allowed(x)` (monotone), or `low - 1`."""
    assert callable(allowed)
    if not allowed(low):
        return low - 1
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if allowed(middle) else (low, middle - 1)
    return low


@given(SPECS, PRICES)
def test_the_largest_buy_a_u64_can_lock_is_allowed_and_one_lot_more_is_not(
    spec: MarketSpec, price: int
) -> None:
    def fits(qty: int) -> bool:
        return required_reservation(spec, "buy", "limit", price, qty) <= MAX_ATOMS

    qty = _largest(fits, 1, INT64_MAX)
    if qty >= 1:
        assert not exceeds_amount_bounds(spec, "buy", "limit", price, qty)
    if qty < INT64_MAX:
        assert exceeds_amount_bounds(spec, "buy", "limit", price, qty + 1)


@given(SPECS, PRICES)
def test_a_sell_is_bounded_by_its_base_atoms_and_its_full_notional(
    spec: MarketSpec, price: int
) -> None:
    def fits(qty: int) -> bool:
        notional = price * qty * spec.quote_atoms_per_tick_lot
        return qty * spec.lot_size <= MAX_ATOMS and notional <= MAX_ATOMS

    qty = _largest(fits, 1, INT64_MAX)
    if qty >= 1:
        assert not exceeds_amount_bounds(spec, "sell", "limit", price, qty)
    if qty < INT64_MAX:
        assert exceeds_amount_bounds(spec, "sell", "limit", price, qty + 1)


@given(SPECS)
def test_a_budget_must_fit_a_bigint_and_lock_at_most_a_u64(spec: MarketSpec) -> None:
    def fits(budget: int) -> bool:
        return required_reservation(spec, "buy", "market", None, None, budget) <= MAX_ATOMS

    budget = _largest(fits, 1, INT64_MAX)
    if budget >= 1:
        assert not exceeds_amount_bounds(spec, "buy", "market", None, None, budget)
    assert exceeds_amount_bounds(spec, "buy", "market", None, None, budget + 1)
    assert exceeds_amount_bounds(spec, "buy", "market", None, None, MAX_INT64_EXCLUSIVE)


def _new(side: str, kind: str, price: int | None, qty: int) -> NewOrder:
    return NewOrder(OrderId("o"), Owner("1"), Side(side), OrderKind(kind), Millis(0), Lots(qty),
                    None if price is None else Ticks(price))  # fmt: skip


def test_a_market_buy_whose_protection_budget_overflows_is_too_large() -> None:
    spec = dataclasses.replace(FLOW_SPEC, taker_fee_bps=0, maker_fee_bps=0)
    cmd = _new("buy", "market", None, INT64_MAX)
    assert new_order_too_large(spec, cmd, budget=None) is False  # empty book: locks nothing
    assert new_order_too_large(spec, cmd, budget=MAX_INT64_EXCLUSIVE)  # too big to store


@given(st.integers(1, MAX_ATOMS))
def test_credits_fill_an_asset_up_to_a_u64_and_not_one_atom_more(first: int) -> None:
    core = LedgerCore(0, 1)
    core.credit(1, "Q", first, "a")
    if first < MAX_ATOMS:
        core.credit(2, "Q", MAX_ATOMS - first, "b")
    assert sum(t.credited for t in core.totals().values()) == MAX_ATOMS
    with pytest.raises(AmountBoundError) as refused:
        core.credit(3, "Q", 1, "c")
    assert refused.value.code == "total_too_large"
    with pytest.raises(AmountBoundError) as refused:
        core.credit(3, "P", MAX_ATOMS + 1, "d")
    assert refused.value.code == "amount_too_large"
    assert core.balance(3, "Q") == (0, 0) and core.balance(3, "P") == (0, 0)


def test_a_move_past_a_u64_is_an_invariant_break_not_a_silent_overflow() -> None:
    core = LedgerCore(0, 1)
    core.credit(1, "Q", MAX_ATOMS, "a")
    with pytest.raises(LedgerInvariantError, match="would leave"):
        core._move(1, "Q", 1, 0)
    assert core.balance(1, "Q") == (MAX_ATOMS, 0)


ORDERS = st.lists(
    st.tuples(
        st.integers(1, 2),  # account
        st.sampled_from(["buy", "sell"]),
        st.one_of(st.integers(1, 3), st.integers(1, INT64_MAX)),  # price, ticks
        st.one_of(st.integers(1, 3), st.integers(1, INT64_MAX)),  # qty, lots
    ),
    max_size=25,
)


@settings(max_examples=200)
@given(ORDERS, st.integers(1, MAX_ATOMS - 1))
def test_trading_at_the_extremes_keeps_every_balance_within_a_u64(
    orders: list[tuple[int, str, int, int]], split: int
) -> None:
    desk = Desk(FLOW_SPEC, shard_count=2)
    # The whole u64 of each asset is credited, split between the two accounts.
    for asset in ("P", "Q"):
        desk.fund(1, asset, split)
        desk.fund(2, asset, MAX_ATOMS - split)
    for n, (account, side, price, qty) in enumerate(orders):
        cmd = _new(side, "limit", price, qty)
        if new_order_too_large(FLOW_SPEC, cmd, None):
            continue  # refused before matching, as the market actor does
        desk.place(account, f"o{n}", side, price=price, qty=qty)
    for account in (1, 2):
        for asset in ("P", "Q"):
            available, locked = desk.balance(account, asset)
            assert 0 <= available <= MAX_ATOMS and 0 <= locked <= MAX_ATOMS
    assert all(held == credited for held, credited in desk.conserved().values())


def test_an_amount_bound_error_keeps_its_code_through_pickle() -> None:
    error = pickle.loads(pickle.dumps(AmountBoundError("total_too_large", "full")))
    assert (type(error), error.code, str(error)) == (AmountBoundError, "total_too_large", "full")
