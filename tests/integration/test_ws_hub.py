"""The gateway's Redis hub against a real Redis that goes away and comes back: clients are
told `stream_unavailable`, the hub reconnects and resubscribes by itself, books get fresh
snapshots and private streams a `resync` notice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from actors.engine import MarketSpec
from actors.infra.embedded import EmbeddedRedis, free_port
from actors.stream.messages import Level, MarketBatch, account_channel, encode, md_channel
from serve_app.ws import hub as hub_module
from serve_app.ws.connection import Connection, Limits
from serve_app.ws.hub import Hub, Sources
from serve_app.ws.market_feed import GroupKey

SPEC = MarketSpec("HUB-USDC", base_decimals=9, quote_decimals=6, tick_size=10_000,
                  lot_size=1_000_000)  # fmt: skip


class Client:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.conn = Connection(self.send, Limits(), "hub-test")
        self.conn.start()

    async def send(self, message: dict[str, Any]) -> None:
        self.frames.append(json.loads(message["text"]))

    async def wait_for(self, match: Any, timeout: float = 15.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames:
                    if match(frame):
                        self.frames.remove(frame)
                        return frame
                await asyncio.sleep(0.02)


async def test_redis_loss_is_reported_and_the_streams_resume(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, port=free_port())
    url = server.start()
    book = {"bids": [], "asks": [], "seq": 0}
    reads: list[int] = []

    async def fetch_book(symbol: str) -> dict[str, Any]:
        reads.append(int(book["seq"]))  # type: ignore[call-overload]
        return book

    async def fetch_trades(symbol: str) -> list[dict[str, Any]]:
        return []

    async def spec_of(symbol: str) -> MarketSpec:
        return SPEC

    async def decimals_of(asset: str) -> int:
        return 6

    async def stats_of(symbol: str) -> dict[str, Any]:
        return {}

    hub = Hub(url, Sources(fetch_book, fetch_trades, spec_of, decimals_of, stats_of))
    client = Client()
    feed = await hub.market("HUB-USDC")
    feed.join_book(client.conn, GroupKey(5, 0, None, "native"))
    account = await hub.account(42)
    account.join(client.conn, ("balances", None, "native"))
    await client.wait_for(lambda f: f.get("type") == "snapshot")
    publisher = aioredis.from_url(url)
    batch = MarketBatch("HUB-USDC", U=1, u=1, E=0, bids=[Level(100, 1, 1)])
    await publisher.publish(md_channel("HUB-USDC"), encode(batch))
    update = await client.wait_for(lambda f: f.get("type") == "update")
    assert (update["U"], update["u"], update["pu"]) == (1, 1, 0)
    await publisher.aclose()

    server.stop()
    lost = await client.wait_for(lambda f: f.get("code") == "stream_unavailable")
    assert lost["op"] == "error"
    assert not hub.up and hub.failing  # a subscription now is told the stream is away

    book = {"bids": [{"price": 100, "qty": 3, "count": 1}], "asks": [], "seq": 9}
    server.start()  # the same port: the hub reconnects by itself
    snapshot = await client.wait_for(lambda f: f.get("type") == "snapshot")
    assert (snapshot["u"], snapshot["bids"]) == (9, [["1.000000", "0.003000000"]])
    notice = await client.wait_for(lambda f: f.get("op") == "resync")
    assert notice["reason"] == "stream_restored"
    assert hub.up and not hub.failing and reads[-1] == 9
    publisher = aioredis.from_url(url)
    batch = MarketBatch("HUB-USDC", U=10, u=10, E=0, bids=[Level(100, 0, 0)])
    assert await publisher.publish(md_channel("HUB-USDC"), encode(batch)) == 1
    assert await publisher.publish(account_channel(42), b"not json") == 1
    update = await client.wait_for(lambda f: f.get("type") == "update")
    assert (update["U"], update["pu"], update["bids"]) == (10, 9, [["1.000000", "0"]])
    await publisher.aclose()
    await hub.stop()
    await client.conn.finish()
    server.stop()


async def test_subscribing_after_every_feed_left_keeps_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing subscribed, redis-py's SUBSCRIBE used to PING and read the answer
    while the reader was reading the same socket: the connection broke and every client
    got `stream_unavailable`. A health check always due (10 ms) makes that the rule
    rather than a rare race; feeds come and go, and the connection must never drop."""
    monkeypatch.setattr(hub_module, "HEALTH_CHECK_S", 0.01)
    server = EmbeddedRedis(tmp_path, port=free_port())
    url = server.start()

    async def unused(_: Any) -> Any:
        raise AssertionError("no market here")

    async def decimals_of(asset: str) -> int:
        return 6

    hub = Hub(url, Sources(unused, unused, unused, decimals_of, unused))
    client = Client()
    publisher = aioredis.from_url(url)
    try:
        for round_ in range(8):
            account = await hub.account(round_)
            account.join(client.conn, ("balances", None, "native"))
            async with asyncio.timeout(10):
                while await publisher.publish(account_channel(round_), b"not json") == 0:
                    await asyncio.sleep(0.02)  # until Redis has the subscription
            account.leave(client.conn, ("balances", None, "native"))
            hub.release_account(round_)
            await asyncio.sleep(0.1)  # nothing subscribed
        assert hub.up and hub.counters["reconnects"] == 0
        assert not [f for f in client.frames if f.get("code") == "stream_unavailable"]
    finally:
        await publisher.aclose()
        await hub.stop()
        await client.conn.finish()
        server.stop()
