"""Public market data over HTTP: markets with stats, the book and its cache, the tape."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

# The repo root is not on sys.path under pytest (see tests/unit/engine/test_properties.py).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import Exchange, Trader  # noqa: E402


@pytest.fixture(scope="module")
def market(exchange: Exchange) -> str:
    return exchange.create_market("MKD")


@pytest.fixture(scope="module")
def traded(exchange: Exchange, market: str) -> Iterator[str]:
    """Three trades at 10, 12 and 11 (oldest first), then one bid left on the book."""
    buyer = exchange.trader(USDC="1000")
    seller = exchange.trader(MKD="10")
    for price in ("10", "12", "11"):
        seller.place(market=market, side="sell", price=price, qty="1")
        buyer.place(market=market, side="buy", price=price, qty="1")
    buyer.place(market=market, side="buy", price="9", qty="0.5")
    buyer.place(market=market, side="buy", price="9", qty="0.25")
    yield market
    for trader in (buyer, seller):
        trader.http.delete("/api/v1/orders")
        trader.http.close()


def test_markets_show_spec_fees_filters_and_24h_stats(exchange: Exchange, traded: str) -> None:
    exchange.create_market("MKD2")  # an admin change drops the 5-minute cache
    markets = httpx.get(f"{exchange.url}/api/v1/markets").json()
    market = next(m for m in markets if m["symbol"] == traded)
    assert market["tick_size"] == "0.010000"
    assert market["lot_size"] == "0.001000000"
    assert (market["min_qty"], market["max_qty"]) == ("0.010000000", "1000.000000000")
    assert market["min_notional"] == "1.000000"
    fees = (market["maker_fee_bps"], market["taker_fee_bps"])
    assert (fees, market["status"]) == ((10, 20), "active")
    assert market["stats"] == {
        "last_price": "11.000000", "open_price": "10.000000", "high": "12.000000",
        "low": "10.000000", "change": "1.000000", "change_percent": "10.00",
        "volume": "3.000000000", "quote_volume": "33.000000", "trade_count": 3,
    }  # fmt: skip
    one = httpx.get(f"{exchange.url}/api/v1/markets/{traded}")
    assert one.status_code == 200
    assert one.json() == market


def test_unknown_market_is_404_everywhere(exchange: Exchange) -> None:
    for path in ("/markets/NOPE-X", "/orderbook/NOPE-X", "/trades/NOPE-X"):
        response = httpx.get(f"{exchange.url}/api/v1{path}")
        assert (response.status_code, response.json()["code"]) == (404, "unknown_market"), path


def test_orderbook_levels_have_price_quantity_and_count(exchange: Exchange, traded: str) -> None:
    time.sleep(0.11)
    book = httpx.get(f"{exchange.url}/api/v1/orderbook/{traded}").json()
    assert book["market"] == traded
    assert book["bids"] == [{"price": "9.000000", "qty": "0.750000000", "count": 2}]
    assert book["asks"] == []
    assert book["seq"] > 0 and book["last_update_id"] == book["seq"]


def test_orderbook_is_cached_for_100_ms_per_depth(
    exchange: Exchange, traded: str, redis_url: str
) -> None:
    response = httpx.get(f"{exchange.url}/api/v1/orderbook/{traded}", params={"depth": 7})
    assert response.status_code == 200
    client = redis.Redis.from_url(redis_url)
    try:
        ttl_ms = client.pttl(f"orderbook:{traded}:7")
    finally:
        client.close()
    assert 0 < ttl_ms <= 100 or ttl_ms == -2  # -2: already expired


def test_markets_list_is_cached_for_5_minutes(
    exchange: Exchange, traded: str, redis_url: str
) -> None:
    httpx.get(f"{exchange.url}/api/v1/markets")
    client = redis.Redis.from_url(redis_url)
    try:
        ttl_s = client.ttl("markets:all")
    finally:
        client.close()
    assert 200 < ttl_s <= 300


def test_stats_are_cached_per_market_and_refreshed_when_a_trade_lands(
    exchange: Exchange, redis_url: str
) -> None:
    symbol = exchange.create_market("MKS")
    buyer, seller = exchange.trader(USDC="100"), exchange.trader(MKS="5")

    def stats() -> dict[str, object]:
        markets = httpx.get(f"{exchange.url}/api/v1/markets").json()
        found: dict[str, object] = next(m for m in markets if m["symbol"] == symbol)["stats"]
        return found

    assert stats()["trade_count"] == 0
    client = redis.Redis.from_url(redis_url)
    try:
        assert 200 < client.ttl(f"market_stats:{symbol}") <= 300
        for price, count in (("2", 1), ("3", 2)):
            seller.place(market=symbol, side="sell", price=price, qty="1")
            buyer.place(market=symbol, side="buy", price=price, qty="1")
            # The answer came after the cached stats were dropped; the next read has it.
            got = stats()
            assert (got["trade_count"], got["last_price"]) == (count, f"{price}.000000")
            one = httpx.get(f"{exchange.url}/api/v1/markets/{symbol}").json()["stats"]
            assert one == got
        assert client.exists(f"market_stats:{symbol}")
    finally:
        client.close()
        for trader in (buyer, seller):
            trader.http.close()


def test_the_seed_paths_of_book_and_tape_are_aliases(exchange: Exchange, traded: str) -> None:
    time.sleep(0.11)
    api = f"{exchange.url}/api/v1"
    assert httpx.get(f"{api}/markets/{traded}/orderbook", params={"depth": 3}).json() == (
        httpx.get(f"{api}/orderbook/{traded}", params={"depth": 3}).json()
    )
    assert httpx.get(f"{api}/markets/{traded}/trades", params={"limit": 2}).json() == (
        httpx.get(f"{api}/trades/{traded}", params={"limit": 2}).json()
    )
    for path in ("orderbook", "trades"):
        response = httpx.get(f"{api}/markets/NOPE-X/{path}")
        assert (response.status_code, response.json()["code"]) == (404, "unknown_market")


def test_trade_tape_is_newest_first_and_pages(exchange: Exchange, traded: str) -> None:
    url = f"{exchange.url}/api/v1/trades/{traded}"
    first = httpx.get(url, params={"limit": 2}).json()
    assert [t["price"] for t in first["trades"]] == ["11.000000", "12.000000"]
    assert first["trades"][0]["quote_qty"] == "11.000000"
    assert first["trades"][0]["taker_side"] == "buy"
    second = httpx.get(url, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [t["price"] for t in second["trades"]] == ["10.000000"]
    assert second["next_cursor"] is None


def test_openapi_and_docs_are_served(exchange: Exchange) -> None:
    spec = httpx.get(f"{exchange.url}/openapi.json").json()
    assert "/api/v1/orders" in spec["paths"]
    assert "OrderView" in spec["components"]["schemas"]
    docs = httpx.get(f"{exchange.url}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_halted_market_refuses_orders_but_accepts_cancels(exchange: Exchange, traded: str) -> None:
    trader: Trader = exchange.trader(USDC="100")
    order = trader.place(market=traded, side="buy", price="5", qty="1")
    halted = exchange.admin.post(f"/api/v1/admin/markets/{traded}/halt")
    assert halted.status_code == 200, halted.text
    assert halted.json()["status"] == "halted"
    response = trader.http.post(
        "/api/v1/orders", json={"market": traded, "side": "buy", "price": "5", "qty": "1"}
    )
    assert (response.status_code, response.json()["code"]) == (409, "market_halted")
    assert trader.http.delete(f"/api/v1/orders/{order['order_id']}").status_code == 200
    assert exchange.admin.post(f"/api/v1/admin/markets/{traded}/resume").status_code == 200
    assert trader.balances()["USDC"] == ("100.000000", "0.000000")
    trader.http.close()
