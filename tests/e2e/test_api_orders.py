"""Orders over HTTP: place, match, amend, cancel, cancel all, market orders, retries.

Balances are checked after each step against amounts computed by hand, to the atom.
Market (conftest): tick 0.01 USDC, lot 0.001 base, taker 20 bps, maker 10 bps. A buy locks
its notional plus the fee at the higher rate (20 bps); fees are rounded up on the order's
cumulative notional.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

# The repo root is not on sys.path under pytest (see tests/unit/engine/test_properties.py).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import Exchange, Trader  # noqa: E402


@pytest.fixture(scope="module")
def market(exchange: Exchange) -> str:
    return exchange.create_market("ORD")


@pytest.fixture(scope="module")
def pair(exchange: Exchange, market: str) -> Iterator[tuple[Trader, Trader]]:
    buyer = exchange.trader(USDC="1000")
    seller = exchange.trader(ORD="10")
    yield buyer, seller
    for trader in (buyer, seller):
        trader.http.delete("/api/v1/orders")
        trader.http.close()


def test_a_resting_buy_locks_notional_plus_the_highest_fee(
    pair: tuple[Trader, Trader], market: str
) -> None:
    buyer, _ = pair
    order = buyer.place(market=market, side="buy", price="100.00", qty="2")
    assert order["status"] == "open"
    assert (order["price"], order["qty"], order["open_qty"]) == ("100.000000", "2.000000000",
                                                                 "2.000000000")  # fmt: skip
    # 200 USDC + 20 bps = 200.4 locked.
    assert buyer.balances()["USDC"] == ("799.600000", "200.400000")
    assert buyer.book(market)["bids"] == [{"price": "100.000000", "qty": "2.000000000", "count": 1}]


def test_a_crossing_sell_fills_at_the_maker_price_with_exact_fees(
    pair: tuple[Trader, Trader], market: str
) -> None:
    buyer, seller = pair
    order = seller.place(market=market, side="sell", price="99.00", qty="0.5")
    assert order["status"] == "filled"
    assert order["filled_qty"] == "0.500000000"
    assert order["filled_quote"] == "50.000000"
    assert order["fee"] == "0.100000"  # taker 20 bps of 50
    assert [(f["price"], f["qty"], f["liquidity"]) for f in order["fills"]] == [
        ("100.000000", "0.500000000", "taker")
    ]
    # Seller: +50 - 0.1 fee; base 10 - 0.5.
    assert seller.balances() == {"USDC": ("49.900000", "0.000000"),
                                 "ORD": ("9.500000000", "0.000000000")}  # fmt: skip
    # Buyer paid 50 + 0.05 maker fee; the rest (1.5 @ 100) needs 150 + fee at 20 bps on the
    # cumulative notional: ceil((50e6*10 + 150e6*20)/1e4) - 50_000 = 300_000 atoms.
    assert buyer.balances() == {"USDC": ("799.650000", "150.300000"),
                                "ORD": ("0.500000000", "0.000000000")}  # fmt: skip
    assert buyer.book(market)["bids"] == [{"price": "100.000000", "qty": "1.500000000", "count": 1}]


def _only_live_order(trader: Trader, market: str) -> dict[str, object]:
    page = trader.http.get("/api/v1/orders", params={"market": market, "status": "live"}).json()
    assert len(page["orders"]) == 1
    order: dict[str, object] = page["orders"][0]
    return order


def test_amend_down_keeps_the_order_and_releases_funds(
    pair: tuple[Trader, Trader], market: str
) -> None:
    buyer, _ = pair
    live = _only_live_order(buyer, market)
    assert live["status"] == "partially_filled"
    response = buyer.http.patch(f"/api/v1/orders/{live['order_id']}", json={"qty": "1"})
    assert response.status_code == 200, response.text
    assert response.json()["open_qty"] == "1.000000000"
    # 100 + ceil((50e6*10 + 100e6*20)/1e4) - 50_000 = 100.2 locked.
    assert buyer.balances()["USDC"] == ("849.750000", "100.200000")


def test_amend_price_reprices_and_relocks_exactly(pair: tuple[Trader, Trader], market: str) -> None:
    buyer, _ = pair
    live = _only_live_order(buyer, market)
    response = buyer.http.patch(f"/api/v1/orders/{live['order_id']}", json={"price": "101"})
    assert response.status_code == 200, response.text
    assert response.json()["price"] == "101.000000"
    # 101 + ceil((50e6*10 + 101e6*20)/1e4) - 50_000 = 101.202 locked.
    assert buyer.balances()["USDC"] == ("848.748000", "101.202000")
    assert buyer.book(market)["bids"] == [{"price": "101.000000", "qty": "1.000000000", "count": 1}]


def test_cancel_releases_everything_and_reports_the_final_state(
    pair: tuple[Trader, Trader], market: str
) -> None:
    buyer, _ = pair
    live = _only_live_order(buyer, market)
    response = buyer.http.delete(f"/api/v1/orders/{live['order_id']}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert buyer.balances()["USDC"] == ("949.950000", "0.000000")
    assert buyer.book(market)["bids"] == []
    again = buyer.http.delete(f"/api/v1/orders/{live['order_id']}")
    assert (again.status_code, again.json()["code"]) == (409, "order_not_open")


def test_cancel_all_cancels_only_the_callers_orders(
    pair: tuple[Trader, Trader], market: str
) -> None:
    buyer, seller = pair
    first = buyer.place(market=market, side="buy", price="90", qty="0.1")
    second = buyer.place(market=market, side="buy", price="80", qty="0.2")
    ask = seller.place(market=market, side="sell", price="120", qty="0.3")
    response = buyer.http.delete("/api/v1/orders", params={"market": market})
    assert response.status_code == 200, response.text
    assert sorted(response.json()["cancelled"]) == sorted([first["order_id"], second["order_id"]])
    book = buyer.book(market)
    assert book["bids"] == []
    assert book["asks"] == [{"price": "120.000000", "qty": "0.300000000", "count": 1}]
    assert buyer.balances()["USDC"] == ("949.950000", "0.000000")
    assert seller.http.get(f"/api/v1/orders/{ask['order_id']}").json()["status"] == "open"


def test_a_market_buy_takes_the_ask_and_pays_the_taker_fee(
    pair: tuple[Trader, Trader], market: str
) -> None:
    buyer, seller = pair
    order = buyer.place(market=market, side="buy", kind="market", qty="0.3")
    assert (order["status"], order["filled_qty"], order["fee"]) == ("filled", "0.300000000",
                                                                    "0.072000")  # fmt: skip
    # 36 USDC + 20 bps = 36.072; every protection lock released.
    assert buyer.balances() == {"USDC": ("913.878000", "0.000000"),
                                "ORD": ("0.800000000", "0.000000000")}  # fmt: skip
    # Seller: 49.9 + 36 - 0.036 maker fee.
    assert seller.balances() == {"USDC": ("85.864000", "0.000000"),
                                 "ORD": ("9.200000000", "0.000000000")}  # fmt: skip


def test_fills_are_listed_for_maker_and_taker(pair: tuple[Trader, Trader], market: str) -> None:
    buyer, seller = pair
    mine = buyer.http.get("/api/v1/trades", params={"market": market}).json()["trades"]
    assert [(t["side"], t["liquidity"], t["price"], t["qty"], t["fee"]) for t in mine] == [
        ("buy", "taker", "120.000000", "0.300000000", "0.072000"),
        ("buy", "maker", "100.000000", "0.500000000", "0.050000"),
    ]
    theirs = seller.http.get("/api/v1/trades").json()["trades"]
    assert [(t["side"], t["liquidity"], t["fee"]) for t in theirs] == [
        ("sell", "maker", "0.036000"),
        ("sell", "taker", "0.100000"),
    ]


def test_order_list_pages_with_a_cursor(pair: tuple[Trader, Trader], market: str) -> None:
    buyer, _ = pair
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = buyer.http.get("/api/v1/orders", params=params).json()
        seen += [o["order_id"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 4


def test_a_retry_with_the_client_order_id_returns_the_original(
    pair: tuple[Trader, Trader], market: str
) -> None:
    buyer, _ = pair
    body: dict[str, Any] = {
        "market": market,
        "side": "buy",
        "price": "50",
        "qty": "1",
        "client_order_id": "r-1",
    }
    first = buyer.place(**body)
    before = buyer.balances()
    again = buyer.place(expect=200, **body)
    assert again["order_id"] == first["order_id"]
    assert again["client_order_id"] == "r-1"
    assert buyer.balances() == before
    assert buyer.book(market)["bids"] == [{"price": "50.000000", "qty": "1.000000000", "count": 1}]
    buyer.http.delete(f"/api/v1/orders/{first['order_id']}")


async def test_concurrent_retries_place_one_order(
    exchange: Exchange, pair: tuple[Trader, Trader], market: str
) -> None:
    buyer, _ = pair
    body = {"market": market, "side": "buy", "price": "40", "qty": "1", "client_order_id": "c-1"}
    headers = {"X-API-Key": buyer.key}
    async with httpx.AsyncClient(base_url=exchange.url, headers=headers, timeout=30) as client:
        responses = await asyncio.gather(*(client.post("/api/v1/orders", json=body)
                                           for _ in range(8)))  # fmt: skip
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert buyer.book(market)["bids"] == [{"price": "40.000000", "qty": "1.000000000", "count": 1}]
    assert buyer.balances()["USDC"] == ("873.798000", "40.080000")
    buyer.http.delete("/api/v1/orders")


async def test_many_concurrent_orders_are_all_answered(
    exchange: Exchange, pair: tuple[Trader, Trader], market: str
) -> None:
    _, seller = pair
    headers = {"X-API-Key": seller.key}
    async with httpx.AsyncClient(base_url=exchange.url, headers=headers, timeout=30) as client:
        responses = await asyncio.gather(*(
            client.post("/api/v1/orders", json={"market": market, "side": "sell",
                                                "price": f"{200 + i}", "qty": "0.01"})
            for i in range(30)
        ))  # fmt: skip
    assert [r.status_code for r in responses] == [201] * 30
    assert len(seller.book(market)["asks"]) == 30
    assert seller.balances()["ORD"] == ("8.900000000", "0.300000000")
    seller.http.delete("/api/v1/orders", params={"market": market})
    assert seller.balances()["ORD"] == ("9.200000000", "0.000000000")


def test_the_lean_route_and_fastapis_route_answer_alike(exchange: Exchange, market: str) -> None:
    """`application/json` takes the lean route (`serve_app/lean.py`); a `+json` media type
    takes FastAPI's route. Both place alike, and a retry through one finds the other's."""
    trader = exchange.trader(USDC="100")
    body = {"market": market, "side": "buy", "price": "1", "qty": "1", "client_order_id": "l-1"}
    vendor_json = {"Content-Type": "application/vnd.clob+json"}

    def via_fastapi(order: dict[str, Any]) -> httpx.Response:
        return trader.http.post("/api/v1/orders", content=json.dumps(order), headers=vendor_json)

    lean = trader.http.post("/api/v1/orders", json=body)
    full = via_fastapi({**body, "client_order_id": "f-1"})
    assert (lean.status_code, full.status_code) == (201, 201), (lean.text, full.text)
    ids = {"order_id", "client_order_id", "created_at", "updated_at"}
    assert {k: v for k, v in lean.json().items() if k not in ids} == {
        k: v for k, v in full.json().items() if k not in ids
    }
    retried_full = trader.http.post("/api/v1/orders", json={**body, "client_order_id": "f-1"})
    retried_lean = via_fastapi(body)
    assert (retried_full.status_code, retried_lean.status_code) == (200, 200)
    assert retried_full.json()["order_id"] == full.json()["order_id"]
    assert retried_lean.json()["order_id"] == lean.json()["order_id"]
    level = {"price": "1.000000", "qty": "2.000000000", "count": 2}
    assert trader.book(market)["bids"][-1] == level
    trader.http.delete("/api/v1/orders")
    trader.http.close()


def test_a_restarted_market_answers_unavailable_then_trades_on(exchange: Exchange) -> None:
    """A market actor dies and Ray restarts it: the gateway's connection to it breaks, a
    request in between is answered 503 `unavailable` (never 500), and the next ones reach
    the new incarnation, which recovered the book."""
    symbol = exchange.create_market("RST")
    seller = exchange.trader(RST="10")
    first = seller.place(market=symbol, side="sell", price="5", qty="1")
    ray.kill(ray.get_actor(f"market:{symbol}", namespace="clob"), no_restart=False)
    body = {"market": symbol, "side": "sell", "price": "6", "qty": "1", "client_order_id": "k"}
    statuses: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = seller.http.post("/api/v1/orders", json=body)
        statuses.append(response.status_code)
        if response.status_code in (200, 201):
            break
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
        time.sleep(0.05)
    assert statuses[-1] in (200, 201), statuses
    # Ray may report a call made across the restart as failed a second later (a task sent to
    # the dying incarnation): a read then still answers 503, and a retry reaches the new one.
    deadline = time.monotonic() + 30
    while (book := seller.http.get(f"/api/v1/orderbook/{symbol}")).status_code == 503:
        assert book.json()["code"] == "unavailable" and time.monotonic() < deadline, book.text
        time.sleep(0.1)
    asks = seller.book(symbol)["asks"]
    assert [a["price"] for a in asks] == ["5.000000", "6.000000"]
    assert seller.balances()["RST"] == ("8.000000000", "2.000000000")
    seller.http.delete(f"/api/v1/orders/{first['order_id']}")
    seller.http.close()


def test_a_stop_market_buy_with_a_budget_locks_it_then_spends_it_when_triggered(
    exchange: Exchange,
) -> None:
    """A stop-market buy may give `quote_qty` instead of `qty`: it locks the budget and the
    highest fee on it while it waits, releases all of it when cancelled, and once a trade
    triggers it buys what the budget affords, paying the taker fee on what it spent and
    getting the rest back."""
    symbol = exchange.create_market("STB")
    buyer = exchange.trader(USDC="1000")
    seller = exchange.trader(STB="10")
    trigger = exchange.trader(USDC="100")
    # Cancelled while waiting: 10 USDC + 20 bps locked, then all of it back.
    waiting = buyer.place(
        market=symbol, side="buy", kind="stop_market", stop_price="200", quote_qty="10"
    )
    assert waiting["status"] == "untriggered"
    assert (waiting["quote_qty"], waiting["qty"]) == ("10.000000", None)
    assert buyer.balances()["USDC"] == ("989.980000", "10.020000")
    cancelled = buyer.http.delete(f"/api/v1/orders/{waiting['order_id']}")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert buyer.balances()["USDC"] == ("1000.000000", "0.000000")

    stop = buyer.place(
        market=symbol, side="buy", kind="stop_market", stop_price="100", quote_qty="50"
    )
    assert buyer.balances()["USDC"] == ("949.900000", "50.100000")
    seller.place(market=symbol, side="sell", price="100", qty="0.1")
    seller.place(market=symbol, side="sell", price="101", qty="5")
    # A trade at 100 triggers the stop, which then takes the ask at 101 with its budget:
    # 50 USDC buys floor(50 / 0.0101) = 495 lots (0.495 STB) for 49.995 USDC, plus the
    # 20 bps taker fee of 0.09999; the other 0.005 USDC and the fee lock come back.
    trigger.place(market=symbol, side="buy", kind="market", qty="0.1")
    assert buyer.balances() == {"USDC": ("949.905010", "0.000000"),
                                "STB": ("0.495000000", "0.000000000")}  # fmt: skip
    done = buyer.http.get(f"/api/v1/orders/{stop['order_id']}").json()
    assert (done["filled_qty"], done["filled_quote"], done["fee"], done["open_qty"]) == (
        "0.495000000", "49.995000", "0.099990", "0.000000000")  # fmt: skip
    # Seller: 0.1 at 100 and 0.495 at 101, less the 10 bps maker fees (0.01 and 0.049995).
    assert seller.balances() == {"USDC": ("59.935005", "0.000000"),
                                 "STB": ("4.900000000", "4.505000000")}  # fmt: skip
    for trader in (buyer, seller, trigger):
        trader.http.delete("/api/v1/orders")
        trader.http.close()
