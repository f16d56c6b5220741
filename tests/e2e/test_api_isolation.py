"""A key reaches only its own account: orders, fills and balances of others stay invisible."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The repo root is not on sys.path under pytest (see tests/unit/engine/test_properties.py).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import Exchange, Trader  # noqa: E402


@pytest.fixture(scope="module")
def market(exchange: Exchange) -> str:
    return exchange.create_market("ISO")


@pytest.fixture(scope="module")
def accounts(exchange: Exchange, market: str) -> Iterator[tuple[Trader, Trader, Trader]]:
    alice = exchange.trader(USDC="100")
    bob = exchange.trader(USDC="100", ISO="5")
    carol = exchange.trader(ISO="5")
    carol.place(market=market, side="sell", price="10", qty="1")
    alice.place(market=market, side="buy", price="10", qty="1")  # fills against carol
    alice.place(market=market, side="buy", price="9", qty="1", client_order_id="mine")
    yield alice, bob, carol
    for trader in (alice, bob, carol):
        trader.http.delete("/api/v1/orders")
        trader.http.close()


def _alice_live_order(alice: Trader) -> str:
    orders = alice.http.get("/api/v1/orders", params={"status": "live"}).json()["orders"]
    assert len(orders) == 1
    order_id: str = orders[0]["order_id"]
    return order_id


def test_another_accounts_order_is_not_found(accounts: tuple[Trader, Trader, Trader]) -> None:
    alice, bob, _ = accounts
    order_id = _alice_live_order(alice)
    for method, body in (("GET", None), ("DELETE", None), ("PATCH", {"qty": "0.5"})):
        response = bob.http.request(method, f"/api/v1/orders/{order_id}", json=body)
        assert (response.status_code, response.json()["code"]) == (404, "unknown_order")
    assert alice.http.get(f"/api/v1/orders/{order_id}").json()["open_qty"] == "1.000000000"


def test_order_lists_and_cancel_all_see_only_own_orders(
    accounts: tuple[Trader, Trader, Trader], market: str
) -> None:
    alice, bob, _ = accounts
    assert bob.http.get("/api/v1/orders").json()["orders"] == []
    response = bob.http.delete("/api/v1/orders")
    assert response.json()["cancelled"] == []
    response = bob.http.delete("/api/v1/orders", params={"market": market})
    assert response.json()["cancelled"] == []
    _alice_live_order(alice)


def test_a_client_order_id_is_per_account(
    accounts: tuple[Trader, Trader, Trader], market: str
) -> None:
    alice, bob, _ = accounts
    order = bob.place(market=market, side="buy", price="8", qty="1", client_order_id="mine")
    assert order["order_id"] != _alice_live_order(alice)
    bob.http.delete(f"/api/v1/orders/{order['order_id']}")


def test_fills_are_visible_only_to_maker_and_taker(
    accounts: tuple[Trader, Trader, Trader],
) -> None:
    alice, bob, carol = accounts
    assert len(alice.http.get("/api/v1/trades").json()["trades"]) == 1
    assert len(carol.http.get("/api/v1/trades").json()["trades"]) == 1
    assert bob.http.get("/api/v1/trades").json()["trades"] == []


def test_balances_of_another_account_are_forbidden(
    accounts: tuple[Trader, Trader, Trader],
) -> None:
    alice, bob, _ = accounts
    response = bob.http.get(f"/api/v1/users/{alice.account_id}/balance")
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    own = bob.http.get(f"/api/v1/users/{bob.account_id}/balance")
    assert own.status_code == 200
    assert own.json()["account_id"] == bob.account_id
    assert {b["asset"] for b in own.json()["balances"]} == {"USDC", "ISO"}


def test_keys_of_another_account_are_invisible_and_cannot_be_revoked(
    accounts: tuple[Trader, Trader, Trader],
) -> None:
    alice, bob, _ = accounts
    alice_key_id = alice.key.split(".", 1)[0]
    bob_keys = bob.http.get("/api/v1/keys").json()["keys"]
    assert [k["key_id"] for k in bob_keys] == [bob.key.split(".", 1)[0]]
    response = bob.http.delete(f"/api/v1/keys/{alice_key_id}")
    assert (response.status_code, response.json()["code"]) == (404, "unknown_key")
    [alice_key] = alice.http.get("/api/v1/keys").json()["keys"]
    assert alice_key["key_id"] == alice_key_id and alice_key["revoked_at"] is None
    assert alice.http.get("/api/v1/balances").status_code == 200
