"""The WebSocket protocol's client operations and server messages (docs/websocket.md).

A client frame is one JSON object with an `op` and an optional `id` that the answer
echoes. `parse` turns a frame into a typed operation or a `ProtocolError` carrying the
error code the client gets; nothing else in `serve_app.ws` reads client JSON.
Server messages are encoded once (`encode`) and get their per-connection `seq` spliced
in front when queued (`with_seq`), so a message shared by many connections is encoded
once, not once per client.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serve_app.gateway.models import OrderAmend, OrderCreate

PUBLIC_CHANNELS = ("orderbook", "trades", "ticker")
PRIVATE_CHANNELS = ("orders", "fills", "balances", "settlements")
CHANNELS = PUBLIC_CHANNELS + PRIVATE_CHANNELS
MAX_ID_LENGTH = 64

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()

ClientId = int | Annotated[str, Field(max_length=MAX_ID_LENGTH)] | None


class ProtocolError(Exception):
    """A refused operation: the client gets `{"op": "error", ...}` and stays connected.

    Attributes:
        code: The error code (REST's codes where one fits).
        message: For people.
        id: The operation's `id`, when it could be read.
        details: Structured context (e.g. the invalid fields).
    """

    def __init__(
        self, code: str, message: str, id: Any = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id
        self.details = details


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ClientId = None


class Subscribe(_Op):
    """`subscribe` / `unsubscribe`: a channel, of a market (public channels need one;
    private ones take it as a filter), with the order book's options."""

    op: Literal["subscribe", "unsubscribe"]
    channel: str
    market: str | None = None
    depth: int = Field(default=20, ge=1, le=1000)
    interval_ms: int = Field(default=100, ge=0, le=60_000)
    snapshot_every_ms: int | None = Field(default=None, ge=100, le=60_000)
    format: Literal["native", "svm"] = "native"
    account_id: int | None = Field(
        default=None, description="Private channels: your account (any other is refused)."
    )


class Auth(_Op):
    """`auth`: an API key, and optionally cancel-on-disconnect with its heartbeat."""

    op: Literal["auth"]
    api_key: str = Field(max_length=200)
    cancel_on_disconnect: bool = False
    heartbeat_s: float | None = Field(default=None, ge=1, le=300)


class CancelOnDisconnect(_Op):
    """`cancel_on_disconnect`: turn it on or off for this session (needs `auth` first)."""

    op: Literal["cancel_on_disconnect"]
    enabled: bool = True
    heartbeat_s: float | None = Field(default=None, ge=1, le=300)


class Ping(_Op):
    """`ping`, answered by `pong` (counts as a heartbeat)."""

    op: Literal["ping"]


class Place(_Op):
    """`place`: REST's `POST /orders` body as `order`."""

    op: Literal["place"]
    order: OrderCreate


class Amend(_Op):
    """`amend`: REST's `PATCH /orders/{order_id}`."""

    op: Literal["amend"]
    order_id: str = Field(max_length=64)
    price: str | None = None
    qty: str | None = None

    def body(self) -> OrderAmend:
        """Return the REST body (validated like REST's)."""
        return OrderAmend.model_validate({"price": self.price, "qty": self.qty})


class Cancel(_Op):
    """`cancel`: REST's `DELETE /orders/{order_id}`."""

    op: Literal["cancel"]
    order_id: str = Field(max_length=64)


class CancelAll(_Op):
    """`cancel_all`: REST's `DELETE /orders` (`market` optional)."""

    op: Literal["cancel_all"]
    market: str | None = None


Operation = Subscribe | Auth | CancelOnDisconnect | Ping | Place | Amend | Cancel | CancelAll
_MODELS: dict[str, type[_Op]] = {
    "subscribe": Subscribe, "unsubscribe": Subscribe, "auth": Auth,
    "cancel_on_disconnect": CancelOnDisconnect, "ping": Ping, "place": Place, "amend": Amend,
    "cancel": Cancel, "cancel_all": CancelAll,
}  # fmt: skip


def parse(frame: str | bytes) -> Operation:
    """Return the operation of a client frame.

    Raises:
        ProtocolError: `invalid_json` (not a JSON object), `unknown_op`, `invalid_request`
            (fields missing or invalid; `details.errors` lists them), `unknown_channel`.
    """
    try:
        raw = _decoder.decode(frame)
    except msgspec.DecodeError:
        raise ProtocolError("invalid_json", "the frame is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ProtocolError("invalid_json", "a message is a JSON object")
    op_id = raw.get("id")
    op_id = op_id if isinstance(op_id, int | str) else None
    name = raw.get("op")
    model = _MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        raise ProtocolError("unknown_op", f"unknown op {str(name)[:40]!r}", op_id)
    try:
        op: Any = model.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(
            "invalid_request", "the message has invalid fields", op_id,
            {"errors": field_errors(exc)},
        ) from None  # fmt: skip
    if isinstance(op, Subscribe) and op.channel not in CHANNELS:
        raise ProtocolError("unknown_channel", f"unknown channel {op.channel[:40]!r}", op.id)
    result: Operation = op
    return result


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Return a validation error's fields and problems (`details.errors` of an error)."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
    ]


def encode(message: dict[str, Any]) -> bytes:
    """Return a server message's JSON (without `seq`; keys keep their order)."""
    return _encoder.encode(message)


def with_seq(seq: int, body: str) -> str:
    """Return `body` (a JSON object's text) with `"seq": seq` as its first member.

    Text, not bytes: the ASGI frame is `str`, and a message shared by many connections is
    decoded once by its publisher rather than once per connection.
    """
    return f'{{"seq":{seq},{body[1:]}'


def error(code: str, message: str, op_id: Any = None, details: Any = None) -> bytes:
    """Return an encoded `error` message."""
    body: dict[str, Any] = {"op": "error", "id": op_id, "code": code, "message": message}
    if details:
        body["details"] = details
    return encode(body)
