"""The arguments of the Serve application (`serve_app.app.app_builder`), read by each
replica's services."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.infra.settings import CustodySettings, WebSocketSettings


class AppArgs(BaseModel):
    """Arguments of the application builder (also accepted by `serve run`)."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = Field(description="PostgreSQL URL the gateway reads from.")
    redis_url: str = Field(description="Redis URL for caches and fan-out.")
    solana_rpc_url: str | None = Field(
        default=None, description="Solana JSON-RPC URL (the embedded chain's, or a cluster's)."
    )
    gateway_replicas: int = Field(default=1, ge=1, description="REST ingress replicas.")
    ws_replicas: int = Field(
        default=0,
        ge=0,
        description="Replicas of the WebSocket application (`serve_app.ws_app`, at /ws); 0: "
        "this application's replicas serve /ws.",
    )
    admin_token: str | None = Field(
        default=None, description="Token of the admin endpoints (X-Admin-Token); None: off."
    )
    ray_namespace: str = Field(default="clob", description="Namespace of the named actors.")
    test_credits: bool = Field(
        default=False,
        description="Allow POST /admin/credits (tests on embedded defaults only: money from "
        "nothing, not a deposit).",
    )
    rate_limit_per_minute: int = Field(
        default=100,
        ge=0,
        description="Requests per minute per account (per client IP without a valid key); "
        "0 turns the limit off.",
    )
    client_ip: Literal["auto", "peer", "forwarded_for", "none"] = Field(
        default="auto",
        description="Client IP of a request (rate limit, request log): the TCP peer, the "
        "last X-Forwarded-For address, or none (anonymous requests are not limited); auto: "
        "none behind Serve's HAProxy (every peer is HAProxy), else the peer.",
    )
    cors_origins: list[str] = Field(
        default=["*"], description='Origins CORS allows ("*": any); empty: no CORS.'
    )
    request_log_dir: str | None = Field(
        default=None, description="Directory of the JSON request logs; None: no request log."
    )
    auth_cache_ttl_s: float = Field(
        default=30.0, ge=0, description="How long a replica trusts a checked API key, s."
    )
    max_ongoing_requests: int = Field(
        default=512,
        ge=1,
        description="Concurrent REST requests per replica (order batches); the deployment "
        "allows this plus ws.max_connections (each open WebSocket is one ongoing request).",
    )
    ws: WebSocketSettings = Field(
        default_factory=WebSocketSettings, description="The WebSocket API's limits."
    )
    access_log: bool = Field(
        default=False, description="Serve's access log line per request (costs CPU)."
    )
    settlement_batchers: int = Field(
        default=1, ge=1, le=64, description="Settlement batcher actors (`settlement:<i>`)."
    )
    custody: CustodySettings = Field(
        default_factory=CustodySettings,
        description="The withdrawal policy (`clob up` sets cooling_off_s: 0 in embedded "
        "mode); an unset cooling_off_s is the production default.",
    )
