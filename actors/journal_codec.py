"""The journal's stored form: where a journal entry's typed records become JSON and back.

A `journal` row's payload (JSONB) holds `request_id`, `account_id`, `client_order_id`,
`command` (the engine command in the replay codec's form, owner and time included),
`events` (codec form), and, when set, `digest` (the new order's terms) and `reservation`
(`Reservation.to_dict`). Every journal written so far has this form, and the readers here
take rows without the optional keys (journaled before they existed). The market actor
writes and replays it, and a ledger shard catches up from it; nothing else reads JSON of
the journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from actors.accounts import AccountId
from actors.contracts import JsonDict, LedgerEntry, Reservation
from actors.engine import Cancel, Command, Event, NewOrder, TimeInForce
from actors.engine.codec import command_from_dict, command_to_dict, event_from_dict, event_to_dict
from actors.engine.types import StpMode


def encode_payload(  # noqa: PLR0917 (the payload's fields, in its order)
    request_id: str,
    account_id: AccountId | None,
    client_order_id: str | None,
    command: Command,
    events: Sequence[Event],
    reservation: Reservation | None = None,
    digest: str | None = None,
) -> JsonDict:
    """Return the payload of one journal row."""
    payload: JsonDict = {
        "request_id": request_id,
        "account_id": account_id,
        "client_order_id": client_order_id,
        "command": _new_order(command)
        if isinstance(command, NewOrder)
        else encode_command(command),
        "events": [event_to_dict(e) for e in events],
    }
    if digest is not None:
        payload["digest"] = digest
    if reservation is not None:
        payload["reservation"] = reservation.to_dict()
    return payload


def encode_command(command: Command) -> JsonDict:
    """Return `command_to_dict(command)`, written out for the two commands of the hot path
    (a generic encode costs several µs per order; the result is the same)."""
    kind = type(command)
    if kind is NewOrder:
        return _new_order(command)  # type: ignore[arg-type]
    if kind is Cancel:
        return {"type": "cancel", "id": command.id, "owner": command.owner, "ts": command.ts}  # type: ignore[union-attr]
    return command_to_dict(command)


def _new_order(c: NewOrder) -> JsonDict:
    # Written out, in the command's field order: one dict per order on the market's hot
    # path. `_value_` reads a member's value without the enum property's descriptor.
    out: JsonDict = {
        "type": "new", "id": c.id, "owner": c.owner, "side": c.side._value_,
        "kind": c.kind._value_, "ts": c.ts,
    }  # fmt: skip
    if c.qty is not None:
        out["qty"] = c.qty
    if c.price is not None:
        out["price"] = c.price
    if c.stop_price is not None:
        out["stop_price"] = c.stop_price
    if c.tif is not _GTC:
        out["tif"] = c.tif._value_
    if c.expire_at is not None:
        out["expire_at"] = c.expire_at
    if c.post_only is not None:
        out["post_only"] = c.post_only._value_
    if c.display_qty is not None:
        out["display_qty"] = c.display_qty
    if c.quote_qty is not None:
        out["quote_qty"] = c.quote_qty
    if c.stp is not _STP_NONE:
        out["stp"] = c.stp._value_
    return out


_GTC = TimeInForce.GTC
_STP_NONE = StpMode.NONE


class StoredEntry(NamedTuple):
    """A journal row's payload, typed (its events stay in the stored form until asked for:
    a replay compares them with the regenerated ones as they are).

    Attributes:
        seq: The journal seq.
        request_id: The request's idempotency key.
        account_id: The acting account (None for an operator's command).
        client_order_id: The trader's id of a new order.
        digest: The new order's terms, when journaled with them.
        command: The engine command (`Malformed` when it does not decode).
        ts: The command's time in ms (0 when it has none).
        stored_events: The events as stored.
        stored_reservation: The reservation as stored (`decode_reservation`), or None.
    """

    seq: int
    request_id: str
    account_id: AccountId | None
    client_order_id: str | None
    digest: str | None
    command: Command
    ts: int
    stored_events: list[Any]
    stored_reservation: Any

    def events(self) -> tuple[Event, ...]:
        """Return the stored events, typed."""
        return decode_events(self.stored_events)

    def has_events(self, events: Sequence[Event]) -> bool:
        """Return whether `events` are the stored ones (as the replay codec writes them)."""
        return [event_to_dict(e) for e in events] == self.stored_events


class StoredOutcome(NamedTuple):
    """What a journal row says about its request, read without decoding its command and
    events (a recovery indexes many answers nobody may ask for)."""

    request_id: str
    account_id: AccountId | None
    client_order_id: str | None
    digest: str | None
    order_id: str | None
    reject_code: str | None


def decode_outcome(payload: JsonDict) -> StoredOutcome:
    """Return a payload's `StoredOutcome`."""
    command = payload.get("command")
    oid = command.get("id") if isinstance(command, dict) else None
    events = payload.get("events") or []
    code = next((e.get("reason") for e in events if e.get("type") == "rejected"), None)
    return StoredOutcome(
        payload["request_id"], decode_account(payload.get("account_id")),
        payload.get("client_order_id"), payload.get("digest"),
        oid if isinstance(oid, str) else None, code,
    )  # fmt: skip


def decode_entry(seq: int, payload: JsonDict) -> StoredEntry:
    """Return a journal row's payload as a `StoredEntry`."""
    command = payload.get("command")
    ts = command.get("ts") if isinstance(command, dict) else None
    return StoredEntry(
        seq, payload["request_id"], decode_account(payload.get("account_id")),
        payload.get("client_order_id"), payload.get("digest"), decode_command(payload),
        ts if type(ts) is int else 0, payload.get("events") or [], payload.get("reservation"),
    )  # fmt: skip


def decode_command(payload: JsonDict) -> Command:
    """Return a payload's engine command (a malformed one decodes as `Malformed`, which
    the engine rejects again on replay, exactly as it did when it was journaled)."""
    return command_from_dict(payload.get("command"))


def decode_events(events: Sequence[Any] | None) -> tuple[Event, ...]:
    """Return a payload's events (`events_of(payload["events"])`).

    Raises:
        ValueError: An event the engine could not have written.
    """
    if not events:
        return ()
    return tuple(event_from_dict(e) for e in events)


def decode_reservation(market: str, raw: object) -> Reservation | None:
    """Return a payload's reservation for `market`, None when it holds none."""
    return Reservation.from_dict(market, raw) if isinstance(raw, dict) else None


def decode_account(raw: object) -> AccountId | None:
    """Return a payload's `account_id` (None for an operator's command)."""
    return None if raw is None else AccountId(int(raw))  # type: ignore[call-overload]


def ledger_entry(market: str, seq: int, events: Sequence[Any] | None, raw: object) -> LedgerEntry:
    """Return the ledger's view of a stored row: its seq, events and reservation.

    Raises:
        ValueError, TypeError: The stored events or reservation are not well formed.
    """
    return LedgerEntry(seq, decode_events(events), decode_reservation(market, raw))
