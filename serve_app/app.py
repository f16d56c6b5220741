"""The Ray Serve application: a FastAPI ingress deployment built by `app_builder`.

`serve run serve_app.app:app_builder database_url=... redis_url=...` works as well as
`clob up`, which builds the same application with the resolved service URLs (`AppArgs`, in
`serve_app.gateway.args`, which the replica's services read).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from fastapi import Depends, Response, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from ray import serve
from ray.serve import Application

from serve_app import lean, probes, ws_app
from serve_app.docs_ui import install_docs
from serve_app.edge.metrics import CONTENT_TYPE_LATEST
from serve_app.edge.ratelimit import resolve_client_ip
from serve_app.edge.stack import Edge, EdgeConfig
from serve_app.gateway.args import AppArgs
from serve_app.gateway.core import GatewayCore
from serve_app.http.contract import strict_request
from serve_app.http.handlers import install_error_handlers
from serve_app.routes import include_routes, system
from serve_app.ws.connection import CLOSE_TRY_AGAIN
from serve_app.ws.metrics import WsCollector
from serve_app.ws.service import WsService

API_PREFIX = "/api/v1"


class Health(BaseModel):
    """Public health: up when everything trading needs answers."""

    status: Literal["up", "down"]


HEALTH_TTL_S = 1.0
"""How long a gateway replica reuses its public health answer, seconds."""


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


def _edge_config(args: AppArgs) -> EdgeConfig:
    """Return the edge settings of this replica (its rank and id come from Serve)."""
    context = serve.get_replica_context()
    rank: Any = context.rank  # a `ReplicaRank` (an int in older Serve versions)
    return EdgeConfig(
        cors_origins=tuple(args.cors_origins),
        rate_limit_per_minute=args.rate_limit_per_minute,
        client_ip=resolve_client_ip(args.client_ip, os.environ),
        request_log_dir=args.request_log_dir,
        rank=int(getattr(rank, "rank", rank)),
        replica=context.replica_tag,
    )


@api.websocket("/ws")
async def websocket(socket: WebSocket) -> None:
    """The real-time WebSocket API (docs/websocket.md), served by this replica's hub when
    the WebSocket application (`serve_app.ws_app`) does not run; it takes `/ws` when it
    does, so this route only sees a client that reached a REST replica's own port."""
    servable: Any = serve.get_replica_context().servable_object
    service: WsService | None = servable.ws
    if service is None:
        await socket.close(CLOSE_TRY_AGAIN, "served by the WebSocket application at /ws")
        return
    await service.serve(socket)


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
        self._health = probes.CachedProbe(lambda: system.trading_up(self.core), HEALTH_TTL_S)
        self._edge = Edge(api.dispatch, _edge_config(args), self.core)
        api.edge = self._edge
        replica = serve.get_replica_context().replica_tag
        self.ws: WsService | None = None
        if args.ws_replicas == 0:
            self.ws = WsService(self.core, replica)
            self._edge.metrics.registry.register(WsCollector(self.ws, replica))

    @api.get("/metrics", include_in_schema=False)
    async def metrics(self) -> Response:
        """Answer the Prometheus metrics of this replica and of the market actors."""
        body = await self._edge.metrics.render(self.core)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @api.get(
        "/health",
        tags=["system"],
        dependencies=[Depends(strict_request)],
        summary="Health: up or down",
        response_model=Health,
        responses={503: {"model": Health, "description": "Something trading needs is down"}},
    )
    async def health(self) -> JSONResponse:
        """Answer 200 `up` when PostgreSQL, every market actor and every ledger shard are
        up, else 503 `down` (details: `/api/v1/system/status`, admin). Probed at most once
        per second per gateway replica."""
        up = await self._health.get()
        return JSONResponse({"status": "up" if up else "down"}, status_code=200 if up else 503)


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
        # Each open WebSocket is one ongoing request of its replica for its whole life.
        max_ongoing_requests=parsed.max_ongoing_requests
        + (parsed.ws.max_connections if parsed.ws_replicas == 0 else 0),
        logging_config={"enable_access_log": parsed.access_log},
    ).bind(parsed)
    return application


def ws_name(name: str) -> str:
    """Return the name of the WebSocket application beside the REST application `name`."""
    return f"{name}-ws"


def deploy(args: AppArgs, name: str, route_prefix: str = "/") -> None:
    """Run the REST application at `route_prefix` and, with `args.ws_replicas`, the
    WebSocket one (`serve_app.ws_app`) at its `/ws`, side by side; wait until both run.

    Args:
        args: The applications' arguments.
        name: The REST application's name (the WebSocket one's is `ws_name(name)`).
        route_prefix: Where the REST application is served.
    """
    targets = [serve.RunTarget(app_builder(args), name=name, route_prefix=route_prefix)]
    if args.ws_replicas:
        ws_prefix = route_prefix.rstrip("/") + ws_app.ROUTE_PREFIX
        targets.append(serve.RunTarget(ws_app.ws_app_builder(args), name=ws_name(name),
                                       route_prefix=ws_prefix))  # fmt: skip
    serve.run_many(targets)


def undeploy(name: str) -> None:
    """Delete the REST application `name` and its WebSocket application, if any."""
    serve.delete(name)
    if ws_name(name) in serve.status().applications:
        serve.delete(ws_name(name))
