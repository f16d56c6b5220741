"""What an order's answer says agrees with what was asked and done: client order ids are
reused only by identical retries, the placement's answer has the times a read has, `qty`
follows an amend, a market order reports the time in force it has, times are RFC 3339.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# The repo root is not on sys.path under pytest (see tests/unit/engine/test_properties.py).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import Exchange, Trader  # noqa: E402


@pytest.fixture(scope="module")
def markets(exchange: Exchange) -> tuple[str, str]:
    return exchange.create_market("TRM"), exchange.create_market("TRN")


@pytest.fixture(scope="module")
def pair(exchange: Exchange, markets: tuple[str, str]) -> Iterator[tuple[Trader, Trader]]:
    buyer = exchange.trader(USDC="1000")
    seller = exchange.trader(TRM="10", TRN="10")
    yield buyer, seller
    for trader in (buyer, seller):
        trader.http.delete("/api/v1/orders")
        trader.http.close()


def _refused_as_reused(response: httpx.Response, order_id: str) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "duplicate_client_order_id"
    assert body["details"]["order_id"] == order_id


def test_a_client_order_id_is_reused_only_by_an_identical_retry(
    pair: tuple[Trader, Trader], markets: tuple[str, str]
) -> None:
    buyer, _ = pair
    first_market, other_market = markets
    body = {"market": first_market, "side": "buy", "price": "5", "qty": "1",
            "client_order_id": "terms-1"}  # fmt: skip
    first = buyer.place(**body)
    before = (buyer.balances(), buyer.book(first_market))
    # The same terms written differently are the same order.
    again = buyer.place(expect=200, **{**body, "price": "5.00", "qty": "1.000", "tif": "gtc"})
    assert again["order_id"] == first["order_id"]
    for changed in ({"qty": "2"}, {"side": "sell"}, {"tif": "ioc"}, {"market": other_market}):
        response = buyer.http.post("/api/v1/orders", json={**body, **changed})
        _refused_as_reused(response, first["order_id"])
    assert (buyer.balances(), buyer.book(first_market)) == before
    assert buyer.book(other_market)["bids"] == []
    # Still the order's id once it is no longer live.
    assert buyer.http.delete(f"/api/v1/orders/{first['order_id']}").status_code == 200
    assert buyer.place(expect=200, **body)["status"] == "cancelled"
    _refused_as_reused(buyer.http.post("/api/v1/orders", json={**body, "qty": "3"}),
                       first["order_id"])  # fmt: skip


async def test_concurrent_requests_with_one_client_order_id_place_one_order(
    exchange: Exchange, pair: tuple[Trader, Trader], markets: tuple[str, str]
) -> None:
    buyer, _ = pair
    bodies = [
        {"market": markets[0], "side": "buy", "price": "4", "qty": f"{1 + i % 2}",
         "client_order_id": "terms-2"}
        for i in range(8)
    ]  # fmt: skip
    headers = {"X-API-Key": buyer.key}
    async with httpx.AsyncClient(base_url=exchange.url, headers=headers, timeout=30) as client:
        responses = await asyncio.gather(*(client.post("/api/v1/orders", json=b) for b in bodies))
    placed = [i for i, r in enumerate(responses) if r.status_code == 201]
    assert len(placed) == 1, [r.text for r in responses]
    winner = bodies[placed[0]]
    order_id = responses[placed[0]].json()["order_id"]
    for body, response in zip(bodies, responses, strict=True):
        if response.status_code != 201 and body == winner:
            assert (response.status_code, response.json()["order_id"]) == (200, order_id)
        elif body != winner:
            _refused_as_reused(response, order_id)
    assert len(buyer.book(markets[0])["bids"]) == 1
    buyer.http.delete(f"/api/v1/orders/{order_id}")


def test_the_placement_answer_has_the_times_a_read_has(
    pair: tuple[Trader, Trader], markets: tuple[str, str]
) -> None:
    buyer, _ = pair
    placed = buyer.place(market=markets[0], side="buy", price="3", qty="1")
    assert placed["created_at"] is not None
    assert placed["updated_at"] == placed["created_at"]
    read = buyer.http.get(f"/api/v1/orders/{placed['order_id']}").json()
    assert (read["created_at"], read["updated_at"]) == (placed["created_at"],
                                                       placed["updated_at"])  # fmt: skip
    buyer.http.delete(f"/api/v1/orders/{placed['order_id']}")


def test_an_amend_makes_qty_the_filled_plus_the_new_open_quantity(
    pair: tuple[Trader, Trader], markets: tuple[str, str]
) -> None:
    buyer, seller = pair
    order = buyer.place(market=markets[0], side="buy", price="10", qty="2")
    seller.place(market=markets[0], side="sell", price="10", qty="0.5")
    amended = buyer.http.patch(f"/api/v1/orders/{order['order_id']}", json={"qty": "1"})
    assert amended.status_code == 200, amended.text
    fields = ("qty", "open_qty", "filled_qty")
    assert [amended.json()[f] for f in fields] == ["1.500000000", "1.000000000", "0.500000000"]
    read = buyer.http.get(f"/api/v1/orders/{order['order_id']}").json()
    assert [read[f] for f in fields] == ["1.500000000", "1.000000000", "0.500000000"]
    buyer.http.delete(f"/api/v1/orders/{order['order_id']}")


def test_an_iceberg_amended_below_its_slice_reads_back(
    pair: tuple[Trader, Trader], markets: tuple[str, str]
) -> None:
    _, seller = pair
    order = seller.place(market=markets[1], side="sell", price="50", qty="1", display_qty="0.2")
    amended = seller.http.patch(f"/api/v1/orders/{order['order_id']}", json={"qty": "0.1"})
    assert amended.status_code == 200, amended.text
    assert (amended.json()["qty"], amended.json()["open_qty"]) == ("0.100000000", "0.100000000")
    assert seller.book(markets[1])["asks"] == [
        {"price": "50.000000", "qty": "0.100000000", "count": 1}
    ]
    seller.http.delete(f"/api/v1/orders/{order['order_id']}")


@pytest.mark.parametrize(
    ("tif", "shown", "reason"),
    [(None, "ioc", "no_liquidity"), ("gtc", "ioc", "no_liquidity"), ("fok", "fok", "fok_unfilled")],
)
def test_a_market_order_reports_the_time_in_force_it_has(
    pair: tuple[Trader, Trader], markets: tuple[str, str], tif: str | None, shown: str,
    reason: str,
) -> None:  # fmt: skip
    _, seller = pair
    order: dict[str, Any] = {"market": markets[1], "side": "sell", "kind": "market",
                             "qty": "1", **({"tif": tif} if tif else {})}  # fmt: skip
    placed = seller.place(**order)
    assert (placed["tif"], placed["status"], placed["reason"]) == (shown, "cancelled", reason)
    assert seller.http.get(f"/api/v1/orders/{placed['order_id']}").json()["tif"] == shown


def test_a_market_order_with_gtd_is_refused(
    pair: tuple[Trader, Trader], markets: tuple[str, str]
) -> None:
    buyer, _ = pair
    response = buyer.http.post("/api/v1/orders", json={
        "market": markets[1], "side": "buy", "kind": "market", "qty": "1", "tif": "gtd",
        "expire_at": "2099-01-01T00:00:00Z"})  # fmt: skip
    assert (response.status_code, response.json()["code"]) == (422, "invalid_request")


@pytest.mark.parametrize("expire_at", [4102444800, "4102444800", "2099-01-01T00:00:00"])
def test_expire_at_must_be_rfc3339_with_a_zone(
    pair: tuple[Trader, Trader], markets: tuple[str, str], expire_at: object
) -> None:
    buyer, _ = pair
    response = buyer.http.post("/api/v1/orders", json={
        "market": markets[1], "side": "buy", "price": "1", "qty": "1", "tif": "gtd",
        "expire_at": expire_at})  # fmt: skip
    assert (response.status_code, response.json()["code"]) == (422, "invalid_request")


@pytest.mark.parametrize("start", ["0.5", "1700000000", "2030-01-01", "2030-01-01T00:00:00"])
def test_trades_times_must_be_rfc3339(pair: tuple[Trader, Trader], start: str) -> None:
    buyer, _ = pair
    response = buyer.http.get("/api/v1/trades", params={"start": start})
    assert (response.status_code, response.json()["code"]) == (422, "invalid_request")
    ok = buyer.http.get("/api/v1/trades", params={"start": "2030-01-01T00:00:00+02:00"})
    assert ok.status_code == 200, ok.text
