"""Health probes of each component, for `/api/v1/system/status`.

A separate module on purpose: Serve pickles the ingress class by value, and functions it
reaches through this module object are imported in the replica rather than copied.
"""

from __future__ import annotations

import asyncio
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
    status: str = Field(description='"up" or "down".')
    version: str | None = None
    address: str | None = None
    error: str | None = None


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


def redact(url: str) -> str:
    """Drop the password from a URL."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}@{host}"
