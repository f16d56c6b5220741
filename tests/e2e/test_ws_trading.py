"""Trading over `/ws`: place, amend, cancel and cancel-all with REST's answers and exact
balances; cancel-on-disconnect on close and on a missed heartbeat."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Exchange, Trader
from tests.e2e.ws_client import WsClient


@pytest.fixture(scope="module")
def market(exchange: Exchange) -> str:
    return exchange.create_market("WSX")


def _order(market: str, **terms: str) -> dict[str, str]:
    return {"market": market, "side": "buy", "price": "100.00", "qty": "2", **terms}


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_place_amend_cancel_and_cancel_all_answer_as_rest(exchange: Exchange, market: str) -> None:
    buyer = exchange.trader(USDC="1000")
    client = WsClient(exchange.url, api_key=buyer.key)
    client.recv()  # authenticated
    placed = client.call(op="place", order=_order(market, client_order_id="ws-1"))
    assert (placed["op"], placed["request"], placed["status"]) == ("result", "place", 201)
    order = placed["result"]
    assert (order["status"], order["open_qty"], order["client_order_id"]) == (
        "open", "2.000000000", "ws-1",
    )  # fmt: skip
    # 200 USDC + 20 bps = 200.4 locked, as over REST.
    assert buyer.balances()["USDC"] == ("799.600000", "200.400000")
    retry = client.call(op="place", order=_order(market, client_order_id="ws-1"))
    assert (retry["status"], retry["result"]["order_id"]) == (200, order["order_id"])
    rest = buyer.http.get(f"/api/v1/orders/{order['order_id']}").json()
    assert {k: rest[k] for k in ("status", "open_qty", "price")} == {
        k: order[k] for k in ("status", "open_qty", "price")
    }
    amended = client.call(op="amend", order_id=order["order_id"], qty="1")
    assert amended["result"]["open_qty"] == "1.000000000"
    assert buyer.balances()["USDC"] == ("899.800000", "100.200000")
    cancelled = client.call(op="cancel", order_id=order["order_id"])
    assert cancelled["result"]["status"] == "cancelled"
    assert buyer.balances()["USDC"] == ("1000.000000", "0.000000")
    for price in ("90.00", "91.00"):
        client.call(op="place", order=_order(market, price=price, qty="1"))
    every = client.call(op="cancel_all")
    assert len(every["result"]["cancelled"]) == 2
    assert buyer.balances()["USDC"] == ("1000.000000", "0.000000")
    client.close()


def test_refused_trading_ops_get_rest_codes_and_change_nothing(
    exchange: Exchange, market: str
) -> None:
    buyer = exchange.trader(USDC="10")
    client = WsClient(exchange.url, api_key=buyer.key)
    client.recv()
    assert client.call(op="place", order=_order(market, price="100.001"))["code"] == "invalid_tick"
    assert client.call(op="place", order=_order(market))["code"] == "insufficient_funds"
    assert client.call(op="cancel", order_id="nope")["code"] == "unknown_order"
    assert client.call(op="amend", order_id="nope")["code"] == "invalid_request"
    assert client.call(op="place", order=_order("NOPE-USDC"))["code"] == "unknown_market"
    assert buyer.balances()["USDC"] == ("10.000000", "0.000000")
    client.close()


def _live(trader: Trader, market: str) -> list[str]:
    response = trader.http.get("/api/v1/orders", params={"market": market, "status": "live"})
    return [o["order_id"] for o in response.json()["orders"]]


def test_cancel_on_disconnect_cancels_and_releases_funds_when_the_socket_closes(
    exchange: Exchange, market: str
) -> None:
    buyer = exchange.trader(USDC="1000")
    client = WsClient(exchange.url)
    on = client.call(op="auth", api_key=buyer.key, cancel_on_disconnect=True, heartbeat_s=30)
    assert on["op"] == "authenticated"
    assert client.recv()["op"] == "cancel_on_disconnect"
    client.call(op="place", order=_order(market))
    rest_order = buyer.place(market=market, side="buy", price="99.00", qty="1")
    assert len(_live(buyer, market)) == 2
    client.close()
    # Every open order of the account goes, the REST one too (Deribit's scope).
    _wait_for(lambda: not _live(buyer, market))
    assert buyer.http.get(f"/api/v1/orders/{rest_order['order_id']}").json()["status"] == (
        "cancelled"
    )
    assert buyer.balances()["USDC"] == ("1000.000000", "0.000000")


def test_a_missed_heartbeat_closes_4002_and_cancels(exchange: Exchange, market: str) -> None:
    buyer = exchange.trader(USDC="1000")
    client = WsClient(exchange.url, api_key=buyer.key)
    client.recv()
    on = client.call(op="cancel_on_disconnect", enabled=True, heartbeat_s=1)
    assert on["heartbeat_s"] == 1
    client.call(op="place", order=_order(market))
    with pytest.raises(ConnectionClosed) as closed:
        client.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4002
    _wait_for(lambda: not _live(buyer, market))
    assert buyer.balances()["USDC"] == ("1000.000000", "0.000000")


def test_cancel_on_disconnect_needs_the_trade_scope_and_auth(exchange: Exchange) -> None:
    client = WsClient(exchange.url)
    assert client.call(op="cancel_on_disconnect")["code"] == "unauthorized"
    client.close()
