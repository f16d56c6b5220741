"""Which accounts a journal entry concerns, so that its ledger apply goes only to their
shards (docs/ARCHITECTURE.md, "Routed applies").

A ledger shard keeps reservation records only for orders of its own accounts, and an
event about an order changes only the shard that holds that order's record. An entry
therefore concerns the account of its reservation and the owner of every order its events
name. Each owner must be known exactly, from:

- the entry's reservation (its order id and account);
- `Accepted` events (`owner`) and `Fill` events (`maker_owner`, `taker_owner`);
- `known`: the engine's view, taken just before the command ran, of the order the command
  names (`owners_before`: a cancel's or an amend's target).

When an event names an order whose owner none of these gives, the entry concerns every
account (None): a GTD order that expired on the way, a maker cancelled by self-trade
prevention, a stop triggered without a fill, the orders of a `cancel_all`. So does an
event type this module does not list. Within one entry an order id names one order: ids
are unique among live orders, and an entry names no order that had left the book before
its command ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from actors.accounts import AccountId, account_of
from actors.contracts import Reservation
from actors.engine import (
    Accepted,
    Amend,
    Amended,
    Cancel,
    Cancelled,
    Command,
    Event,
    Fill,
    Halted,
    MatchingEngine,
    OrderId,
    Rejected,
    Resumed,
    StpDecrement,
    Triggered,
)

Owners = Mapping[str, AccountId]
"""Order id -> the account that owns it."""


def _named(event: Event) -> tuple[str | None, ...] | None:
    """Return the order ids an event names, None for an event type not listed here."""
    kind = type(event)
    if kind is Fill or kind is StpDecrement:
        return (event.maker_id, event.taker_id)  # type: ignore[union-attr]
    if kind in _ONE_ORDER:
        return (event.id,)  # type: ignore[union-attr]
    return () if kind is Halted or kind is Resumed else None


_ONE_ORDER = (Accepted, Rejected, Cancelled, Amended, Triggered)


def owners_before(engine: MatchingEngine, command: Command) -> dict[str, AccountId]:
    """Return {order id: account} for the live order a cancel or an amend names, read from
    the engine before the command runs (empty for other commands, or no such order)."""
    if type(command) is not Cancel and type(command) is not Amend:
        return {}
    view = engine.get_order(OrderId(command.id))
    account = None if view is None else account_of(view.owner)
    return {} if account is None else {command.id: account}


def entry_accounts(
    events: Sequence[Event], reservation: Reservation | None, known: Owners
) -> set[AccountId] | None:
    """Return the accounts whose ledger state the entry may change, or None when it may
    change any (an order it names has no known owner): see the module docstring."""
    owners = dict(known)
    accounts: set[AccountId] = set()
    if reservation is not None:
        owners[reservation.order_id] = reservation.account_id
        accounts.add(reservation.account_id)
    for event in events:
        if type(event) is Accepted:
            _learn(owners, event.id, event.owner)
        elif type(event) is Fill:
            _learn(owners, event.maker_id, event.maker_owner)
            _learn(owners, event.taker_id, event.taker_owner)
    for event in events:
        named = _named(event)
        if named is None:
            return None
        for oid in named:
            if oid is None:
                continue  # a rejected command that named no order
            owner = owners.get(oid)
            if owner is None:
                return None
            accounts.add(owner)
    return accounts


def _learn(owners: dict[str, AccountId], oid: str, owner: str) -> None:
    account = account_of(owner)
    if account is not None:
        owners[oid] = account
