"""Over HTTP: a market whose journal cannot be replayed makes `/health` answer down and
shows in the admin status with its error, answers 503 while the rest trades, and comes back
through the admin recover endpoint once the cause is gone (the injection and the recovery
of tests/integration/test_containment.py, seen as a client and an operator see them)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import ray

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import Exchange  # noqa: E402
from tests.integration.test_containment import _poison  # noqa: E402


def _until(check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def _components(exchange: Exchange) -> dict[str, dict[str, Any]]:
    body = exchange.admin.get("/api/v1/system/status").json()
    return {c["name"]: c for c in body["components"]}


async def _delete_row(db_url: str, symbol: str, seq: int) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "DELETE FROM journal WHERE seq = $1 AND market_id = "
            "(SELECT market_id FROM markets WHERE symbol = $2)", seq, symbol,
        )  # fmt: skip
    finally:
        await conn.close()


def test_a_failed_market_is_reported_contained_and_recovered(exchange: Exchange) -> None:
    bad, good = exchange.create_market("PSN"), exchange.create_market("FINE")
    seller = exchange.trader(PSN="10", FINE="10")
    buyer = exchange.trader(USDC="10000")
    resting = seller.place(market=bad, side="sell", price="10", qty="5")
    buyer.place(market=bad, side="buy", price="10", qty="1")
    assert httpx.get(f"{exchange.url}/health").json() == {"status": "up"}
    seq = asyncio.run(_poison(exchange.database_url, bad, resting["order_id"], seller.account_id))
    ray.kill(ray.get_actor(f"market:{bad}", namespace="clob"), no_restart=False)

    down = _until(lambda: httpx.get(f"{exchange.url}/health").status_code == 503)
    assert down and httpx.get(f"{exchange.url}/health").json() == {"status": "down"}
    assert httpx.get(f"{exchange.url}/api/v1/system/status").status_code == 403
    failed = _until(lambda: _components(exchange)[f"market:{bad}"]["status"] == "failed")
    assert failed, _components(exchange)
    assert "ReplayMismatchError" in _components(exchange)[f"market:{bad}"]["error"]
    refused = buyer.place(expect=503, market=bad, side="buy", price="10", qty="1")
    assert refused["code"] == "unavailable"
    assert seller.balances()["USDC"][0] == "9.990000"  # 10 less the maker's 10 bps
    shard = _components(exchange)[f"ledger:{seller.account_id % 2}"]  # the e2e core's 2 shards
    assert shard["status"] == "degraded" and shard["details"]["set_aside"][bad]["seq"] == seq
    assert buyer.place(market=good, side="buy", price="10", qty="1")["status"] == "open"

    asyncio.run(_delete_row(exchange.database_url, bad, seq))
    response = exchange.admin.post(f"/api/v1/admin/markets/{bad}/recover")
    assert response.status_code == 200, response.text
    assert all(c["status"] == "up" for c in response.json()), response.json()
    assert _until(lambda: httpx.get(f"{exchange.url}/health").status_code == 200)
    assert buyer.place(market=bad, side="buy", price="10", qty="1")["status"] == "filled"
    for trader in (seller, buyer):
        trader.http.delete("/api/v1/orders")
        trader.http.close()
