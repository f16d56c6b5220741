"""System routes: the admin's detailed status, and the probe behind the public `/health`."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from actors.custody.actor import CHAIN_ACTOR, DEPOSITS_ACTOR
from actors.settlement.actor import settlement_actor_name
from serve_app import probes
from serve_app.gateway.core import GatewayCore
from serve_app.http.deps import Core, require_admin
from serve_app.probes import ComponentStatus

router = APIRouter(prefix="/system", tags=["system"])
CUSTODY_ACTORS = (CHAIN_ACTOR, DEPOSITS_ACTOR)


class SystemStatus(BaseModel):
    """The whole system's state."""

    status: str = Field(description='"up" when every component is up, else "degraded".')
    components: list[ComponentStatus]


@router.get("/status", response_model=SystemStatus, dependencies=[Depends(require_admin)])
async def system_status(core: Core) -> SystemStatus:
    """Report each component's state, version and address, and every market actor's and
    ledger shard's state (admin: it names internal addresses and errors)."""
    pg, redis, actors, custody, settlement = await asyncio.gather(
        postgres(core), _redis(core), trading_core(core), custody_actors(core),
        settlement_status(core),
    )  # fmt: skip
    components = [pg, redis, probes.ray_cluster(), probes.serve_apps(), *actors, *custody,
                  *settlement]  # fmt: skip
    overall = "up" if all(c.status == "up" for c in components) else "degraded"
    return SystemStatus(status=overall, components=components)


async def trading_up(core: GatewayCore) -> bool:
    """Return whether everything trading needs is up: PostgreSQL, every market actor and
    every ledger shard (the public `/health`)."""
    pg, actors = await asyncio.gather(postgres(core), trading_core(core))
    return all(c.status == "up" for c in (pg, *actors))


async def trading_core(core: GatewayCore) -> list[ComponentStatus]:
    """Probe every market actor and ledger shard through the controller."""
    return await probes.trading_core(lambda: core.call("controller", "health"))


async def postgres(core: GatewayCore) -> ComponentStatus:
    """Probe PostgreSQL through the replica's pool."""
    try:
        pool, _ = await asyncio.wait_for(core.connections(), probes.TIMEOUT_S)
    except Exception as exc:  # a probe reports any failure as "down"
        return probes.down("postgresql", core.args.database_url, exc)
    return await probes.postgres(pool, core.args.database_url)


async def _redis(core: GatewayCore) -> ComponentStatus:
    try:
        _, client = await asyncio.wait_for(core.connections(), probes.TIMEOUT_S)
    except Exception as exc:  # a probe reports any failure as "down"
        return probes.down("redis", core.args.redis_url, exc)
    return await probes.redis(client, core.args.redis_url)


async def custody_actors(core: GatewayCore) -> list[ComponentStatus]:
    """Probe the custody actors (deposit listener, chain actor) when a chain is configured.

    They are not part of the public `/health`: trading goes on while the chain is away.
    """
    if not core.args.solana_rpc_url:
        return []
    return list(await asyncio.gather(*(_custody(core, name) for name in CUSTODY_ACTORS)))


async def settlement_status(core: GatewayCore) -> list[ComponentStatus]:
    """Probe the settlement batchers, and report the settlements by status: a failed one
    (given up after its last retry: an operator must look) makes it "degraded"."""
    if not core.args.solana_rpc_url:
        return []
    names = [settlement_actor_name(i) for i in range(core.args.settlement_batchers)]
    batchers = list(await asyncio.gather(*(_custody(core, name) for name in names)))
    try:
        pool, _ = await asyncio.wait_for(core.connections(), probes.TIMEOUT_S)
        rows = await pool.fetch(
            "SELECT status, count(*), min(settlement_id) FROM settlements "
            "WHERE status IN ('pending', 'submitted', 'failed') GROUP BY status"
        )
    except Exception as exc:  # a probe reports any failure as "down"
        return [*batchers, probes.down("settlements", None, exc)]
    counts = {r[0]: int(r[1]) for r in rows}
    first_failed = next((int(r[2]) for r in rows if r[0] == "failed"), None)
    summary = ComponentStatus(
        name="settlements", status="degraded" if counts.get("failed") else "up",
        error=None if first_failed is None else f"settlement {first_failed} failed: "
        f"POST /api/v1/admin/settlements/{first_failed}/retry once the cause is fixed",
        details={"pending": counts.get("pending", 0), "submitted": counts.get("submitted", 0),
                 "failed": counts.get("failed", 0)},
    )  # fmt: skip
    return [*batchers, summary]


async def _custody(core: GatewayCore, name: str) -> ComponentStatus:
    try:
        health = await asyncio.wait_for(core.call(name, "health"), 2 * probes.TIMEOUT_S)
    except Exception as exc:  # a probe reports any failure as "down"
        return probes.down(name, None, exc)
    details = {k: v for k, v in health.items() if k not in ("name", "last_error")}
    return ComponentStatus(name=name, status="up", error=health.get("last_error"),
                           details=details)  # fmt: skip
