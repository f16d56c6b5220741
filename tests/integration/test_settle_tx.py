"""Settle transactions on the embedded chain with the built program: simulated, measured
exactly, landed with exactly their deltas, netted and unnetted, with and without an
address lookup table; a market's table kept by `MarketTables` (address in PostgreSQL)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
import pytest_asyncio
from solders.hash import Hash
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionErrorFieldless

from actors.chain.client import ChainClient, ChainUnavailableError
from actors.chain.keys import ChainKeys
from actors.chain.program import MAX_SETTLE_ENTRIES, decode_market, market_pda
from actors.ledger import store
from actors.settlement.chain import RpcSettleChain
from actors.settlement.lookup import ensure_table, market_accounts
from actors.settlement.ports import MarketInfo, Oversized
from actors.settlement.records import SettlementJob
from actors.settlement.states import SettlementStatus
from actors.settlement.tables import MarketTables, load_table_address, save_table_address
from actors.settlement.trades import Instruction, VaultKey
from actors.settlement.tx import (
    MAX_COMPUTE_UNITS,
    SettleContext,
    build_settle_tx,
    fits,
    tx_size,
    vault_of,
)
from tests.support.chain import rpc
from tests.support.market_kit import create_database, drop_database
from tests.support.program_kit import program_elf
from tests.support.settle_kit import SettleMarket, balanced, land, settle_market, trade

pytestmark = pytest.mark.timeout(180)
USERS = 24  # 48 user vaults: more than a netted instruction takes (32)


@pytest_asyncio.fixture(scope="module")
async def market(solana_rpc_url: str, chain_keys: ChainKeys) -> AsyncIterator[SettleMarket]:
    program_elf()  # skip (or fail under CI) without the built program
    async with ChainClient(solana_rpc_url, "confirmed", timeout_s=10) as client:
        yield await settle_market(client, chain_keys, USERS)


def _trades(market: SettleMarket, count: int, rng: random.Random) -> list[Instruction]:
    out = []
    for _ in range(count):
        buyer, seller = rng.sample(market.accounts, 2)
        out.append(trade(buyer, seller, rng.randint(1, 100), rng.randint(100, 900), 3))
    return out


async def test_simulation_reports_units_and_the_program_error_and_changes_nothing(
    market: SettleMarket, solana_rpc_url: str
) -> None:
    client, ctx = market.client, market.ctx
    one, two = market.accounts[:2]
    blockhash = (await client.latest_blockhash("confirmed")).blockhash

    def tx(entries: Instruction, on: Hash = blockhash) -> VersionedTransaction:
        return build_settle_tx(ctx, batch_id=10**6, instructions=[entries], blockhash=on,
                               cu_limit=MAX_COMPUTE_UNITS, cu_price=0)  # fmt: skip

    vault = vault_of(ctx, (one, "base"))
    held = await client.token_balance(vault, "processed")
    moves: Instruction = (((one, "base"), -10), ((two, "base"), 10))
    good = await client.simulate(tx(moves))
    assert good.ok and good.units_consumed and good.units_consumed > 5_000
    assert good.program_error is None and any("invoke" in line for line in good.logs)
    assert await client.token_balance(vault, "processed") == held

    overdraw: Instruction = (((one, "base"), -(10**12)), ((two, "base"), 10**12))
    refused = await client.simulate(tx(overdraw))
    assert not refused.ok and refused.program_error == "InsufficientVaultBalance"
    stale = await client.simulate(tx(moves, Hash.default()))
    assert stale.err == TransactionErrorFieldless.BlockhashNotFound
    assert stale.program_error is None

    await rpc(solana_rpc_url, "clob_failRequests", 1, {"method": "simulateTransaction"})
    with pytest.raises(ChainUnavailableError):
        await client.simulate(tx(moves))


async def test_netted_and_unnetted_settles_land_with_exactly_their_deltas(
    market: SettleMarket,
) -> None:
    rng = random.Random(16)
    netted = balanced(rng.sample(market.vault_keys(), 10), rng)
    await land(market, [netted])
    trades = _trades(market, 3, rng)
    first = await land(market, trades)
    data = await market.client.account_data(market_pda(market.ctx.program_id,
                                                       market.ctx.chain_market_id))  # fmt: skip
    assert data is not None
    window = decode_market(data).batches
    applied = [i for i in range(1, 10) if window.contains(i)]
    assert applied == [1, 2, 3, 4]  # the netted batch, then one id per trade
    assert first.units_consumed < first.cu_limit


def _largest(market: SettleMarket, keys: list[VaultKey]) -> int:
    """Return how many of `keys` (in order) one netted instruction takes at most."""
    n = 2
    while n < len(keys) and n < MAX_SETTLE_ENTRIES and fits(market.ctx, [keys[: n + 1]]):
        n += 1
    return n


def _trades_per_tx(ctx: SettleContext, trades: list[Instruction]) -> int:
    """Return how many of `trades` (in order) one unnetted transaction takes at most."""
    sets = [[key for key, _ in t] for t in trades]
    return max(k for k in range(1, len(trades)) if fits(ctx, sets[:k]))


async def test_the_largest_netted_batch_without_a_table_lands(market: SettleMarket) -> None:
    keys = market.vault_keys()
    n = _largest(market, keys)
    assert n < MAX_SETTLE_ENTRIES and not fits(market.ctx, [keys[: n + 1]])
    landed = await land(market, [balanced(keys[:n], random.Random(n))])
    assert landed.tx_bytes > 1_232 - 41  # one more vault (32 + 8 + 1 bytes) would not fit


async def test_a_lookup_table_lets_the_program_s_largest_batch_and_more_trades_fit(
    market: SettleMarket,
) -> None:
    client, keys = market.client, market.vault_keys()
    wanted = [*market_accounts(market.ctx), *(vault_of(market.ctx, k) for k in keys)]
    payer, operator = market.keys.payer, market.keys.operator
    table = await ensure_table(client, payer=payer, authority=operator, table=None,
                               addresses=wanted[:10])  # fmt: skip
    table = await ensure_table(client, payer=payer, authority=operator, table=table.key,
                               addresses=wanted)  # fmt: skip
    # Extended with the rest, nothing twice (the quote fee vault is a fixed account too).
    assert list(table.addresses) == list(dict.fromkeys(wanted)) and len(wanted) == 55
    with_table = replace(market.ctx, lookup_tables=(table,))
    plain, market.ctx = market.ctx, with_table
    try:
        assert _largest(market, keys) == MAX_SETTLE_ENTRIES  # the program's bound, not bytes
        entries = [*keys[: MAX_SETTLE_ENTRIES - 1], keys[-1]]
        landed = await land(market, [balanced(entries, random.Random(32))])
        assert landed.tx_bytes <= 1_232
        more = _trades(market, 40, random.Random(7))
        k_plain, k_table = _trades_per_tx(plain, more), _trades_per_tx(with_table, more)
        assert k_table > k_plain
        await land(market, more[:k_table])
        # Two netted instructions in one transaction: the 48 user vaults and the fee vaults
        # (the planner's `max_instructions`), each within the program's 32.
        halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
        two = await land(market, [balanced(h, random.Random(9 + i)) for i, h in enumerate(halves)])
        assert two.tx_bytes <= 1_232 and sum(len(h) for h in halves) > MAX_SETTLE_ENTRIES
        seen = await client.signatures_since(vault_of(with_table, entries[0]))
        assert landed.signature in {s.signature for s in seen}  # loaded accounts' history
    finally:
        market.ctx = plain


async def _db_market(url: str) -> int:
    """Insert a market (and its two assets) into a migrated database; return its id."""
    conn = await asyncpg.connect(url)
    try:
        tag = uuid.uuid4().hex[:6].upper()
        insert = "INSERT INTO assets (symbol, decimals) VALUES ($1, 6) RETURNING asset_id"
        ids = [await conn.fetchval(insert, f"{side}{tag}") for side in "BQ"]
        market_id: int = await conn.fetchval(
            """INSERT INTO markets (symbol, base_asset_id, quote_asset_id, lot_size_atoms,
                                    tick_size_atoms, maker_fee_bps, taker_fee_bps)
               VALUES ($1, $2, $3, 1000, 1000, 0, 5) RETURNING market_id""",
            f"B{tag}-Q{tag}", *ids,
        )  # fmt: skip
        return market_id
    finally:
        await conn.close()


async def test_a_market_s_table_is_made_once_extended_kept_in_the_database_and_used(
    market: SettleMarket, pg_dsn: str
) -> None:
    url = await create_database(pg_dsn, "tables")
    conn = await store.connect(url)  # as clob_system, the batcher's role
    try:
        market_id = await _db_market(url)
        saved: list[str] = []

        async def save(mid: int, address: str) -> None:
            saved.append(address)
            await save_table_address(conn, mid, address)

        async def load(mid: int) -> str | None:
            return await load_table_address(conn, mid)

        ctx, keys = market.ctx, market.vault_keys()
        vaults = [vault_of(ctx, k) for k in keys]
        fixed, payer, operator = market_accounts(ctx), market.keys.payer, market.keys.operator
        await save(market_id, str(market.keys.admin.pubkey()))  # recorded, but no table
        tables = MarketTables(market.client, payer, operator, load, save)
        first = await tables.context(ctx, market_id, vaults[:4])
        (table,) = first.lookup_tables
        assert saved[1:] == [str(table.key)] == [await load(market_id)]  # replaced
        assert list(table.addresses) == [*fixed, *vaults[:4]]
        second = await tables.context(ctx, market_id, vaults[2:8])
        assert second.lookup_tables[0].key == table.key and len(saved) == 2  # extended
        assert list(second.lookup_tables[0].addresses) == [*fixed, *vaults[:8]]

        again = MarketTables(market.client, payer, operator, load, save)  # a restart
        await again.load(market_id)
        batch = keys[-MAX_SETTLE_ENTRIES:]  # 28 of them are not in the table yet
        assert again.fits(ctx, market_id)([batch]) and not fits(ctx, [batch])
        third = await again.context(ctx, market_id, [vault_of(ctx, k) for k in batch])
        assert third.lookup_tables[0].key == table.key and len(saved) == 2
        held = dict.fromkeys([*fixed, *vaults[:8], *vaults[-MAX_SETTLE_ENTRIES:]])
        assert list(third.lookup_tables[0].addresses) == list(held)
        plain, market.ctx = market.ctx, third
        try:
            landed = await land(market, [balanced(batch, random.Random(22))])
        finally:
            market.ctx = plain
        assert landed.tx_bytes <= 1_232
    finally:
        await conn.close()
        await drop_database(pg_dsn, url)


async def test_the_chain_port_answers_oversized_without_simulating_or_signing(
    market: SettleMarket,
) -> None:
    # 32 vaults named by key (no table): over 1,232 bytes. The batcher then cuts it.
    async def record(*_: object) -> None:
        raise AssertionError("no vault to register")

    ctx, keys = market.ctx, market.vault_keys()[:MAX_SETTLE_ENTRIES]
    info = MarketInfo(1, "B-Q", ctx.chain_market_id, str(ctx.base_mint), str(ctx.quote_mint))
    job = SettlementJob(1, 1, ctx.chain_market_id, next(market.batch_ids), 1,
                        SettlementStatus.PENDING, (balanced(keys, random.Random(3)),), 16, 0,
                        None, 0, 0)  # fmt: skip
    chain = RpcSettleChain(market.client, ctx.program_id, ctx.operator, record)
    assert await chain.prepare(info, job, 1_000) == Oversized(tx_size(ctx, [keys]))
    assert tx_size(ctx, [keys]) > 1_232
