"""The fuzz run's oracle of "a refused request changed nothing": a snapshot of the state
a request could change, taken after every call and compared across each 4xx answer.

What a snapshot holds, and from where (the source of truth of each):

* `journal`: each market's journal head (its last seq). Every command the engine
  accepted, or rejected after matching began, is journaled, so a refused request must
  leave every head where it was.
* `balances`: the fuzz accounts' balances, from their ledger shards' memory
  (`GET /balances`): available and locked, so a hold left behind shows.
* `books`: the fuzz markets' L2 books from the market actors' memory (the 100 ms Redis
  copy is dropped first).
* `orders`, `trades`: digests of the fuzz accounts' rows, read once the projection has
  caught up with every journal (the read barrier the API itself uses).
* `markets`, `assets`, `accounts`, `keys`: digests of those tables (keys of the fuzz
  accounts, without `last_used_at`, which a successful key check sets even when the
  request is then refused: it is bookkeeping of the key, not a change the request made).

Nothing else changes the exchange while the run is on: it is the only client, it keeps
its GTD expiries a day ahead, and stops trigger only on trades.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import redis.asyncio

from tests.e2e.fuzz_world import World

BARRIER_TIMEOUT_S = 10.0

_DIGESTS = """
SELECT
  (SELECT coalesce(jsonb_object_agg(m.symbol,
          (SELECT max(seq) FROM journal j WHERE j.market_id = m.market_id)), '{}')
     FROM markets m) AS journal,
  (SELECT md5(coalesce(string_agg(to_jsonb(m)::text, ',' ORDER BY m.market_id), ''))
     FROM markets m) AS markets,
  (SELECT md5(coalesce(string_agg(to_jsonb(a)::text, ',' ORDER BY a.asset_id), ''))
     FROM assets a) AS assets,
  (SELECT count(*) || ':' || md5(coalesce(string_agg(to_jsonb(a)::text, ','
          ORDER BY a.account_id) FILTER (WHERE a.account_id = ANY($1::bigint[])), ''))
     FROM accounts a) AS accounts,
  (SELECT md5(coalesce(string_agg((to_jsonb(k) - 'last_used_at')::text, ','
          ORDER BY k.key_id), ''))
     FROM api_keys k WHERE k.account_id = ANY($1::bigint[])) AS keys,
  (SELECT count(*) || ':' || md5(coalesce(string_agg(to_jsonb(o)::text, ','
          ORDER BY o.order_id), ''))
     FROM orders o WHERE o.account_id = ANY($1::bigint[])) AS orders,
  (SELECT count(*) || ':' || md5(coalesce(string_agg(to_jsonb(t)::text, ','
          ORDER BY t.trade_id), ''))
     FROM trades t
    WHERE t.maker_account_id = ANY($1::bigint[]) OR t.taker_account_id = ANY($1::bigint[]))
     AS trades
"""


class StateProbe:
    """Take snapshots of the world's state.

    Synchronous, as schemathesis hooks are: each snapshot runs its reads concurrently on
    a private event loop (the API's and the database's, about one round trip in all).
    """

    def __init__(self, world: World) -> None:
        self._world = world
        self._loop = asyncio.new_event_loop()
        self._conn: asyncpg.Connection = self._loop.run_until_complete(
            asyncpg.connect(world.database_url)
        )
        self._http = httpx.AsyncClient(base_url=world.url, timeout=30.0)
        self._redis = redis.asyncio.Redis.from_url(world.redis_url)
        self._accounts = [world.fuzzer, world.maker]

    def close(self) -> None:
        """Release the connections."""
        self._loop.run_until_complete(self._close())
        self._loop.close()

    async def _close(self) -> None:
        await self._conn.close()
        await self._http.aclose()
        await self._redis.aclose()

    def snapshot(self) -> dict[str, Any]:
        """Return the state now, as comparable plain values."""
        return self._loop.run_until_complete(self._snapshot())

    async def _snapshot(self) -> dict[str, Any]:
        balances, books, digests = await asyncio.gather(
            self._balances(), self._books(), self._digests()
        )
        return {"balances": balances, "books": books, **digests}

    async def _balances(self) -> dict[int, Any]:
        async def one(key: str) -> Any:
            response = await self._http.get("/api/v1/balances", headers={"X-API-Key": key})
            return response.status_code, response.json()

        answers = await asyncio.gather(*(one(a.key) for a in self._accounts))
        return {a.account_id: answer for a, answer in zip(self._accounts, answers, strict=True)}

    async def _books(self) -> dict[str, Any]:
        async def one(symbol: str) -> Any:
            await self._redis.delete(f"orderbook:{symbol}:1000")
            response = await self._http.get(f"/api/v1/orderbook/{symbol}?depth=1000")
            return response.status_code, response.json()

        symbols = [m.symbol for m in self._world.markets]
        answers = await asyncio.gather(*(one(s) for s in symbols))
        return dict(zip(symbols, answers, strict=True))

    async def _digests(self) -> dict[str, Any]:
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        while await self._conn.fetchval("SELECT count(*) FROM clob_projection_lag(NULL, NULL)"):
            if time.monotonic() > deadline:
                raise TimeoutError("the orders/trades projection did not catch up")
            await asyncio.sleep(0.002)
        ids = [a.account_id for a in self._accounts]
        row = await self._conn.fetchrow(_DIGESTS, ids)
        assert row is not None
        return dict(row)


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Return the parts of the state that differ, each with both values, for a report."""
    return [
        f"{part}: {_short(before.get(part))} -> {_short(after.get(part))}"
        for part in sorted(set(before) | set(after))
        if before.get(part) != after.get(part)
    ]


def _short(value: Any, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
