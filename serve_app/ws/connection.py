"""One client's WebSocket: its bounded send queue, its writer task, its `seq`, its rate
limit, and the session state's transition table.

Publishers (the hub's feeds, the session) call `send`, which never blocks and never
awaits: it numbers the message and, when nothing is queued or being written:
- with a `Sink` (the replica's transport, `serve_app.ws.wire`), keeps it until the end of
  the loop's turn, when `flush` writes everything the connection was given in that turn
  as one write of hand-made frames (a market batch's trades and book update together);
- without one, writes it at once (`_write_now`: the ASGI send runs in the caller until it
  would wait, which on a socket that keeps up it never does).

Otherwise (a backlog, or a sink that is not ready: the client does not keep up) it queues
it, and one writer task per connection drains the queue through the ASGI send, which
waits for the socket, so a slow client only fills its own queue. Waking a task per
connection per message cost more CPU than writing the frame. When the queue is full the
connection's book subscriptions are dropped (`on_overflow`, set by the session: a `resync`
notice tells the client) and their queued messages purged; if it is still full, the
socket is closed with `CLOSE_SLOW_CONSUMER`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from starlette.types import Send

from serve_app.ws.protocol import with_seq
from serve_app.ws.wire import Flusher, Sink, text_frame_header

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # a sustained message flood
CLOSE_TRY_AGAIN = 1013  # the replica's connection cap
CLOSE_SLOW_CONSUMER = 4001
CLOSE_HEARTBEAT = 4002  # cancel-on-disconnect's heartbeat was missed
DRAIN_TIMEOUT_S = 2.0  # how long a draining close waits for the queue to be written
ASGI_SEND = "clob.asgi_send"
"""The scope key of the `send` the app itself was called with (`ExchangeAPI.dispatch`):
frames written with it skip Starlette's per-message wrappers (the `WebSocket.send` state
checks, two exception-handling `sender`s), which cost CPU on every fan-out message."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one connection (from `AppArgs`; sent in `welcome`).

    Attributes:
        max_subscriptions: Subscriptions at once.
        messages_per_s: Incoming messages per second (token bucket rate).
        burst: Incoming messages the bucket holds.
        max_frame_bytes: Largest incoming frame, bytes.
        send_queue: Outgoing messages queued at most.
        heartbeat_s: Default heartbeat of cancel-on-disconnect, seconds.
    """

    max_subscriptions: int = 50
    messages_per_s: float = 20.0
    burst: int = 40
    max_frame_bytes: int = 64 * 1024
    send_queue: int = 1000
    heartbeat_s: float = 10.0


class State(enum.Enum):
    """A session's lifecycle."""

    OPEN = "open"  # accepted, not authenticated
    AUTHENTICATED = "authenticated"
    CLOSING = "closing"
    CLOSED = "closed"


_TRANSITIONS: dict[tuple[State, str], State] = {
    (State.OPEN, "auth"): State.AUTHENTICATED,
    (State.AUTHENTICATED, "auth"): State.AUTHENTICATED,  # a key may be replaced by another
    (State.OPEN, "close"): State.CLOSING,
    (State.AUTHENTICATED, "close"): State.CLOSING,
    (State.CLOSING, "close"): State.CLOSING,
    (State.CLOSING, "closed"): State.CLOSED,
}


class TransitionError(ValueError):
    """A session event its state does not allow."""


def transition(state: State, event: str) -> State:
    """Return the state after `event` (`auth`, `close`, `closed`).

    Raises:
        TransitionError: The event is not allowed in `state`.
    """
    after = _TRANSITIONS.get((state, event))
    if after is None:
        raise TransitionError(f"{event!r} is not allowed in state {state.value}")
    return after


class TokenBucket:
    """Allow `rate` events per second with bursts of up to `capacity`."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = time.monotonic()

    def take(self, now: float | None = None) -> bool:
        """Take one token; return False when there is none."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Connection:
    """The outgoing side of one WebSocket (see the module docstring)."""

    def __init__(
        self, send: Send, limits: Limits, connection_id: str, sink: Sink | None = None,
        flusher: Flusher | None = None,
    ) -> None:  # fmt: skip
        self.id = connection_id
        self.limits = limits
        self.seq = 0
        self.state = State.OPEN
        self.on_overflow: Callable[[], list[bytes]] = list
        self.close_code: int | None = None
        self._send = send
        self._queue: deque[tuple[bool, str]] = deque()
        # Given this turn of the loop, for the sink: (book, seq, body), written by `flush`.
        self._sink = sink
        self._flusher = flusher or Flusher()
        self._corked: list[tuple[bool, int, bytes]] = []
        self._busy = False  # a write is under way (its frame is no longer queued)
        self._suspended: tuple[Coroutine[Any, Any, None], Any] | None = None  # for the writer
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing: tuple[int, str] | None = None  # a draining close's code and reason
        # Incoming: the allowance, and the refusals a flood may spend before a close.
        self.inbox = TokenBucket(limits.messages_per_s, limits.burst)
        self.flood = TokenBucket(limits.messages_per_s, 5 * limits.messages_per_s)

    @property
    def open(self) -> bool:
        """Whether messages are still sent."""
        return self.state in (State.OPEN, State.AUTHENTICATED)

    def start(self) -> None:
        """Start the writer task."""
        self._writer = asyncio.create_task(self._write_loop())

    def send(self, body: bytes | str, book: bool = False) -> None:
        """Write or queue an encoded message (a JSON object without `seq`); never blocks.

        Args:
            body: The message; `str` when it is shared by many connections, so that it
                is decoded once.
            book: Whether it belongs to a book subscription (purged on overflow).
        """
        if not self.open:
            return
        if len(self._queue) + len(self._corked) >= self.limits.send_queue:
            notices = self._shed()
            if len(self._queue) + len(self._corked) + len(notices) >= self.limits.send_queue:
                self.close(CLOSE_SLOW_CONSUMER, "slow consumer")
                return
            for notice in notices:
                self._push(notice, False)
            if book:  # its subscription was just dropped
                return
        self._push(body, book)

    def _push(self, body: bytes | str, book: bool) -> None:
        self.seq += 1
        backlog = self._backlog()
        if self._sink is not None and not backlog:
            if not self._corked:
                self._flusher.add(self)
            raw = body if isinstance(body, bytes) else body.encode()
            self._corked.append((book, self.seq, raw))
            return
        text = with_seq(self.seq, _text(body))
        if backlog:
            self._queue.append((book, text))
            self._wake.set()
        else:
            self._write_now(text)

    def _backlog(self) -> bool:
        """Return whether a message must queue behind others (or the writer's start)."""
        return self._busy or bool(self._queue) or self._writer is None

    def _write_now(self, text: str) -> None:
        """Run the frame's ASGI send until it completes or would wait; a send that waits
        (the socket's buffer is full) is left to the writer task, and what comes next
        queues behind it."""
        sending = self._send({"type": "websocket.send", "text": text})
        coro = sending if isinstance(sending, Coroutine) else _awaited(sending)
        try:
            step = coro.send(None)
        except StopIteration:
            return
        except Exception as exc:  # the client went away: the reader sees it too
            self._write_failed(exc)
            return
        self._busy = True
        self._suspended = (coro, step)
        self._wake.set()

    def flush(self) -> None:
        """Write the messages given this turn (`Flusher`): in one write when the sink
        takes them now, else queued for the writer task (the ASGI path, which waits)."""
        if not self._corked or self._sink is None:
            return
        if not self.open:  # closed meanwhile: dropped, as a close drops the queue
            self._corked.clear()
            return
        if self._sink.ready() and not self._backlog():
            corked, self._corked = self._corked, []
            try:
                self._sink.write(b"".join([_frame(seq, body) for _, seq, body in corked]))
            except Exception as exc:  # the client went away: the reader sees it too
                self._write_failed(exc)
            return
        self._uncork()

    def _uncork(self) -> None:
        """Hand the messages given this turn to the writer task."""
        corked, self._corked = self._corked, []
        self._queue.extend((book, with_seq(seq, _text(body))) for book, seq, body in corked)
        self._wake.set()

    def _shed(self) -> list[bytes]:
        """Purge the queued book messages and drop the book subscriptions; return the
        notices to send (their seqs stay unused: the client sees the gap)."""
        self._queue = deque(item for item in self._queue if not item[0])
        self._corked = [item for item in self._corked if not item[0]]
        return self.on_overflow()

    def queued(self) -> int:
        """Return how many messages wait to be written."""
        return len(self._queue) + len(self._corked)

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                self._busy = True
                if self._suspended is not None:
                    suspended, self._suspended = self._suspended, None
                    await _finish(*suspended)
                while self._queue:
                    _, text = self._queue.popleft()
                    await self._send({"type": "websocket.send", "text": text})
                self._busy = False
                if not self.open:
                    if self._closing is not None:  # a draining close: now the close frame
                        await self._close_frame(*self._closing)
                    return
        except Exception as exc:  # the client went away mid-write: the reader sees it too
            self._write_failed(exc)

    def _write_failed(self, exc: Exception) -> None:
        log.debug("connection %s: write failed: %s", self.id, exc)
        self.state = State.CLOSING

    def close(self, code: int, reason: str = "", drain: bool = False) -> None:
        """Close the socket with `code` once.

        Args:
            code: The close code.
            reason: The close reason.
            drain: Write what is queued first (e.g. the errors before a flood's close);
                after `DRAIN_TIMEOUT_S` the close happens anyway. Otherwise (a slow
                consumer) what is queued is dropped.
        """
        if not self.open:
            return
        self.state = transition(self.state, "close")
        self.close_code = code
        if drain and self._writer is not None and not self._writer.done():
            self._uncork()
            self._closing = (code, reason)
            self._wake.set()
            asyncio.get_running_loop().call_later(DRAIN_TIMEOUT_S, self._abort, code, reason)
            return
        self._abort(code, reason)

    def _abort(self, code: int, reason: str) -> None:
        if self._writer is not None and self._writer.done() and self._closing is not None:
            return  # the draining close finished
        self._closing = None
        self._queue.clear()
        self._corked.clear()
        if self._suspended is not None:  # the writer never took it over
            self._suspended[0].close()
            self._suspended = None
        if self._writer is not None:
            self._writer.cancel()
        asyncio.get_running_loop().create_task(self._close_frame(code, reason))

    async def _close_frame(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):  # already gone
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def finish(self) -> None:
        """Stop the writer (after the client left or the socket closed)."""
        self.state = State.CLOSED
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer


_decoded: list[Any] = [None, ""]  # the last body `_text` decoded, and its text


def _text(body: bytes | str) -> str:
    """Return a message as text, decoding a body shared by many connections once (a
    fan-out hands the same object to each in turn)."""
    if isinstance(body, str):
        return body
    if body is not _decoded[0]:
        _decoded[:] = body, body.decode()
    text: str = _decoded[1]
    return text


def _frame(seq: int, body: bytes) -> bytes:
    """Return the text frame of `body` (a JSON object) with `"seq": seq` first."""
    head = b'{"seq":%d,' % seq
    return b"".join((text_frame_header(len(head) + len(body) - 1), head, body[1:]))


async def _finish(coro: Coroutine[Any, Any, None], step: Any) -> None:
    """Drive a coroutine that `Connection._write_now` started to its end.

    `step` is what it last yielded: a future it waits for (as a Task would, resume it
    once the future is done) or None (a bare yield, as `asyncio.sleep(0)` makes).
    """
    try:
        while True:
            if step is None:
                await asyncio.sleep(0)
            else:
                step._asyncio_future_blocking = False
                await asyncio.wait([step])  # its outcome reaches the coroutine when resumed
            try:
                step = coro.send(None)
            except StopIteration:
                return
    except BaseException:
        coro.close()
        raise


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable
