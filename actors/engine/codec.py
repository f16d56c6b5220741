"""JSON codec of the replay format (ENGINE_SPEC.md): command dicts in, event dicts out.

Decoding never raises: anything that is not a well-typed command becomes ``Malformed``,
which the engine rejects with ``invalid_command``. Type checks live here (JSON types,
enum values, integers that are not booleans, ``null`` meaning absent); the engine checks
field combinations, so the typed API gets the same answers.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, TypeVar

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
from actors.engine.events import EVENT_TYPE_NAMES, Cancelled, Event
from actors.engine.types import (
    AccountId,
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

_E = TypeVar("_E", bound=StrEnum)


class _MalformedError(Exception):
    """Internal: the object is not a well-formed command."""


def _enum(cls: type[_E], value: object, default: _E | None = None) -> _E:
    if value is None:
        if default is None:
            raise _MalformedError
        return default
    if not isinstance(value, str):
        raise _MalformedError
    try:
        return cls(value)
    except ValueError:
        raise _MalformedError from None


def _opt_enum(cls: type[_E], value: object) -> _E | None:
    return None if value is None else _enum(cls, value)


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


def _new(d: dict[str, Any]) -> NewOrder:
    qty = _opt_int(d, "qty")
    price = _opt_int(d, "price")
    stop_price = _opt_int(d, "stop_price")
    expire_at = _opt_int(d, "expire_at")
    display_qty = _opt_int(d, "display_qty")
    quote_qty = _opt_int(d, "quote_qty")
    return NewOrder(
        id=OrderId(_name(d, "id")),
        owner=AccountId(_name(d, "owner")),
        side=_enum(Side, d.get("side")),
        kind=_enum(OrderKind, d.get("kind")),
        ts=Millis(_int(d, "ts")),
        qty=None if qty is None else Lots(qty),
        price=None if price is None else Ticks(price),
        stop_price=None if stop_price is None else Ticks(stop_price),
        tif=_enum(TimeInForce, d.get("tif"), TimeInForce.GTC),
        expire_at=None if expire_at is None else Millis(expire_at),
        post_only=_opt_enum(PostOnly, d.get("post_only")),
        display_qty=None if display_qty is None else Lots(display_qty),
        quote_qty=None if quote_qty is None else TickLots(quote_qty),
        stp=_enum(StpMode, d.get("stp"), StpMode.NONE),
    )


def _amend(d: dict[str, Any]) -> Amend:
    qty = _opt_int(d, "qty")
    price = _opt_int(d, "price")
    return Amend(
        id=OrderId(_name(d, "id")),
        owner=AccountId(_name(d, "owner")),
        ts=Millis(_int(d, "ts")),
        qty=None if qty is None else Lots(qty),
        price=None if price is None else Ticks(price),
    )


def _cancel(d: dict[str, Any]) -> Cancel:
    return Cancel(OrderId(_name(d, "id")), AccountId(_name(d, "owner")), Millis(_int(d, "ts")))


def _cancel_all(d: dict[str, Any]) -> CancelAll:
    return CancelAll(AccountId(_name(d, "owner")), Millis(_int(d, "ts")))


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


def event_to_dict(event: Event) -> dict[str, Any]:
    """Encode an event as a replay-format dict: ``seq``, ``type``, then its fields.

    ``remaining_quote_qty`` appears only on the cancel of a ``quote_qty`` market buy.
    """
    out: dict[str, Any] = {"seq": event.seq, "type": EVENT_TYPE_NAMES[type(event)]}
    for name, value in zip(event._fields[1:], event[1:], strict=True):
        out[name] = value.value if isinstance(value, StrEnum) else value
    if type(event) is Cancelled and event.remaining_quote_qty is None:
        del out["remaining_quote_qty"]
    return out


def dumps(obj: object) -> str:
    """Serialise a dict as one compact JSON line (no newline)."""
    return json.dumps(obj, separators=(",", ":"))
