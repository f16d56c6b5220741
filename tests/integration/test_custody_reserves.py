"""The per-vault reserves on real servers (PostgreSQL, a market and two ledger shards on
Ray, the embedded chain with the program, both custody actors): after deposits, trades and
withdrawals, with no settlement yet, every vault's unsettled term is exactly its trades'
net (the trades read back from the table, the formula applied here), and the vault on
chain plus it equals the account's ledger balance to the atom; a withdrawal that its vault
cannot pay yet waits, unsent, and is counted in flight."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
import ray
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.accounts import AccountId
from actors.chain.client import ChainClient
from actors.chain.program import PROGRAM_ID
from actors.custody import records
from actors.custody.reconcile import Gathered, gather_once
from actors.custody.reserves import VaultKey
from actors.ledger import store
from actors.ledger.rules import Holdings
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

pytestmark = pytest.mark.timeout(300)
SHARDS = 2
LOT = 10  # base atoms per lot; a tick-lot is 10 quote atoms


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


def _trade_deltas(rows: list[asyncpg.Record], base: str, quote: str) -> dict[VaultKey, int]:
    """Every trade's moves, per vault, as the ledger made them (the fee vault: account None)."""
    out: dict[VaultKey, int] = defaultdict(int)
    for r in rows:
        maker, taker = AccountId(r["maker_account_id"]), AccountId(r["taker_account_id"])
        buyer, seller = (taker, maker) if r["taker_side"] == "buy" else (maker, taker)
        fee_of = {maker: int(r["maker_fee_atoms"]), taker: int(r["taker_fee_atoms"])}
        atoms, notional = r["qty_lots"] * LOT, int(r["quote_qty_atoms"])
        out[(buyer, base)] += atoms
        out[(seller, base)] -= atoms
        out[(buyer, quote)] -= notional + fee_of[buyer]
        out[(seller, quote)] += notional - fee_of[seller]
        out[(None, quote)] += fee_of[maker] + fee_of[taker]
    return {key: atoms for key, atoms in out.items() if atoms}


async def test_each_vault_plus_its_unsettled_trades_equals_the_ledger(
    exchange: CustodyExchange, conn: asyncpg.Connection, db_url: str, namespace: str
) -> None:
    controller, chain_actor = exchange.controller, exchange.chain_actor
    solana_rpc_url, chain_keys = exchange.rpc_url, exchange.keys
    tag = uuid.uuid4().hex[:5].upper()
    base, quote, symbol = f"RB{tag}", f"RQ{tag}", f"RB{tag}-RQ{tag}"
    await controller.create_market.remote({
        "symbol": symbol, "base_asset": base, "quote_asset": quote, "lot_size": LOT,
        "maker_fee_bps": 10, "taker_fee_bps": 20,
    })  # fmt: skip
    market = ray.get_actor(f"market:{symbol}", namespace=namespace)
    mints = {k: Pubkey.from_string(v) for k, v in (await chain_actor.sync.remote()).items()}
    seller, buyer = await new_accounts(db_url, 2)

    # Deposits: the seller's base, the buyer's quote (their other vaults are never registered).
    async with ChainClient(solana_rpc_url) as client:
        for account, asset, atoms in ((seller, base, 1_000), (buyer, quote, 200_000)):
            vault = Pubkey.from_string(await chain_actor.deposit_address.remote(account, asset))
            await mint_and_deposit(client, chain_keys, Keypair(), mints[asset], vault, atoms, 0)

    async def credited() -> bool:
        found = await conn.fetchval("SELECT count(*) FROM deposits d JOIN assets a "
                                    "USING (asset_id) WHERE a.symbol = ANY($1) AND "
                                    "d.status = 'credited'", [base, quote])  # fmt: skip
        return bool(found == 2)

    await until("both deposits' credits", credited)

    # Trades: the buyer takes 4 lots at 1,000; the seller takes a bid of 3 at 990; 6 lots of
    # the seller's ask rest (locked, still the seller's).
    await market.submit.remote([limit(seller, "s1", "sell", 1_000, 10)])
    await market.submit.remote([limit(buyer, "b1", "buy", 1_000, 4)])
    await market.submit.remote([limit(buyer, "b2", "buy", 990, 3)])
    await market.submit.remote([limit(seller, "s2", "sell", 990, 3)])
    await market.settled.remote()

    # Withdrawals: the buyer's from its deposit is paid; the seller's quote exists only in
    # the ledger (trades not settled), so its withdrawal waits, unsent.
    paid = await withdraw_debited(conn, namespace, SHARDS, buyer, asset=quote, atoms=10_000)
    waiting = await withdraw_debited(conn, namespace, SHARDS, seller, asset=quote, atoms=20_000)
    await until("the paid withdrawal", lambda: withdrawal_confirmed(conn, paid))
    assert await withdrawal_status(conn, waiting) == "debited"
    assert await records.sends(conn, waiting) == []

    async def holdings() -> list[Holdings]:
        shards = [ray.get_actor(f"ledger:{i}", namespace=namespace) for i in range(SHARDS)]
        return list(await asyncio.gather(*(s.holdings.remote() for s in shards)))

    async with ChainClient(solana_rpc_url) as client:

        async def agreed() -> Gathered | None:
            found = await gather_once(conn, client, PROGRAM_ID, holdings)
            return found if found.agreed else None

        gathered: Gathered = await until("reads that agree", agreed)
    rows = await conn.fetch("SELECT * FROM trades t JOIN markets m USING (market_id) "
                            "WHERE m.symbol = $1", symbol)  # fmt: skip
    assert len(rows) == 2
    deltas = _trade_deltas(rows, base, quote)
    ours = {(v.account_id, v.asset): v for v in gathered.vaults
            if v.asset in (base, quote)}  # fmt: skip
    assert {k: v.unsettled for k, v in ours.items() if v.unsettled} == deltas
    balances: dict[VaultKey, int] = defaultdict(int)
    for h in await holdings():
        for key, atoms in h.accounts.items():
            balances[key] += atoms
        for asset in (base, quote):
            balances[(None, asset)] += h.totals[asset].fees if asset in h.totals else 0
    for key, row in ours.items():
        in_flight = 20_000 if key == (seller, quote) else 0
        assert row.withdrawals_in_flight == in_flight and row.deposits_pending == 0, row
        assert row.on_chain + row.unsettled == balances[key] + in_flight, row
        assert row.difference == 0, row
    assert set(ours) == {(a, s) for a in (seller, buyer, None) for s in (base, quote)}
    assert ours[(buyer, base)].on_chain == 0 and ours[(buyer, base)].ledger == 7 * LOT
    assert ours[(None, quote)].ledger == ours[(None, quote)].unsettled == 80 + 40 + 60 + 30
    assert all(a.difference == 0 and a.unsettled == 0 for a in gathered.assets
               if a.asset in (base, quote))  # fmt: skip
    report = await chain_actor.reserves.remote(0)
    assert report.consistent and report.vaults_checked >= len(ours), report
    assert not [v for v in report.differing if v.asset in (base, quote)], report.differing
