"""The WebSocket limits reach the deployment and the connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.infra.settings import WebSocketSettings, load_settings
from serve_app.app import app_builder
from serve_app.gateway.args import AppArgs
from serve_app.ws.service import limits_of
from serve_app.ws_app import EXTRA_REQUESTS, ws_app_builder


def _config(app: Any) -> Any:
    return app._bound_deployment._deployment_config


def test_each_open_websocket_counts_as_an_ongoing_request_of_the_replica() -> None:
    """Of the replica serving /ws: the REST one's without the WebSocket application, else
    the WebSocket one's (and the REST one's allowance is REST's alone)."""
    ws = WebSocketSettings(max_connections=2_000)
    fields: dict[str, Any] = dict(database_url="postgresql://h/db", redis_url="redis://h",
                                  max_ongoing_requests=300, ws=ws)  # fmt: skip
    assert _config(app_builder(AppArgs(**fields))).max_ongoing_requests == 2_300
    split = AppArgs(**fields, ws_replicas=3)
    assert _config(app_builder(split)).max_ongoing_requests == 300
    ws_config = _config(ws_app_builder(split))
    assert ws_config.max_ongoing_requests == 2_000 + EXTRA_REQUESTS
    assert ws_config.num_replicas == 3


@pytest.mark.parametrize(("env", "expected"), [(None, 1), ("0", 0), ("2", 2)])
def test_ws_replicas_come_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: str | None, expected: int
) -> None:
    """One WebSocket replica by default; 0 (the REST replicas serve /ws) is allowed."""
    monkeypatch.setenv("CLOB_CONFIG", str(tmp_path / "none.toml"))
    if env is not None:
        monkeypatch.setenv("CLOB_SERVE__WS_REPLICAS", env)
    assert load_settings().serve.ws_replicas == expected


def test_the_limits_come_from_the_app_args() -> None:
    ws = WebSocketSettings(max_subscriptions=7, messages_per_s=3, burst=5, max_frame_bytes=4096,
                           send_queue=99, heartbeat_s=2)  # fmt: skip
    args = AppArgs(database_url="postgresql://h/db", redis_url="redis://h", ws=ws)
    limits = limits_of(args)
    assert (limits.max_subscriptions, limits.messages_per_s, limits.burst) == (7, 3, 5)
    assert (limits.max_frame_bytes, limits.send_queue, limits.heartbeat_s) == (4096, 99, 2)


async def test_a_rest_replica_beside_the_websocket_application_refuses_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a client on a REST replica's own port reaches its /ws route when the
    WebSocket application runs: it is closed with 1013 and told where /ws is served."""
    from types import SimpleNamespace

    from serve_app import app as app_module
    from serve_app.ws.connection import CLOSE_TRY_AGAIN

    context = SimpleNamespace(servable_object=SimpleNamespace(ws=None))
    monkeypatch.setattr(app_module.serve, "get_replica_context", lambda: context)
    closed: list[tuple[int, str]] = []

    class Socket:
        async def close(self, code: int, reason: str) -> None:
            closed.append((code, reason))

    await app_module.websocket(Socket())  # type: ignore[arg-type]
    assert closed == [(CLOSE_TRY_AGAIN, "served by the WebSocket application at /ws")]
