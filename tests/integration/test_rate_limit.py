"""The rate limit's counts against the real Redis: per replica at once, shared at each sync."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from typing import Any

import redis.asyncio as aioredis

from serve_app.edge.context import RequestContext
from serve_app.edge.counts import WindowCounts
from serve_app.edge.ratelimit import RateLimiter

# 10 s into a minute: the whole test stays in one window whatever the clock says.
NOW = (time.time() // 60) * 60 + 10


def _getter(client: Any) -> Any:
    async def redis() -> Any:
        return client

    return redis


async def test_two_replicas_share_a_subjects_count_at_each_sync(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        # Synced by hand: no background sync within the test.
        one, other = (WindowCounts(_getter(client), sync_s=3600) for _ in range(2))
        subject = f"t:{uuid.uuid4().hex}"
        assert [one.count(subject, NOW) for _ in range(3)] == [1, 2, 3]
        assert other.count(subject, NOW) == 1  # it has not heard of the first replica's yet
        await one.sync()
        await other.sync()
        assert other.count(subject, NOW) == 5  # 3 + 1 known from Redis, and this one
        assert one.count(subject, NOW) == 4  # 3 known as of its sync, and this one
        await one.sync()  # adds its 4th; the other's 2nd is still its own
        assert one.count(subject, NOW) == 6
        name = f"ratelimit:{subject}:{int(NOW // 60)}"
        assert int(await client.get(name)) == 5
        assert 0 < await client.ttl(name) <= 61
        assert one.count(subject, NOW + 60) == 1, "a new window starts from zero"
        one.close()
        other.close()
    finally:
        await client.aclose()


async def test_an_unreachable_redis_leaves_each_replica_its_own_count() -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        counts = WindowCounts(_getter(client), sync_s=3600)
        assert [counts.count("k", NOW) for _ in range(2)] == [1, 2]
        await counts.sync()
        assert counts.count("k", NOW) == 3
        counts.close()
    finally:
        await client.aclose()


class _Core:
    """What the limiter uses of a gateway replica: its args and its (real) Redis."""

    def __init__(self, client: Any) -> None:
        self.args = SimpleNamespace(admin_token="a-long-enough-admin-token")
        self.redis = _getter(client)


async def test_a_subject_past_its_quota_is_over_with_nothing_remaining(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        limiter = RateLimiter(_Core(client), 2, "peer")
        scope = {"headers": [], "client": (f"192.0.2.{uuid.uuid4().int % 250}", 5000)}
        quotas = [await limiter.check(scope, RequestContext("r", 0)) for _ in range(4)]
        assert [(q.over, q.remaining) for q in quotas if q] == [
            (False, 1), (False, 0), (True, 0), (True, 0),
        ]  # fmt: skip
    finally:
        await client.aclose()


async def test_the_admin_token_is_not_limited_and_no_client_ip_is_not_limited(
    redis_url: str,
) -> None:
    client = aioredis.from_url(redis_url)
    try:
        core = _Core(client)
        admin = {"headers": [(b"x-admin-token", b"a-long-enough-admin-token")], "client": None}
        context = RequestContext("r", 0)
        assert await RateLimiter(core, 1, "peer").check(admin, context) is None
        assert context.admin
        anonymous = {"headers": [], "client": ("192.0.2.1", 5000)}
        assert await RateLimiter(core, 1, "none").check(anonymous, RequestContext("r", 0)) is None
    finally:
        await client.aclose()
