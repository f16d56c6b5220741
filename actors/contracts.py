"""Messages between the gateway, the market actors and the ledger shards.

Typed, immutable, picklable, and free of Ray: the actors and `serve_app` import these, the
engine does not. Commands and events cross every boundary as typed records read by
attribute: the gateway sends an `OrderCommand` (the trader's terms; the market adds the
owner and the time), the market answers the engine's own events, and a ledger shard
applies `LedgerEntry`s of them. JSON appears only where bytes leave the process: the
journal's stored form (`actors.journal_codec`), the replay codec and the HTTP views.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from actors.accounts import AccountId
from actors.engine import (
    Event,
    Lots,
    Millis,
    OrderId,
    OrderKind,
    PostOnly,
    Side,
    StpMode,
    TickLots,
    Ticks,
    TimeInForce,
)

JsonDict = dict[str, Any]


def _reduce(self: Any) -> tuple[type, tuple[Any, ...]]:
    """Pickle as `(class, field values)`. The default for frozen slotted dataclasses
    calls `dataclasses.fields()` per object (measured: a third of the cost of sending a
    batch of reservations to a ledger shard); a cached `attrgetter` reads the fields in C."""
    cls = type(self)
    get = _GETTERS.get(cls)
    if get is None:
        get = _GETTERS[cls] = _fields_getter(cls.__slots__)
    return cls, get(self)


def _fields_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) >= 2:
        return operator.attrgetter(*names)
    return lambda obj: tuple(getattr(obj, name) for name in names)


_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Place an order: the engine's `NewOrder` without `owner` and `ts` (prices in ticks,
    quantities in lots, `quote_qty` in tick-lots, times in ms; see `NewOrder`)."""

    id: OrderId
    side: Side
    kind: OrderKind
    qty: Lots | None = None
    price: Ticks | None = None
    stop_price: Ticks | None = None
    tif: TimeInForce = TimeInForce.GTC
    expire_at: Millis | None = None
    post_only: PostOnly | None = None
    display_qty: Lots | None = None
    quote_qty: TickLots | None = None
    stp: StpMode = StpMode.NONE

    __reduce__ = _reduce


@dataclass(frozen=True, slots=True)
class AmendOrder:
    """Change an order's open quantity (lots) and/or limit price (ticks)."""

    id: OrderId
    qty: Lots | None = None
    price: Ticks | None = None

    __reduce__ = _reduce


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel one live order or pending stop."""

    id: OrderId

    __reduce__ = _reduce


@dataclass(frozen=True, slots=True)
class CancelAllOrders:
    """Cancel every live order and pending stop of the account in the market."""

    __reduce__ = _reduce


OrderCommand = PlaceOrder | AmendOrder | CancelOrder | CancelAllOrders
"""A trader's command, as the gateway sends it to a market actor."""


class LedgerEntry(NamedTuple):
    """One journal entry as the ledger shards apply it.

    Attributes:
        seq: The entry's journal seq.
        events: The engine events of its command, in order.
        reservation: The reservation held for the command, None when it reserved nothing.
    """

    seq: int
    events: tuple[Event, ...]
    reservation: Reservation | None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle the events as (class, values) pairs (see `_pack`)."""
        return _ledger_entry, (self.seq, _pack(self.events), self.reservation)


def _ledger_entry(seq: int, events: list[tuple[type, tuple[Any, ...]]], r: Any) -> LedgerEntry:
    return _new_tuple(LedgerEntry, (seq, _unpack(events), r))


_new_tuple = tuple.__new__


def _pack(events: tuple[Event, ...]) -> list[tuple[type, tuple[Any, ...]]]:
    """Return events as (class, values) pairs, which pickle in C. Pickled as they are, the
    engine's NamedTuples each cost two Python calls (`__getnewargs__`, then `__new__` in
    the receiver): measured, 4.3 against 1.7 us per ledger entry to pickle."""
    return [(type(e), tuple(e)) for e in events]


def _unpack(packed: list[tuple[type, tuple[Any, ...]]]) -> tuple[Event, ...]:
    """Rebuild `_pack`ed events (as the engine builds its hottest ones: `tuple.__new__`)."""
    return tuple([_new_tuple(cls, values) for cls, values in packed])


class StaleMarketEpochError(RuntimeError):
    """A ledger shard refused a market actor's incarnation: a newer one took over."""


class UnavailableError(RuntimeError):
    """An actor is running but cannot serve this call now: a market that failed to recover,
    a market whose journal a ledger shard set aside, a shard that cannot load its state.
    Nothing changed; the gateway answers 503 `unavailable` and `/health` says down until an
    operator recovers it (docs/operations.md, "When a market or shard fails")."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One trader command for a market actor.

    Attributes:
        request_id: Idempotency key of this request, unique per account. A retry with the
            same key returns the first result instead of acting twice. For new orders the
            gateway uses the client order id when given.
        account_id: The acting account (its engine owner is `owner_of(account_id)`).
        command: The trader's command; the market actor adds the owner and the time.
        client_order_id: The trader's own id for a new order, unique per account.
        digest: A digest of a new order's terms (the gateway's, market included): a
            request that reuses a client order id or request id with another digest is
            refused (`duplicate_client_order_id`) instead of answered as a retry. None
            compares equal to anything.
    """

    request_id: str
    account_id: AccountId
    command: OrderCommand
    client_order_id: str | None = None
    digest: str | None = None

    __reduce__ = _reduce


@dataclass(frozen=True, slots=True)
class OrderResult:
    """The answer to one `OrderRequest`, sent only after the command is journaled.

    Attributes:
        request_id: The request's idempotency key.
        ok: False when the command was rejected (by the ledger or the engine).
        code: The reject code when not ok: an engine reason (`invalid_price`, ...) or a
            pipeline one (`insufficient_funds`, `market_halted`, `unknown_market`, ...).
        order_id: The order the command concerned, if any.
        seq: Journal sequence number of the command (None if it never reached the journal).
        events: The engine events the command caused, in order.
        duplicate: True when this is the stored answer of an earlier identical request.
        ts_ms: The market's clock when the command was matched, ms since the epoch (the
            order's `created_at` for a new order; None if it never reached the journal).
    """

    request_id: str
    ok: bool
    code: str | None = None
    order_id: str | None = None
    seq: int | None = None
    events: tuple[Event, ...] = ()
    duplicate: bool = False
    ts_ms: int | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle the fields, the events as (class, values) pairs (see `_pack`)."""
        return _order_result, (
            self.request_id, self.ok, self.code, self.order_id, self.seq,
            _pack(self.events), self.duplicate, self.ts_ms,
        )  # fmt: skip


def _order_result(  # noqa: PLR0917 (the fields, in order)
    request_id: str,
    ok: bool,
    code: str | None,
    order_id: str | None,
    seq: int | None,
    events: list[tuple[type, tuple[Any, ...]]],
    duplicate: bool,
    ts_ms: int | None,
) -> OrderResult:
    return OrderResult(request_id, ok, code, order_id, seq, _unpack(events), duplicate, ts_ms)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Funds a ledger shard locks for one order before it is matched.

    Attributes:
        market: Market symbol.
        order_id: The order's id (unique among the market's orders).
        account_id: Owner of the funds.
        asset: Asset symbol locked (quote for buys, base for sells).
        amount_atoms: Atoms to move from available to locked (>= 0).
        side: `buy` or `sell`.
        limit_price_ticks: The order's limit price (None for market orders).
        qty_lots: Open quantity the reservation covers (None for a pure quote budget).
        quote_budget_tick_lots: Market-buy budget in tick-lots, if any.
    """

    market: str
    order_id: str
    account_id: AccountId
    asset: str
    amount_atoms: int
    side: str
    limit_price_ticks: int | None = None
    qty_lots: int | None = None
    quote_budget_tick_lots: int | None = None

    __reduce__ = _reduce

    def to_dict(self) -> JsonDict:
        """Return the reservation as JSON, without the market (as journaled with its
        command: the journal entry names the market)."""
        return {name: getattr(self, name) for name in self.__slots__ if name != "market"}

    @classmethod
    def from_dict(cls, market: str, data: JsonDict) -> Reservation:
        """Return the reservation `to_dict` gave for `market`."""
        return cls(market=market, **data)


@dataclass(frozen=True, slots=True)
class BalanceView:
    """One account's balance of one asset, in atoms."""

    asset: str
    available_atoms: int
    locked_atoms: int

    __reduce__ = _reduce
