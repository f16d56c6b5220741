"""The endpoint's connection cap and greeting, over a fake socket (no server)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from actors.infra.settings import WebSocketSettings
from serve_app.gateway.args import AppArgs
from serve_app.ws.service import WsService


class FakeSocket:
    """The parts of Starlette's `WebSocket` the service uses; the client sends `frames`
    and leaves when `leave` is set."""

    def __init__(self, frames: list[str]) -> None:
        self.headers: dict[str, str] = {}
        self.scope: dict[str, Any] = {}  # no app `send` in it: frames go through `send`
        self.sent: list[dict[str, Any]] = []
        self.closed: int | None = None
        self.leave = asyncio.Event()
        self._frames = list(frames)

    async def accept(self) -> None:
        pass

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = code

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close":
            self.closed = message["code"]
        else:
            self.sent.append(json.loads(message["text"]))

    async def receive(self) -> dict[str, Any]:
        if self._frames:
            return {"type": "websocket.receive", "text": self._frames.pop(0)}
        await self.leave.wait()
        return {"type": "websocket.disconnect", "code": 1000}


def _service(max_connections: int) -> WsService:
    args = AppArgs(database_url="postgresql://h/db", redis_url="redis://h",
                   ws=WebSocketSettings(max_connections=max_connections))  # fmt: skip
    return WsService(SimpleNamespace(args=args), "replica-1")  # type: ignore[arg-type]


async def test_a_connection_beyond_the_cap_is_closed_1013_and_the_first_is_served() -> None:
    service = _service(1)
    first = FakeSocket(['{"op": "ping", "id": 1}'])
    serving = asyncio.create_task(service.serve(first))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert service.connections == 1
    second = FakeSocket([])
    await service.serve(second)  # type: ignore[arg-type]
    assert second.closed == 1013 and second.sent == []
    first.leave.set()
    await serving
    assert service.connections == 0
    assert first.sent[0]["op"] == "welcome" and first.sent[0]["replica"] == "replica-1"
    assert first.sent[1] == {"seq": 2, "op": "pong", "id": 1}
