"""Fan-out over two gateway replicas: clients on different replicas receive identical
streams (each replica subscribes to Redis by itself and keeps its own copy of the book)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.e2e.conftest import ADMIN_TOKEN, Exchange
from tests.e2e.ws_client import WsClient

MAX_CLIENTS = 16


@pytest.fixture(scope="module")
def two_replicas(exchange: Exchange, redis_url: str) -> Iterator[str]:
    """Deploy the gateway again with two WebSocket replicas; yield its base URL."""
    from serve_app.app import deploy, undeploy
    from serve_app.gateway.args import AppArgs

    name = f"r2-{uuid.uuid4().hex[:6]}"
    args = AppArgs(
        database_url=exchange.database_url, redis_url=redis_url, admin_token=ADMIN_TOKEN,
        rate_limit_per_minute=0, ws_replicas=2,
    )  # fmt: skip
    deploy(args, name, f"/{name}")
    try:
        yield f"{exchange.url}/{name}"
    finally:
        undeploy(name)


def _one_per_replica(url: str) -> list[WsClient]:
    """Connect until two clients are on different replicas; close the others."""
    by_replica: dict[str, WsClient] = {}
    spare: list[WsClient] = []
    for _ in range(MAX_CLIENTS):
        client = WsClient(url)
        replica = client.welcome["replica"]
        if replica in by_replica:
            spare.append(client)
        else:
            by_replica[replica] = client
        if len(by_replica) == 2:
            break
    for client in spare:
        client.close()
    assert len(by_replica) == 2, f"every connection went to {list(by_replica)}"
    return list(by_replica.values())


def _stream(client: WsClient, last_update_id: int) -> list[dict[str, Any]]:
    """Return the client's market messages (without `seq`) until the book reaches the id."""
    out: list[dict[str, Any]] = []
    while True:
        message = client.recv(15)
        if "channel" not in message:
            continue
        message.pop("seq")
        if message.get("type") == "snapshot":
            message.pop("E")  # when this replica read the book: its own time
        out.append(message)
        if message["channel"] == "orderbook" and message["u"] == last_update_id:
            return out


def test_clients_on_two_replicas_receive_identical_streams(
    exchange: Exchange, two_replicas: str, redis_url: str
) -> None:
    market = exchange.create_market("WSD")
    clients = _one_per_replica(two_replicas)
    for client in clients:
        for channel, options in (("trades", {}), ("orderbook", {"depth": 10, "interval_ms": 0})):
            ack = client.call(op="subscribe", channel=channel, market=market, **options)
            assert ack["op"] == "subscribed", ack
    maker = exchange.trader(USDC="1000", WSD="100")
    taker = exchange.trader(USDC="1000", WSD="100")
    for i in range(8):
        maker.place(market=market, side="sell", price=f"{10 + i * 0.01:.2f}", qty="1")
        maker.place(market=market, side="buy", price=f"{9.9 - i * 0.01:.2f}", qty="1")
    taker.place(market=market, side="buy", price="10.03", qty="2.5")
    taker.place(market=market, side="sell", kind="market", qty="1.5")
    book = exchange.admin.get(f"/api/v1/orderbook/{market}").json()
    streams = [_stream(client, book["last_update_id"]) for client in clients]
    assert streams[0] == streams[1]
    assert sum(len(m.get("trades", [])) for m in streams[0]) >= 4
    assert len([m for m in streams[0] if m["channel"] == "orderbook"]) >= 18
    replicas = redis.Redis.from_url(redis_url).pubsub_numsub(f"stream:md:{market}")
    assert replicas[0][1] >= 2  # each replica subscribed by itself
    for client in clients:
        client.close()
    maker.http.close()
    taker.http.close()
