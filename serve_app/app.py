"""The Ray Serve application: a FastAPI ingress deployment built by `app_builder`.

`serve run serve_app.app:app_builder database_url=... redis_url=...` works as well as
`clob up`, which builds the same application with the resolved service URLs. Later issues
add routes to `api` and actor handles to `AppArgs`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

from serve_app import lean, probes
from serve_app.docs_ui import install_docs
from serve_app.errors import install_error_handlers
from serve_app.probes import ComponentStatus
from serve_app.routes import include_routes
from serve_app.routes.core import GatewayCore

API_PREFIX = "/api/v1"


class AppArgs(BaseModel):
    """Arguments of the application builder (also accepted by `serve run`)."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = Field(description="PostgreSQL URL the gateway reads from.")
    redis_url: str = Field(description="Redis URL for caches and fan-out.")
    gateway_replicas: int = Field(default=1, ge=1, description="Ingress replicas.")
    admin_token: str | None = Field(
        default=None, description="Token of the admin endpoints (X-Admin-Token); None: off."
    )
    ray_namespace: str = Field(default="clob", description="Namespace of the named actors.")
    test_credits: bool = Field(
        default=False, description="Allow POST /admin/credits (embedded mode, until custody)."
    )
    rate_limit_per_minute: int = Field(
        default=0, ge=0, description="Requests per minute per API key; 0 turns it off."
    )
    auth_cache_ttl_s: float = Field(
        default=30.0, ge=0, description="How long a replica trusts a checked API key, s."
    )
    max_ongoing_requests: int = Field(
        default=512, ge=1, description="Concurrent requests per replica (order batches)."
    )
    access_log: bool = Field(
        default=False, description="Serve's access log line per request (costs CPU)."
    )


class SystemStatus(BaseModel):
    """The whole system's state."""

    status: str = Field(description='"up" when every component is up, else "degraded".')
    components: list[ComponentStatus]


api = lean.ExchangeAPI(
    title="clob exchange API",
    version="0.1.0",
    description="Off-chain central limit order book on Ray, durable in PostgreSQL.",
    docs_url=None,  # served offline by install_docs instead of FastAPI's CDN pages
    redoc_url=None,
)
install_docs(api)
install_error_handlers(api)
include_routes(api, API_PREFIX)
api.lean_routes[("POST", f"{API_PREFIX}/orders")] = lean.post_orders


@serve.deployment(
    ray_actor_options={"num_cpus": 0},
    graceful_shutdown_wait_loop_s=0.5,
    graceful_shutdown_timeout_s=5,
)
@serve.ingress(api)
class Gateway:
    """The REST/WebSocket ingress; it translates HTTP into calls on the trading actors."""

    def __init__(self, args: AppArgs) -> None:
        self._args = args
        self.core = GatewayCore(args)

    @api.get("/health", tags=["system"], summary="Liveness")
    async def health(self) -> dict[str, str]:
        """Answer 200 while the gateway process serves requests."""
        return {"status": "ok"}

    @api.get(f"{API_PREFIX}/system/status", tags=["system"], response_model=SystemStatus)
    async def system_status(self) -> SystemStatus:
        """Report each component's state and version."""
        stores = await asyncio.gather(self._postgres_status(), self._redis_status())
        components = [*stores, probes.ray_cluster(), probes.serve_apps()]
        overall = "up" if all(c.status == "up" for c in components) else "degraded"
        return SystemStatus(status=overall, components=components)

    async def _postgres_status(self) -> ComponentStatus:
        try:
            pool, _ = await asyncio.wait_for(self.core.connections(), probes.TIMEOUT_S)
        except Exception as exc:  # a probe reports any failure as "down"
            return probes.down("postgresql", self._args.database_url, exc)
        return await probes.postgres(pool, self._args.database_url)

    async def _redis_status(self) -> ComponentStatus:
        try:
            _, client = await asyncio.wait_for(self.core.connections(), probes.TIMEOUT_S)
        except Exception as exc:  # a probe reports any failure as "down"
            return probes.down("redis", self._args.redis_url, exc)
        return await probes.redis(client, self._args.redis_url)


def app_builder(args: dict[str, Any] | AppArgs) -> Application:
    """Build the Serve application.

    Args:
        args: `AppArgs` or a dict of its fields (what `serve run ... key=value` passes).

    Returns:
        The bound application, ready for `serve.run`.
    """
    parsed = args if isinstance(args, AppArgs) else AppArgs.model_validate(args)
    deployment: Any = Gateway
    application: Application = deployment.options(
        num_replicas=parsed.gateway_replicas,
        max_ongoing_requests=parsed.max_ongoing_requests,
        logging_config={"enable_access_log": parsed.access_log},
    ).bind(parsed)
    return application
