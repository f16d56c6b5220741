"""The `/ws` endpoint of one gateway replica: accept, greet, read frames, hand them to
the session, and clean up.

One `WsService` per replica owns the hub (its Redis subscriptions) and counts the open
sockets: beyond `ws.max_connections` a socket is accepted and closed at once with 1013
(try again later), so that the deployment's `max_ongoing_requests` (REST's share plus
this cap: each open WebSocket is one ongoing request of the replica) is never what
refuses it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict
from typing import Any

from starlette.types import Send
from starlette.websockets import WebSocket

from serve_app.gateway import stats_cache
from serve_app.gateway.args import AppArgs
from serve_app.gateway.core import GatewayCore
from serve_app.ws.connection import ASGI_SEND, CLOSE_TRY_AGAIN, Connection, Limits
from serve_app.ws.gcpolicy import GcPolicy
from serve_app.ws.hub import Hub, Sources
from serve_app.ws.protocol import encode
from serve_app.ws.session import Session
from serve_app.ws.trades import TAPE_SIZE
from serve_app.ws.wire import Flusher, raw_socket

log = logging.getLogger(__name__)


def limits_of(args: AppArgs) -> Limits:
    """Return the per-connection limits the application was built with."""
    ws = args.ws
    return Limits(
        max_subscriptions=ws.max_subscriptions, messages_per_s=ws.messages_per_s,
        burst=ws.burst, max_frame_bytes=ws.max_frame_bytes, send_queue=ws.send_queue,
        heartbeat_s=ws.heartbeat_s,
    )  # fmt: skip


class WsService:
    """See the module docstring."""

    def __init__(self, core: GatewayCore, replica: str) -> None:
        self.core = core
        self.replica = replica
        self.limits = limits_of(core.args)
        self.max_connections = core.args.ws.max_connections
        self.connections = 0
        self.direct_writes = core.args.ws.direct_writes
        self.raw_connections = 0  # of them, written straight to their transport
        self.flusher = Flusher()
        self.hub = Hub(core.args.redis_url, _sources(core))
        self.gc = GcPolicy(lambda: self.connections, core.args.ws.gc_freeze)

    def status(self) -> dict[str, Any]:
        """Return this replica's WebSocket figures."""
        return {
            "connections": self.connections, "raw_connections": self.raw_connections,
            "redis_up": self.hub.up,
            "markets": len(self.hub.markets), "accounts": len(self.hub.accounts),
            **self.hub.counters,
            "gc_full_collections": self.gc.full_collections,
            "gc_full_seconds": self.gc.full_seconds,
        }  # fmt: skip

    async def serve(self, websocket: WebSocket) -> None:
        """Serve one client until it leaves or is closed."""
        await websocket.accept()
        self.gc.install(asyncio.get_running_loop())  # on the first socket; then nothing
        if self.connections >= self.max_connections:
            await websocket.close(CLOSE_TRY_AGAIN, "connection limit of this replica")
            return
        self.connections += 1
        # After the accept, frames go straight to the transport when it is uvicorn's
        # (`serve_app.ws.wire`), else through the app's own `send` when there is one:
        # Starlette's wrappers around it only add work per message.
        send: Send = websocket.scope.get(ASGI_SEND, websocket.send)
        sink = raw_socket(websocket.scope.get(ASGI_SEND)) if self.direct_writes else None
        conn = Connection(send, self.limits, uuid.uuid4().hex, sink, self.flusher)
        session = Session(self.core, self.hub, conn)
        conn.start()
        self.raw_connections += sink is not None
        try:
            conn.send(self._welcome(conn))
            api_key = websocket.headers.get("x-api-key")
            if api_key is not None:
                await session.authenticate(api_key)
            await self._read(websocket, conn, session)
        finally:
            self.connections -= 1
            self.raw_connections -= sink is not None
            self.gc.closed()
            await session.end()
            await conn.finish()

    def _welcome(self, conn: Connection) -> bytes:
        limits = {**asdict(self.limits), "max_connections": self.max_connections}
        return encode({"op": "welcome", "connection_id": conn.id, "replica": self.replica,
                       "limits": limits})  # fmt: skip

    async def _read(self, websocket: WebSocket, conn: Connection, session: Session) -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            if conn.open:
                await session.on_frame(frame)


def _sources(core: GatewayCore) -> Sources:
    async def fetch_book(symbol: str) -> dict[str, Any]:
        book: dict[str, Any] = await core.call(f"market:{symbol}", "l2", None)
        return book

    async def fetch_trades(symbol: str) -> list[dict[str, Any]]:
        trades: list[dict[str, Any]] = await core.call(
            f"market:{symbol}", "recent_trades", TAPE_SIZE
        )
        return trades

    async def spec_of(symbol: str) -> Any:
        return (await core.registry.market(await core.pool(), symbol)).spec

    async def decimals_of(asset: str) -> int:
        return await core.registry.decimals(await core.pool(), asset)

    async def stats_of(symbol: str) -> dict[str, Any]:
        record = await core.registry.market(await core.pool(), symbol)
        stats = await stats_cache.market_stats(core, [record])
        return stats[symbol].model_dump(mode="json")

    return Sources(fetch_book, fetch_trades, spec_of, decimals_of, stats_of)
