"""Regressions of what the fuzzer (`test_fuzz.py`) found: each request below was refused
(4xx) and yet changed the exchange's state, or was valid by the OpenAPI document and yet
refused. Each is now refused at the edge, with a code of its own, and changes nothing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

# The repo root is not on sys.path under pytest (see tests/unit/engine/test_properties.py).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import Exchange, Trader  # noqa: E402


def _seq(trader: Trader, market: str) -> int:
    """Return the market's last event seq, past the 100 ms cache of the book."""
    time.sleep(0.11)
    seq: int = trader.http.get(f"/api/v1/orderbook/{market}").json()["seq"]
    return seq


def test_a_fill_or_kill_market_buy_by_quantity_is_refused_before_the_journal(
    exchange: Exchange,
) -> None:
    """The market holds a market buy's funds by a budget it adds to the command, and the
    engine refuses a budget on a fill-or-kill order: every such order was journaled, then
    rejected `invalid_command` (the market's seq moved on a 422)."""
    market = exchange.create_market("FOKB")
    seller, buyer = exchange.trader(FOKB="10"), exchange.trader(USDC="10000")
    seller.place(market=market, side="sell", price="100", qty="1")
    before = (buyer.balances(), seller.balances(), _seq(buyer, market))
    order = {"market": market, "side": "buy", "kind": "market", "tif": "fok", "qty": "0.5"}
    response = buyer.http.post("/api/v1/orders", json=order)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"
    assert "fok" in response.text
    assert (buyer.balances(), seller.balances(), _seq(buyer, market)) == before
    assert buyer.book(market)["asks"] == [{"price": "100.000000", "qty": "1.000000000", "count": 1}]
    # A fill-or-kill market sell, and a market buy by quantity as ioc, still trade.
    placed = buyer.place(**{**order, "tif": "ioc"})
    assert placed["status"] == "filled", placed
    buyer.place(market=market, side="buy", price="99", qty="0.5")  # below the ask left
    assert seller.place(**{**order, "side": "sell"})["status"] == "filled"


def test_a_credit_to_an_account_id_beyond_2_53_is_refused_by_the_schema_bound(
    exchange: Exchange,
) -> None:
    """The schema said `exclusiveMaximum: 2^63`; read as a float that bound let 2^63 + 191
    pass as valid, which the API then refused (invalid_request for a schema-valid body)."""
    for account_id in (2**53, 2**63 + 191):
        body = {"account_id": account_id, "asset": "USDC", "amount": "1"}
        response = exchange.admin.post("/api/v1/admin/credits", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["details"]["errors"][0]["field"] == "body.account_id"
    schema = exchange.admin.get("/openapi.json").json()["components"]["schemas"]["Credit"]
    assert schema["properties"]["account_id"]["maximum"] == 2**53 - 1
