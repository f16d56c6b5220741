"""Read-only views of the book returned by the engine's queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from actors.engine.book import Order
from actors.engine.types import (
    Lots,
    Millis,
    OrderId,
    OrderKind,
    Owner,
    PostOnly,
    Side,
    StpMode,
    Ticks,
    TimeInForce,
)


class L2Level(NamedTuple):
    """One aggregated price level: ``price`` in ticks, visible ``qty`` in lots, order count."""

    price: Ticks
    qty: Lots
    order_count: int


class L2Book(NamedTuple):
    """Aggregated book: bids best (highest) first, asks best (lowest) first."""

    bids: list[L2Level]
    asks: list[L2Level]


OrderStatus = Literal["resting", "pending_stop"]


@dataclass(frozen=True, slots=True)
class OrderView:
    """A snapshot of one live order or pending stop.

    Attributes:
        id: Order id.
        owner: Owner account.
        side: Buy or sell.
        kind: ``limit`` for a resting order (also a triggered stop-limit), else the stop kind.
        status: ``resting`` in the book, or ``pending_stop``.
        price: Limit price in ticks (None for a pending stop-market).
        stop_price: Trigger price in ticks (None unless a stop).
        visible_qty: Queued slice in lots (0 for a pending stop).
        remaining_qty: Whole open quantity in lots (slice + iceberg reserve).
        display_qty: Iceberg slice size in lots, or None.
        tif: Time in force.
        expire_at: GTD expiry in milliseconds, or None.
        post_only: Post-only mode, or None.
        stp: Self-trade prevention mode.
        arrival: Arrival number (queue priority; lower is earlier).
    """

    id: OrderId
    owner: Owner
    side: Side
    kind: OrderKind
    status: OrderStatus
    price: Ticks | None
    stop_price: Ticks | None
    visible_qty: Lots
    remaining_qty: Lots
    display_qty: Lots | None
    tif: TimeInForce
    expire_at: Millis | None
    post_only: PostOnly | None
    stp: StpMode
    arrival: int


def order_view(o: Order, status: OrderStatus) -> OrderView:
    """Return the view of an internal order."""
    return OrderView(
        id=o.id,
        owner=o.owner,
        side=Side.BUY if o.is_buy else Side.SELL,
        kind=o.kind,
        status=status,
        price=None if o.price is None else Ticks(o.price),
        stop_price=None if o.stop_price is None else Ticks(o.stop_price),
        visible_qty=Lots(o.visible if status == "resting" else 0),
        remaining_qty=Lots(o.qty),
        display_qty=Lots(o.display) if o.display else None,
        tif=o.tif,
        expire_at=None if o.expire_at is None else Millis(o.expire_at),
        post_only=o.post_only,
        stp=o.stp,
        arrival=o.arrival,
    )
