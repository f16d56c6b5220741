"""The HTTP contract of every route: unknown query parameters and non-JSON bodies are
refused (changing nothing), a wrong method names every allowed one, seed aliases work."""

from __future__ import annotations

import json
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
def market(exchange: Exchange) -> str:
    return exchange.create_market("CTR")


@pytest.fixture(scope="module")
def trader(exchange: Exchange, market: str) -> Iterator[Trader]:
    trader = exchange.trader(USDC="100")
    yield trader
    trader.http.delete("/api/v1/orders")
    trader.http.close()


def _state(trader: Trader) -> tuple[Any, ...]:
    orders = trader.http.get("/api/v1/orders").json()["orders"]
    return trader.balances(), [(o["order_id"], o["qty"], o["price"]) for o in orders]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/orders"), ("GET", "/balances"), ("GET", "/trades"), ("GET", "/markets"),
     ("GET", "/orderbook/CTR-USDC"), ("DELETE", "/orders"), ("POST", "/orders")],
)  # fmt: skip
def test_an_unknown_query_parameter_is_refused_and_named(
    trader: Trader, market: str, method: str, path: str
) -> None:
    before = _state(trader)
    body = {"market": market, "side": "buy", "price": "1", "qty": "1"}
    response = trader.http.request(
        method, f"/api/v1{path}", params={"limit": "5", "colour": "red"},
        json=body if method == "POST" else None,
    )  # fmt: skip
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "invalid_request"
    fields = [e["field"] for e in error["details"]["errors"]]
    assert "query.colour" in fields
    assert _state(trader) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/orders", {"market": "CTR-USDC", "side": "buy", "price": "1", "qty": "1"}),
     ("PATCH", "/orders/{order_id}", {"qty": "2"}),
     ("PUT", "/orders/{order_id}", {"qty": "2"})],
)  # fmt: skip
def test_json_sent_as_another_media_type_is_415_and_changes_nothing(
    trader: Trader, market: str, method: str, path: str, body: dict[str, str]
) -> None:
    order = trader.place(market=market, side="buy", price="1", qty="1")
    before = _state(trader)
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = trader.http.request(
            method, f"/api/v1{path.format(order_id=order['order_id'])}",
            content=httpx.Request("POST", "/", json=body).content,
            headers={"Content-Type": content_type},
        )  # fmt: skip
        assert response.status_code == 415, response.text
        assert response.json()["code"] == "unsupported_media_type"
    assert _state(trader) == before
    trader.http.delete(f"/api/v1/orders/{order['order_id']}")


def test_admin_json_sent_as_text_is_415(exchange: Exchange, trader: Trader) -> None:
    body = json.dumps({"account_id": trader.account_id, "asset": "USDC", "amount": "1"})
    response = exchange.admin.post(
        "/api/v1/admin/credits", content=body, headers={"Content-Type": "text/plain"}
    )
    assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type")
    assert trader.balances()["USDC"] == ("100.000000", "0.000000")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("OPTIONS", "/api/v1/orders", {"GET", "POST", "DELETE"}),
     ("PUT", "/api/v1/orders", {"GET", "POST", "DELETE"}),
     ("OPTIONS", "/api/v1/orders/x", {"GET", "PATCH", "PUT", "DELETE"}),
     ("DELETE", "/api/v1/markets", {"GET"})],
)  # fmt: skip
def test_a_wrong_method_answers_405_allowing_every_method_of_the_path(
    exchange: Exchange, method: str, path: str, allowed: set[str]
) -> None:
    response = httpx.request(method, f"{exchange.url}{path}")
    assert response.status_code == 405, response.text
    assert response.json()["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == allowed


def test_put_amends_an_order_as_patch_does(trader: Trader, market: str) -> None:
    order = trader.place(market=market, side="buy", price="2", qty="3")
    response = trader.http.put(f"/api/v1/orders/{order['order_id']}", json={"qty": "1"})
    assert response.status_code == 200, response.text
    assert (response.json()["qty"], response.json()["open_qty"]) == ("1.000000000",
                                                                     "1.000000000")  # fmt: skip
    assert trader.balances()["USDC"] == ("97.996000", "2.004000")
    trader.http.delete(f"/api/v1/orders/{order['order_id']}")
