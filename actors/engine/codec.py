"""JSON codec of the replay format (ENGINE_SPEC.md): command dicts in, event dicts out.

Decoding never raises: anything that is not a well-typed command becomes ``Malformed``,
which the engine rejects with ``invalid_command``. Type checks live here (JSON types,
enum values, integers that are not booleans, ``null`` meaning absent); the engine checks
field combinations, so the typed API gets the same answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar, cast

from actors.engine.commands import (
    Amend,
    Cancel,
    CancelAll,
    Command,
    Halt,
    Malformed,
    NewOrder,
    Resume,
    Tick,
)
from actors.engine.events import EVENT_TYPE_NAMES, Accepted, Cancelled, Event, Fill, Rejected
from actors.engine.types import (
    CancelReason,
    Lots,
    Millis,
    OrderId,
    OrderKind,
    Owner,
    PostOnly,
    RejectReason,
    Side,
    StpMode,
    Ticks,
    TimeInForce,
)

_E = TypeVar("_E", bound=StrEnum)


class _MalformedError(Exception):
    """Internal: the object is not a well-formed command."""


def _enum(cls: type[_E], value: object) -> _E:
    if not isinstance(value, str):  # also a missing (None) required value
        raise _MalformedError
    try:
        return cls(value)
    except ValueError:
        raise _MalformedError from None


def _int(d: dict[str, Any], key: str) -> int:
    value = d.get(key)
    if type(value) is not int:
        raise _MalformedError
    return value


def _opt_int(d: dict[str, Any], key: str) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise _MalformedError
    return value


def _name(d: dict[str, Any], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value:
        raise _MalformedError
    return value


def _member(table: dict[str, _E], cls: type[_E], value: object) -> _E:
    """Return the member of ``cls`` whose value is ``value``.

    The table lookup is the hot path; anything it misses (not an exact ``str``, or not a
    value of ``cls``) takes ``_enum``, which decides exactly as ``cls(value)`` does.
    """
    if type(value) is str:
        member = table.get(value)
        if member is not None:
            return member
    return _enum(cls, value)


def _members(cls: type[_E]) -> dict[str, _E]:
    return {m.value: m for m in cls}


_SIDES = _members(Side)
_KINDS = _members(OrderKind)
_TIFS = _members(TimeInForce)
_STPS = _members(StpMode)
_GTC = TimeInForce.GTC
_STP_NONE = StpMode.NONE

# Builds a NewOrder from plain values: the NewType wrappers (OrderId, Lots, ...) are
# identity functions that cost a Python call each at run time (same trick as matching.py).
_new_order = cast(
    "Callable[[str, str, Side, OrderKind, int, int | None, int | None, int | None, "
    "TimeInForce, int | None, PostOnly | None, int | None, int | None, StpMode], NewOrder]",
    NewOrder,
)


def _new(d: dict[str, Any]) -> NewOrder:
    # One pass, written out: this runs once per order on the market actor's hot path.
    get = d.get
    oid = get("id")
    owner = get("owner")
    ts = get("ts")
    if not isinstance(oid, str) or not oid or not isinstance(owner, str) or not owner:
        raise _MalformedError
    if type(ts) is not int:
        raise _MalformedError
    qty = get("qty")
    price = get("price")
    stop_price = get("stop_price")
    expire_at = get("expire_at")
    display_qty = get("display_qty")
    quote_qty = get("quote_qty")
    for value in (qty, price, stop_price, expire_at, display_qty, quote_qty):
        if value is not None and type(value) is not int:
            raise _MalformedError
    tif = get("tif")
    stp = get("stp")
    post_only = get("post_only")
    return _new_order(
        oid,
        owner,
        _member(_SIDES, Side, get("side")),
        _member(_KINDS, OrderKind, get("kind")),
        ts,
        qty,
        price,
        stop_price,
        _GTC if tif is None else _member(_TIFS, TimeInForce, tif),
        expire_at,
        None if post_only is None else _enum(PostOnly, post_only),
        display_qty,
        quote_qty,
        _STP_NONE if stp is None else _member(_STPS, StpMode, stp),
    )


def _amend(d: dict[str, Any]) -> Amend:
    qty = _opt_int(d, "qty")
    price = _opt_int(d, "price")
    return Amend(
        id=OrderId(_name(d, "id")),
        owner=Owner(_name(d, "owner")),
        ts=Millis(_int(d, "ts")),
        qty=None if qty is None else Lots(qty),
        price=None if price is None else Ticks(price),
    )


_new_cancel = cast("Callable[[str, str, int], Cancel]", Cancel)


def _cancel(d: dict[str, Any]) -> Cancel:
    oid = d.get("id")
    owner = d.get("owner")
    ts = d.get("ts")
    if not isinstance(oid, str) or not oid or not isinstance(owner, str) or not owner:
        raise _MalformedError
    if type(ts) is not int:
        raise _MalformedError
    return _new_cancel(oid, owner, ts)


def _cancel_all(d: dict[str, Any]) -> CancelAll:
    return CancelAll(Owner(_name(d, "owner")), Millis(_int(d, "ts")))


_DECODERS: dict[str, Any] = {
    "new": _new,
    "cancel": _cancel,
    "amend": _amend,
    "cancel_all": _cancel_all,
    "halt": lambda d: Halt(Millis(_int(d, "ts"))),
    "resume": lambda d: Resume(Millis(_int(d, "ts"))),
    "tick": lambda d: Tick(Millis(_int(d, "ts"))),
}


def command_from_dict(obj: object) -> Command:
    """Decode one command object; anything malformed becomes ``Malformed``."""
    if not isinstance(obj, dict):
        return Malformed()
    decoder = _DECODERS.get(obj["type"]) if isinstance(obj.get("type"), str) else None
    try:
        if decoder is None:
            raise _MalformedError
        command: Command = decoder(obj)
    except _MalformedError:
        oid = obj.get("id")
        return Malformed(OrderId(oid) if isinstance(oid, str) else None)
    return command


def command_from_line(line: str) -> Command:
    """Decode one JSON line; invalid JSON becomes ``Malformed``."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return Malformed()
    return command_from_dict(obj)


def command_to_dict(command: Command) -> dict[str, Any]:
    """Encode a command as a replay-format dict (absent optional fields are omitted)."""
    kind = _COMMAND_TYPE_NAMES[type(command)]
    out: dict[str, Any] = {"type": kind}
    for name in command.__slots__:
        value = getattr(command, name)
        if value is None or (name, value) in _DEFAULTS:
            continue
        out[name] = value.value if isinstance(value, StrEnum) else value
    return out


_COMMAND_TYPE_NAMES: dict[type, str] = {
    NewOrder: "new",
    Cancel: "cancel",
    Amend: "amend",
    CancelAll: "cancel_all",
    Halt: "halt",
    Resume: "resume",
    Tick: "tick",
    Malformed: "malformed",
}
_DEFAULTS = {("tif", TimeInForce.GTC), ("stp", StpMode.NONE)}


def _plain(value: Any) -> Any:
    """Return a ``StrEnum`` member's value, anything else unchanged."""
    return value.value if isinstance(value, StrEnum) else value


# Encoders of the hottest events. Each field is converted as ``_plain`` would, written out
# so that the usual types (an exact ``str`` or ``int``, a member of the field's enum) cost
# a type test and no call; anything else still goes through ``_plain``.


def _accepted(e: Accepted) -> dict[str, Any]:
    seq, oid, owner, side, kind = e
    return {
        "seq": seq,
        "type": "accepted",
        "id": oid if type(oid) is str else _plain(oid),
        "owner": owner if type(owner) is str else _plain(owner),
        "side": side._value_ if type(side) is Side else _plain(side),
        "kind": kind._value_ if type(kind) is OrderKind else _plain(kind),
    }


def _fill(e: Fill) -> dict[str, Any]:
    seq, maker_id, taker_id, maker_owner, taker_owner, price, qty, side = e
    return {
        "seq": seq,
        "type": "fill",
        "maker_id": maker_id if type(maker_id) is str else _plain(maker_id),
        "taker_id": taker_id if type(taker_id) is str else _plain(taker_id),
        "maker_owner": maker_owner if type(maker_owner) is str else _plain(maker_owner),
        "taker_owner": taker_owner if type(taker_owner) is str else _plain(taker_owner),
        "price": price if type(price) is int else _plain(price),
        "qty": qty if type(qty) is int else _plain(qty),
        "taker_side": side._value_ if type(side) is Side else _plain(side),
    }


def _cancelled(e: Cancelled) -> dict[str, Any]:
    seq, oid, reason, qty, quote_qty = e
    out = {
        "seq": seq,
        "type": "cancelled",
        "id": oid if type(oid) is str else _plain(oid),
        "reason": reason._value_ if type(reason) is CancelReason else _plain(reason),
        "remaining_qty": qty if type(qty) is int else _plain(qty),
    }
    if quote_qty is not None:
        out["remaining_quote_qty"] = quote_qty if type(quote_qty) is int else _plain(quote_qty)
    return out


def _generic(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": event.seq, "type": EVENT_TYPE_NAMES[type(event)]}
    for name, value in zip(event._fields[1:], event[1:], strict=True):
        out[name] = _plain(value)
    return out


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {cls: _generic for cls in EVENT_TYPE_NAMES}
_ENCODERS.update({Accepted: _accepted, Fill: _fill, Cancelled: _cancelled})


def event_to_dict(event: Event) -> dict[str, Any]:
    """Encode an event as a replay-format dict: ``seq``, ``type``, then its fields.

    ``remaining_quote_qty`` appears only on the cancel of a ``quote_qty`` market buy.
    """
    return _ENCODERS[type(event)](event)


def dumps(obj: object) -> str:
    """Serialise a dict as one compact JSON line (no newline)."""
    return json.dumps(obj, separators=(",", ":"))


_EVENT_CLASSES: dict[str, type] = {name: cls for cls, name in EVENT_TYPE_NAMES.items()}
# The fields of each event class whose values are enum members (the rest are plain values).
_EVENT_ENUMS: dict[type, dict[str, type[StrEnum]]] = {
    Accepted: {"side": Side, "kind": OrderKind},
    Rejected: {"reason": RejectReason},
    Fill: {"taker_side": Side},
    Cancelled: {"reason": CancelReason},
}


def event_from_dict(obj: dict[str, Any]) -> Event:
    """Decode one event that ``event_to_dict`` encoded (the inverse; events are the
    engine's own output, so anything else is an error, not a reject).

    Raises:
        ValueError: Unknown ``type``, a missing field, or a value outside its enum.
    """
    cls = _EVENT_CLASSES.get(obj.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event type {obj.get('type')!r}")
    enums = _EVENT_ENUMS.get(cls, {})
    defaults = cls._field_defaults  # type: ignore[attr-defined]
    values = []
    for name in cls._fields:  # type: ignore[attr-defined]
        if name in obj:
            value = obj[name]
            enum = enums.get(name)
            values.append(value if enum is None else enum(value))
        elif name in defaults:
            values.append(defaults[name])
        else:
            raise ValueError(f"{obj.get('type')} event without {name!r}")
    event: Event = cls(*values)
    return event
