"""A WebSocket client process of the fan-out bench (`bench/ws_bench.py`).

`bench/ws_fleet.py` spreads N connections over processes of at most ``per_process``
connections each. Each process runs this file as a script: asyncio connections on the
`websockets` library's sans-I/O protocol (`Link`), every message handled where it is read.
It talks to the parent over its stdin/stdout, one JSON document per line:

1. parent -> child: the configuration (URLs, connections, subscribe messages, headers);
2. child -> parent: ``ready`` once every connection is open and every subscription is
   acknowledged (or refused, or timed out: counted; the whole setup is bounded);
3. parent -> child: the window (``t0``, ``t1``, wall-clock seconds);
4. child -> parent: the figures of the window, then the child exits (the kernel closes
   its sockets).

A data message is one that carries ``"E":<ms>`` and is not a snapshot; it counts when its
``E`` is in the window (messages arriving up to `GRACE_S` after it still count, late),
and its latency is the receipt time (wall clock, when its bytes are read) minus ``E``.
Latencies go into histograms of 0.1 ms buckets per replica (the ``replica`` of the
connection's `welcome`; ``-`` when there is none) and per channel (book updates, trades),
so the parent merges exact counts, not samples.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

E_FIELD = re.compile(r'"E":(\d+)')
BUCKETS_PER_MS = 10
SETUP_TIMEOUT_S = 120.0  # per connection: handshake, welcome and acknowledgements
SETUP_DEADLINE_S = 300.0  # for all the connections of a process
CONNECT_CONCURRENCY = 64  # handshakes in flight per process
DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY)  # JSON either way (text frames by the protocol)
READ_BUFFER = 65_536  # bytes per read
GRACE_S = 2.0  # how long after the window a message published in it may still arrive


@dataclass
class Figures:
    """What one process saw on its connections of one replica in the window."""

    hist: Counter[int] = field(default_factory=Counter)
    count: int = 0
    max_ms: float = 0.0
    connections: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "hist": dict(self.hist), "count": self.count, "max_ms": self.max_ms,
            "connections": self.connections,
        }  # fmt: skip

    def add(self, latency_ms: float) -> None:
        self.hist[max(0, int(latency_ms * BUCKETS_PER_MS))] += 1
        self.count += 1
        self.max_ms = max(self.max_ms, latency_ms)


class Link(asyncio.BufferedProtocol):
    """One client connection: the `websockets` library's sans-I/O protocol on an asyncio
    transport.

    Each message is handled where it is read, with no task woken per message, and read
    into a buffer allocated once (a plain `Protocol` gets a fresh bytes object per read,
    which asyncio allocates at 256 KiB and shrinks): on two cores the clients' CPU is taken
    from the server under test, so the clients are kept lean.
    """

    def __init__(self, child: Child, url: str, headers: dict[str, str]) -> None:
        self.child = child
        self.ws = ClientProtocol(parse_uri(url), max_size=2**24)
        self.request = self.ws.connect()
        for name, value in headers.items():
            self.request.headers[name] = value
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inbox: asyncio.Queue[str] | None = asyncio.Queue()  # messages during the setup
        self.figures: Figures | None = None
        self.buffer = bytearray(READ_BUFFER)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.request)
        self.flush()

    def flush(self) -> None:
        """Write what the protocol has to send (handshake, pongs, close frames)."""
        assert self.transport is not None
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.ws.receive_data(bytes(self.buffer[:nbytes]))
        events = self.ws.events_received()
        self.flush()
        for event in events:
            if not isinstance(event, Frame):  # the handshake's response
                if self.ws.handshake_exc is not None:
                    self.opened.set_exception(self.ws.handshake_exc)
                else:
                    self.opened.set_result(None)
            elif event.opcode in DATA_OPCODES and event.fin:
                text = str(event.data, "utf-8")
                if self.inbox is not None:
                    self.inbox.put_nowait(text)
                else:
                    assert self.figures is not None
                    self.child.count(text, self.figures)
            elif event.opcode in (*DATA_OPCODES, Opcode.CONT):
                self.child.kinds["fragmented"] += 1  # servers here never fragment

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        elif self.inbox is None:
            self.child.closed(self.ws.close_code)

    def send(self, text: str) -> None:
        self.ws.send_text(text.encode())
        self.flush()

    async def recv(self) -> str:
        assert self.inbox is not None
        return await self.inbox.get()

    def start(self, figures: Figures) -> None:
        """End the setup: count every message from now on (those queued first)."""
        self.figures = figures
        inbox, self.inbox = self.inbox, None
        while inbox is not None and not inbox.empty():
            self.child.count(inbox.get_nowait(), figures)


class Child:
    """The state of one client process."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.t0 = self.t0_ms = math.inf
        self.t1 = self.t1_ms = math.inf
        self.by_replica: dict[str, Figures] = {}
        self.by_channel: dict[str, Figures] = {"book": Figures(), "trades": Figures()}
        self.kinds: Counter[str] = Counter()  # message kinds seen in the window
        self.setup: Counter[str] = Counter()  # outcomes of the setup
        self.samples: list[str] = []  # a few refusals and closes, verbatim
        self.links: list[Link] = []

    def note(self, text: str) -> None:
        if len(self.samples) < 5 and not any(s[:60] == text[:60] for s in self.samples):
            self.samples.append(text[:300])

    def set_window(self, t0: float, t1: float) -> None:
        self.t0, self.t1 = t0, t1
        self.t0_ms, self.t1_ms = 1000 * t0, 1000 * t1

    async def open_one(self, index: int, gate: asyncio.Semaphore) -> None:
        """Open one connection, wait for its welcome and acks, then count its messages."""
        urls: list[str] = self.config["urls"]
        url = urls[index % len(urls)]
        uri = parse_uri(url)
        loop = asyncio.get_running_loop()
        headers: dict[str, str] = self.config.get("headers") or {}
        async with gate:
            try:
                _, link = await asyncio.wait_for(
                    loop.create_connection(lambda: Link(self, url, headers), uri.host, uri.port),
                    SETUP_TIMEOUT_S,
                )
                await asyncio.wait_for(link.opened, SETUP_TIMEOUT_S)
            except Exception as exc:
                self.setup[f"connect failed: {type(exc).__name__}"] += 1
                self.note(f"connect: {exc!r}")
                return
            try:
                replica = await asyncio.wait_for(self.handshake(link), SETUP_TIMEOUT_S)
            except Exception as exc:
                self.setup[f"setup failed: {type(exc).__name__}"] += 1
                self.note(f"setup: {exc!r}")
                assert link.transport is not None
                link.transport.abort()
                return
        self.setup["open"] += 1
        figures = self.by_replica.setdefault(replica, Figures())
        figures.connections += 1
        self.links.append(link)
        link.start(figures)

    async def handshake(self, link: Link) -> str:
        """Read the welcome (when the server sends one), send the subscriptions and wait for
        their answers; return the connection's replica."""
        replica = "-"
        if self.config.get("welcome"):
            welcome = json.loads(await link.recv())
            replica = str(welcome.get("replica", "?"))
        pending = set()
        for message in self.config.get("subscribe", []):
            link.send(json.dumps(message))
            pending.add(message.get("id"))
        while pending:
            text = await link.recv()
            if '"op":"subscribed"' in text or '"op": "subscribed"' in text:
                pending.discard(json.loads(text).get("id"))
                self.setup["subscribed"] += 1
            elif '"op":"error"' in text or '"op": "error"' in text:
                pending.discard(json.loads(text).get("id"))
                self.setup["subscribe refused"] += 1
                self.note(f"subscribe: {text}")
        return replica

    def count(self, text: str, figures: Figures) -> None:
        """Count one message; time it when it is a data message published in the window."""
        now = time.time()
        found = E_FIELD.search(text)
        if found is None:
            if self.t0 <= now < self.t1:
                self.other(text)
            return
        published_ms = int(found.group(1))
        if not self.t0_ms <= published_ms < self.t1_ms:
            return  # published outside the window
        if '"type":"snapshot"' in text:
            self.kinds["snapshot"] += 1
            return
        latency_ms = 1000 * now - published_ms
        figures.add(latency_ms)
        channel = "trades" if '"channel":"trades"' in text else "book"
        self.by_channel[channel].add(latency_ms)
        self.kinds[channel] += 1

    def other(self, text: str) -> None:
        """Count a message without `E` (acknowledgements, errors, resync notices)."""
        op = re.search(r'"op":\s*"(\w+)"', text)
        self.kinds[f"op {op.group(1)}" if op else "other"] += 1
        if op and op.group(1) in ("error", "resync"):
            self.note(text)

    def closed(self, code: int | None) -> None:
        """Count a connection that closed after its setup (in the window: a failure)."""
        if self.t0 <= time.time() < self.t1:
            self.kinds[f"closed: {code}"] += 1
            self.note(f"connection closed with {code}")

    def report(self, cpu_s: float) -> dict[str, Any]:
        return {
            "cpu_s": cpu_s,
            "kinds": dict(self.kinds),
            "samples": self.samples,
            "replicas": {name: f.as_dict() for name, f in self.by_replica.items()},
            "channels": {name: f.as_dict() for name, f in self.by_channel.items()},
        }


async def child_main() -> None:
    """Run one client process (the protocol of the module's docstring)."""
    loop = asyncio.get_running_loop()
    lines = ThreadPoolExecutor(max_workers=1)

    async def read_line() -> dict[str, Any]:
        line = await loop.run_in_executor(lines, sys.stdin.readline)
        if not line:
            raise SystemExit(0)  # the parent went away
        message: dict[str, Any] = json.loads(line)
        return message

    def write_line(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    child = Child(await read_line())
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    opening = [
        asyncio.create_task(child.open_one(i, gate)) for i in range(child.config["connections"])
    ]
    _, late = await asyncio.wait(opening, timeout=SETUP_DEADLINE_S)
    for task in late:  # a bounded setup: what is not open by then is counted, not awaited
        task.cancel()
    if late:
        child.setup["not open by the deadline"] += len(late)
    write_line({"ready": dict(child.setup), "samples": child.samples})
    window = await read_line()
    child.set_window(float(window["t0"]), float(window["t1"]))
    await asyncio.sleep(max(0.0, child.t0 - time.time()))
    cpu0 = time.process_time()
    await asyncio.sleep(max(0.0, child.t1 - time.time()))
    cpu_s = time.process_time() - cpu0
    # Messages published in the window still count when they arrive a little after it
    # (they are late, not lost): counting by publication time keeps the end unbiased.
    await asyncio.sleep(GRACE_S)
    write_line(child.report(cpu_s))
    lines.shutdown(wait=False, cancel_futures=True)
    os._exit(0)  # closing thousands of sockets one by one would only cost time


if __name__ == "__main__":
    asyncio.run(child_main())
