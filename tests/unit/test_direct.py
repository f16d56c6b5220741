"""Direct channels (`actors.direct`) over real local TCP connections, without Ray."""

from __future__ import annotations

import asyncio
import pickle
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from actors.direct import ChannelClosedError, DirectClient, DirectServer, Endpoint, _frame
from actors.infra.settings import DIRECT_PORTS_ENV


class ShardLikeError(ValueError):
    """An exception of the served actor's own."""


class Unpicklable(Exception):  # noqa: N818 - named for what it is
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}/{b}")  # args do not rebuild it


class Target:
    """A served actor: records the order calls start in; `slow` waits to be released."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.gate = asyncio.Event()
        self.lock = asyncio.Lock()

    async def echo(self, value: Any) -> Any:
        self.started.append(value)
        return value

    async def ordered(self, value: Any) -> Any:
        async with self.lock:  # first in, first out: the order calls arrived in
            self.started.append(value)
            await asyncio.sleep(0.001 * (value % 3))
            return value

    async def slow(self) -> str:
        self.started.append("slow")
        await self.gate.wait()
        return "done"

    async def fail(self, message: str) -> None:
        raise ShardLikeError(message)

    async def fail_oddly(self) -> None:
        raise Unpicklable(1, 2)

    async def secret(self) -> str:
        return "not served"


SERVED = ("echo", "ordered", "slow", "fail", "fail_oddly")


async def _server(target: Target) -> tuple[DirectServer, Endpoint]:
    server = DirectServer(target, SERVED, host="127.0.0.1")
    return server, await server.endpoint()


def _resolver(endpoints: list[Endpoint]) -> tuple[Callable[[], Awaitable[Endpoint]], list[int]]:
    """A resolve that hands out the last endpoint of `endpoints` and counts its calls."""
    calls = [0]

    async def resolve() -> Endpoint:
        calls[0] += 1
        return endpoints[-1]

    return resolve, calls


@pytest.fixture
async def served() -> AsyncIterator[tuple[Target, DirectClient, list[int]]]:
    target = Target()
    _, endpoint = await _server(target)
    resolve, calls = _resolver([endpoint])
    client = DirectClient(resolve)
    yield target, client, calls
    client.close()


async def test_calls_answer_their_own_values_and_connect_once(
    served: tuple[Target, DirectClient, list[int]],
) -> None:
    _, client, calls = served
    assert await client.call("echo", {"a": [1, 2]}) == {"a": [1, 2]}
    answers = await asyncio.gather(*(client.call("echo", i) for i in range(50)))
    assert answers == list(range(50))
    assert calls == [1]


async def test_calls_sent_before_the_connection_is_made_start_in_call_order(
    served: tuple[Target, DirectClient, list[int]],
) -> None:
    target, client, _ = served
    futures = [client.call("ordered", i) for i in range(30)]  # all before connecting
    assert await asyncio.gather(*futures) == list(range(30))
    assert target.started == list(range(30))
    target.started.clear()
    futures = [client.call("ordered", i) for i in range(30, 60)]  # connected
    assert await asyncio.gather(*futures) == list(range(30, 60))
    assert target.started == list(range(30, 60))


async def test_a_pending_call_does_not_hold_up_later_ones(
    served: tuple[Target, DirectClient, list[int]],
) -> None:
    target, client, _ = served
    slow = client.call("slow")
    assert await client.call("echo", 1) == 1
    assert not slow.done()
    target.gate.set()
    assert await slow == "done"


async def test_the_methods_exception_reaches_the_caller_with_its_type(
    served: tuple[Target, DirectClient, list[int]],
) -> None:
    _, client, _ = served
    with pytest.raises(ShardLikeError, match="short of funds"):
        await client.call("fail", "short of funds")
    with pytest.raises(RuntimeError, match=r"Unpicklable: 1/2"):
        await client.call("fail_oddly")
    with pytest.raises(AttributeError, match="'secret' is not served"):
        await client.call("secret")
    assert await client.call("echo", "still connected") == "still connected"


async def test_a_connection_with_a_wrong_token_runs_nothing() -> None:
    target = Target()
    _, endpoint = await _server(target)
    resolve, _ = _resolver([Endpoint(endpoint.host, endpoint.port, b"x" * 16)])
    client = DirectClient(resolve)
    with pytest.raises(ChannelClosedError):
        await client.call("echo", 1)
    # Nor does a request sent in place of the token, nor a huge first frame.
    for first in (_frame(pickle.dumps((0, "echo", (2,)))), (1 << 29).to_bytes(4, "big")):
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        writer.write(first)
        assert await reader.read() == b""  # closed without an answer
        writer.close()
    assert target.started == []


async def test_a_broken_connection_fails_the_calls_in_flight_and_the_next_call_reconnects() -> None:
    received: list[bytes] = []

    async def dying(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """An incarnation that dies after taking the token and one call."""
        for _ in range(2):
            size = int.from_bytes(await reader.readexactly(4), "big")
            received.append(await reader.readexactly(size))
        writer.transport.abort()  # a reset, as when the process dies

    doomed = await asyncio.start_server(dying, "127.0.0.1", 0)
    endpoints = [Endpoint("127.0.0.1", doomed.sockets[0].getsockname()[1], b"t" * 16)]
    resolve, calls = _resolver(endpoints)
    client = DirectClient(resolve)
    with pytest.raises(ChannelClosedError):
        await client.call("echo", 1)
    assert len(received) == 2  # the call was sent: it may or may not have run
    doomed.close()
    target = Target()
    _, endpoint = await _server(target)
    endpoints.append(endpoint)  # the new incarnation
    assert await client.call("echo", 2) == 2
    assert target.started == [2] and calls == [2]
    client.close()


async def test_a_failing_resolve_reaches_the_caller_and_the_next_call_resolves_again() -> None:
    target = Target()
    _, endpoint = await _server(target)
    outcomes: list[Exception | Endpoint] = [LookupError("restarting"), endpoint]

    async def resolve() -> Endpoint:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    client = DirectClient(resolve)
    first, second = client.call("echo", 1), client.call("echo", 2)
    for future in (first, second):
        with pytest.raises(LookupError):
            await future
    assert await client.call("echo", 3) == 3
    assert target.started == [3]
    client.close()


async def test_a_configured_port_range_gives_the_first_free_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    monkeypatch.setenv(DIRECT_PORTS_ENV, f"{busy}-{busy + 1}")
    try:
        try:
            _, endpoint = await _server(Target())
        except OSError:  # the next port happens to be taken too: nothing to conclude
            pytest.skip(f"port {busy + 1} is in use")
        assert endpoint.port == busy + 1
        monkeypatch.setenv(DIRECT_PORTS_ENV, f"{busy}-{busy}")
        with pytest.raises(OSError, match="no free port"):
            await _server(Target())
    finally:
        taken.close()
