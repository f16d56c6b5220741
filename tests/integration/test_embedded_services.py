"""The embedded servers are real, reusable and stop cleanly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from actors.infra.embedded import EmbeddedPostgres, EmbeddedRedis, pid_alive
from actors.infra.services import Services


async def test_session_postgres_answers_sql(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT 40 + 2") == 42
    finally:
        await conn.close()


async def test_session_redis_answers_commands(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.set("clob:test", "1", px=1000)
        assert await client.get("clob:test") == b"1"
    finally:
        await client.aclose()


def test_embedded_servers_are_reused_then_stopped(
    server_dir: Callable[[str], Path], services: Services
) -> None:
    tmp_path = server_dir("reuse")
    # `services` ensures the binaries were prepared once; this test runs its own pair.
    postgres, cache = EmbeddedPostgres(tmp_path), EmbeddedRedis(tmp_path)
    first_pg, first_redis = postgres.start(), cache.start()
    pg_pid, redis_pid = postgres.running_pid_port(), cache.running_pid_port()
    assert pg_pid is not None and redis_pid is not None

    assert postgres.start() == first_pg, "a running server must be reused, not restarted"
    assert cache.start() == first_redis
    assert postgres.running_pid_port() == pg_pid

    assert postgres.stop() and cache.stop()
    assert not pid_alive(pg_pid[0]) and not pid_alive(redis_pid[0])
    assert postgres.running_pid_port() is None and cache.running_pid_port() is None
    assert not postgres.stop() and not cache.stop(), "stopping twice is a no-op"
