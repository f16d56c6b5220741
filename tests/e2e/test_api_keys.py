"""API keys in use: the key's coarse last use is recorded."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.e2e.conftest import Exchange


async def _last_used(database_url: str, account_id: int) -> list[object]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT last_used_at FROM api_keys WHERE account_id = $1", account_id
        )
        return [r["last_used_at"] for r in rows]
    finally:
        await conn.close()


def test_a_request_records_the_keys_last_use(exchange: Exchange) -> None:
    trader = exchange.trader()
    assert asyncio.run(_last_used(exchange.database_url, trader.account_id)) == [None]
    trader.balances()
    [used] = asyncio.run(_last_used(exchange.database_url, trader.account_id))
    assert used is not None
