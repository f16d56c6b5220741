"""Frames written straight to a client's TCP transport, and the flush that gathers a
connection's frames of one event-loop turn into one write.

A fan-out message reaches every subscriber through the ASGI `send` chain: Serve's two
wrappers, uvicorn's `send` (an `asyncio.Event` wait, the `websockets` library's framing,
a join) and a `transport.write` each, one coroutine per frame. The replica's uvicorn runs
the `websockets` sans-I/O protocol (`ws="auto"`), so the frame can be written by hand
instead: a server's text frame is a 2-10 byte header and the payload (RFC 6455, section
5.2; no mask from a server). `RawSocket` does that when it is safe, the same checks
uvicorn's `send` makes: the socket is open, no close was sent, the transport is not paused
(its buffer under the high-water mark: otherwise the ASGI path waits for it, as a slow
client must), and no extension (permessage-deflate) was negotiated, since a compressed
stream needs the protocol's own framing.

`Flusher` gathers the frames a connection is given during one turn of the event loop (a
market batch gives its `trades` and `orderbook` messages in the same turn) and writes
them with one `transport.write`: one syscall, and one relay by the ingress, instead of
one per message.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from websockets.protocol import State

_TEXT = 0x81  # FIN + opcode 1 (text)
_MAX_DEPTH = 6  # wrappers between the app's `send` and uvicorn's (Serve has two)
FLUSH_CHUNK = 500  # connections written per turn of the loop (about 10 ms of writes)


def text_frame_header(length: int) -> bytes:
    """Return the header of an unmasked, final text frame of `length` payload bytes."""
    if length < 126:
        return bytes((_TEXT, length))
    if length < 1 << 16:
        return bytes((_TEXT, 126)) + length.to_bytes(2, "big")
    return bytes((_TEXT, 127)) + length.to_bytes(8, "big")


class Sink(Protocol):
    """Where a connection's frames can be written without the ASGI path."""

    def ready(self) -> bool:
        """Return whether a frame may be written now (else the ASGI path takes it)."""

    def write(self, data: bytes) -> None:
        """Write encoded frames."""


class RawSocket:
    """The transport under one uvicorn `websockets` sans-I/O connection (see the module
    docstring)."""

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._transport: asyncio.Transport = protocol.transport

    def ready(self) -> bool:
        """Return whether uvicorn's `send` would write a frame at once, uncompressed."""
        protocol = self._protocol
        return (
            protocol.writable.is_set()
            and not protocol.close_sent
            and not protocol.disconnected
            and protocol.conn.state is State.OPEN
            and not self._transport.is_closing()
        )

    def write(self, data: bytes) -> None:
        """Write encoded frames to the transport."""
        self._transport.write(data)


def raw_socket(send: Callable[..., Any] | None) -> RawSocket | None:
    """Return the transport writer under an ASGI `send`, or None when `send` is not
    (through closures and bound methods) uvicorn's `websockets` sans-I/O protocol's, or
    the connection negotiated an extension: then every frame takes the ASGI path."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )
    except ImportError:  # another server
        return None
    seen: set[int] = set()
    layer: list[Any] = [send]
    for _ in range(_MAX_DEPTH):
        below: list[Any] = []
        for item in layer:
            if id(item) in seen:
                continue
            seen.add(id(item))
            owner = getattr(item, "__self__", None)
            if isinstance(owner, WebSocketsSansIOProtocol):
                usable = owner.transport is not None and not owner.conn.extensions
                return RawSocket(owner) if usable else None
            below.extend(_wrapped(item))
        layer = below
    return None


def _wrapped(item: Any) -> list[Any]:
    """Return the callables a wrapper closes over."""
    if isinstance(item, functools.partial):
        return [item.func, *item.args]
    function = getattr(item, "__func__", item)
    cells = getattr(function, "__closure__", None) or ()
    out = []
    for cell in cells:
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(value):
            out.append(value)
    return out


class Flusher:
    """Writes, once the event loop's current callbacks have run, what each connection was
    given meanwhile (`Connection.flush`): `chunk` connections per turn of the loop, so
    that a fan-out to thousands of sockets lets REST requests and timers run between its
    chunks instead of holding the loop for the whole of it."""

    def __init__(self, chunk: int = FLUSH_CHUNK) -> None:
        self._pending: deque[Any] = deque()
        self._chunk = chunk
        self._scheduled = False

    def add(self, conn: Any) -> None:
        """Flush `conn` once the loop's current callbacks have run."""
        self._pending.append(conn)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        pending = self._pending
        try:
            for _ in range(min(self._chunk, len(pending))):
                pending.popleft().flush()
        finally:
            if pending:
                asyncio.get_running_loop().call_soon(self._flush)
            else:
                self._scheduled = False
