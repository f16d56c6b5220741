"""The rate limit against the real Redis: fixed one-minute windows, one quota per subject."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from typing import Any

import redis.asyncio as aioredis

from serve_app.edge.context import RequestContext
from serve_app.edge.ratelimit import RateLimiter, count_request

# 10 s into a minute: the whole test stays in one window whatever the clock says.
NOW = (time.time() // 60) * 60 + 10


async def test_a_subject_is_over_its_quota_after_it_and_others_are_not(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        subject, other = f"t:{uuid.uuid4().hex}", f"t:{uuid.uuid4().hex}"
        quotas = [await count_request(client, subject, 3, NOW) for _ in range(5)]
        assert [q.over for q in quotas if q] == [False, False, False, True, True]
        assert [q.remaining for q in quotas if q] == [2, 1, 0, 0, 0]
        assert {(q.reset_epoch_s, q.retry_after_s) for q in quotas if q} == {(NOW + 50, 50)}
        names = [n.decode() async for n in client.scan_iter(match=f"ratelimit:{subject}:*")]
        assert names == [f"ratelimit:{subject}:{int(NOW // 60)}"]
        assert 0 < await client.ttl(names[0]) <= 61
        first_of_other = await count_request(client, other, 3, NOW)
        assert first_of_other is not None and first_of_other.remaining == 2
    finally:
        await client.aclose()


async def test_an_unreachable_redis_lets_requests_through() -> None:
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        assert await count_request(client, "k", 1, NOW) is None
    finally:
        await client.aclose()


class _Core:
    """What the limiter uses of a gateway replica: its args and its (real) Redis."""

    def __init__(self, client: Any) -> None:
        self.args = SimpleNamespace(admin_token="a-long-enough-admin-token")
        self._client = client
        self.redis_calls = 0

    async def redis(self) -> Any:
        self.redis_calls += 1
        return self._client


async def test_a_subject_over_its_quota_is_refused_without_asking_redis(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        core = _Core(client)
        limiter = RateLimiter(core, 2, "peer")
        scope = {"headers": [], "client": (f"192.0.2.{uuid.uuid4().int % 250}", 5000)}
        quotas = [await limiter.check(scope, RequestContext("r", 0)) for _ in range(5)]
        assert [q.over for q in quotas if q] == [False, False, True, True, True]
        if time.time() // 60 == NOW // 60:  # the window did not end in between
            assert core.redis_calls == 3
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
        assert core.redis_calls == 0
    finally:
        await client.aclose()
