"""The custody actors on real servers (PostgreSQL, a ledger shard on Ray, the embedded
chain with the exchange program): a deposit into a deposit address is credited once at
its depth; a debited withdrawal is paid to the wallet once and confirmed; one the program
refuses is failed and re-credited once; the listener killed mid-way catches up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import ray
import spl.token.instructions as spl
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys
from actors.custody import flows, records
from actors.custody.actor import start_custody
from serve_app.demo_deposit import mint_and_deposit
from tests.support.custody_kit import custody_config, start_shards, system_conn_with_asset
from tests.support.market_kit import new_accounts
from tests.support.program_kit import program_elf

pytestmark = pytest.mark.timeout(180)
ASSET = "CUSD"
CAP_ATOMS = 5_000


@pytest_asyncio.fixture(scope="module")
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await system_conn_with_asset(db_url, ASSET)
    yield c
    await c.close()


@pytest.fixture(scope="module")
def shard(namespace: str, db_url: str, conn: asyncpg.Connection) -> Any:
    return start_shards(namespace, db_url, 1)[0]


@dataclass
class World:
    db_url: str
    conn: asyncpg.Connection
    shard: Any
    chain_actor: Any
    listener: Any
    rpc_url: str
    keys: ChainKeys


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    program_elf()
    values = {n: request.getfixturevalue(n) for n in (
        "namespace", "db_url", "conn", "shard", "solana_rpc_url", "chain_keys")}  # fmt: skip
    config = custody_config(values["db_url"], values["solana_rpc_url"], values["namespace"],
                            values["chain_keys"], tmp_path_factory, depth=4, poll_s=0.05,
                            cap_atoms={ASSET: CAP_ATOMS}, shard_count=1)  # fmt: skip
    chain_actor, listener = start_custody(config)
    return World(values["db_url"], values["conn"], values["shard"], chain_actor, listener,
                 values["solana_rpc_url"], values["chain_keys"])  # fmt: skip


async def _until(what: str, check: Callable[[], Awaitable[Any]], timeout_s: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _available(shard: Any, account: int) -> int:
    views = await shard.balances.remote(account)
    return sum(v.available_atoms for v in views if v.asset == ASSET)


async def _deposit(client: ChainClient, keys: ChainKeys, mint: Pubkey, vault: Pubkey,
                   atoms: int) -> str:  # fmt: skip
    return await mint_and_deposit(client, keys, Keypair(), mint, vault, atoms, 6)


async def _credited(conn: asyncpg.Connection, signature: str) -> bool:
    status = await conn.fetchval("SELECT status FROM deposits WHERE tx_signature = $1", signature)
    return bool(status == "credited")


async def test_deposits_are_credited_once_and_withdrawals_paid_or_refunded_once(
    world: World,
) -> None:
    conn, shard, chain_actor, chain_keys = world.conn, world.shard, world.chain_actor, world.keys
    db_url, solana_rpc_url, listener = world.db_url, world.rpc_url, world.listener
    mints = await chain_actor.sync.remote()
    mint = Pubkey.from_string(mints[ASSET])
    [account] = await new_accounts(db_url, 1)
    address = await chain_actor.deposit_address.remote(account, ASSET)
    assert address == await chain_actor.deposit_address.remote(account, ASSET)
    async with ChainClient(solana_rpc_url) as client:
        first = await _deposit(client, chain_keys, mint, Pubkey.from_string(address), 7_000)
        try:
            await _until("the deposit's credit", lambda: _credited(conn, first))
        except AssertionError:
            health = [await a.health.remote() for a in (listener, chain_actor)]
            raise AssertionError(f"not credited; the actors: {health}") from None
        assert await _available(shard, account) == 7_000

        # The listener dies; a deposit lands while it is away; its successor catches up.
        ray.kill(listener, no_restart=False)
        second = await _deposit(client, chain_keys, mint, Pubkey.from_string(address), 500)
        await _until("the catch-up credit", lambda: _credited(conn, second))
        assert await _available(shard, account) == 7_500

        # A withdrawal within the cap is paid to the wallet's token account once.
        ledger = flows.ShardLedger(
            lambda name, method, *args: getattr(shard, method).remote(*args),
            lambda account_id: _shard_name(),
        )
        wallet = Keypair().pubkey()
        paid = await _withdraw(conn, ledger, account, 3_000, str(wallet))
        done = await _until(
            "the withdrawal's confirmation", lambda: _status(conn, paid, "confirmed")
        )
        assert done
        ata = spl.get_associated_token_address(wallet, mint)
        assert await client.token_balance(ata) == 3_000
        assert await _available(shard, account) == 4_500

        # Over the on-chain cap (3,000 of 5,000 used): the program refuses, the ledger
        # gets the amount back once.
        refused = await _withdraw(conn, ledger, account, 2_500, str(wallet))
        await _until("the refusal", lambda: _status(conn, refused, "failed"))
        row = await records.get(conn, refused)
        assert row is not None and row.refunded_at is not None
        assert row.last_error == "OverWithdrawalCap"
        assert await _available(shard, account) == 4_500
        assert await client.token_balance(ata) == 3_000
        assert await client.token_balance(Pubkey.from_string(address)) == 4_500


async def _shard_name() -> str:
    return "ledger:0"


async def _withdraw(conn: asyncpg.Connection, ledger: flows.ShardLedger, account: int,
                    atoms: int, destination: str) -> int:  # fmt: skip
    asset_id = await conn.fetchval("SELECT asset_id FROM assets WHERE symbol = $1", ASSET)
    w, _ = await records.insert_request(conn, account, asset_id, atoms, destination, None)
    debited = await flows.debit_withdrawal(conn, ledger, w)
    assert debited.status == "debited"
    return w.withdrawal_id


async def _status(conn: asyncpg.Connection, withdrawal_id: int, status: str) -> bool:
    row = await records.get(conn, withdrawal_id)
    return row is not None and row.status == status
