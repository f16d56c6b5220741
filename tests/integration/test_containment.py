"""A journaled batch that cannot be applied never stops the exchange from starting.

A journal entry is poisoned in one market (an event its engine does not regenerate and a
fill its ledger shard cannot pay), then every actor is killed and the trading core started
again, as `make down` and `make up` would. The start completes; the poisoned market reports
itself failed and the shard that holds its accounts sets it aside, both with the seq; the
other market trades and every balance reads. Then the operator's documented recovery: the
cause removed, `retry` brings the market back, and every asset is conserved.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
import ray
from ray.exceptions import RayTaskError

from actors.bootstrap import start_core
from actors.contracts import UnavailableError
from actors.engine import MarketSpec
from tests.support.market_kit import balances, credit, eventually, limit, new_accounts

SHARDS = 2
GOOD = MarketSpec(symbol="GOOD-Q", base_asset="GOOD", quote_asset="Q", taker_fee_bps=5)
BAD = MarketSpec(symbol="BAD-Q", base_asset="BAD", quote_asset="Q", taker_fee_bps=5)


def _market(symbol: str, namespace: str) -> Any:
    return ray.get_actor(f"market:{symbol}", namespace=namespace)


async def _trade(namespace: str, spec: MarketSpec, seller: int, buyer: int, tag: str) -> None:
    market = _market(spec.symbol, namespace)
    results = await market.submit.remote([limit(seller, f"{tag}-s", "sell", 10, 5),
                                          limit(buyer, f"{tag}-b", "buy", 10, 2)])  # fmt: skip
    assert [r.ok for r in results] == [True, True], results
    await market.settled.remote()


async def _poison(db_url: str, symbol: str, maker_order: str, maker: int) -> int:
    """Append, with the market's current epoch, an entry nothing can apply: a tick whose
    journaled fill the engine does not regenerate and whose maker cannot pay it."""
    conn = await asyncpg.connect(db_url)
    try:
        market_id, seq, epoch = await conn.fetchrow(
            """SELECT m.market_id, max(j.seq) + 1, e.epoch FROM markets m
               JOIN journal j USING (market_id) JOIN market_epochs e USING (market_id)
               WHERE m.symbol = $1 GROUP BY m.market_id, e.epoch""",
            symbol,
        )
        fill = {"type": "fill", "seq": 10**6, "maker_id": maker_order, "taker_id": "ghost",
                "maker_owner": str(maker), "taker_owner": "0", "price": 10, "qty": 10**9,
                "taker_side": "buy"}  # fmt: skip
        payload = {"request_id": "poison", "account_id": None, "client_order_id": None,
                   "command": {"type": "tick", "ts": 1}, "events": [fill]}  # fmt: skip
        await conn.execute(
            "INSERT INTO journal (market_id, seq, epoch, kind, payload) VALUES ($1, $2, $3, "
            "'tick', $4::jsonb)", market_id, seq, epoch, json.dumps(payload),
        )  # fmt: skip
        return int(seq)
    finally:
        await conn.close()


def _kill_everything(namespace: str) -> None:
    names = ["controller", f"market:{GOOD.symbol}", f"market:{BAD.symbol}"]
    for name in [*names, *(f"ledger:{i}" for i in range(SHARDS))]:
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)


async def _health(controller: Any) -> dict[str, dict[str, Any]]:
    health = await controller.health.remote()
    return {h["name"]: h for h in (*health["markets"], *health["ledger_shards"])}


async def test_a_poisoned_entry_is_contained_reported_and_recoverable(
    db_url: str, namespace: str
) -> None:
    controller = await asyncio.to_thread(start_core, db_url, SHARDS, namespace)
    for spec in (GOOD, BAD):
        await controller.create_market.remote(spec.to_dict())
    a, b, c, d = await new_accounts(db_url, 4)
    for account in (a, b, c, d):
        for asset in ("GOOD", "BAD", "Q"):
            await credit(namespace, SHARDS, account, asset, 10**6)
    await _trade(namespace, BAD, a, b, "bad1")  # a's sell rests with 3 lots open
    await _trade(namespace, GOOD, c, d, "good1")
    seq = await _poison(db_url, BAD.symbol, "bad1-s", a)
    _kill_everything(namespace)

    # The start completes: nothing raises, though BAD's journal cannot be replayed.
    controller = await asyncio.to_thread(start_core, db_url, SHARDS, namespace)
    for account in (a, b, c, d):  # every balance reads (a shard catches up and sets BAD aside)
        assert (await balances(namespace, SHARDS, account))["Q"][0] > 0
    health = await _health(controller)
    assert health[f"market:{BAD.symbol}"]["status"] == "failed"
    assert "ReplayMismatchError" in health[f"market:{BAD.symbol}"]["error"]
    assert health[f"market:{GOOD.symbol}"]["status"] == "up"
    maker_shard = health[f"ledger:{a % SHARDS}"]
    assert maker_shard["status"] == "degraded"
    assert maker_shard["set_aside"][BAD.symbol]["seq"] == seq
    with pytest.raises(RayTaskError) as refused:
        await _market(BAD.symbol, namespace).submit.remote([limit(b, "late", "buy", 10, 1)])
    assert isinstance(refused.value.cause, UnavailableError)
    await _trade(namespace, GOOD, c, d, "good2")  # the rest trades on

    # The operator removes the cause, then recovers the market.
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "DELETE FROM journal WHERE seq = $1 AND market_id = "
            "(SELECT market_id FROM markets WHERE symbol = $2)", seq, BAD.symbol,
        )  # fmt: skip
    finally:
        await conn.close()
    after = await controller.retry.remote(BAD.symbol)
    assert all(h["status"] == "up" for h in (*after["markets"], *after["ledger_shards"])), after
    assert all(h["status"] == "up" for h in (await _health(controller)).values())
    await eventually(lambda: _trade(namespace, BAD, b, a, "bad2"))
    totals: dict[str, list[int]] = {}
    for i in range(SHARDS):
        shard = ray.get_actor(f"ledger:{i}", namespace=namespace)
        for asset, t in (await shard.totals.remote()).items():
            held, credited = totals.setdefault(asset, [0, 0])
            totals[asset] = [held + t["available"] + t["locked"] + t["fees"],
                             credited + t["credited"] - t["debited"]]  # fmt: skip
    assert all(held == credited == 4 * 10**6 for held, credited in totals.values()), totals
