"""The WebSocket protocol's parsing, the session's transition table and a connection's
bounded queue, without a socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from serve_app.ws.connection import (
    CLOSE_SLOW_CONSUMER,
    Connection,
    Limits,
    State,
    TokenBucket,
    TransitionError,
    transition,
)
from serve_app.ws.protocol import Place, ProtocolError, Subscribe, parse, with_seq


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{nope", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"id": 1}', "unknown_op"),
        ('{"op": "dance", "id": 1}', "unknown_op"),
        ('{"op": "subscribe", "id": 1, "channel": "weather", "market": "SOL-USDC"}',
         "unknown_channel"),
        ('{"op": "subscribe", "id": 1}', "invalid_request"),
        ('{"op": "subscribe", "channel": "orderbook", "market": "M", "depth": 0}',
         "invalid_request"),
        ('{"op": "subscribe", "channel": "orderbook", "market": "M", "depth": 1001}',
         "invalid_request"),
        ('{"op": "subscribe", "channel": "orderbook", "market": "M", "snapshot_every_ms": 50}',
         "invalid_request"),
        ('{"op": "subscribe", "channel": "trades", "market": "M", "format": "fix"}',
         "invalid_request"),
        ('{"op": "ping", "extra": true}', "invalid_request"),
        ('{"op": "place", "id": 3, "order": {"market": "M", "side": "buy"}}', "invalid_request"),
        ('{"op": "auth"}', "invalid_request"),
    ],
)  # fmt: skip
def test_a_bad_frame_gets_its_code(frame: str, code: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(frame)
    assert raised.value.code == code


def test_the_id_is_echoed_even_when_the_op_is_refused() -> None:
    with pytest.raises(ProtocolError) as raised:
        parse('{"op": "dance", "id": "x1"}')
    assert raised.value.id == "x1"


def test_subscribe_defaults_and_place_takes_the_rest_body() -> None:
    op = parse('{"op": "subscribe", "channel": "orderbook", "market": "SOL-USDC"}')
    assert isinstance(op, Subscribe)
    assert (op.depth, op.interval_ms, op.snapshot_every_ms, op.format) == (20, 100, None, "native")
    order = {"market": "SOL-USDC", "side": "buy", "price": "1.00", "qty": "1"}
    placed = parse(json.dumps({"op": "place", "id": 9, "order": order}))
    assert isinstance(placed, Place)
    assert placed.order.time_in_force() == "gtc"


def test_seq_is_spliced_in_front() -> None:
    assert json.loads(with_seq(12, '{"op":"pong","id":null}')) == {
        "seq": 12, "op": "pong", "id": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [
        (State.OPEN, "auth", State.AUTHENTICATED),
        (State.AUTHENTICATED, "auth", State.AUTHENTICATED),
        (State.OPEN, "close", State.CLOSING),
        (State.AUTHENTICATED, "close", State.CLOSING),
        (State.CLOSING, "closed", State.CLOSED),
    ],
)
def test_session_transitions(state: State, event: str, after: State) -> None:
    assert transition(state, event) is after


@pytest.mark.parametrize(
    ("state", "event"),
    [(State.CLOSING, "auth"), (State.CLOSED, "auth"), (State.CLOSED, "close"),
     (State.OPEN, "closed")],
)  # fmt: skip
def test_unlisted_session_transitions_are_refused(state: State, event: str) -> None:
    with pytest.raises(TransitionError):
        transition(state, event)


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, capacity=3)
    start = bucket.stamp
    assert [bucket.take(start) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(start + 0.11)
    assert not bucket.take(start + 0.11)


class Socket:
    """A socket that records frames, or holds every write (a client that reads nothing)."""

    def __init__(self, stuck: bool = False) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed: int | None = None
        self._stuck = stuck

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close":
            self.closed = message["code"]
            return
        if self._stuck:
            await asyncio.Event().wait()
        self.frames.append(json.loads(message["text"]))


async def test_messages_are_written_in_order_with_consecutive_seqs() -> None:
    socket = Socket()
    conn = Connection(socket.send, Limits(), "c1")
    conn.start()
    for n in range(5):
        conn.send(b'{"n":%d}' % n)
    await asyncio.sleep(0.01)
    assert socket.frames == [{"seq": n + 1, "n": n} for n in range(5)]
    await conn.finish()


async def test_an_overflowing_queue_drops_the_book_first_then_closes_4001() -> None:
    socket = Socket(stuck=True)
    conn = Connection(socket.send, Limits(send_queue=10), "c2")
    dropped: list[str] = []

    def drop_books() -> list[bytes]:
        dropped.append("orderbook")
        return [b'{"op":"resync","channel":"orderbook","reason":"slow_consumer"}']

    conn.on_overflow = drop_books
    conn.start()
    conn.send(b'{"channel":"orderbook"}', book=True)
    await asyncio.sleep(0.01)  # this one is being written (stuck): it no longer counts
    for _ in range(8):
        conn.send(b'{"channel":"orderbook"}', book=True)
    conn.send(b'{"channel":"trades"}')
    conn.send(b'{"channel":"trades"}')
    conn.send(b'{"channel":"orderbook"}', book=True)  # full: the book goes, a notice comes
    assert dropped == ["orderbook"]
    assert conn.open
    assert conn.queued() <= 10
    conn.on_overflow = list  # nothing more to shed
    for _ in range(20):
        conn.send(b'{"channel":"trades"}')
    await asyncio.sleep(0.01)
    assert not conn.open
    assert socket.closed == CLOSE_SLOW_CONSUMER
    await conn.finish()


async def test_a_keeping_up_socket_is_written_at_once_and_a_waiting_write_keeps_the_order() -> None:
    socket = Socket()
    gate = asyncio.Event()
    gate.set()

    async def send(message: dict[str, Any]) -> None:
        await gate.wait()  # clear: the socket's buffer is full, the write waits
        await socket.send(message)

    conn = Connection(send, Limits(), "c3")
    conn.start()
    conn.send(b'{"n":0}')
    assert socket.frames == [{"seq": 1, "n": 0}]  # written without waking a task
    gate.clear()
    conn.send('{"n":1}')  # waits: the writer task finishes it, what follows queues behind
    conn.send(b'{"n":2}')
    assert conn.queued() == 1
    await asyncio.sleep(0.01)
    assert len(socket.frames) == 1
    gate.set()
    await asyncio.sleep(0.01)
    conn.send(b'{"n":3}')  # caught up: at once again
    assert socket.frames == [{"seq": n + 1, "n": n} for n in range(4)]
    await conn.finish()


async def test_closing_drops_a_write_that_waits() -> None:
    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await asyncio.Event().wait()
        closes.append(message["code"])

    closes: list[int] = []
    conn = Connection(send, Limits(), "c4")
    conn.start()
    conn.send(b'{"n":0}')
    conn.close(CLOSE_SLOW_CONSUMER, "slow consumer")
    await asyncio.sleep(0.01)
    assert closes == [CLOSE_SLOW_CONSUMER]
    assert not conn.open
    await conn.finish()
