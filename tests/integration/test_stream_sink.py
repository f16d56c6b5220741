"""`RedisSink` against a real Redis: order, pipelined batches, overflow and an unreachable
server (publishing never raises or waits; what is lost is counted)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from actors.infra.embedded import free_port
from actors.stream.sink import RedisSink

pytestmark = pytest.mark.timeout(60)


async def _received(pubsub: aioredis.client.PubSub, n: int) -> list[bytes]:
    out: list[bytes] = []
    deadline = asyncio.get_running_loop().time() + 10
    while len(out) < n:
        assert asyncio.get_running_loop().time() < deadline, f"{len(out)} of {n} arrived"
        # None also for a subscribe confirmation, which is skipped.
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if message is not None:
            out.append(message["data"])
    return out


async def _settled(sink: RedisSink, total: int) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while sink.counters()["published"] + sink.counters()["dropped"] < total:
        assert asyncio.get_running_loop().time() < deadline, sink.counters()
        await asyncio.sleep(0.01)


async def test_messages_arrive_in_order_and_a_full_queue_drops_the_oldest(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe("sink-test")
    sink = RedisSink(redis_url, max_queue=1_000)
    try:
        for i in range(1_200):  # one loop turn: the sender has not run yet
            sink.publish("sink-test", b"%d" % i)
        assert sink.counters()["dropped"] == 200
        got = await _received(pubsub, 1_000)
        assert got == [b"%d" % i for i in range(200, 1_200)]
        # The subscriber can see the last batch before the sender has its reply.
        await _settled(sink, 1_200)
        assert sink.counters() == {"published": 1_000, "dropped": 200, "errors": 0, "queued": 0,
                                   "connected": 1}  # fmt: skip
        sink.publish("sink-test", b"later")  # the idle sender wakes up
        assert await _received(pubsub, 1) == [b"later"]
    finally:
        await sink.aclose()
        await pubsub.aclose()
        await client.aclose()


async def test_an_unreachable_redis_costs_counted_drops_and_never_an_exception() -> None:
    sink = RedisSink(f"redis://127.0.0.1:{free_port()}/0")
    try:
        for i in range(5):
            sink.publish("nowhere", b"%d" % i)
        await asyncio.sleep(0.3)
        counters = sink.counters()
        assert counters["errors"] >= 1 and counters["dropped"] == 5
        assert counters["published"] == 0 and counters["connected"] == 0
    finally:
        await sink.aclose()
