"""`/ws` over the real Serve app: welcome, ping, errors, subscriptions."""

from __future__ import annotations

from tests.e2e.conftest import Exchange
from tests.e2e.ws_client import WsClient


def test_welcome_then_ping_pong_with_seq(exchange: Exchange) -> None:
    client = WsClient(exchange.url)
    assert client.welcome["seq"] == 1
    assert client.welcome["replica"]
    assert client.welcome["limits"]["max_subscriptions"] == 50
    assert client.call(op="ping", id=7) == {"seq": 2, "op": "pong", "id": 7}
    client.close()
