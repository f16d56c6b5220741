"""Amount bounds over HTTP: the sequence that once poisoned a data directory (a credit of
1e31 USDC, a resting sell whose fill overflowed the seller's balance column) is refused
with a code before anything is journaled, and everything within a u64 of atoms trades.

The market has assets of its own, so that this module can fill an asset's whole u64.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import Exchange, Trader  # noqa: E402

BASE, QUOTE = "BND", "QBND"
U64_OF_BASE = "18446744073.709551615"  # 2^64 - 1 atoms at 9 decimals
U64_OF_QUOTE = "18446744073709.551615"  # 2^64 - 1 atoms at 6 decimals


@pytest.fixture(scope="module")
def market(exchange: Exchange) -> str:
    return exchange.create_market(BASE, quote=QUOTE, max_qty=None)


@pytest.fixture(scope="module")
def pair(exchange: Exchange, market: str) -> Iterator[tuple[Trader, Trader]]:
    seller, buyer = exchange.trader(), exchange.trader()
    yield seller, buyer
    for trader in (seller, buyer):
        trader.http.delete("/api/v1/orders")
        trader.http.close()


def _credit(exchange: Exchange, account_id: int, asset: str, amount: str) -> tuple[int, str]:
    body = {"account_id": account_id, "asset": asset, "amount": amount}
    response = exchange.admin.post("/api/v1/admin/credits", json=body)
    return response.status_code, response.json().get("code", "")


def test_credits_past_a_u64_of_atoms_are_refused_with_a_code(
    exchange: Exchange, pair: tuple[Trader, Trader]
) -> None:
    seller, buyer = pair
    # The credits: 1.01e31 and 9.9e31 of the quote, 1.1e20 of the base.
    for trader, asset, amount in ((seller, QUOTE, "1" + "0" * 31), (seller, BASE, "11" + "0" * 19),
                                  (buyer, QUOTE, "99" + "0" * 30)):  # fmt: skip
        assert _credit(exchange, trader.account_id, asset, amount) == (422, "amount_too_large")
    status, code = _credit(exchange, 2**63, QUOTE, "1")
    assert (status, code) == (422, "invalid_request")
    assert seller.balances() == buyer.balances() == {}


def test_an_asset_fills_up_to_a_u64_of_atoms_and_not_one_atom_more(
    exchange: Exchange, pair: tuple[Trader, Trader]
) -> None:
    seller, buyer = pair
    assert _credit(exchange, seller.account_id, BASE, U64_OF_BASE) == (200, "")
    assert _credit(exchange, buyer.account_id, QUOTE, U64_OF_QUOTE) == (200, "")
    assert _credit(exchange, buyer.account_id, BASE, "0.000000001") == (422, "total_too_large")
    assert _credit(exchange, seller.account_id, QUOTE, "0.000001") == (422, "total_too_large")
    assert seller.balances() == {BASE: (U64_OF_BASE, "0.000000000")}
    assert buyer.balances() == {QUOTE: (U64_OF_QUOTE, "0.000000")}


def test_an_order_whose_notional_passes_a_u64_is_refused_and_changes_nothing(
    pair: tuple[Trader, Trader], market: str
) -> None:
    seller, buyer = pair
    before = seller.balances(), buyer.balances()
    refused = seller.place(expect=422, market=market, side="sell",
                           price="90000000000000000", qty="1000000000000000")  # fmt: skip
    assert refused["code"] == "amount_too_large"
    refused = buyer.place(expect=422, market=market, side="buy", price="10000000", qty="10000000")
    assert refused["code"] == "amount_too_large"  # 1e14 quote to lock: 1e20 atoms
    assert (seller.balances(), buyer.balances()) == before
    assert seller.http.get("/api/v1/orders").json()["orders"] == []
    assert seller.book(market) == {"bids": [], "asks": []}


def test_trading_within_the_bound_works_and_an_amend_past_it_is_refused(
    pair: tuple[Trader, Trader], market: str
) -> None:
    seller, buyer = pair
    resting = seller.place(market=market, side="sell", price="1000", qty="2")
    bought = buyer.place(market=market, side="buy", price="1000", qty="1")
    assert bought["status"] == "filled" and bought["fee"] == "2.000000"  # taker 20 bps
    response = seller.http.patch(f"/api/v1/orders/{resting['order_id']}",
                                 json={"qty": "10000000000000"})  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "amount_too_large"
    order = seller.http.get(f"/api/v1/orders/{resting['order_id']}").json()
    assert order["open_qty"] == "1.000000000"
    # Seller: 1 BND sold at 1000, maker fee 10 bps = 1; buyer paid 1000 + 2.
    assert seller.balances() == {BASE: ("18446744071.709551615", "1.000000000"),
                                 QUOTE: ("999.000000", "0.000000")}  # fmt: skip
    assert buyer.balances() == {BASE: ("1.000000000", "0.000000000"),
                                QUOTE: ("18446744072707.551615", "0.000000")}  # fmt: skip
