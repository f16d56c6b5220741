"""Market spec validation, notional and fee rounding, reject codes, engine purity."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from actors.engine import (
    InvalidMarketSpecError,
    MarketSpec,
    RejectCode,
    RejectReason,
    fee_quote_atoms,
    notional_quote_atoms,
)
from actors.engine.spec import tick_lots_to_quote_atoms
from actors.engine.types import MarketStatus


def test_symbol_alone_is_a_valid_spec_with_defaults() -> None:
    spec = MarketSpec.from_dict({"symbol": "X"})
    assert (spec.tick_size, spec.lot_size, spec.quote_atoms_per_tick_lot) == (1, 1, 1)
    assert spec.status is MarketStatus.ACTIVE
    assert MarketSpec.from_dict(spec.to_dict()) == spec


def test_spec_from_dict_reads_every_field_and_ignores_unknown_ones() -> None:
    d = {
        "symbol": "SOL-USDC",
        "base_asset": "SOL",
        "quote_asset": "USDC",
        "base_decimals": 9,
        "quote_decimals": 6,
        "tick_size": 1_000,
        "lot_size": 10_000_000,
        "min_qty": 1,
        "max_qty": 1_000_000,
        "min_notional": 5,
        "maker_fee_bps": -1,
        "taker_fee_bps": 5,
        "status": "halted",
        "comment": "extra",
        "min_qty_unused": None,
    }
    spec = MarketSpec.from_dict(d)
    assert spec.quote_atoms_per_tick_lot == 10
    assert spec.status is MarketStatus.HALTED


@pytest.mark.parametrize(
    "d,field",
    [
        ({}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "X", "tick_size": 0}, "tick_size"),
        ({"symbol": "X", "lot_size": "1"}, "lot_size"),
        ({"symbol": "X", "lot_size": True}, "lot_size"),
        ({"symbol": "X", "base_decimals": -1}, "base_decimals"),
        ({"symbol": "X", "base_decimals": 2, "tick_size": 5, "lot_size": 10}, "tick_size"),
        ({"symbol": "X", "min_qty": 0}, "min_qty"),
        ({"symbol": "X", "min_qty": 5, "max_qty": 2}, "min_qty"),
        ({"symbol": "X", "taker_fee_bps": -1}, "taker_fee_bps"),
        ({"symbol": "X", "taker_fee_bps": 10_001}, "taker_fee_bps"),
        ({"symbol": "X", "maker_fee_bps": -5, "taker_fee_bps": 2}, "maker_fee_bps"),
        ({"symbol": "X", "maker_fee_bps": -10_001}, "maker_fee_bps"),
        ({"symbol": "X", "status": "closed"}, "status"),
        ({"symbol": "X", "base_asset": "A", "quote_asset": "A"}, "quote_asset"),
    ],
)
def test_invalid_spec_names_the_field(d: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidMarketSpecError) as info:
        MarketSpec.from_dict(d)
    assert info.value.field == field
    assert field in str(info.value)


def test_spec_must_be_an_object() -> None:
    with pytest.raises(InvalidMarketSpecError):
        MarketSpec.from_dict([])  # type: ignore[arg-type]


def test_spec_status_must_be_the_enum_in_the_typed_api() -> None:
    with pytest.raises(InvalidMarketSpecError):
        MarketSpec("X", status="active")  # type: ignore[arg-type]


def test_notional_is_exact_integer_quote_atoms() -> None:
    spec = MarketSpec("X", base_decimals=9, tick_size=1_000, lot_size=10_000_000)
    assert notional_quote_atoms(spec, 150_000, 3) == 150_000 * 3 * 10
    assert tick_lots_to_quote_atoms(spec, 7) == 70


@pytest.mark.parametrize(
    "notional,bps,fee",
    [
        (10_000, 5, 5),
        (10_001, 5, 6),
        (1, 1, 1),
        (0, 5, 0),
        (10_000, 0, 0),
        (10_001, -2, -2),
        (19_999, -1, -1),
        (9_999, -1, 0),
    ],
)
def test_fees_round_in_the_venues_favour(notional: int, bps: int, fee: int) -> None:
    assert fee_quote_atoms(MarketSpec("X"), notional, bps) == fee


def test_reject_codes_map_one_to_one_to_reasons() -> None:
    assert len(RejectCode) == len(RejectReason)
    for reason in RejectReason:
        assert reason.code.reason is reason
    assert RejectReason.INVALID_COMMAND.code == 1001
    assert all(3000 <= c < 4000 for c in RejectCode if c is not RejectCode.INVALID_COMMAND)


FORBIDDEN = {"ray", "asyncio", "asyncpg", "fastapi", "solana", "redis", "time", "random", "os"}


def test_engine_package_imports_nothing_impure() -> None:
    root = Path(__file__).resolve().parents[3] / "actors" / "engine"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN, f"{path.name} imports {name}"
                if top in {"actors", "serve_app", "migrations"}:
                    assert name.startswith("actors.engine"), f"{path.name} imports {name}"
