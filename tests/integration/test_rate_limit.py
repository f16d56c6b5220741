"""The per-key rate limit against the real Redis: fixed one-minute windows."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from serve_app.auth import over_rate_limit


async def test_a_key_is_over_the_limit_after_its_quota_and_other_keys_are_not(
    redis_url: str,
) -> None:
    client = aioredis.from_url(redis_url)
    try:
        for _ in range(2):  # a second try only if the calls straddled a minute boundary
            key, other = f"k-{uuid.uuid4().hex}", f"k-{uuid.uuid4().hex}"
            verdicts = [await over_rate_limit(client, key, 3) for _ in range(5)]
            names = [n.decode() async for n in client.scan_iter(match=f"ratelimit:{key}:*")]
            if len(names) == 1:
                break
        assert verdicts == [False, False, False, True, True]
        assert 0 < await client.ttl(names[0]) <= 61
        assert await over_rate_limit(client, other, 3) is False
    finally:
        await client.aclose()


async def test_no_limit_counts_nothing(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        key = f"k-{uuid.uuid4().hex}"
        assert await over_rate_limit(client, key, 0) is False
        assert [n async for n in client.scan_iter(match=f"ratelimit:{key}:*")] == []
    finally:
        await client.aclose()


async def test_an_unreachable_redis_lets_requests_through() -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        assert await over_rate_limit(client, "k", 1) is False
    finally:
        await client.aclose()
