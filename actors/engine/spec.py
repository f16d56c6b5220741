"""Market specification and the integer conversions of notional and fees.

Units of a market:

* ``base_decimals`` / ``quote_decimals``: one whole base (quote) unit is
  ``10**base_decimals`` base atoms (``10**quote_decimals`` quote atoms).
* ``lot_size``: base atoms per lot. Order quantities are integer lots.
* ``tick_size``: quote atoms per whole base unit per tick. A price of ``p`` ticks means
  ``p * tick_size`` quote atoms for one whole base unit (``10**base_decimals`` base atoms).
* Notional of a fill of ``q`` lots at ``p`` ticks, in quote atoms::

      p * tick_size * q * lot_size / 10**base_decimals
      = p * q * quote_atoms_per_tick_lot
      where quote_atoms_per_tick_lot = tick_size * lot_size / 10**base_decimals

  The spec is rejected unless ``quote_atoms_per_tick_lot`` is a positive integer, so every
  fill's notional is an exact integer number of quote atoms.
* ``min_qty`` / ``max_qty``: bounds of an order's quantity, in lots (inclusive).
* ``min_notional``: minimum ``price * qty`` of a limit or stop-limit order, in tick-lots.
* Fees are integer basis points of the notional. A positive fee is rounded UP to the next
  quote atom; a negative maker fee (a rebate) is rounded DOWN in magnitude. Both roundings
  favour the venue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.engine.types import MarketStatus, QuoteAtoms, TickLots

BPS_DENOMINATOR = 10_000
MAX_FEE_BPS = 10_000


class InvalidMarketSpecError(ValueError):
    """A market spec field is invalid; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid market spec field {field!r}: {problem}")
        self.field = field


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Static parameters of one market. See the module docstring for units.

    Attributes:
        symbol: Market symbol, e.g. ``"SOL-USDC"``.
        base_asset: Base asset symbol.
        quote_asset: Quote asset symbol.
        base_decimals: Decimals of the base asset (base atoms per unit = 10**base_decimals).
        quote_decimals: Decimals of the quote asset.
        tick_size: Quote atoms per whole base unit per tick.
        lot_size: Base atoms per lot.
        min_qty: Minimum order quantity in lots, or None.
        max_qty: Maximum order quantity in lots, or None.
        min_notional: Minimum limit-order notional in tick-lots, or None.
        maker_fee_bps: Maker fee in basis points; negative is a rebate.
        taker_fee_bps: Taker fee in basis points.
        status: Status the market starts in.
    """

    symbol: str
    base_asset: str = "BASE"
    quote_asset: str = "QUOTE"
    base_decimals: int = 0
    quote_decimals: int = 0
    tick_size: int = 1
    lot_size: int = 1
    min_qty: int | None = None
    max_qty: int | None = None
    min_notional: int | None = None
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0
    status: MarketStatus = MarketStatus.ACTIVE

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def quote_atoms_per_tick_lot(self) -> int:
        """Return the quote atoms of one tick-lot of notional (a positive integer)."""
        return self.tick_size * self.lot_size // _pow10(self.base_decimals)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MarketSpec:
        """Build a spec from a JSON object; only ``symbol`` is required.

        Raises:
            InvalidMarketSpecError: A field is missing, unknown in type, or out of range.
        """
        if not isinstance(d, dict):
            raise InvalidMarketSpecError("<spec>", "must be a JSON object")
        if "symbol" not in d:
            raise InvalidMarketSpecError("symbol", "is required")
        kwargs: dict[str, Any] = {}
        for name in _FIELDS:
            if name in d and d[name] is not None:
                kwargs[name] = d[name]
        status = kwargs.get("status")
        if status is not None:
            try:
                kwargs["status"] = MarketStatus(status)
            except ValueError:
                raise InvalidMarketSpecError("status", f"unknown status {status!r}") from None
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-serialisable dict (inverse of ``from_dict``)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        out["status"] = self.status.value
        return out


_FIELDS = (
    "symbol",
    "base_asset",
    "quote_asset",
    "base_decimals",
    "quote_decimals",
    "tick_size",
    "lot_size",
    "min_qty",
    "max_qty",
    "min_notional",
    "maker_fee_bps",
    "taker_fee_bps",
    "status",
)


def _pow10(n: int) -> int:
    return int(10**n)


def _require_int(name: str, value: object, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidMarketSpecError(name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidMarketSpecError(name, f"must be >= {minimum}, got {value}")


def _validate(spec: MarketSpec) -> None:
    for name in ("symbol", "base_asset", "quote_asset"):
        value = getattr(spec, name)
        if not isinstance(value, str) or not value:
            raise InvalidMarketSpecError(name, "must be a non-empty string")
    if spec.base_asset == spec.quote_asset:
        raise InvalidMarketSpecError("quote_asset", "must differ from base_asset")
    _require_int("base_decimals", spec.base_decimals, 0)
    _require_int("quote_decimals", spec.quote_decimals, 0)
    _require_int("tick_size", spec.tick_size, 1)
    _require_int("lot_size", spec.lot_size, 1)
    _require_int("min_qty", spec.min_qty, 1, optional=True)
    _require_int("max_qty", spec.max_qty, 1, optional=True)
    _require_int("min_notional", spec.min_notional, 1, optional=True)
    _require_int("maker_fee_bps", spec.maker_fee_bps, -MAX_FEE_BPS)
    _require_int("taker_fee_bps", spec.taker_fee_bps, -MAX_FEE_BPS)
    if spec.maker_fee_bps > MAX_FEE_BPS or spec.taker_fee_bps > MAX_FEE_BPS:
        raise InvalidMarketSpecError("taker_fee_bps", f"fees must be <= {MAX_FEE_BPS} bps")
    if spec.taker_fee_bps < 0:
        raise InvalidMarketSpecError("taker_fee_bps", "must not be negative")
    if spec.maker_fee_bps + spec.taker_fee_bps < 0:
        raise InvalidMarketSpecError(
            "maker_fee_bps", "a maker rebate must not exceed the taker fee (venue would pay)"
        )
    if spec.min_qty is not None and spec.max_qty is not None and spec.min_qty > spec.max_qty:
        raise InvalidMarketSpecError("min_qty", "must not exceed max_qty")
    if not isinstance(spec.status, MarketStatus):
        raise InvalidMarketSpecError("status", f"unknown status {spec.status!r}")
    atoms = spec.tick_size * spec.lot_size
    if atoms % _pow10(spec.base_decimals):
        raise InvalidMarketSpecError(
            "tick_size",
            "tick_size * lot_size must be a multiple of 10**base_decimals so that every "
            "notional is an integer number of quote atoms",
        )


def notional_quote_atoms(spec: MarketSpec, price_ticks: int, qty_lots: int) -> QuoteAtoms:
    """Convert a fill's price and quantity to its exact notional in quote atoms.

    Args:
        spec: The market.
        price_ticks: Fill price, in ticks.
        qty_lots: Fill quantity, in lots.

    Returns:
        ``price_ticks * qty_lots * spec.quote_atoms_per_tick_lot`` quote atoms.
    """
    return QuoteAtoms(price_ticks * qty_lots * spec.quote_atoms_per_tick_lot)


def tick_lots_to_quote_atoms(spec: MarketSpec, tick_lots: TickLots | int) -> QuoteAtoms:
    """Convert a notional in tick-lots (``price * qty``) to quote atoms."""
    return QuoteAtoms(tick_lots * spec.quote_atoms_per_tick_lot)


def fee_quote_atoms(spec: MarketSpec, notional: QuoteAtoms | int, bps: int) -> QuoteAtoms:
    """Compute the fee on a notional, rounded in the venue's favour.

    Args:
        spec: The market (kept for future per-market fee rules; unused today).
        notional: Notional in quote atoms (non-negative).
        bps: Fee in basis points; negative is a rebate paid to the trader.

    Returns:
        The fee in quote atoms: ``ceil(notional * bps / 10_000)`` for ``bps >= 0``; for a
        rebate, ``-floor(notional * -bps / 10_000)`` (negative, rounded down in magnitude).
    """
    del spec
    if bps >= 0:
        return QuoteAtoms(-(-notional * bps // BPS_DENOMINATOR))
    return QuoteAtoms(-(notional * -bps // BPS_DENOMINATOR))
