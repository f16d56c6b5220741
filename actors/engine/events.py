"""Events the engine emits: immutable named tuples carrying a gap-free per-market ``seq``.

Why NamedTuple and not ``@dataclass(frozen=True, slots=True)``: events are created in the
matching hot path (one ``accepted`` per order, one ``fill`` per maker met). Measured on
CPython 3.11 for an 8-field record, a frozen slotted dataclass costs about 2.8 us to build
(its ``__init__`` goes through ``object.__setattr__`` per field), a NamedTuple about 0.8 us and
a plain mutable dataclass 0.6 us. NamedTuples are just as immutable, compare and hash by
value, and pickle compactly for Ray, so they are the events' type.

Prices are in ticks, quantities in lots, ``remaining_quote_qty`` in tick-lots.
"""

from __future__ import annotations

from typing import NamedTuple

from actors.engine.types import (
    CancelReason,
    Lots,
    OrderId,
    OrderKind,
    Owner,
    RejectReason,
    Side,
    TickLots,
    Ticks,
)


class Accepted(NamedTuple):
    """An order (or stop) passed validation."""

    seq: int
    id: OrderId
    owner: Owner
    side: Side
    kind: OrderKind


class Rejected(NamedTuple):
    """A command changed nothing; ``id`` is the command's id when it had a string one."""

    seq: int
    id: OrderId | None
    reason: RejectReason


class Fill(NamedTuple):
    """A trade of ``qty`` lots at the maker's ``price`` in ticks."""

    seq: int
    maker_id: OrderId
    taker_id: OrderId
    maker_owner: Owner
    taker_owner: Owner
    price: Ticks
    qty: Lots
    taker_side: Side


class Cancelled(NamedTuple):
    """Open quantity was removed.

    ``remaining_qty`` is the open quantity removed, in lots (iceberg: with reserve).
    ``remaining_quote_qty`` is the unspent budget of a ``quote_qty`` market buy, in
    tick-lots, and None for every other order.
    """

    seq: int
    id: OrderId
    reason: CancelReason
    remaining_qty: Lots
    remaining_quote_qty: TickLots | None = None


class Amended(NamedTuple):
    """An order was amended; ``price`` (ticks, None for a stop-market) and ``qty`` (lots)."""

    seq: int
    id: OrderId
    price: Ticks | None
    qty: Lots
    priority_kept: bool


class Triggered(NamedTuple):
    """A stop order became live."""

    seq: int
    id: OrderId


class StpDecrement(NamedTuple):
    """Decrement-and-cancel removed ``qty`` lots from both orders without a trade."""

    seq: int
    maker_id: OrderId
    taker_id: OrderId
    qty: Lots


class Halted(NamedTuple):
    """The market was halted."""

    seq: int


class Resumed(NamedTuple):
    """The market was resumed."""

    seq: int


Event = (
    Accepted | Rejected | Fill | Cancelled | Amended | Triggered | StpDecrement | Halted | Resumed
)

EVENT_TYPE_NAMES: dict[type, str] = {
    Accepted: "accepted",
    Rejected: "rejected",
    Fill: "fill",
    Cancelled: "cancelled",
    Amended: "amended",
    Triggered: "triggered",
    StpDecrement: "stp_decrement",
    Halted: "halted",
    Resumed: "resumed",
}
"""The replay format's ``type`` of each event class."""
