"""Commands the engine accepts: immutable, slotted dataclasses.

Commands are built once per request outside the engine's hot path (by the codec or the
market actor), so the cost of a frozen dataclass ``__init__`` is paid there; the engine only
reads their fields. Every command carries ``ts``, its time in milliseconds: the engine has no
clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.engine.types import (
    Lots,
    Millis,
    OrderId,
    OrderKind,
    Owner,
    PostOnly,
    Side,
    StpMode,
    TickLots,
    Ticks,
    TimeInForce,
)


@dataclass(frozen=True, slots=True)
class NewOrder:
    """Place an order.

    Attributes:
        id: Order id, unique among the market's live orders and pending stops.
        owner: Account placing the order.
        side: Buy or sell.
        kind: Limit, market, stop-limit or stop-market.
        ts: Command time, in milliseconds.
        qty: Open quantity, in lots (absent only for a ``quote_qty`` market buy).
        price: Limit price, in ticks (limit and stop-limit).
        stop_price: Trigger price, in ticks (stops).
        tif: Time in force.
        expire_at: Expiry time for GTD, in milliseconds.
        post_only: Post-only mode, or None.
        display_qty: Iceberg visible slice, in lots, or None.
        quote_qty: Market-buy budget, in tick-lots (``price * qty``), instead of ``qty``.
        stp: Self-trade prevention mode.
    """

    id: OrderId
    owner: Owner
    side: Side
    kind: OrderKind
    ts: Millis
    qty: Lots | None = None
    price: Ticks | None = None
    stop_price: Ticks | None = None
    tif: TimeInForce = TimeInForce.GTC
    expire_at: Millis | None = None
    post_only: PostOnly | None = None
    display_qty: Lots | None = None
    quote_qty: TickLots | None = None
    stp: StpMode = StpMode.NONE


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel a resting order or pending stop of ``owner``."""

    id: OrderId
    owner: Owner
    ts: Millis


@dataclass(frozen=True, slots=True)
class Amend:
    """Change an order's open quantity (lots) and/or limit price (ticks)."""

    id: OrderId
    owner: Owner
    ts: Millis
    qty: Lots | None = None
    price: Ticks | None = None


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Cancel every resting order and pending stop of ``owner``, in arrival order."""

    owner: Owner
    ts: Millis


@dataclass(frozen=True, slots=True)
class Halt:
    """Halt the market: ``new`` and ``amend`` are rejected, cancels still work."""

    ts: Millis


@dataclass(frozen=True, slots=True)
class Resume:
    """Resume a halted market."""

    ts: Millis


@dataclass(frozen=True, slots=True)
class Tick:
    """Advance time only (expires GTD orders)."""

    ts: Millis


@dataclass(frozen=True, slots=True)
class Malformed:
    """A command that could not be decoded; the engine rejects it with ``invalid_command``.

    Attributes:
        id: The command's ``id`` when it was a string, else None.
    """

    id: OrderId | None = None


Command = NewOrder | Cancel | Amend | CancelAll | Halt | Resume | Tick | Malformed
