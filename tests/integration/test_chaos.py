"""Chaos: kill the market actor and ledger shards at random moments during a long order
stream; nothing acknowledged is lost, nothing is applied twice, every asset is conserved,
and every account's balance is what the journal, applied whole to one ledger, gives (so no
routed apply missed a shard, and no kill left a hold behind).

The oracle is a plain in-process `MatchingEngine` fed the same stream in the same order
(the test retries a batch, with the same request ids, until it is acknowledged, so the
actor sees the commands in the order the oracle does).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import pytest
import ray

from actors.bootstrap import start_core
from actors.contracts import BalanceView, OrderRequest, OrderResult, Reservation
from actors.engine import MarketSpec, MatchingEngine
from actors.engine.codec import command_from_dict
from actors.ledger import store
from actors.ledger.core import LedgerCore
from tests.support.market_kit import (
    credit,
    eventually,
    new_accounts,
    submit_until_acked,
)

SHARDS = 2
SEED = 20_240_611
BATCHES = 60
BATCH = 25
OWNERS = 6
KILLS = 10
BATCHES_PER_KILL = 15  # at least 4 kills during the stream


def _stream(rng: random.Random, owners: list[int]) -> list[list[OrderRequest]]:
    batches: list[list[OrderRequest]] = []
    placed: list[tuple[int, str]] = []
    for b in range(BATCHES):
        batch: list[OrderRequest] = []
        for i in range(BATCH):
            owner = rng.choice(owners)
            roll = rng.random()
            if roll < 0.15 and placed:
                who, oid = rng.choice(placed)
                batch.append(OrderRequest(f"c{b}.{i}", who, {"type": "cancel", "id": oid}))
            elif roll < 0.22 and placed:
                who, oid = rng.choice(placed)
                cmd = {"type": "amend", "id": oid, "qty": rng.randint(1, 12)}
                batch.append(OrderRequest(f"m{b}.{i}", who, cmd))
            else:
                oid = f"o{b}.{i}"
                side = rng.choice(["buy", "sell"])
                kind = "market" if roll > 0.94 else "limit"
                cmd = {"type": "new", "id": oid, "side": side, "kind": kind,
                       "qty": rng.randint(1, 10)}  # fmt: skip
                if kind == "limit":
                    cmd["price"] = 100 + rng.randint(-6, 6)
                batch.append(OrderRequest(oid, owner, cmd))
                placed.append((owner, oid))
        batches.append(batch)
    return batches


async def _chaos(
    namespace: str, symbol: str, rng: random.Random, stop: asyncio.Event, kills: list[str]
) -> None:
    """Kill a random actor at random moments until `stop` (or `KILLS`); record each."""
    while not stop.is_set() and len(kills) < KILLS:
        await asyncio.sleep(rng.uniform(0.2, 0.8))
        target = rng.choice([f"market:{symbol}", f"market:{symbol}", "ledger:0", "ledger:1"])
        try:
            ray.kill(ray.get_actor(target, namespace=namespace), no_restart=False)
            kills.append(target)
        except ValueError:
            pass  # Not registered at this instant (restarting).


async def test_kills_lose_nothing_and_conserve_every_asset(db_url: str, namespace: str) -> None:
    await asyncio.to_thread(start_core, db_url, SHARDS, namespace)
    spec = MarketSpec(symbol="CHAOS-USD", base_asset="CHAOS", quote_asset="USD",
                      maker_fee_bps=-2, taker_fee_bps=7, tick_size=3)  # fmt: skip
    controller = ray.get_actor("controller", namespace=namespace)
    await controller.create_market.remote(spec.to_dict())
    owners = await new_accounts(db_url, OWNERS)
    for owner in owners:
        await credit(namespace, SHARDS, owner, "CHAOS", 10**9)
        await credit(namespace, SHARDS, owner, "USD", 10**12)
    rng = random.Random(SEED)
    stream = _stream(rng, owners)

    def market() -> Any:
        return ray.get_actor("market:CHAOS-USD", namespace=namespace)

    stop = asyncio.Event()
    kills: list[str] = []
    chaos_rng = random.Random(SEED + 1)
    chaos = asyncio.create_task(_chaos(namespace, "CHAOS-USD", chaos_rng, stop, kills))
    acked: list[OrderResult] = []
    oracle = MatchingEngine(spec)
    for number, batch in enumerate(stream):
        # The kills come at their own random moments; the stream only never runs more
        # than BATCHES_PER_KILL batches ahead of them (answers at the journal commit made
        # it fast enough to finish before the third kill).
        while len(kills) < number // BATCHES_PER_KILL and not chaos.done():
            await asyncio.sleep(0.02)
        results = await submit_until_acked(market, batch, timeout_s=80)
        assert all(r.code != "insufficient_funds" for r in results)
        acked.extend(r for r in results if r.ok)
        for request, result in zip(batch, results, strict=True):
            assert result.seq is not None
            cmd = {**request.command, "owner": str(request.account_id), "ts": 0}
            assert [e["seq"] for e in result.events] == list(
                range(oracle.seq + 1, oracle.seq + 1 + len(result.events))
            )
            oracle.submit(command_from_dict(cmd))
    stop.set()
    await chaos
    assert len(kills) >= BATCHES // BATCHES_PER_KILL, kills
    await _check_book(market, oracle)
    await eventually(lambda: market().settled.remote())  # noqa: PLW0108 (fresh handle)
    await _check_orders_and_trades(db_url, acked, oracle)
    await _check_conservation(namespace)
    await _check_balances_match_the_journal(db_url, namespace, spec, owners)


async def _check_book(market: Any, oracle: MatchingEngine) -> None:
    views = await eventually(lambda: market().l3.remote())  # noqa: PLW0108 (fresh handle)
    expected = [(v.id, v.owner, v.price, v.visible_qty, v.remaining_qty, v.arrival)
                for v in oracle.l3()]  # fmt: skip
    got = [(v["id"], v["owner"], v["price"], v["visible_qty"], v["remaining_qty"], v["arrival"])
           for v in views if v["status"] == "resting"]  # fmt: skip
    assert got == expected


async def _check_orders_and_trades(
    url: str, acked: list[OrderResult], oracle: MatchingEngine
) -> None:
    conn = await asyncpg.connect(url)
    try:
        known = {r["order_id"] for r in await conn.fetch("SELECT order_id FROM orders")}
        trades = await conn.fetchval("SELECT count(*) FROM trades")
        fills = await conn.fetchval(
            "SELECT count(*) FROM journal, jsonb_array_elements(payload->'events') e "
            "WHERE e->>'type' = 'fill'"
        )
    finally:
        await conn.close()
    new_ids = {r.order_id for r in acked if r.events and r.events[0]["type"] == "accepted"}
    assert new_ids <= known
    assert trades == fills
    assert oracle.seq > 0


async def _check_conservation(namespace: str) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            shards = [ray.get_actor(f"ledger:{i}", namespace=namespace) for i in range(SHARDS)]
            totals = await asyncio.gather(*(s.totals.remote() for s in shards))
            break
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, ValueError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.3)
    for asset in ("CHAOS", "USD"):
        parts = [t[asset] for t in totals if asset in t]
        held = sum(p["available"] + p["locked"] + p["fees"] for p in parts)
        assert held == sum(p["credited"] for p in parts), asset


async def _check_balances_match_the_journal(
    url: str, namespace: str, spec: MarketSpec, owners: list[int]
) -> None:
    """Apply the credits and the whole journal to one in-process ledger that owns every
    account; each live shard must show the same balances (no holds left) and fees."""
    reference = LedgerCore(0, 1)
    conn = await asyncpg.connect(url)
    try:
        credits = await conn.fetch(
            "SELECT c.reference, c.account_id, a.symbol, c.amount_atoms "
            "FROM ledger_credits c JOIN assets a USING (asset_id) ORDER BY c.created_at"
        )
        market_id = await conn.fetchval(
            "SELECT market_id FROM markets WHERE symbol = $1", spec.symbol
        )
        entries = await store.journal_entries(conn, market_id, 0)
    finally:
        await conn.close()
    for c in credits:
        reference.credit(int(c["account_id"]), c["symbol"], int(c["amount_atoms"]), c["reference"])
    for seq, events, raw in entries:
        held = None if raw is None else Reservation.from_dict(spec.symbol, raw)
        reference.apply_events(spec, spec.symbol, seq, events, held)
    shards = [ray.get_actor(f"ledger:{i}", namespace=namespace) for i in range(SHARDS)]
    for owner in owners:
        views: list[BalanceView] = await eventually(
            lambda owner=owner: shards[owner % SHARDS].balances.remote(owner)
        )
        assert views == reference.balances(owner), owner
    totals = await asyncio.gather(*(s.totals.remote() for s in shards))
    for asset in ("CHAOS", "USD"):
        fees = sum(t[asset]["fees"] for t in totals if asset in t)
        assert fees == reference.fees(asset), asset


pytestmark = pytest.mark.timeout(170)
