"""Direct channels: the hot calls between the exchange's actors over TCP connections of
their own, next to Ray.

A Ray actor call costs about 2 ms of round trip and 2 ms of CPU (caller and callee
together) on the 2-core machine this was built on; the same call over an asyncio stream
costs about 50 µs and 65 µs (`bench/README.md`). Ray still places, names, restarts and
finds every actor. An actor that serves hot calls also listens on a port of its node
(`DirectServer`); a caller asks it once, through Ray, for its `Endpoint` (address, port and
a random token of this incarnation), then calls over one connection (`DirectClient`).

Frames are a 4-byte big-endian length and a pickle. The first frame of a connection is the
token, compared before anything is unpickled; a wrong one closes the connection. Then each
request is `(call id, method, args)` and each answer `(call id, ok, value or exception)`.
Calls are pipelined; the server starts them in the order they arrive, each as its own task,
so an actor whose calls must run in order keeps that order through what they await first
(an `asyncio.Lock` or a queue, both first in, first out).

A connection that breaks fails every call in flight with `ChannelClosedError` (the call
may or may not have run, as with a Ray actor that dies during a call); the next call
connects again, after asking Ray for the endpoint of the actor's new incarnation.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import itertools
import logging
import os
import pickle
import secrets
import socket
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import ray

from actors.infra.settings import DIRECT_PORTS_ENV, port_range

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1 << 30
_LENGTH = 4
_TOKEN_BYTES = 16


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to reach one actor incarnation's direct channel."""

    host: str
    port: int
    token: bytes


class ChannelClosedError(ConnectionError):
    """The connection to an actor's direct channel broke (or could not be made); calls in
    flight may or may not have run."""


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(_LENGTH, "big") + payload


async def _read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME_BYTES) -> bytes:
    size = int.from_bytes(await reader.readexactly(_LENGTH), "big")
    if size > limit:
        raise ChannelClosedError(f"frame of {size} bytes")
    return await reader.readexactly(size)


def _keepalive(writer: asyncio.StreamWriter) -> None:
    """Probe an idle connection, so that a peer whose host vanished is noticed (~11 s)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _dump_error(exc: BaseException) -> bytes:
    """Pickle an exception, or a `RuntimeError` naming it when it does not pickle."""
    try:
        data = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)  # some exceptions pickle but do not unpickle
    except Exception:  # any failure to round-trip gets the fallback
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return data


class DirectServer:
    """Serve some async methods of `target` on a port of this node.

    Args:
        target: The actor instance (its methods run in its own event loop).
        methods: Names of the methods a caller may call.
        host: Address to listen on; None: this node's IP as Ray knows it.
    """

    def __init__(self, target: object, methods: Collection[str], host: str | None = None) -> None:
        self._target = target
        self._methods = frozenset(methods)
        self._host = host
        self._token = secrets.token_bytes(_TOKEN_BYTES)
        self._endpoint: Endpoint | None = None
        self._start_lock = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def endpoint(self) -> Endpoint:
        """Start listening (once) and return where callers connect.

        The port is any free one, or the first free one of the range in
        `CLOB_RAY__DIRECT_PORTS` (`FIRST-LAST`) when this process's environment has it.

        Raises:
            OSError: No port of that range is free.
        """
        async with self._start_lock:
            if self._endpoint is None:
                host = self._host or _node_ip()
                self._server = await self._listen(host)
                port = self._server.sockets[0].getsockname()[1]
                self._endpoint = Endpoint(host, port, self._token)
        return self._endpoint

    async def _listen(self, host: str) -> asyncio.Server:
        configured = os.environ.get(DIRECT_PORTS_ENV, "").strip()
        if not configured:
            return await asyncio.start_server(self._serve, host, 0)
        for port in port_range(configured):
            try:
                return await asyncio.start_server(self._serve, host, port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, f"no free port in {DIRECT_PORTS_ENV}={configured}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _keepalive(writer)
        try:
            # Nothing of an unauthenticated peer is read beyond a token's length.
            if not hmac.compare_digest(await _read_frame(reader, _TOKEN_BYTES), self._token):
                log.warning("direct channel: a connection with a wrong token, closed")
                return
            while True:
                call_id, method, args = pickle.loads(await _read_frame(reader))
                task = asyncio.ensure_future(self._run(writer, call_id, method, args))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the caller went away (or sent a token of another length)
        except Exception:  # a frame that does not unpickle: a broken caller
            log.exception("direct channel: a malformed request; connection closed")
        finally:
            writer.close()

    async def _run(
        self, writer: asyncio.StreamWriter, call_id: int, method: str, args: tuple[Any, ...]
    ) -> None:
        try:
            if method not in self._methods:
                raise AttributeError(f"{method!r} is not served on this direct channel")
            value = await getattr(self._target, method)(*args)
            answer = pickle.dumps((call_id, True, value), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # the caller gets it
            answer = pickle.dumps(
                (call_id, False, _dump_error(exc)), protocol=pickle.HIGHEST_PROTOCOL
            )
        if not writer.is_closing():
            writer.write(_frame(answer))


def _node_ip() -> str:
    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


class _Connection:
    """One open connection of a `DirectClient` and the calls waiting on it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.reading: asyncio.Task[None] | None = None

    def send(self, call_id: int, frame: bytes, answer: asyncio.Future[Any]) -> None:
        self.pending[call_id] = answer
        self.writer.write(frame)

    async def read(self, reader: asyncio.StreamReader) -> None:
        """Hand out answers until the connection ends, then fail the calls left."""
        error = ChannelClosedError("the connection closed")
        try:
            while True:
                call_id, ok, value = pickle.loads(await _read_frame(reader))
                answer = self.pending.pop(call_id, None)
                if answer is None or answer.done():
                    continue
                if ok:
                    answer.set_result(value)
                else:
                    answer.set_exception(pickle.loads(value))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            error = ChannelClosedError(f"the connection broke: {type(exc).__name__}")
        except Exception as exc:  # an answer that does not unpickle: close, fail the rest
            log.exception("direct channel: a malformed answer; connection closed")
            error = ChannelClosedError(f"a malformed answer: {type(exc).__name__}")
        finally:
            self.writer.close()
            pending, self.pending = self.pending, {}
            for answer in pending.values():
                if not answer.done():
                    answer.set_exception(error)


class DirectClient:
    """Calls to one actor over its direct channel, connecting on first use.

    Args:
        resolve: Returns the actor's current `Endpoint` (a Ray call to the actor); its
            errors reach the caller of `call` unchanged.
    """

    def __init__(self, resolve: Callable[[], Awaitable[Endpoint]]) -> None:
        self._resolve = resolve
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._ids = itertools.count()
        self._closed = False

    def call(self, method: str, *args: Any) -> asyncio.Future[Any]:
        """Send a call now when connected (else as soon as the connection is made, in the
        order of `call`s); return its answer's future.

        The future raises the method's exception, `ChannelClosedError`, or what resolving
        the endpoint raised.
        """
        if self._closed:
            raise ChannelClosedError("this client was closed")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        call_id = next(self._ids)
        frame = _frame(pickle.dumps((call_id, method, args), protocol=pickle.HIGHEST_PROTOCOL))
        conn = self._conn
        if conn is not None and not conn.writer.is_closing():
            conn.send(call_id, frame, answer)
            return answer
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())

        def send(done: asyncio.Future[_Connection]) -> None:
            if answer.done():
                return
            if done.cancelled():
                answer.set_exception(ChannelClosedError("connecting was cancelled"))
            elif (error := done.exception()) is not None:
                answer.set_exception(error)
            else:
                done.result().send(call_id, frame, answer)

        self._connecting.add_done_callback(send)  # callbacks run in the order they were added
        return answer

    async def _connect(self) -> _Connection:
        try:
            endpoint = await self._resolve()
            try:
                reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
            except OSError as exc:
                where = f"{endpoint.host}:{endpoint.port}"
                raise ChannelClosedError(f"cannot connect to {where}: {exc}") from exc
            if self._closed:  # closed while connecting
                writer.close()
                raise ChannelClosedError("this client was closed")
            _keepalive(writer)
            writer.write(_frame(endpoint.token))
            conn = _Connection(writer)
            conn.reading = asyncio.ensure_future(conn.read(reader))
            self._conn = conn
            return conn
        finally:
            self._connecting = None

    def close(self) -> None:
        """Close the connection; calls in flight fail with `ChannelClosedError`."""
        self._closed = True
        if self._conn is not None:
            self._conn.writer.close()


def client_of(actor: Any) -> DirectClient:
    """Return a `DirectClient` of a Ray actor that serves `direct_endpoint()`; it asks the
    actor for its endpoint through Ray on first use and after each broken connection."""

    async def resolve() -> Endpoint:
        endpoint: Endpoint = await actor.direct_endpoint.remote()
        return endpoint

    return DirectClient(resolve)
