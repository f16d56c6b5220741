"""`/ws` over the real Serve app: welcome and seq, ping, every refused input with the
connection still usable, the limits."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Exchange, Trader
from tests.e2e.ws_client import WsClient

CHANNELS = ("orderbook", "trades", "ticker", "orders", "fills", "balances", "settlements")


@pytest.fixture(scope="module")
def market(exchange: Exchange) -> str:
    return exchange.create_market("WSB")


@pytest.fixture(scope="module")
def trader(exchange: Exchange) -> Trader:
    return exchange.trader()


def _pong(client: WsClient) -> None:
    assert client.call(op="ping", id="alive")["op"] == "pong"


def test_welcome_then_ping_pong_with_seq(exchange: Exchange) -> None:
    client = WsClient(exchange.url)
    assert client.welcome["seq"] == 1
    assert client.welcome["replica"]
    assert client.welcome["limits"]["max_subscriptions"] == 50
    assert client.welcome["limits"]["max_connections"] == 10_000
    assert client.call(op="ping", id=7) == {"seq": 2, "op": "pong", "id": 7}
    client.close()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "invalid_json"),
        ('{"op": "dance", "id": 1}', "unknown_op"),
        ('{"op": "subscribe", "id": 1, "channel": "weather", "market": "WSB-USDC"}',
         "unknown_channel"),
        ('{"op": "subscribe", "id": 1, "channel": "trades", "market": "NOPE-USDC"}',
         "unknown_market"),
        ('{"op": "subscribe", "id": 1, "channel": "orders"}', "unauthorized"),
        ('{"op": "auth", "id": 1, "api_key": "abc.def"}', "unauthorized"),
        ('{"op": "place", "id": 1, "order": {"market": "WSB-USDC", "side": "buy", '
         '"price": "1.00", "qty": "1"}}', "unauthorized"),
        ('{"op": "unsubscribe", "id": 1, "channel": "trades", "market": "WSB-USDC"}',
         "not_subscribed"),
    ],
)  # fmt: skip
def test_a_refused_op_gets_its_error_and_the_connection_stays_usable(
    exchange: Exchange, market: str, message: str, code: str
) -> None:
    client = WsClient(exchange.url)
    client.ws.send(message)
    answer = client.recv()
    assert answer["op"] == "error", answer
    assert answer["code"] == code, answer
    _pong(client)
    client.close()


def test_a_wrong_key_at_the_handshake_is_reported_and_the_socket_stays(exchange: Exchange) -> None:
    client = WsClient(exchange.url, api_key="nope.nope")
    assert client.recv()["code"] == "unauthorized"
    _pong(client)
    client.close()


def test_an_oversized_frame_is_refused_and_the_socket_stays(exchange: Exchange) -> None:
    client = WsClient(exchange.url)
    client.ws.send(json.dumps({"op": "ping", "pad": "x" * 70_000}))
    assert client.recv()["code"] == "frame_too_large"
    _pong(client)
    client.close()


def test_too_many_subscriptions_are_refused(exchange: Exchange, trader: Trader) -> None:
    client = WsClient(exchange.url, api_key=trader.key)
    assert client.recv()["op"] == "authenticated"
    # 50 streams: every channel of 7 markets (the private ones filtered by market), and
    # one private channel of every market. A stream is a channel and a market.
    markets = [exchange.create_market(f"WSS{i}") for i in range(7)]
    streams: list[tuple[str, str | None]] = [(c, m) for m in markets for c in CHANNELS]
    streams.append(("orders", None))
    for channel, market in streams:
        time.sleep(0.05)  # under the message rate limit (20/s)
        answer = client.call(op="subscribe", channel=channel, market=market)
        assert answer["op"] == "subscribed", answer
    assert len(streams) == 50
    answer = client.call(op="subscribe", channel="fills")
    assert answer["code"] == "too_many_subscriptions"
    assert client.call(op="unsubscribe", channel="trades", market=markets[0])["op"] == (
        "unsubscribed"
    )
    assert client.call(op="subscribe", channel="fills")["op"] == "subscribed"
    client.close()


def test_a_flood_is_rate_limited_then_closed_1008(exchange: Exchange) -> None:
    client = WsClient(exchange.url)
    for n in range(400):
        client.send(op="ping", id=n)
    codes: list[str] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = client.recv()
            codes.append(message.get("code") or message["op"])
    assert codes[:40] == ["pong"] * 40  # the burst
    assert "rate_limited" in codes
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_the_websocket_application_counts_its_sockets_at_ws_metrics(exchange: Exchange) -> None:
    """/ws is served by the WebSocket application's replica (`serve_app/ws_app.py`): its
    figures are at /ws/metrics with the replica the client was welcomed by; the REST
    replicas' /metrics has none."""
    client = WsClient(exchange.url)
    text = httpx.get(f"{exchange.url}/ws/metrics").text
    (line,) = [x for x in text.splitlines() if x.startswith("clob_ws_connections{")]
    assert f'replica="{client.welcome["replica"]}"' in line
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert "clob_ws_redis_reconnects_total{" in text
    assert "clob_ws_gc_full_seconds_total{" in text  # the garbage-collection policy's
    assert "clob_ws_" not in httpx.get(f"{exchange.url}/metrics").text
    client.close()


def test_other_http_paths_under_ws_are_not_found(exchange: Exchange) -> None:
    for answer in (httpx.get(f"{exchange.url}/ws"), httpx.post(f"{exchange.url}/ws/metrics"),
                   httpx.get(f"{exchange.url}/ws/orders")):  # fmt: skip
        assert answer.status_code == 404
        assert answer.json()["code"] == "not_found"
