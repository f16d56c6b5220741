"""Admin requests refused with a code of their own, changing nothing: a credit reference
reused for another credit, markets the spec or the registry cannot hold."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The repo root is not on sys.path under pytest (see tests/unit/engine/test_properties.py).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import MARKET_SPEC, SHARD_COUNT, Exchange  # noqa: E402


def _credit(exchange: Exchange, account_id: int, amount: str, asset: str = "USDC") -> Any:
    body = {"account_id": account_id, "asset": asset, "amount": amount, "reference": "dep-77"}
    return exchange.admin.post("/api/v1/admin/credits", json=body)


def test_a_credit_reference_repeats_only_the_same_credit(exchange: Exchange) -> None:
    exchange.create_market("ADM")
    first, *others = [exchange.trader() for _ in range(SHARD_COUNT + 1)]
    credited = _credit(exchange, first.account_id, "10")
    assert credited.status_code == 200, credited.text
    assert credited.json()["balance"]["available"] == "10.000000"
    again = _credit(exchange, first.account_id, "10")
    assert (again.status_code, again.json()["balance"]["available"]) == (200, "10.000000")
    # Another account (on another shard, then on the same one), amount or asset.
    for account_id, amount, asset in [
        *((o.account_id, "10", "USDC") for o in others),
        (first.account_id, "11", "USDC"),
        (first.account_id, "10", "ADM"),
    ]:
        response = _credit(exchange, account_id, amount, asset)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "duplicate_reference"
        assert response.json()["details"] == {"reference": "dep-77"}
    assert first.balances() == {"USDC": ("10.000000", "0.000000")}
    assert all(o.balances() == {} for o in others)


@pytest.fixture(scope="module")
def pair(exchange: Exchange) -> str:
    """A market PAIR-USDC; its base asset PAIR has 9 decimals."""
    return exchange.create_market("PAIR")


@pytest.mark.parametrize(
    ("overrides", "status", "code", "field"),
    [
        ({"symbol": "SAME-SAME", "base_asset": "SAME", "quote_asset": "SAME"}, 422,
         "invalid_market_spec", "quote_asset"),
        ({"symbol": "BIG-USDC", "base_asset": "BIG", "lot_size": "9223372036.854775808",
          "min_qty": None, "max_qty": None, "min_notional": None}, 422,
         "invalid_market_spec", "lot_size"),
        ({"symbol": "PAIR/USDC", "base_asset": "PAIR"}, 409, "market_exists", None),
        # PAIR exists with 9 decimals, not 7 (tick * lot is still whole quote atoms).
        ({"symbol": "NEW-PAIR", "base_asset": "NEW", "quote_asset": "PAIR",
          "quote_decimals": 7}, 422, "invalid_market_spec", None),
    ],
    ids=["same asset twice", "lot beyond 64 bits", "asset pair exists", "decimals differ"],
)  # fmt: skip
def test_a_market_the_registry_cannot_hold_is_refused_with_a_code(  # noqa: PLR0917
    exchange: Exchange, pair: str, overrides: dict[str, Any], status: int, code: str,
    field: str | None,
) -> None:  # fmt: skip
    markets_before = exchange.admin.get("/api/v1/markets").json()
    body = {"quote_asset": "USDC", **MARKET_SPEC, **overrides}
    response = exchange.admin.post("/api/v1/admin/markets", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert "violates" not in error["message"] and "DETAIL" not in error["message"]
    if field is not None:
        assert error["details"]["field"] == field
    elif code == "invalid_market_spec":
        assert "decimals" in error["message"]
    assert exchange.admin.get("/api/v1/markets").json() == markets_before
    assert exchange.admin.get("/api/v1/markets/NEW-PAIR").status_code == 404
