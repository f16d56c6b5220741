"""The WebSocket streams agree with REST, through the real publishers, Redis and the gateway.

Three accounts trade at random over REST (seeded): limit orders that cross and rest,
partial fills, IOC and market orders, icebergs, stop-limit orders that trigger, amends and
cancels. WebSocket clients watch the market as docs/websocket.md tells them to. At each
checkpoint (trading paused):

- a book built from the `orderbook` snapshot and its diffs (unconflated, depth 50; and
  conflated at 100 ms, depth 5) equals `GET /orderbook` at the same `last_update_id`, and
  every message's `pu` chains and its checksum verifies;
- a client that drops an update sees the gap by `pu` and the resync recipe (subscribe
  again) restores the book.

At the end the `trades` stream equals the REST tape (none missing, none repeated), and each
account's `orders`, `fills` and `balances` streams end in exactly the state REST reports.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from serve_app.gateway.views import SETTLEMENT_FIELDS
from tests.e2e.conftest import Exchange, Trader
from tests.e2e.ws_client import WsClient

Message = dict[str, Any]
PRICES = [f"{p / 100:.2f}" for p in range(990, 1011)]  # 9.90 .. 10.10
CHECKPOINTS = 3
ACTIONS = 45  # per checkpoint
REST_DEPTH = 50


def kraken_checksum(asks: list[list[str]], bids: list[list[str]]) -> int:
    """CRC32 of the top 10 levels: asks low to high, then bids high to low (docs)."""
    text = "".join(
        part.replace(".", "").lstrip("0") for level in [*asks[:10], *bids[:10]] for part in level
    )
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


@dataclass
class Book:
    """A client's book, kept from one `orderbook` subscription as the docs say."""

    depth: int
    bids: dict[Decimal, list[str]] = field(default_factory=dict)
    asks: dict[Decimal, list[str]] = field(default_factory=dict)
    u: int | None = None
    applied: int = 0

    def apply(self, msg: Message) -> bool:
        """Apply a snapshot or an update; False on a gap (`pu` != our `u`)."""
        if msg["type"] == "snapshot":
            self.bids, self.asks = {}, {}
        elif msg["pu"] != self.u:
            return False
        else:
            assert msg["U"] == msg["pu"] + 1, msg
        for side, levels in ((self.bids, msg["bids"]), (self.asks, msg["asks"])):
            for price, qty in levels:
                if Decimal(qty) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = [price, qty]
        assert len(self.bids) <= self.depth and len(self.asks) <= self.depth, msg
        self.u = msg["u"]
        self.applied += 1
        assert (
            kraken_checksum(self.sorted(self.asks), self.sorted(self.bids, True)) == msg["checksum"]
        ), (msg, self.bids, self.asks)
        return True

    @staticmethod
    def sorted(side: dict[Decimal, list[str]], reverse: bool = False) -> list[list[str]]:
        return [side[p] for p in sorted(side, reverse=reverse)]

    def levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Return (bids, asks) as decimals, best first."""
        return (
            [(Decimal(p), Decimal(q)) for p, q in self.sorted(self.bids, True)],
            [(Decimal(p), Decimal(q)) for p, q in self.sorted(self.asks)],
        )


@dataclass
class Watcher:
    """A public client: one book subscription, maybe the trades."""

    client: WsClient
    market: str
    book: Book
    options: dict[str, Any]
    trades: list[Message] = field(default_factory=list)
    drop_next: bool = False
    gaps: int = 0
    resyncing: bool = False

    @classmethod
    def open(cls, url: str, market: str, trades: bool = False, **options: Any) -> Watcher:
        client = WsClient(url)
        watcher = cls(client, market, Book(options["depth"]), options)
        if trades:  # first: `call` skips what comes before its answer, a snapshot included
            ack = client.call(op="subscribe", channel="trades", market=market)
            assert ack["op"] == "subscribed", ack
        watcher.subscribe()
        return watcher

    def subscribe(self) -> None:
        ack = self.client.call(
            op="subscribe", channel="orderbook", market=self.market, **self.options
        )
        assert ack["op"] == "subscribed", ack
        self.book = Book(self.options["depth"])

    def handle(self, msg: Message) -> None:
        if msg.get("channel") == "trades":
            self.trades.extend(msg["trades"])
        elif msg.get("channel") == "orderbook":
            if self.resyncing and msg["type"] == "update":
                return  # sent before the new subscription's snapshot: the old stream's
            self.resyncing = False
            if self.drop_next and msg["type"] == "update":
                self.drop_next = False  # as if the message were lost
                return
            if not self.book.apply(msg):
                self.gaps += 1  # the resync recipe: subscribe again, for a snapshot
                self.client.send(op="unsubscribe", channel="orderbook", market=self.market)
                self.subscribe()
                self.resyncing = True
        else:
            assert msg.get("op") in ("subscribed", "unsubscribed", "pong"), msg

    def pump(self, quiet_s: float = 0.05) -> None:
        """Handle every message that has arrived."""
        for msg in self.client.drain(quiet_s):
            self.handle(msg)

    def until_u(self, last_update_id: int, timeout: float = 15.0) -> None:
        """Handle messages until the book is at `last_update_id`."""
        deadline = time.monotonic() + timeout
        while self.book.u != last_update_id:
            assert time.monotonic() < deadline, (self.book.u, last_update_id)
            assert self.book.u is None or self.book.u < last_update_id, self.book.u
            self.handle(self.client.recv(max(0.05, deadline - time.monotonic())))


@dataclass
class Account:
    """A trader and its private streams."""

    trader: Trader
    client: WsClient
    live: list[str] = field(default_factory=list)
    orders: dict[str, Message] = field(default_factory=dict)
    fills: list[Message] = field(default_factory=list)
    balances: dict[str, Message] = field(default_factory=dict)

    def pump(self, quiet_s: float = 0.05) -> None:
        for msg in self.client.drain(quiet_s):
            channel = msg.get("channel")
            if channel == "orders":
                self.orders.update({o["order_id"]: o for o in msg["orders"]})
            elif channel == "fills":
                self.fills.extend(msg["fills"])
            elif channel == "balances":
                self.balances.update({b["asset"]: b for b in msg["balances"]})
            else:
                assert msg.get("op") in ("subscribed", "authenticated", "pong"), msg


@pytest.fixture(scope="module")
def venue(exchange: Exchange) -> Iterator[tuple[str, list[Account]]]:
    symbol = exchange.create_market("WSQ", min_notional=None, maker_fee_bps=7, taker_fee_bps=13)
    accounts = []
    for _ in range(3):
        trader = exchange.trader(USDC="5000", WSQ="400")
        client = WsClient(exchange.url, api_key=trader.key)
        for channel in ("orders", "fills", "balances"):
            ack = client.call(op="subscribe", channel=channel)
            assert ack["op"] == "subscribed", ack
        accounts.append(Account(trader, client))
    yield symbol, accounts
    for account in accounts:
        account.client.close()
        account.trader.http.close()


def _order(rng: random.Random, symbol: str) -> dict[str, Any]:
    side = rng.choice(["buy", "sell"])
    qty = f"{rng.randint(1, 40) / 10:.3f}"
    roll = rng.random()
    if roll < 0.08:
        return {"market": symbol, "side": side, "kind": "market", "qty": qty}
    if roll < 0.16:  # a stop-limit that the trading around the mid triggers now and then
        stop = rng.choice(PRICES[5:-5])
        return {"market": symbol, "side": side, "kind": "stop_limit", "stop_price": stop,
                "price": stop, "qty": qty}  # fmt: skip
    order = {"market": symbol, "side": side, "price": rng.choice(PRICES), "qty": qty}
    if roll < 0.26:
        order["display_qty"] = "0.200"
        order["qty"] = f"{rng.randint(5, 30) / 10:.3f}"
    elif roll > 0.92:
        order["tif"] = "ioc"
    return order


def _act(rng: random.Random, account: Account, symbol: str) -> None:
    http, roll = account.trader.http, rng.random()
    if account.live and roll < 0.10:
        order_id = rng.choice(account.live)
        body = {"qty": f"{rng.randint(1, 20) / 10:.3f}"}
        if rng.random() < 0.5:
            body["price"] = rng.choice(PRICES)
        response = http.patch(f"/api/v1/orders/{order_id}", json=body)
        assert response.status_code in (200, 409, 422), response.text
        return
    if account.live and roll < 0.18:
        order_id = account.live.pop(rng.randrange(len(account.live)))
        response = http.delete(f"/api/v1/orders/{order_id}")
        assert response.status_code in (200, 409), response.text
        return
    response = http.post("/api/v1/orders", json=_order(rng, symbol))
    assert response.status_code in (201, 409, 422), response.text
    if response.status_code == 201 and response.json()["status"] in (
        "open", "partially_filled", "untriggered",
    ):  # fmt: skip
        account.live.append(response.json()["order_id"])


def _rest_book(exchange: Exchange, symbol: str) -> tuple[int, Any, Any]:
    time.sleep(0.15)  # past the 100 ms cache of GET /orderbook
    body = exchange.admin.get(f"/api/v1/orderbook/{symbol}", params={"depth": REST_DEPTH}).json()
    bids = [(Decimal(lv["price"]), Decimal(lv["qty"])) for lv in body["bids"]]
    asks = [(Decimal(lv["price"]), Decimal(lv["qty"])) for lv in body["asks"]]
    assert body["last_update_id"] == body["seq"]
    return int(body["last_update_id"]), bids, asks


def _pages(http: Any, path: str, key: str, **params: Any) -> list[Message]:
    out: list[Message] = []
    cursor = None
    while True:
        query = {**params, "limit": 500} | ({"cursor": cursor} if cursor else {})
        body = http.get(path, params=query).json()
        out += body[key]
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def test_streams_agree_with_rest(exchange: Exchange, venue: tuple[str, list[Account]]) -> None:
    symbol, accounts = venue
    rng = random.Random(18)
    exact = Watcher.open(exchange.url, symbol, trades=True, depth=50, interval_ms=0)
    conflated = Watcher.open(exchange.url, symbol, depth=5)  # 100 ms by default
    dropper = Watcher.open(exchange.url, symbol, depth=20, interval_ms=0)
    watchers = [exact, conflated, dropper]
    for checkpoint in range(CHECKPOINTS):
        dropper.drop_next = checkpoint == 1
        for step in range(ACTIONS):
            _act(rng, accounts[step % len(accounts)], symbol)
            if step % 10 == 9:
                for one in (*watchers, *accounts):
                    one.pump(0.01)
        last_update_id, bids, asks = _rest_book(exchange, symbol)
        for watcher in watchers:
            watcher.until_u(last_update_id)
            want_bids, want_asks = bids[: watcher.book.depth], asks[: watcher.book.depth]
            assert watcher.book.levels() == (want_bids, want_asks), (checkpoint, watcher.options)
        assert exact.gaps == conflated.gaps == 0
    assert dropper.gaps == 1  # the dropped update was seen, and the resync restored the book
    assert exact.book.applied > CHECKPOINTS * 10  # the stream really moved
    assert len(bids) + len(asks) > 3

    # The trades stream is the tape: every trade once, in order.
    time.sleep(0.3)
    exact.pump(0.3)
    # REST's settlement fields are not streamed (a trade is streamed before it is batched).
    rest_tape = _pages(exchange.admin, f"/api/v1/trades/{symbol}", "trades")[::-1]
    tape = [{k: v for k, v in t.items() if k not in SETTLEMENT_FIELDS} for t in rest_tape]
    assert [t["seq"] for t in exact.trades] == [t["seq"] for t in tape]
    assert exact.trades == tape
    assert len(tape) > 20

    # Each account's private streams end in REST's state.
    for account in accounts:
        account.pump(0.3)
        http = account.trader.http
        orders = _pages(http, "/api/v1/orders", "orders", market=symbol)
        assert {o["order_id"] for o in orders} == set(account.orders)
        for order in orders:
            streamed = dict(account.orders[order["order_id"]])
            avg = streamed.pop("avg_price")
            assert streamed == {k: v for k, v in order.items() if k != "fills"}
            if Decimal(order["filled_qty"]):
                assert avg is not None
        fills = _pages(http, "/api/v1/trades", "trades", market=symbol)
        key = lambda f: (f["seq"], f["liquidity"])  # noqa: E731
        unstreamed = {"trade_id", *SETTLEMENT_FIELDS}
        rest_fills = sorted(({k: v for k, v in f.items() if k not in unstreamed} for f in fills),
                            key=key)  # fmt: skip
        assert sorted(account.fills, key=key) == rest_fills
        balances = {b["asset"]: b for b in http.get("/api/v1/balances").json()["balances"]}
        assert set(account.balances) == {"USDC", "WSQ"}
        assert account.balances == {a: balances[a] for a in account.balances}
