"""Every class of bad input answers the right status and code, and changes nothing."""

from __future__ import annotations

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
    return exchange.create_market("BAD")


@pytest.fixture(scope="module")
def trader(exchange: Exchange, market: str) -> Iterator[Trader]:
    trader = exchange.trader(USDC="100", BAD="1")
    trader.place(market=market, side="buy", price="10", qty="1")  # something on the book
    yield trader
    trader.http.delete("/api/v1/orders")
    trader.http.close()


def _state(trader: Trader, market: str) -> tuple[Any, ...]:
    orders = trader.http.get("/api/v1/orders").json()["orders"]
    return trader.balances(), trader.book(market), [o["order_id"] for o in orders]


def _order(symbol: str, **fields: Any) -> dict[str, Any]:
    return {"market": symbol, "side": "buy", "price": "10", "qty": "1", **fields}


CASES = [
    ("wrong tick", {"price": "10.005"}, 422, "invalid_tick"),
    ("wrong lot", {"qty": "0.0105"}, 422, "invalid_lot"),
    ("zero price", {"price": "0"}, 422, "invalid_price"),
    ("below minimum qty", {"qty": "0.001"}, 422, "qty_below_minimum"),
    ("above maximum qty", {"qty": "1000.001"}, 422, "qty_above_maximum"),
    ("below minimum notional", {"price": "0.01", "qty": "0.01"}, 422, "notional_below_minimum"),
    ("insufficient funds", {"price": "100", "qty": "5"}, 422, "insufficient_funds"),
    ("insufficient base", {"side": "sell", "qty": "2"}, 422, "insufficient_funds"),
    ("unknown market", {"market": "NOPE-USDC"}, 404, "unknown_market"),
    ("unknown field", {"colour": "red"}, 422, "invalid_request"),
    ("number instead of string", {"price": 10.5}, 422, "invalid_request"),
    ("exponent", {"price": "1e1"}, 422, "invalid_request"),
    ("NaN", {"price": "NaN"}, 422, "invalid_request"),
    ("negative", {"qty": "-1"}, 422, "invalid_request"),
    ("too many digits", {"qty": "1" * 50}, 422, "invalid_request"),
    ("price on a market order", {"kind": "market"}, 422, "invalid_request"),
    ("qty and quote_qty", {"quote_qty": "5"}, 422, "invalid_request"),
    ("gtd without expiry", {"tif": "gtd"}, 422, "invalid_request"),
    ("iceberg slice not below qty", {"display_qty": "1"}, 422, "invalid_display_qty"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_order_is_refused_and_changes_nothing(
    trader: Trader, market: str, case: tuple[str, dict[str, Any], int, str]
) -> None:
    _, fields, status, code = case
    before = _state(trader, market)
    response = trader.http.post("/api/v1/orders", json=_order(market, **fields))
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code, body
    assert _state(trader, market) == before


def test_unknown_field_is_named_in_the_details(trader: Trader, market: str) -> None:
    response = trader.http.post("/api/v1/orders", json=_order(market, colour="red"))
    fields = [e["field"] for e in response.json()["details"]["errors"]]
    assert fields == ["body.colour"]


def test_malformed_json_is_400_and_changes_nothing(trader: Trader, market: str) -> None:
    before = _state(trader, market)
    response = trader.http.post(
        "/api/v1/orders", content=b'{"market": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert _state(trader, market) == before


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "nonsense"}, {"X-API-Key": "abcdefgh.wrong-secret"}, {"X-API-Key": ""}],
    ids=["missing", "malformed", "unknown", "empty"],
)
def test_missing_or_bad_key_is_401_and_changes_nothing(
    exchange: Exchange, trader: Trader, market: str, headers: dict[str, str]
) -> None:
    before = _state(trader, market)
    for method, path in (("POST", "/api/v1/orders"), ("GET", "/api/v1/balances"),
                         ("DELETE", "/api/v1/orders"), ("GET", "/api/v1/trades")):  # fmt: skip
        response = httpx.request(
            method, f"{exchange.url}{path}", json=_order(market) if method == "POST" else None,
            headers=headers,
        )  # fmt: skip
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "unauthorized"
    assert _state(trader, market) == before


def test_a_wrong_secret_for_a_real_key_id_is_401(exchange: Exchange, trader: Trader) -> None:
    key_id = trader.key.split(".")[0]
    response = httpx.get(f"{exchange.url}/api/v1/balances", headers={"X-API-Key": f"{key_id}.x"})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


def test_admin_endpoints_need_the_admin_token(exchange: Exchange, trader: Trader) -> None:
    body = {"account_id": trader.account_id, "asset": "USDC", "amount": "1000"}
    before = trader.balances()
    for headers in ({}, {"X-Admin-Token": "wrong"}, {"X-API-Key": trader.key}):
        response = httpx.post(f"{exchange.url}/api/v1/admin/credits", json=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert trader.balances() == before


def test_bad_amend_is_refused_and_changes_nothing(trader: Trader, market: str) -> None:
    order_id = trader.http.get("/api/v1/orders").json()["orders"][0]["order_id"]
    before = _state(trader, market)
    for body, status, code in (
        ({"price": "10.001"}, 422, "invalid_tick"),
        ({"qty": "0.0001"}, 422, "invalid_lot"),
        ({}, 422, "invalid_request"),
        ({"qty": "1", "side": "sell"}, 422, "invalid_request"),
        ({"qty": "1000"}, 422, "insufficient_funds"),
    ):
        response = trader.http.patch(f"/api/v1/orders/{order_id}", json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), body
    assert _state(trader, market) == before


def test_unknown_order_and_cursor(trader: Trader) -> None:
    for method in ("GET", "DELETE"):
        response = trader.http.request(method, "/api/v1/orders/does-not-exist")
        assert (response.status_code, response.json()["code"]) == (404, "unknown_order")
    response = trader.http.get("/api/v1/orders", params={"cursor": "%%%"})
    assert (response.status_code, response.json()["code"]) == (422, "invalid_cursor")
