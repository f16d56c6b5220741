"""Decimal strings <-> ticks, lots and atoms at the API edge (serve_app.units)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.engine import MarketSpec
from actors.engine.types import MAX_ATOMS
from serve_app import units
from serve_app.units import UnitError

# SOL-USDC-like: 9 base decimals, 6 quote decimals, tick 0.01 USDC, lot 0.001 SOL.
SPEC = MarketSpec(
    symbol="SOL-USDC",
    base_asset="SOL",
    quote_asset="USDC",
    base_decimals=9,
    quote_decimals=6,
    tick_size=10_000,
    lot_size=1_000_000,
)
# Integer-unit market: tick and lot of 1 atom, no decimals.
UNIT = MarketSpec(symbol="X")


def _code(call: object, *args: object) -> str:
    with pytest.raises(UnitError) as info:
        call(*args)  # type: ignore[operator]
    return info.value.code


def test_price_on_the_tick_grid_converts_to_ticks() -> None:
    assert units.price_to_ticks(SPEC, "101.25") == 10_125
    assert units.price_to_ticks(SPEC, "101.250000") == 10_125
    assert units.price_to_ticks(SPEC, "0.01") == 1


def test_price_off_the_tick_grid_is_invalid_tick() -> None:
    assert _code(units.price_to_ticks, SPEC, "101.255") == "invalid_tick"
    assert _code(units.price_to_ticks, SPEC, "0.0000001") == "invalid_tick"


def test_zero_price_is_invalid_price() -> None:
    assert _code(units.price_to_ticks, SPEC, "0") == "invalid_price"
    assert _code(units.price_to_ticks, SPEC, "0.00") == "invalid_price"


def test_qty_on_the_lot_grid_converts_to_lots() -> None:
    assert units.qty_to_lots(SPEC, "1.5") == 1_500
    assert units.qty_to_lots(SPEC, "0.001") == 1


def test_qty_off_the_lot_grid_is_invalid_lot() -> None:
    assert _code(units.qty_to_lots, SPEC, "0.0015") == "invalid_lot"


def test_zero_qty_is_invalid_qty() -> None:
    assert _code(units.qty_to_lots, SPEC, "0.000") == "invalid_qty"


def test_values_beyond_int64_are_refused() -> None:
    assert _code(units.qty_to_lots, UNIT, "9223372036854775808") == "invalid_qty"
    assert units.qty_to_lots(UNIT, "9223372036854775807") == 2**63 - 1
    assert _code(units.price_to_ticks, UNIT, "9" * 30) == "invalid_price"


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "-1", "+1", "1e3", "1E3", "NaN", "nan", "Infinity", "inf", "1.", ".5",
     "1_000", "1,5", "0x10", "1.2.3", "١٢", "1" * 41, "0." + "0" * 40 + "1"],
)  # fmt: skip
def test_anything_but_plain_decimal_digits_is_invalid_decimal(text: str) -> None:
    assert _code(units.parse_decimal, text, "price") == "invalid_decimal"


def test_non_string_is_invalid_decimal() -> None:
    assert _code(units.parse_decimal, 1.5, "price") == "invalid_decimal"


def test_quote_budget_is_rounded_down_to_tick_lots() -> None:
    # One tick-lot is 10_000 * 1_000_000 / 10**9 = 10 quote atoms.
    assert SPEC.quote_atoms_per_tick_lot == 10
    assert units.quote_to_tick_lots(SPEC, "1") == 100_000
    assert units.quote_to_tick_lots(SPEC, "0.000019") == 1
    assert _code(units.quote_to_tick_lots, SPEC, "0.000009") == "invalid_qty"
    assert _code(units.quote_to_tick_lots, SPEC, "0.0000001") == "invalid_decimal"


def test_amount_to_atoms_is_exact() -> None:
    assert units.amount_to_atoms("12.345678", 6) == 12_345_678
    assert _code(units.amount_to_atoms, "0.0000001", 6) == "invalid_decimal"
    assert _code(units.amount_to_atoms, "0", 6) == "invalid_amount"


def test_atoms_format_with_the_asset_decimals() -> None:
    assert units.atoms_to_decimal(0, 6) == "0.000000"
    assert units.atoms_to_decimal(1, 6) == "0.000001"
    assert units.atoms_to_decimal(-1_500_000, 6) == "-1.500000"
    assert units.atoms_to_decimal(42, 0) == "42"


def test_ticks_lots_and_notional_format_in_whole_units() -> None:
    assert units.ticks_to_price(SPEC, 10_125) == "101.250000"
    assert units.lots_to_qty(SPEC, 1_500) == "1.500000000"
    assert units.tick_lots_to_quote(SPEC, 100_000) == "1.000000"
    assert units.quote_atoms_to_quote(SPEC, 10) == "0.000010"


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_ticks_round_trip_through_the_price_string(ticks: int) -> None:
    assert units.price_to_ticks(SPEC, units.ticks_to_price(SPEC, ticks)) == ticks


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_lots_round_trip_through_the_qty_string(lots: int) -> None:
    assert units.qty_to_lots(SPEC, units.lots_to_qty(SPEC, lots)) == lots


@given(st.integers(min_value=1, max_value=MAX_ATOMS), st.integers(min_value=0, max_value=18))
def test_atoms_round_trip_through_the_amount_string(atoms: int, decimals: int) -> None:
    assert units.amount_to_atoms(units.atoms_to_decimal(atoms, decimals), decimals) == atoms


@given(st.integers(min_value=MAX_ATOMS + 1, max_value=10**39), st.integers(0, 18))
def test_an_amount_above_a_u64_of_atoms_is_refused(atoms: int, decimals: int) -> None:
    with pytest.raises(units.UnitError) as refused:
        units.amount_to_atoms(units.atoms_to_decimal(atoms, decimals), decimals)
    assert refused.value.code == "amount_too_large"


@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=1, max_value=9_999),
)
def test_a_price_between_two_ticks_is_always_refused(ticks: int, fraction: int) -> None:
    # tick = 10_000 quote atoms; add a fraction of a tick (in atoms) below it.
    text = units.atoms_to_decimal(ticks * SPEC.tick_size + fraction, SPEC.quote_decimals)
    assert _code(units.price_to_ticks, SPEC, text) == "invalid_tick"


def test_percent_change_has_two_places() -> None:
    assert units.percent_change(100, 101) == "1.00"
    assert units.percent_change(300, 299) == "-0.33"
    assert units.percent_change(7, 7) == "0.00"
