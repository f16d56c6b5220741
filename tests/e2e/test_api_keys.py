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


async def _set_scopes(database_url: str, account_id: int, scopes: list[str]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE api_keys SET scopes = $2 WHERE account_id = $1", account_id, scopes
        )
    finally:
        await conn.close()


def test_account_data_needs_the_read_scope_and_orders_the_trade_scope(
    exchange: Exchange,
) -> None:
    trade_only, read_only = exchange.trader(), exchange.trader()
    asyncio.run(_set_scopes(exchange.database_url, trade_only.account_id, ["trade"]))
    asyncio.run(_set_scopes(exchange.database_url, read_only.account_id, ["read"]))
    me = trade_only.account_id
    for path in ("/api/v1/balances", f"/api/v1/users/{me}/balance", "/api/v1/trades",
                 "/api/v1/orders", "/api/v1/orders/some-id"):  # fmt: skip
        response = trade_only.http.get(path)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "forbidden"
    assert read_only.http.get("/api/v1/balances").status_code == 200
    order = {"market": "NOPE-USDC", "side": "buy", "price": "1", "qty": "1"}
    response = read_only.http.post("/api/v1/orders", json=order)
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
