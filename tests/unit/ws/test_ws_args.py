"""The WebSocket limits reach the deployment and the connections."""

from __future__ import annotations

from actors.infra.settings import WebSocketSettings
from serve_app.app import app_builder
from serve_app.gateway.args import AppArgs
from serve_app.ws.service import limits_of


def test_each_open_websocket_counts_as_an_ongoing_request_of_the_replica() -> None:
    ws = WebSocketSettings(max_connections=2_000)
    args = AppArgs(
        database_url="postgresql://h/db", redis_url="redis://h", max_ongoing_requests=300, ws=ws
    )
    deployment = app_builder(args)._bound_deployment
    assert deployment._deployment_config.max_ongoing_requests == 2_300


def test_the_limits_come_from_the_app_args() -> None:
    ws = WebSocketSettings(max_subscriptions=7, messages_per_s=3, burst=5, max_frame_bytes=4096,
                           send_queue=99, heartbeat_s=2)  # fmt: skip
    args = AppArgs(database_url="postgresql://h/db", redis_url="redis://h", ws=ws)
    limits = limits_of(args)
    assert (limits.max_subscriptions, limits.messages_per_s, limits.burst) == (7, 3, 5)
    assert (limits.max_frame_bytes, limits.send_queue, limits.heartbeat_s) == (4096, 99, 2)
