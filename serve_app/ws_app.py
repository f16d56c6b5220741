"""The WebSocket gateway: a Serve application of its own at `/ws`, beside the REST one.

Market data's fan-out is most of a gateway's work (a write per socket per message), and
on one replica it shares the event loop with REST order entry: at 5,000 clients a REST
order waited half a second behind it. `clob up` therefore runs `/ws` as a second
application (`serve.ws_replicas`, default 1) on the same port; HAProxy, or Serve's proxy,
routes by the longest route prefix, so `/ws` and `/ws/...` reach these replicas and
everything else the REST ones. Each replica is a whole `WsService` (its own hub,
sessions and trading path) over its own `GatewayCore`; it answers `GET /ws/metrics` with
its WebSocket figures. With `serve.ws_replicas: 0` the REST replicas serve `/ws` instead
(`serve_app.app`), as does `serve run serve_app.app:app_builder`.

The application is a plain ASGI callable, not FastAPI: it has one socket endpoint and one
text page, and a Starlette router would not match `/ws` itself under the route prefix
`/ws` (the path left to route is empty).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from ray import serve
from ray.serve import Application
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from actors import jsonx
from serve_app.edge.context import answer, route_path
from serve_app.errors import error_body
from serve_app.gateway.args import AppArgs
from serve_app.gateway.core import GatewayCore
from serve_app.ws.connection import ASGI_SEND
from serve_app.ws.metrics import WsCollector
from serve_app.ws.service import WsService

ROUTE_PREFIX = "/ws"

EXTRA_REQUESTS = 16
"""Ongoing requests a replica allows beyond its WebSocket cap (`/ws/metrics` scrapes)."""


async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve a WebSocket, `GET /ws/metrics`, or the ASGI lifespan; anything else is 404."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    servable: Any = serve.get_replica_context().servable_object
    replica: WsReplica = servable
    if scope["type"] == "websocket":
        scope[ASGI_SEND] = send  # frames skip Starlette's wrappers (`ws.connection`)
        await replica.ws.serve(WebSocket(scope, receive, send))
        return
    if scope["method"] == "GET" and route_path(scope) == "/metrics":
        metrics = generate_latest(replica.registry)
        await answer(send, 200, metrics, content_type=CONTENT_TYPE_LATEST.encode())
        return
    body = error_body("not_found", f"no HTTP endpoint {scope['path']} (the WebSocket is /ws)")
    await answer(send, 404, jsonx.dumpb(body))


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@serve.deployment(
    ray_actor_options={"num_cpus": 0},
    graceful_shutdown_wait_loop_s=0.5,
    graceful_shutdown_timeout_s=5,
)
@serve.ingress(lambda: asgi)  # a function given to `ingress` builds the app
class WsReplica:
    """One replica of the WebSocket gateway: the `/ws` endpoint and its figures."""

    def __init__(self, args: AppArgs) -> None:
        self.core = GatewayCore(args)
        replica = serve.get_replica_context().replica_tag
        self.ws = WsService(self.core, replica)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(WsCollector(self.ws, replica))


def ws_app_builder(args: AppArgs) -> Application:
    """Build the WebSocket application (`args.ws_replicas` replicas; at least one).

    Args:
        args: The same arguments as the REST application's.

    Returns:
        The bound application, ready for `serve.run` at `ROUTE_PREFIX`.
    """
    deployment: Any = WsReplica
    application: Application = deployment.options(
        num_replicas=max(1, args.ws_replicas),
        # Each open WebSocket is one ongoing request of its replica for its whole life.
        max_ongoing_requests=args.ws.max_connections + EXTRA_REQUESTS,
        logging_config={"enable_access_log": args.access_log},
    ).bind(args)
    return application
