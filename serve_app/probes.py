"""Health probes of each component, for `/api/v1/system/status`.

A separate module on purpose: Serve pickles the ingress class by value, and functions it
reaches through this module object are imported in the replica rather than copied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import ray
import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from ray import serve

TIMEOUT_S = 2.0


class ComponentStatus(BaseModel):
    """One component's state as reported by `/api/v1/system/status`."""

    name: str
    status: str = Field(
        description='"up"; else "down", or for a market "recovering" or "failed", for a '
        'ledger shard "degraded" (markets set aside, in details) or "down".'
    )
    version: str | None = None
    address: str | None = None
    error: str | None = None
    details: dict[str, Any] | None = Field(
        default=None, description="More about a market or shard: attempts, markets set aside."
    )


def down(name: str, url: str | None, exc: BaseException) -> ComponentStatus:
    """Return a "down" status carrying the error, with credentials removed from the URL."""
    address = redact(url) if url else None
    error = f"{type(exc).__name__}: {exc}"[:200]
    return ComponentStatus(name=name, status="down", address=address, error=error)


async def postgres(pool: asyncpg.Pool, url: str) -> ComponentStatus:
    """Probe PostgreSQL through the pool."""
    try:
        version = await asyncio.wait_for(pool.fetchval("SHOW server_version"), TIMEOUT_S)
    except Exception as exc:  # a probe reports any failure as "down"
        return down("postgresql", url, exc)
    return ComponentStatus(name="postgresql", status="up", version=version, address=redact(url))


async def redis(client: aioredis.Redis, url: str) -> ComponentStatus:
    """Probe Redis."""
    try:
        info: dict[str, Any] = await asyncio.wait_for(client.info("server"), TIMEOUT_S)
    except Exception as exc:  # a probe reports any failure as "down"
        return down("redis", url, exc)
    version = str(info.get("redis_version"))
    return ComponentStatus(name="redis", status="up", version=version, address=redact(url))


def ray_cluster() -> ComponentStatus:
    """Probe the Ray cluster this process belongs to."""
    try:
        address = ray.get_runtime_context().gcs_address
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        alive = sum(1 for node in nodes if node.get("Alive"))
    except Exception as exc:  # a probe reports any failure as "down"
        return down("ray", None, exc).model_copy(update={"version": ray.__version__})
    return ComponentStatus(
        name="ray", status="up", version=ray.__version__, address=f"{address} ({alive} nodes)"
    )


def serve_apps() -> ComponentStatus:
    """Probe Ray Serve: up when every application is RUNNING."""
    try:
        applications = serve.status().applications
    except Exception as exc:  # a probe reports any failure as "down"
        return down("serve", None, exc).model_copy(update={"version": ray.__version__})
    states = {name: str(app.status).rsplit(".", 1)[-1] for name, app in applications.items()}
    up = bool(states) and all(state == "RUNNING" for state in states.values())
    detail = ", ".join(f"{name}={state}" for name, state in states.items())
    return ComponentStatus(
        name="serve", status="up" if up else "down", version=ray.__version__, address=detail
    )


async def trading_core(
    health: Callable[[], Awaitable[dict[str, list[dict[str, Any]]]]],
) -> list[ComponentStatus]:
    """Probe every market actor and ledger shard through the controller's `health`."""
    try:
        answer = await asyncio.wait_for(health(), 2 * TIMEOUT_S)
    except Exception as exc:  # a probe reports any failure as "down"
        return [down("controller", None, exc)]
    return actor_statuses(answer)


def actor_statuses(health: dict[str, list[dict[str, Any]]]) -> list[ComponentStatus]:
    """Return the components of the controller's `health` (or `retry`) answer."""
    out = []
    for actor in (*health["markets"], *health["ledger_shards"]):
        extra = {k: v for k, v in actor.items() if k not in ("name", "status", "error")}
        out.append(
            ComponentStatus(
                name=actor["name"],
                status=actor["status"],
                error=actor.get("error"),
                details={k: v for k, v in extra.items() if v} or None,
            )
        )
    return out


class CachedProbe:
    """A yes/no probe run at most once per `ttl_s`; concurrent callers share one run.

    Args:
        probe: The probe.
        ttl_s: How long an answer is reused, seconds.
    """

    def __init__(self, probe: Callable[[], Awaitable[bool]], ttl_s: float) -> None:
        self._probe = probe
        self._ttl_s = ttl_s
        self._answer = False
        self._until = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> bool:
        """Return the probe's answer, probing again when the last one is too old."""
        if time.monotonic() < self._until:
            return self._answer
        async with self._lock:
            if time.monotonic() >= self._until:
                self._answer = await self._probe()
                self._until = time.monotonic() + self._ttl_s
        return self._answer


def redact(url: str) -> str:
    """Drop the password from a URL."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}@{host}"
