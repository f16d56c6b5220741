"""Settlement on real servers (PostgreSQL, a market and two ledger shards on Ray, the
embedded chain with the program, the custody actors and a settlement batcher): after real
deposits and trades, every trade is in exactly one settlement, each settlement is
finalized on chain with its batch id applied once, every vault on chain equals its
account's ledger balance to the atom (and the fee vault the fees), and a withdrawal that
waited for the trades' tokens is paid once they are settled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
import ray
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient
from actors.chain.program import PROGRAM_ID, chain_market_id, decode_market, market_pda
from actors.ledger import store
from actors.settlement.actor import SettlementConfig, start_settlement
from actors.settlement.config import BatcherConfig
from serve_app.demo_deposit import mint_and_deposit
from tests.support.custody_kit import (
    CustodyExchange,
    start_custody_exchange,
    until,
    withdraw_debited,
    withdrawal_confirmed,
    withdrawal_status,
)
from tests.support.market_kit import limit, new_accounts
from tests.support.settle_chaos_kit import agreed_vaults

pytestmark = pytest.mark.timeout(300)
SHARDS = 2
LOT = 10


@pytest_asyncio.fixture(scope="module")
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await store.connect(db_url)
    yield c
    await c.close()


@pytest.fixture(scope="module")
def exchange(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> CustodyExchange:
    """The trading core and the custody actors of this module's database."""
    return start_custody_exchange(request, tmp_path_factory, SHARDS)


async def test_trades_settle_once_and_the_vaults_equal_the_ledger(
    exchange: CustodyExchange, conn: asyncpg.Connection, db_url: str, namespace: str
) -> None:
    controller, chain_actor = exchange.controller, exchange.chain_actor
    tag = uuid.uuid4().hex[:5].upper()
    base, quote, symbol = f"SB{tag}", f"SQ{tag}", f"SB{tag}-SQ{tag}"
    await controller.create_market.remote({
        "symbol": symbol, "base_asset": base, "quote_asset": quote, "lot_size": LOT,
        "maker_fee_bps": -5, "taker_fee_bps": 20,
    })  # fmt: skip
    market = ray.get_actor(f"market:{symbol}", namespace=namespace)
    mints = {k: Pubkey.from_string(v) for k, v in (await chain_actor.sync.remote()).items()}
    seller, buyer, other = await new_accounts(db_url, 3)

    async with ChainClient(exchange.rpc_url) as client:
        for account, asset, atoms in ((seller, base, 1_000), (buyer, quote, 200_000),
                                      (other, base, 500), (other, quote, 100_000)):  # fmt: skip
            vault = Pubkey.from_string(await chain_actor.deposit_address.remote(account, asset))
            await mint_and_deposit(client, exchange.keys, Keypair(), mints[asset], vault, atoms, 0)

    async def credited() -> bool:
        found = await conn.fetchval("SELECT count(*) FROM deposits d JOIN assets a "
                                    "USING (asset_id) WHERE a.symbol = ANY($1) AND "
                                    "d.status = 'credited'", [base, quote])  # fmt: skip
        return bool(found == 4)

    await until("the deposits' credits", credited, timeout_s=90)

    # Trades among three accounts, a rebate to the makers; one ask rests (locked).
    await market.submit.remote([limit(seller, "s1", "sell", 1_000, 10)])
    await market.submit.remote([limit(buyer, "b1", "buy", 1_000, 4)])
    await market.submit.remote([limit(other, "o1", "buy", 1_000, 2)])
    await market.submit.remote([limit(buyer, "b2", "buy", 990, 3)])
    await market.submit.remote([limit(seller, "s2", "sell", 990, 3)])
    await market.submit.remote([limit(other, "o2", "sell", 1_010, 5)])
    await market.submit.remote([limit(buyer, "b3", "buy", 1_010, 5)])
    await market.settled.remote()
    # The seller's quote exists only in the ledger until its trades are settled.
    waiting = await withdraw_debited(conn, namespace, SHARDS, seller, asset=quote, atoms=5_000)

    settlement = SettlementConfig(custody=exchange.config, markets=(symbol,), poll_s=0.05,
                                  batcher=BatcherConfig(interval_s=0.2))  # fmt: skip
    (batcher,) = start_settlement(settlement)
    try:
        market_id = await conn.fetchval("SELECT market_id FROM markets WHERE symbol = $1",
                                        symbol)  # fmt: skip
        trades = await conn.fetchval("SELECT count(*) FROM trades WHERE market_id = $1",
                                     market_id)  # fmt: skip
        assert trades == 5

        async def finalized() -> bool:
            rows = await conn.fetch(
                "SELECT t.seq, s.status FROM trades t LEFT JOIN settlements s "
                "USING (settlement_id) WHERE t.market_id = $1", market_id)  # fmt: skip
            return all(r["status"] == "finalized" for r in rows)

        await until("every trade's settlement finalized", finalized, timeout_s=90)
        await until(
            "the waiting withdrawal, paid",
            lambda: withdrawal_confirmed(conn, waiting),
            timeout_s=90,
        )
        health = await batcher.health.remote()
        assert health["failed"] == 0 and health["errors"] == 0, health
    finally:
        ray.kill(batcher, no_restart=True)

    settlements = await conn.fetch("SELECT * FROM settlements WHERE market_id = $1 "
                                   "ORDER BY batch_id", market_id)  # fmt: skip
    assert sum(s["trade_count"] for s in settlements) == 5
    assert all(s["signature"] and s["slot"] and s["fee_lamports"] >= 5_000 for s in settlements)
    async with ChainClient(exchange.rpc_url) as client:
        data = await client.account_data(
            market_pda(PROGRAM_ID, chain_market_id(mints[base], mints[quote])), "finalized"
        )
        assert data is not None
        window = decode_market(data).batches
        assert all(window.contains(s["batch_id"]) for s in settlements)
        ours = await agreed_vaults(conn, client, namespace, SHARDS, (base, quote), timeout_s=90)
    assert len(ours) == 8  # three accounts' two vaults and the two fee vaults
    for vault in ours:  # settled: each vault on chain IS its ledger balance
        assert vault.unsettled == 0 and vault.withdrawals_in_flight == 0, vault
        assert vault.on_chain == vault.ledger, vault
    fee_vault = next(v for v in ours if v.account_id is None and v.asset == quote)
    fees = await conn.fetchval("SELECT sum(maker_fee_atoms + taker_fee_atoms) FROM trades "
                               "WHERE market_id = $1", market_id)  # fmt: skip
    assert fee_vault.on_chain == fees > 0
    assert await withdrawal_status(conn, waiting) == "confirmed"
