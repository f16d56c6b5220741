"""Decimal strings at the API edge <-> integer ticks, lots and atoms inside.

The only module of the project that uses `Decimal` (STYLE 3). Every conversion is exact: a
value that does not fall on the market's grid is refused (`invalid_tick`, `invalid_lot`),
never rounded, except a market buy's quote budget, which is rounded down to the market's
notional unit (a budget is a ceiling: rounding down never spends more than was given).

Accepted decimal strings: ASCII digits with at most one `.` and at most `MAX_DIGITS`
digits in all; no sign, no exponent, no `NaN`/`Infinity`, no spaces or underscores.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from actors.engine import MarketSpec
from actors.engine.types import MAX_ATOMS, MAX_INT64_EXCLUSIVE

MAX_DIGITS = 40
"""Longest accepted decimal string, in digits (keeps every conversion cheap and exact)."""

DECIMAL_PATTERN = r"^([0-9]{1,40}|[0-9]+\.[0-9]+)$"
"""The JSON-schema pattern of an amount (also enforced by `parse_decimal`)."""

_DECIMAL_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class UnitError(ValueError):
    """A decimal string cannot be converted; `code` is the API error code.

    Attributes:
        code: Stable error code (`invalid_decimal`, `invalid_tick`, `invalid_lot`, ...).
        field: The request field at fault.
    """

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def parse_decimal(text: str, field: str) -> Decimal:
    """Parse a non-negative decimal string exactly.

    Args:
        text: The string, e.g. `"101.25"`.
        field: The request field, for the error.

    Returns:
        The exact value.

    Raises:
        UnitError: `invalid_decimal` for anything but plain digits with an optional point.
    """
    if not isinstance(text, str) or not _DECIMAL_RE.fullmatch(text):
        raise UnitError("invalid_decimal", field, f"{field} must be a decimal string like 1.25")
    if sum(c.isdigit() for c in text) > MAX_DIGITS:
        raise UnitError("invalid_decimal", field, f"{field} has more than {MAX_DIGITS} digits")
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS + 2
        return Decimal(text)


def _scaled_int(value: Decimal, decimals: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS + decimals + 2
        return value.scaleb(decimals)


def _exact_multiple(atoms: Decimal, unit: int, code: str, field: str, what: str) -> int:
    if atoms != atoms.to_integral_value() or int(atoms) % unit:
        raise UnitError(code, field, f"{field} must be a multiple of the {what}")
    return int(atoms) // unit


def _bounded(value: int, code: str, field: str) -> int:
    if value <= 0:
        raise UnitError(code, field, f"{field} must be greater than zero")
    if value >= MAX_INT64_EXCLUSIVE:
        raise UnitError(code, field, f"{field} is too large")
    return value


def price_to_ticks(spec: MarketSpec, text: str, field: str = "price") -> int:
    """Convert a price (quote units per whole base unit) to ticks.

    Raises:
        UnitError: `invalid_decimal`; `invalid_tick` off the tick grid; `invalid_price`
            for zero or too large.
    """
    atoms = _scaled_int(parse_decimal(text, field), spec.quote_decimals)
    ticks = _exact_multiple(atoms, spec.tick_size, "invalid_tick", field, "tick size")
    return _bounded(ticks, "invalid_price", field)


def qty_to_lots(spec: MarketSpec, text: str, field: str = "qty") -> int:
    """Convert a quantity (whole base units) to lots.

    Raises:
        UnitError: `invalid_decimal`; `invalid_lot` off the lot grid; `invalid_qty` for
            zero or too large.
    """
    atoms = _scaled_int(parse_decimal(text, field), spec.base_decimals)
    lots = _exact_multiple(atoms, spec.lot_size, "invalid_lot", field, "lot size")
    return _bounded(lots, "invalid_qty", field)


def quote_to_tick_lots(spec: MarketSpec, text: str, field: str = "quote_qty") -> int:
    """Convert a quote budget (whole quote units) to tick-lots, rounded down.

    Raises:
        UnitError: `invalid_decimal`; `invalid_qty` when below one tick-lot or too large.
    """
    atoms = _scaled_int(parse_decimal(text, field), spec.quote_decimals)
    if atoms != atoms.to_integral_value():
        raise UnitError("invalid_decimal", field, f"{field} has more decimals than the asset")
    return _bounded(int(atoms) // spec.quote_atoms_per_tick_lot, "invalid_qty", field)


def amount_to_atoms(text: str, decimals: int, field: str = "amount") -> int:
    """Convert an amount of an asset (whole units) to atoms.

    Raises:
        UnitError: `invalid_decimal` when not a decimal string or finer than one atom;
            `invalid_amount` when zero; `amount_too_large` above `MAX_ATOMS` (a u64).
    """
    atoms = _scaled_int(parse_decimal(text, field), decimals)
    if atoms != atoms.to_integral_value():
        raise UnitError("invalid_decimal", field, f"{field} has more than {decimals} decimals")
    if atoms <= 0:
        raise UnitError("invalid_amount", field, f"{field} must be greater than zero")
    if atoms > MAX_ATOMS:
        raise UnitError("amount_too_large", field, f"{field} is more than {MAX_ATOMS} atoms")
    return int(atoms)


def atoms_to_decimal(atoms: int, decimals: int) -> str:
    """Format atoms of an asset as a plain decimal string with exactly `decimals` places."""
    sign = "-" if atoms < 0 else ""
    whole, frac = divmod(abs(int(atoms)), 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}" if decimals else f"{sign}{whole}"


def ticks_to_price(spec: MarketSpec, ticks: int) -> str:
    """Format a price in ticks as quote units per whole base unit."""
    return atoms_to_decimal(ticks * spec.tick_size, spec.quote_decimals)


def lots_to_qty(spec: MarketSpec, lots: int) -> str:
    """Format a quantity in lots as whole base units."""
    return atoms_to_decimal(lots * spec.lot_size, spec.base_decimals)


def tick_lots_to_quote(spec: MarketSpec, tick_lots: int) -> str:
    """Format a notional in tick-lots as whole quote units."""
    return atoms_to_decimal(tick_lots * spec.quote_atoms_per_tick_lot, spec.quote_decimals)


def quote_atoms_to_quote(spec: MarketSpec, atoms: int) -> str:
    """Format quote atoms as whole quote units."""
    return atoms_to_decimal(atoms, spec.quote_decimals)


def percent_change(old: int, new: int) -> str:
    """Return `(new - old) / old * 100` with two decimal places (half-even), e.g. `"-1.25"`."""
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS
        value = Decimal(new - old) * 100 / Decimal(old)
        return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def average_price(spec: MarketSpec, filled_quote_atoms: int, filled_lots: int) -> str | None:
    """Return the average fill price (quote per base unit) of `filled_lots` that cost
    `filled_quote_atoms`, rounded half-even to the quote asset's decimals; None unfilled."""
    if filled_lots <= 0:
        return None
    with localcontext() as ctx:
        ctx.prec = MAX_DIGITS + spec.base_decimals + spec.quote_decimals
        base_atoms = Decimal(filled_lots * spec.lot_size)
        # atoms of quote per atom of base, scaled to quote units per whole base unit
        price = Decimal(filled_quote_atoms) / base_atoms * Decimal(10) ** spec.base_decimals
        value = price.scaleb(-spec.quote_decimals)
        exp = Decimal(1).scaleb(-spec.quote_decimals)
        return str(value.quantize(exp, rounding=ROUND_HALF_EVEN))
