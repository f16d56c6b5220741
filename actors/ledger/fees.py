"""The fee of a fill: one function, over one kind of state, for the market and the ledger.

Fees are charged on an order's cumulative notional (`actors.ledger.rules`): each order has
a fee numerator, the sum of `notional * bps` over its fills (bps of its role in each), and
a fill charges `ceil(after / 10^4) - ceil(before / 10^4)`. `charge_fill` is the only code
that computes a fill's fees. It reads and advances the numerators through `FeeNumerators`:
the market keeps them in a `FeeCounts` (every live order; the fees then travel on the
committed entries, so no consumer counts again), a ledger shard in the reservation records
of its own orders (persisted with them; a side held elsewhere is not charged here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

from actors.engine import Accepted, Cancelled, Event, Fill, MarketSpec, notional_quote_atoms
from actors.ledger.rules import Key, OrderReservation, fill_fee_atoms


class FillFees(NamedTuple):
    """A fill's notional and each side's fee, in quote atoms (a negative fee: a rebate)."""

    notional_atoms: int
    maker_fee_atoms: int
    taker_fee_atoms: int


class FeeNumerators(Protocol):
    """The per-order fee numerators `charge_fill` reads and advances."""

    def numerator(self, order_id: str) -> int | None:
        """Return the order's numerator, None when the order is not counted here."""

    def set_numerator(self, order_id: str, numerator: int) -> None:
        """Store the order's numerator after a fill."""


def charge_fill(spec: MarketSpec, fill: Fill, counts: FeeNumerators) -> FillFees:
    """Charge a fill to both orders (maker, then taker) on their cumulative notional.

    A side whose order `counts` does not count is charged nothing here (its fee is 0 in
    the result): another ledger shard charges it.
    """
    notional = int(notional_quote_atoms(spec, fill.price, fill.qty))
    fees = [0, 0]
    for side, (order_id, bps) in enumerate(
        ((fill.maker_id, spec.maker_fee_bps), (fill.taker_id, spec.taker_fee_bps))
    ):
        before = counts.numerator(order_id)
        if before is not None:
            fees[side], after = fill_fee_atoms(before, notional, bps)
            counts.set_numerator(order_id, after)
    return FillFees(notional, fees[0], fees[1])


class FeeCounts:
    """The numerators of a market's live orders (the market actor's fee state).

    Args:
        numerators: Order id -> numerator, as `as_dict` gave them (a snapshot).
    """

    __slots__ = ("_leaving", "_numerators")

    def __init__(self, numerators: dict[str, int] | None = None) -> None:
        self._numerators = dict(numerators or {})
        # Orders the events charged since the last `prune` named in a fill or a cancel:
        # every way out of the book does, so only these may have left it.
        self._leaving: list[str] = []

    def numerator(self, order_id: str) -> int:
        """Return the order's numerator (0 before its first fill)."""
        return self._numerators.get(order_id, 0)

    def set_numerator(self, order_id: str, numerator: int) -> None:
        """Store the order's numerator after a fill."""
        self._numerators[order_id] = numerator

    def forget(self, order_id: str) -> None:
        """Drop an order's numerator (it left the book, or its id starts a new order)."""
        self._numerators.pop(order_id, None)

    def charge_events(self, spec: MarketSpec, events: Iterable[Event]) -> tuple[FillFees, ...]:
        """Charge a command's fills, in order; return their fees (one per `Fill`).

        An accepted order starts at 0: the engine lets a new order reuse the id of one that
        left the book.
        """
        fees: list[FillFees] = []
        for e in events:
            if isinstance(e, Fill):
                fees.append(charge_fill(spec, e, self))
                self._leaving += (e.maker_id, e.taker_id)
            elif isinstance(e, Accepted):
                self._numerators.pop(e.id, None)
            elif isinstance(e, Cancelled):
                self._leaving.append(e.id)
        return tuple(fees)

    def prune(self, live: Callable[[str], bool], everyone: bool = False) -> None:
        """Forget the numerators of orders no longer `live`: of those charged or cancelled
        since the last prune, or of `everyone` (after a replay)."""
        numerators = self._numerators
        candidates = list(numerators) if everyone else self._leaving
        for oid in candidates:
            if oid in numerators and not live(oid):
                del numerators[oid]
        self._leaving = []

    def as_dict(self) -> dict[str, int]:
        """Return a copy of every numerator (for a snapshot)."""
        return dict(self._numerators)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._numerators

    def __len__(self) -> int:
        return len(self._numerators)


class RecordFees:
    """The fee numerators of one market's orders held on a ledger shard (`charge_fill`'s
    state there: each lives in its order's reservation record)."""

    __slots__ = ("_market", "_records")

    def __init__(self, records: dict[Key, OrderReservation], market: str) -> None:
        self._records = records
        self._market = market

    def numerator(self, order_id: str) -> int | None:
        """Return the order's fee numerator, or None if it has no record here."""
        record = self._records.get((self._market, order_id))
        return None if record is None else record.fee_numerator

    def set_numerator(self, order_id: str, numerator: int) -> None:
        """Store the order's new fee numerator."""
        self._records[(self._market, order_id)].fee_numerator = numerator
