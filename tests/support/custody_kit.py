"""Helpers of the custody tests on real servers: the module database's system connection
with its asset, ledger shards on Ray, and the custody actors' configuration."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import ray
from solders.keypair import Keypair

from actors.accounts import AccountId
from actors.bootstrap import start_core
from actors.chain.keys import ChainKeys
from actors.custody import flows, records
from actors.custody.actor import CustodyConfig, start_custody
from actors.ledger import store
from actors.ledger.shard import LedgerShard, ledger_shard_options
from tests.support.chain import write_keys
from tests.support.program_kit import program_elf


async def system_conn_with_asset(db_url: str, asset: str) -> asyncpg.Connection:
    """Return a `clob_system` connection to a database after adding an asset (6 decimals)."""
    conn = await store.connect(db_url)
    await conn.execute("INSERT INTO assets (symbol, decimals) VALUES ($1, 6)", asset)
    return conn


def start_shards(namespace: str, db_url: str, count: int) -> list[Any]:
    """Start ledger shards 0..count-1 of `count` on Ray; return their handles."""
    return [
        ray.remote(LedgerShard).options(**{**ledger_shard_options(i), "namespace": namespace})
        .remote(i, count, db_url)
        for i in range(count)
    ]  # fmt: skip


def custody_config(
    db_url: str, rpc_url: str, namespace: str, keys: ChainKeys,
    tmp_path_factory: pytest.TempPathFactory, **options: Any,
) -> CustodyConfig:  # fmt: skip
    """Return the custody actors' configuration, with `keys` written as key files."""
    keys_dir = write_keys(tmp_path_factory.mktemp("custody-keys"), keys)
    return CustodyConfig(db_url, rpc_url, namespace, str(keys_dir), **options)


async def withdraw_debited(
    conn: asyncpg.Connection,
    namespace: str,
    shards: int,
    account: int,
    *,
    asset: str,
    atoms: int,
) -> int:
    """Request a withdrawal of `atoms` to a new wallet and debit the ledger for it (what
    `POST /withdrawals` does); return its id. The chain actor then sends it."""

    async def name_of(account_id: AccountId) -> str:
        return f"ledger:{account_id % shards}"

    def call(name: str, method: str, *args: Any) -> Any:
        return getattr(ray.get_actor(name, namespace=namespace), method).remote(*args)

    ledger = flows.ShardLedger(call, name_of)
    asset_id = await conn.fetchval("SELECT asset_id FROM assets WHERE symbol = $1", asset)
    w, _ = await records.insert_request(conn, account, asset_id, atoms, str(Keypair().pubkey()),
                                        None)  # fmt: skip
    return (await flows.debit_withdrawal(conn, ledger, w)).withdrawal_id


async def withdrawal_status(conn: asyncpg.Connection, withdrawal_id: int) -> str:
    """Return a withdrawal's status."""
    return str(await conn.fetchval("SELECT status FROM withdrawals WHERE withdrawal_id = $1",
                                   withdrawal_id))  # fmt: skip


async def withdrawal_confirmed(conn: asyncpg.Connection, withdrawal_id: int) -> bool:
    """Tell whether a withdrawal is confirmed on chain."""
    return await withdrawal_status(conn, withdrawal_id) == "confirmed"


@dataclass
class CustodyExchange:
    """A module's trading core and custody actors on the session's chain."""

    controller: Any
    chain_actor: Any
    config: CustodyConfig
    rpc_url: str
    keys: ChainKeys


def start_custody_exchange(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shards: int
) -> CustodyExchange:
    """Start the trading core (`shards` ledger shards) and both custody actors of the
    module's database (fixtures `db_url`, `namespace`, `solana_rpc_url`, `chain_keys`)."""
    program_elf()
    values = {n: request.getfixturevalue(n) for n in (
        "db_url", "namespace", "solana_rpc_url", "chain_keys")}  # fmt: skip
    controller = start_core(values["db_url"], shards, values["namespace"])
    config = custody_config(values["db_url"], values["solana_rpc_url"], values["namespace"],
                            values["chain_keys"], tmp_path_factory, depth=4, poll_s=0.05,
                            shard_count=shards)  # fmt: skip
    chain_actor, _ = start_custody(config)
    return CustodyExchange(controller, chain_actor, config, values["solana_rpc_url"],
                           values["chain_keys"])  # fmt: skip


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout_s: float = 60) -> Any:
    """Poll `check` until it returns something true; return it (fails after `timeout_s`)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (found := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return found
