"""Hand-made frames and the per-turn flush: the frames parse as the `websockets` library's
own, a turn's messages go out in one write, and a sink that is not ready hands them to the
ASGI path in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import OP_TEXT, Frame
from websockets.streams import StreamReader

from serve_app.ws.connection import CLOSE_POLICY, Connection, Limits
from serve_app.ws.wire import Flusher, text_frame_header


@given(st.sampled_from([0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) | st.integers(0, 3000))
def test_the_header_is_the_librarys(length: int) -> None:
    payload = b"x" * length
    assert text_frame_header(length) + payload == Frame(OP_TEXT, payload).serialize(mask=False)


def parse(data: bytes) -> list[dict[str, Any]]:
    """Decode a server's frames with the library's parser (as a client reads them)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out: list[dict[str, Any]] = []
    while True:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frame: Frame = done.value
        except EOFError:
            return out
        assert frame.opcode == OP_TEXT and frame.fin
        out.append(json.loads(bytes(frame.data)))


class Sink:
    """A transport that records each write; `up` False: its buffer is full."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.up = True

    def ready(self) -> bool:
        return self.up

    def write(self, data: bytes) -> None:
        self.writes.append(data)


class Asgi:
    """The ASGI path: records text frames and the close."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed: int | None = None

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "websocket.close":
            self.closed = message["code"]
        else:
            self.frames.append(json.loads(message["text"]))


def connection(sink: Sink, asgi: Asgi, flusher: Flusher, **limits: Any) -> Connection:
    conn = Connection(asgi.send, Limits(**limits), "w", sink, flusher)
    conn.start()
    return conn


async def test_a_turns_messages_to_many_connections_go_out_in_one_write_each() -> None:
    flusher, asgi = Flusher(), Asgi()
    sinks = [Sink() for _ in range(3)]
    conns = [connection(sink, asgi, flusher) for sink in sinks]
    for conn in conns:
        conn.send(b'{"channel":"trades","n":1}')
        conn.send('{"channel":"orderbook","n":2}', book=True)
    assert all(not sink.writes for sink in sinks)  # not before the turn ends
    await asyncio.sleep(0)
    for sink in sinks:
        assert len(sink.writes) == 1
        assert parse(sink.writes[0]) == [
            {"seq": 1, "channel": "trades", "n": 1}, {"seq": 2, "channel": "orderbook", "n": 2}
        ]  # fmt: skip
    conns[0].send(b'{"n":3}')
    await asyncio.sleep(0)
    assert parse(sinks[0].writes[1]) == [{"seq": 3, "n": 3}]
    assert asgi.frames == []
    for conn in conns:
        await conn.finish()


async def test_a_sink_that_is_not_ready_hands_the_turn_to_the_asgi_path_in_order() -> None:
    flusher, asgi, sink = Flusher(), Asgi(), Sink()
    conn = connection(sink, asgi, flusher)
    conn.send(b'{"n":1}')
    await asyncio.sleep(0)
    sink.up = False  # the client stopped reading: what comes waits behind the ASGI send
    conn.send(b'{"n":2}')
    conn.send(b'{"n":3}')
    await asyncio.sleep(0.01)
    sink.up = True
    conn.send(b'{"n":4}')  # the backlog is written: straight to the sink again
    await asyncio.sleep(0)
    assert parse(sink.writes[0]) == [{"seq": 1, "n": 1}]
    assert asgi.frames == [{"seq": 2, "n": 2}, {"seq": 3, "n": 3}]
    assert parse(sink.writes[1]) == [{"seq": 4, "n": 4}]
    await conn.finish()


async def test_the_turns_messages_count_against_the_queue_and_a_draining_close_keeps_them() -> None:
    flusher, asgi, sink = Flusher(), Asgi(), Sink()
    conn = connection(sink, asgi, flusher, send_queue=4)
    conn.on_overflow = lambda: [b'{"op":"resync"}']
    for n in range(3):
        conn.send(b'{"channel":"orderbook","n":%d}' % n, book=True)
    conn.send(b'{"channel":"orderbook","n":3}', book=True)
    conn.send(b'{"op":"error"}')  # full: the book messages of the turn are purged
    assert conn.queued() == 2  # the notice and the error; their seqs show the gap
    conn.close(CLOSE_POLICY, "flood", drain=True)
    await asyncio.sleep(0.01)
    assert asgi.frames == [{"seq": 5, "op": "resync"}, {"seq": 6, "op": "error"}]
    assert asgi.closed == CLOSE_POLICY
    assert sink.writes == []
    await conn.finish()


async def test_a_fan_out_lets_the_loop_run_between_its_chunks() -> None:
    flusher, asgi = Flusher(chunk=2), Asgi()
    sinks = [Sink() for _ in range(5)]
    conns = [connection(sink, asgi, flusher) for sink in sinks]
    for conn in conns:
        conn.send(b'{"n":1}')

    def written() -> int:
        return sum(len(sink.writes) for sink in sinks)

    seen_between: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: seen_between.append(written()))
    for _ in range(3):
        await asyncio.sleep(0)
    assert seen_between == [2]  # the other callback ran after the first chunk, not after all
    assert written() == 5
    assert all(parse(sink.writes[0]) == [{"seq": 1, "n": 1}] for sink in sinks)
    for conn in conns:
        await conn.finish()
