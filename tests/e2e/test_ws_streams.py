"""`/ws` fan-out over the real Serve app and Redis: the book (snapshot, chained updates,
checksums, conflation), trades, the private streams and their isolation.

Until the markets publish (issue 18 part P), these tests publish the stream messages to
Redis themselves, on markets where nobody places orders, in the id space the market
actor's `l2` starts from (a new market's seq is 0).
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from actors.stream.messages import (
    AccountBatch,
    AccountFill,
    Balance,
    Level,
    MarketBatch,
    OrderState,
    Trade,
    account_channel,
    encode,
    md_channel,
)
from tests.e2e.conftest import Exchange, Trader
from tests.e2e.ws_client import WsClient


@pytest.fixture(scope="module")
def publisher(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _publish(publisher: redis.Redis, batch: MarketBatch | AccountBatch) -> None:
    channel = (
        md_channel(batch.market)
        if isinstance(batch, MarketBatch)
        else (account_channel(batch.account_id))
    )
    assert publisher.publish(channel, encode(batch)) >= 1  # the gateway listens


def _checksum(book: dict[str, dict[str, str]]) -> int:
    asks = sorted(book["asks"].items(), key=lambda lv: float(lv[0]))[:10]
    bids = sorted(book["bids"].items(), key=lambda lv: -float(lv[0]))[:10]
    text = "".join(p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0")
                   for p, q in asks + bids)  # fmt: skip
    return zlib.crc32(text.encode())


def _apply(book: dict[str, dict[str, str]], message: dict[str, Any]) -> None:
    if message["type"] == "snapshot":
        book["bids"], book["asks"] = {}, {}
    for side in ("bids", "asks"):
        for price, qty in message[side]:
            if qty == "0":
                book[side].pop(price, None)
            else:
                book[side][price] = qty
    assert _checksum(book) == message["checksum"]


def _book_messages(client: WsClient) -> list[dict[str, Any]]:
    return [m for m in client.drain() if m.get("channel") == "orderbook"]


def test_two_clients_build_the_same_book_from_a_snapshot_and_chained_updates(
    exchange: Exchange, publisher: redis.Redis
) -> None:
    market = exchange.create_market("WSK")
    clients = [WsClient(exchange.url) for _ in range(2)]
    for client in clients:
        ack = client.call(op="subscribe", channel="orderbook", market=market, depth=2,
                          interval_ms=0)  # fmt: skip
        assert ack["op"] == "subscribed"
        snapshot = client.until(lambda m: m.get("channel") == "orderbook")
        assert (snapshot["type"], snapshot["u"], snapshot["bids"]) == ("snapshot", 0, [])
    steps = [
        ([(10_000, 5), (9_900, 1)], [(10_100, 2)]),
        ([(9_950, 3)], []),  # enters the top 2: 99.00 leaves it
        ([(10_000, 0)], [(10_100, 7)]),  # 100.00 gone: 99.00 is back in the top 2
    ]
    for n, (bids, asks) in enumerate(steps, start=1):
        _publish(publisher, MarketBatch(market, U=n, u=n, E=int(time.time() * 1000),
                                        bids=[Level(p, q, 1) for p, q in bids],
                                        asks=[Level(p, q, 1) for p, q in asks]))  # fmt: skip
    streams = []
    for client in clients:
        updates = _book_messages(client)
        assert [(m["U"], m["u"], m["pu"]) for m in updates] == [(1, 1, 0), (2, 2, 1), (3, 3, 2)]
        book: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
        for message in updates:
            _apply(book, message)
        assert book == {
            "bids": {"99.500000": "0.003000000", "99.000000": "0.001000000"},
            "asks": {"101.000000": "0.007000000"},
        }
        streams.append([{k: v for k, v in m.items() if k != "seq"} for m in updates])
        client.close()
    assert streams[0] == streams[1]


def test_conflated_updates_cover_every_merged_batch(
    exchange: Exchange, publisher: redis.Redis
) -> None:
    market = exchange.create_market("WSC")
    client = WsClient(exchange.url)
    client.call(op="subscribe", channel="orderbook", market=market, depth=5, interval_ms=500)
    client.until(lambda m: m.get("type") == "snapshot")
    for n in range(1, 21):
        _publish(publisher, MarketBatch(market, U=n, u=n, E=0, bids=[Level(10_000 + n, n, 1)]))
    updates = _book_messages(client) + _book_messages(client)
    assert updates[0]["U"] == 1  # the leading edge: the first change goes out at once
    assert len(updates) <= 3
    assert updates[-1]["u"] == 20
    for before, after in itertools.pairwise(updates):
        assert after["pu"] == before["u"] and after["U"] == before["u"] + 1
    book: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
    for message in updates:
        _apply(book, message)
    assert len(book["bids"]) == 5
    client.close()


def test_snapshot_every_ms_sends_full_snapshots(exchange: Exchange, publisher: redis.Redis) -> None:
    market = exchange.create_market("WSP")
    client = WsClient(exchange.url)
    client.call(op="subscribe", channel="orderbook", market=market, snapshot_every_ms=100)
    client.until(lambda m: m.get("type") == "snapshot")
    _publish(publisher, MarketBatch(market, U=1, u=1, E=0, bids=[Level(10_000, 1, 1)]))
    _publish(publisher, MarketBatch(market, U=2, u=2, E=0, asks=[Level(10_100, 2, 1)]))
    messages = _book_messages(client)
    assert {m["type"] for m in messages} == {"snapshot"}
    assert messages[-1]["u"] == 2
    assert messages[-1]["asks"] == [["101.000000", "0.002000000"]]
    assert messages[-1]["bids"] == [["100.000000", "0.001000000"]]
    client.close()


def test_trades_come_once_each_in_order_with_the_rest_fields(
    exchange: Exchange, publisher: redis.Redis
) -> None:
    market = exchange.create_market("WST")
    client, svm = WsClient(exchange.url), WsClient(exchange.url)
    client.call(op="subscribe", channel="trades", market=market)
    svm.call(op="subscribe", channel="trades", market=market, format="svm")
    trades = [Trade(1, 10_050, 1_500, "buy", 1_700_000_000_000, "m1", "t1"),
              Trade(2, 10_040, 500, "sell", 1_700_000_000_001, "m2", "t2")]  # fmt: skip
    _publish(publisher, MarketBatch(market, U=1, u=2, E=5, trades=trades))
    (message,) = [m for m in client.drain() if m.get("channel") == "trades"]
    assert message["trades"] == [
        {"seq": 1, "price": "100.500000", "qty": "1.500000000", "quote_qty": "150.750000",
         "taker_side": "buy", "time": "2023-11-14T22:13:20Z"},
        {"seq": 2, "price": "100.400000", "qty": "0.500000000", "quote_qty": "50.200000",
         "taker_side": "sell", "time": "2023-11-14T22:13:20.001000Z"},
    ]  # fmt: skip
    svm_messages = [m for m in svm.drain() if m.get("type") == "MarketData"]
    assert [m["data"]["trade"]["price"] for m in svm_messages] == [100.5, 100.4]
    assert svm_messages[0]["data"]["trade"]["maker_side"] == "Ask"
    client.close()
    svm.close()


def _order_state(market: str, **changes: Any) -> OrderState:
    state: dict[str, Any] = {
        "market": market, "order_id": "o-1", "client_order_id": "mine-1", "side": "buy",
        "kind": "limit", "tif": "gtc", "status": "partially_filled", "reason": None,
        "price": 10_000, "stop_price": None, "qty": 2_000, "quote_qty": None,
        "display_qty": None, "post_only": None, "stp": "none", "expire_at": None,
        "open_qty": 1_500, "filled_qty": 500, "filled_quote": 50_000_000, "fee": 100_000,
        "created_at": 1_700_000_000_000, "updated_at": 1_700_000_000_500, "u": 7,
    }  # fmt: skip
    state.update(changes)
    return OrderState(**state)


@pytest.fixture(scope="module")
def two(exchange: Exchange) -> tuple[Trader, Trader]:
    return exchange.trader(), exchange.trader()


def test_private_streams_reach_their_account_only(
    exchange: Exchange, publisher: redis.Redis, two: tuple[Trader, Trader]
) -> None:
    market = exchange.create_market("WSO")
    alice, bob = two
    a, b = WsClient(exchange.url), WsClient(exchange.url)
    assert a.call(op="auth", api_key=alice.key)["account_id"] == alice.account_id
    assert b.call(op="auth", api_key=bob.key)["account_id"] == bob.account_id
    for client in (a, b):
        for channel in ("orders", "fills", "balances", "settlements"):
            assert client.call(op="subscribe", channel=channel)["op"] == "subscribed"
    refused = b.call(op="subscribe", channel="orders", account_id=alice.account_id)
    assert refused["code"] == "forbidden"
    fill = AccountFill(market, 9, "o-1", "buy", "maker", 10_000, 500, 50_000_000, 50_000,
                       1_700_000_000_500)  # fmt: skip
    _publish(publisher, AccountBatch(alice.account_id, E=1, orders=[_order_state(market)],
                                     fills=[fill], balances=[Balance("USDC", 10, 20)]))  # fmt: skip
    got = {m["channel"]: m for m in a.drain() if "channel" in m}
    order = got["orders"]["orders"][0]
    assert (order["order_id"], order["client_order_id"], order["status"]) == (
        "o-1", "mine-1", "partially_filled",
    )  # fmt: skip
    assert (order["filled_qty"], order["open_qty"], order["avg_price"]) == (
        "0.500000000", "1.500000000", "100.000000",
    )  # fmt: skip
    assert "fills" not in order
    assert got["fills"]["fills"][0] | {"time": None} == {
        "trade_id": 9, "market": market, "order_id": "o-1", "side": "buy",
        "liquidity": "maker", "price": "100.000000", "qty": "0.500000000",
        "quote_qty": "50.000000", "fee": "0.050000", "fee_asset": "USDC", "time": None,
    }  # fmt: skip
    assert got["balances"]["balances"] == [
        {"asset": "USDC", "available": "0.000010", "locked": "0.000020", "total": "0.000030"}
    ]
    assert [m for m in b.drain() if "channel" in m] == []
    a.close()
    b.close()


def test_replacing_a_book_subscription_keeps_the_stream(
    exchange: Exchange, publisher: redis.Redis
) -> None:
    market = exchange.create_market("WSR")
    client = WsClient(exchange.url)
    client.call(op="subscribe", channel="orderbook", market=market, depth=1, interval_ms=0)
    client.until(lambda m: m.get("type") == "snapshot")
    ack = client.call(op="subscribe", channel="orderbook", market=market, depth=3, interval_ms=0)
    assert ack["depth"] == 3
    client.until(lambda m: m.get("type") == "snapshot")
    _publish(publisher, MarketBatch(market, U=1, u=1, E=0,
                                    bids=[Level(10_000 + i, 1, 1) for i in range(5)]))  # fmt: skip
    (update,) = _book_messages(client)
    assert len(update["bids"]) == 3
    client.close()


def test_ticker_shows_the_best_prices_and_the_last_trade(
    exchange: Exchange, publisher: redis.Redis
) -> None:
    market = exchange.create_market("WSI")
    client = WsClient(exchange.url)
    client.call(op="subscribe", channel="ticker", market=market)
    first = client.until(lambda m: m.get("channel") == "ticker")
    assert (first["bid"], first["ask"], first["last_price"]) == (None, None, None)
    trade = Trade(2, 10_050, 1, "buy", 0, "m", "t")
    _publish(publisher, MarketBatch(market, U=1, u=2, E=0, bids=[Level(10_000, 3, 1)],
                                    asks=[Level(10_100, 4, 1)], trades=[trade]))  # fmt: skip
    ticker = client.until(lambda m: m.get("channel") == "ticker" and m["u"] == 2)
    assert (ticker["bid"], ticker["bid_qty"], ticker["ask"], ticker["ask_qty"]) == (
        "100.000000", "0.003000000", "101.000000", "0.004000000",
    )  # fmt: skip
    assert ticker["last_price"] == "100.500000"
    assert ticker["stats"]["trade_count"] == 0  # REST's stats: nothing was traded for real
    client.close()


def test_svm_orders_carry_seed_002_order_updates(
    exchange: Exchange, publisher: redis.Redis, two: tuple[Trader, Trader]
) -> None:
    market = exchange.create_market("WSV")
    alice, _ = two
    client = WsClient(exchange.url, api_key=alice.key)
    client.recv()
    client.call(op="subscribe", channel="orders", market=market, format="svm")
    _publish(publisher, AccountBatch(alice.account_id, E=1, orders=[_order_state(market)]))
    (update,) = [m for m in client.drain() if m.get("type") == "OrderUpdate"]
    order = update["data"]["order"]
    assert {k: order[k] for k in ("order_id", "client_order_id", "owner", "side", "order_type",
                                  "price", "quantity", "remaining_quantity", "status")} == {
        "order_id": "o-1", "client_order_id": "mine-1", "owner": str(alice.account_id),
        "side": "Bid", "order_type": "Limit", "price": 100.0, "quantity": 2.0,
        "remaining_quantity": 1.5, "status": "PartiallyFilled",
    }  # fmt: skip
    client.close()
