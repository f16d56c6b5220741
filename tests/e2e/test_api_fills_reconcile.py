"""Fills reconcile with balances to the atom, for every account and every fill.

A few accounts trade at random over HTTP (seeded): limit orders at several price levels,
IOC and market orders, amends and cancels, partial fills and self-trades (no self-trade
prevention). Then, per account and asset, the sum of its fills as `GET /trades` reports
them (qty, notional, fee) must equal its balance change, and per order the sum of its
fills must equal what `GET /orders` says it filled and paid. The fee schedules make
rounding matter: odd basis points, and a maker rebate, on notionals that are not round.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

# The repo root is not on sys.path under pytest (see tests/unit/engine/test_properties.py).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import Exchange, Trader  # noqa: E402

CREDIT_QUOTE = Decimal("500")
CREDIT_BASE = Decimal("40")
PRICES = ["9.97", "9.98", "9.99", "10.00", "10.01", "10.02", "10.03"]
STEPS = 70
# (base asset, maker bps, taker bps): odd rates, and a maker rebate (rounded toward zero).
SCHEDULES = [("RCA", 7, 13), ("RCB", -3, 11)]


@pytest.fixture(scope="module", params=SCHEDULES, ids=[s[0] for s in SCHEDULES])
def venue(exchange: Exchange, request: pytest.FixtureRequest) -> Iterator[tuple[str, list[Trader]]]:
    base, maker_bps, taker_bps = request.param
    symbol = exchange.create_market(
        base, min_notional=None, maker_fee_bps=maker_bps, taker_fee_bps=taker_bps
    )
    traders = [
        exchange.trader(USDC=str(CREDIT_QUOTE), **{base: str(CREDIT_BASE)}) for _ in range(3)
    ]
    yield symbol, traders
    for trader in traders:
        trader.http.close()


def _random_order(rng: random.Random, symbol: str) -> dict[str, Any]:
    side = rng.choice(["buy", "sell"])
    qty = f"0.{rng.randint(11, 640):03d}"
    roll = rng.random()
    if roll < 0.1:
        return {"market": symbol, "side": side, "kind": "market", "qty": qty}
    if roll < 0.15 and side == "buy":
        budget = f"{rng.randint(1, 4)}.{rng.randint(0, 999_999):06d}"
        return {"market": symbol, "side": "buy", "kind": "market", "quote_qty": budget}
    order = {"market": symbol, "side": side, "price": rng.choice(PRICES), "qty": qty}
    if roll > 0.9:
        order["tif"] = "ioc"
    return order


def _act(rng: random.Random, trader: Trader, symbol: str, live: list[str]) -> None:
    """Place a random order, or now and then amend or cancel one of the trader's own."""
    roll = rng.random()
    if live and roll < 0.08:
        order_id = live.pop(rng.randrange(len(live)))
        response = trader.http.patch(f"/api/v1/orders/{order_id}", json={"qty": "0.011"})
        assert response.status_code in (200, 409), response.text
        return
    if live and roll < 0.14:
        response = trader.http.delete(f"/api/v1/orders/{live.pop(rng.randrange(len(live)))}")
        assert response.status_code in (200, 409), response.text
        return
    response = trader.http.post("/api/v1/orders", json=_random_order(rng, symbol))
    body = response.json()
    assert response.status_code == 201 or body["code"] == "insufficient_funds", body
    if response.status_code == 201 and body["status"] in ("open", "partially_filled"):
        live.append(body["order_id"])


def _pages(trader: Trader, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = trader.http.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page[key]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _expected_change(fills: list[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    """Return (base, quote) change implied by fills: a buy gets qty and pays notional plus
    fee; a sell gives qty and gets notional minus fee (a negative fee is a rebate)."""
    base = quote = Decimal(0)
    for f in fills:
        sign = 1 if f["side"] == "buy" else -1
        base += sign * Decimal(f["qty"])
        quote -= sign * Decimal(f["quote_qty"]) + Decimal(f["fee"])
    return base, quote


def test_every_accounts_fills_sum_to_its_balance_change(venue: tuple[str, list[Trader]]) -> None:
    symbol, traders = venue
    base_asset = symbol.split("-")[0]
    rng = random.Random(f"reconcile-{symbol}")
    live: dict[int, list[str]] = defaultdict(list)
    for _ in range(STEPS):
        trader = rng.choice(traders)
        _act(rng, trader, symbol, live[trader.account_id])
    self_trades = 0
    for trader in traders:
        assert trader.http.delete("/api/v1/orders").status_code == 200
        # Small pages: a self-trade's two fills may be cut by a page boundary.
        fills = _pages(trader, "/api/v1/trades", "trades", market=symbol, limit=3)
        keys = [(f["trade_id"], f["liquidity"]) for f in fills]
        assert len(keys) == len(set(keys)), "a fill was listed twice"
        ids = [f["trade_id"] for f in fills]
        self_trades += len(ids) - len(set(ids))
        base, quote = _expected_change(fills)
        balances = trader.balances()
        assert balances[base_asset] == (f"{CREDIT_BASE + base:.9f}", "0.000000000")
        assert balances["USDC"] == (f"{CREDIT_QUOTE + quote:.6f}", "0.000000")
        _check_orders_match_their_fills(trader, symbol, fills)
    assert self_trades > 0, "the random walk made no self-trade: change the seed"


def _check_orders_match_their_fills(
    trader: Trader, symbol: str, fills: list[dict[str, Any]]
) -> None:
    by_order: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for f in fills:
        sums = by_order[f["order_id"]]
        for i, name in enumerate(("qty", "quote_qty", "fee")):
            sums[i] += Decimal(f[name])
    orders = _pages(trader, "/api/v1/orders", "orders", market=symbol, limit=50)
    assert {o["order_id"] for o in orders} >= set(by_order)
    for order in orders:
        got = [Decimal(order[name]) for name in ("filled_qty", "filled_quote", "fee")]
        assert got == by_order[order["order_id"]], order
