"""Which accounts a journal entry concerns, so that its ledger apply goes only to their
shards (docs/ARCHITECTURE.md, "Routed applies").

A ledger shard keeps reservation records only for orders of its own accounts, and an
event about an order changes only the shard that holds that order's record. An entry
therefore concerns the account of its reservation and the owner of every order its events
name. Each owner must be known exactly, from:

- the entry's reservation (its order id and account);
- `accepted` events (`owner`) and `fill` events (`maker_owner`, `taker_owner`);
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

from collections.abc import Mapping
from typing import Any

from actors.contracts import JsonDict, Reservation
from actors.engine import MatchingEngine, OrderId

# The fields of each event type that name an order.
_ORDER_FIELDS: dict[str, tuple[str, ...]] = {
    "accepted": ("id",),
    "rejected": ("id",),
    "fill": ("maker_id", "taker_id"),
    "cancelled": ("id",),
    "amended": ("id",),
    "triggered": ("id",),
    "stp_decrement": ("maker_id", "taker_id"),
    "halted": (),
    "resumed": (),
}


def _account(owner: object) -> int | None:
    """Return the account id of an engine owner (`str(account_id)`), else None (only
    ASCII digits: `int` also reads other scripts' digits, which no account id is)."""
    if isinstance(owner, str) and owner.isascii() and owner.isdigit():
        return int(owner)
    return None


def owners_before(engine: MatchingEngine, cmd: Mapping[str, Any]) -> dict[str, int]:
    """Return {order id: account} for the live order a cancel or an amend names, read from
    the engine before the command runs (empty for other commands, or no such order)."""
    if cmd.get("type") not in ("cancel", "amend"):
        return {}
    oid = cmd.get("id")
    if not isinstance(oid, str):
        return {}
    view = engine.get_order(OrderId(oid))
    account = None if view is None else _account(view.owner)
    return {} if account is None else {oid: account}


def entry_accounts(
    events: list[JsonDict], reservation: Reservation | None, known: Mapping[str, int]
) -> set[int] | None:
    """Return the accounts whose ledger state the entry may change, or None when it may
    change any (an order it names has no known owner): see the module docstring."""
    owners = dict(known)
    accounts: set[int] = set()
    if reservation is not None:
        owners[reservation.order_id] = reservation.account_id
        accounts.add(reservation.account_id)
    for event in events:
        kind = event.get("type")
        if kind == "accepted":
            _learn(owners, event.get("id"), event.get("owner"))
        elif kind == "fill":
            _learn(owners, event.get("maker_id"), event.get("maker_owner"))
            _learn(owners, event.get("taker_id"), event.get("taker_owner"))
    for event in events:
        fields = _ORDER_FIELDS.get(str(event.get("type")))
        if fields is None:
            return None
        for name in fields:
            oid = event.get(name)
            if oid is None:
                continue  # a rejected command that named no order
            owner = owners.get(oid) if isinstance(oid, str) else None
            if owner is None:
                return None
            accounts.add(owner)
    return accounts


def _learn(owners: dict[str, int], oid: object, owner: object) -> None:
    account = _account(owner)
    if isinstance(oid, str) and account is not None:
        owners[oid] = account
