"""SQL adapter for the `assets` and `markets` tables (the market registry).

The engine's `MarketSpec` is the in-memory form; a market row stores the same numbers
(`tick_size_atoms` = `MarketSpec.tick_size`, `lot_size_atoms` = `MarketSpec.lot_size`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from actors.engine import MarketSpec
from actors.engine.types import MarketStatus

_SELECT_MARKETS = """
SELECT m.market_id, m.symbol, b.symbol AS base_asset, q.symbol AS quote_asset,
       b.decimals AS base_decimals, q.decimals AS quote_decimals,
       m.tick_size_atoms, m.lot_size_atoms, m.min_qty_lots, m.max_qty_lots,
       m.min_notional_tick_lots, m.maker_fee_bps, m.taker_fee_bps, m.status
FROM markets m
JOIN assets b ON b.asset_id = m.base_asset_id
JOIN assets q ON q.asset_id = m.quote_asset_id
"""


@dataclass(frozen=True, slots=True)
class MarketRecord:
    """A market row: its database id and its spec."""

    market_id: int
    spec: MarketSpec


def _record(row: Any) -> MarketRecord:
    status = "active" if row["status"] in ("active", "pending") else row["status"]
    spec = MarketSpec(
        symbol=row["symbol"],
        base_asset=row["base_asset"],
        quote_asset=row["quote_asset"],
        base_decimals=int(row["base_decimals"]),
        quote_decimals=int(row["quote_decimals"]),
        tick_size=int(row["tick_size_atoms"]),
        lot_size=int(row["lot_size_atoms"]),
        min_qty=row["min_qty_lots"],
        max_qty=row["max_qty_lots"],
        min_notional=row["min_notional_tick_lots"],
        maker_fee_bps=int(row["maker_fee_bps"]),
        taker_fee_bps=int(row["taker_fee_bps"]),
        status=MarketStatus(status)
        if status in MarketStatus._value2member_map_
        else MarketStatus.ACTIVE,
    )
    return MarketRecord(market_id=int(row["market_id"]), spec=spec)


async def load_markets(conn: asyncpg.Connection) -> dict[str, MarketRecord]:
    """Return every market by symbol."""
    rows = await conn.fetch(_SELECT_MARKETS + " ORDER BY m.market_id")
    return {row["symbol"]: _record(row) for row in rows}


async def load_market(conn: asyncpg.Connection, symbol: str) -> MarketRecord | None:
    """Return one market by symbol, or None."""
    row = await conn.fetchrow(_SELECT_MARKETS + " WHERE m.symbol = $1", symbol)
    return _record(row) if row is not None else None


async def ensure_asset(conn: asyncpg.Connection, symbol: str, decimals: int) -> int:
    """Create the asset if it is missing; return its id. Decimals must match an existing one."""
    row = await conn.fetchrow(
        "INSERT INTO assets (symbol, decimals) VALUES ($1, $2) "
        "ON CONFLICT (symbol) DO UPDATE SET symbol = EXCLUDED.symbol "
        "RETURNING asset_id, decimals",
        symbol,
        decimals,
    )
    assert row is not None
    if int(row["decimals"]) != decimals:
        raise ValueError(f"asset {symbol} exists with {row['decimals']} decimals, not {decimals}")
    return int(row["asset_id"])


async def asset_ids(conn: asyncpg.Connection) -> dict[str, int]:
    """Return every asset's id by symbol."""
    return {
        r["symbol"]: int(r["asset_id"])
        for r in await conn.fetch("SELECT symbol, asset_id FROM assets")
    }


async def create_market(conn: asyncpg.Connection, spec: MarketSpec) -> MarketRecord:
    """Insert a market (and its assets if missing); return the stored record.

    Raises:
        asyncpg.UniqueViolationError: A market with this symbol or asset pair exists.
    """
    async with conn.transaction():
        base_id = await ensure_asset(conn, spec.base_asset, spec.base_decimals)
        quote_id = await ensure_asset(conn, spec.quote_asset, spec.quote_decimals)
        await conn.execute(
            "INSERT INTO markets (symbol, base_asset_id, quote_asset_id, lot_size_atoms, "
            "tick_size_atoms, min_qty_lots, max_qty_lots, min_notional_tick_lots, "
            "maker_fee_bps, taker_fee_bps, status) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            spec.symbol, base_id, quote_id, spec.lot_size, spec.tick_size, spec.min_qty,
            spec.max_qty, spec.min_notional, spec.maker_fee_bps, spec.taker_fee_bps,
            str(spec.status.value),
        )  # fmt: skip
    record = await load_market(conn, spec.symbol)
    assert record is not None
    return record


async def set_market_status(conn: asyncpg.Connection, symbol: str, status: str) -> bool:
    """Set a market's status (`active`, `halted`, ...); return whether the market exists."""
    result: str = await conn.execute(
        "UPDATE markets SET status = $2, updated_at = now() WHERE symbol = $1", symbol, status
    )
    return result.endswith(" 1")
