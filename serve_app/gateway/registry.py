"""The gateway's in-process copy of the market registry and asset decimals (from PostgreSQL).

Markets change rarely (admin create/halt/resume), so each replica keeps them in memory and
reloads on a miss (at most every `_MIN_RELOAD_S`) or when told (after an admin change made
through it). Another replica's halt reaches this one's copy at its next reload; the market
actor is the authority on halts anyway (it rejects with `market_halted`).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from actors.markets_repo import MarketRecord, load_markets
from serve_app.gateway.rejects import api_error

_MIN_RELOAD_S = 0.5


class MarketRegistry:
    """Markets by symbol and by id, and asset decimals by symbol."""

    def __init__(self) -> None:
        self._by_symbol: dict[str, MarketRecord] = {}
        self._symbol_of_id: dict[int, str] = {}
        self._decimals: dict[str, int] = {}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def reload(self, pool: asyncpg.Pool) -> None:
        """Reload every market and asset from PostgreSQL."""
        async with self._lock, pool.acquire() as conn:
            markets = await load_markets(conn)
            rows = await conn.fetch("SELECT symbol, decimals FROM assets")
        self._by_symbol = markets
        self._symbol_of_id = {r.market_id: s for s, r in markets.items()}
        self._decimals = {r["symbol"]: int(r["decimals"]) for r in rows}
        self._loaded_at = time.monotonic()

    async def _reload_if_stale(self, pool: asyncpg.Pool) -> bool:
        if time.monotonic() - self._loaded_at < _MIN_RELOAD_S:
            return False
        await self.reload(pool)
        return True

    async def market(self, pool: asyncpg.Pool, symbol: str) -> MarketRecord:
        """Return a market by symbol.

        Raises:
            ApiError: 404 `unknown_market`.
        """
        record = self._by_symbol.get(symbol)
        if record is None and await self._reload_if_stale(pool):
            record = self._by_symbol.get(symbol)
        if record is None:
            raise api_error("unknown_market", market=symbol)
        return record

    async def symbol_of(self, pool: asyncpg.Pool, market_id: int) -> str:
        """Return the symbol of a market id (reloading once if it is new)."""
        symbol = self._symbol_of_id.get(market_id)
        if symbol is None:
            await self.reload(pool)
            symbol = self._symbol_of_id.get(market_id, f"#{market_id}")
        return symbol

    async def by_id(self, pool: asyncpg.Pool, market_id: int) -> MarketRecord:
        """Return a market by id."""
        return await self.market(pool, await self.symbol_of(pool, market_id))

    async def decimals(self, pool: asyncpg.Pool, asset: str) -> int:
        """Return an asset's decimals.

        Raises:
            ApiError: 404 `unknown_asset`.
        """
        if asset not in self._decimals:
            await self._reload_if_stale(pool)
        if asset not in self._decimals:
            raise api_error("unknown_asset", asset=asset)
        return self._decimals[asset]

    async def all(self, pool: asyncpg.Pool) -> list[MarketRecord]:
        """Return every market, freshly loaded, in creation order."""
        await self.reload(pool)
        return sorted(self._by_symbol.values(), key=lambda r: r.market_id)
