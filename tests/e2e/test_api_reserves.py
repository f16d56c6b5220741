"""`GET /api/v1/reserves` over HTTP, with the custody actors running on the e2e Ray and the
session's embedded chain: public, cached, and a deposit credited leaves its asset at zero
difference with every term in whole units."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
import spl.token.instructions as spl
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys
from actors.chain.program import TOKEN_PROGRAM_ID
from actors.custody.actor import CHAIN_ACTOR, DEPOSITS_ACTOR, CustodyConfig, start_custody
from actors.custody.setup import send_and_confirm
from tests.e2e.conftest import SHARD_COUNT, Exchange
from tests.support.program_kit import program_elf

pytestmark = pytest.mark.timeout(300)
ASSET = "RSV"  # 9 decimals: the e2e markets' base decimals
ATOMS = 2_500_000_000


def _write_keys(directory: Path, keys: ChainKeys) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for role in ("admin", "operator", "payer", "mint_authority"):
        path = directory / f"{role}.json"
        path.write_text(json.dumps(list(bytes(getattr(keys, role)))))
        os.chmod(path, 0o600)


def _running(name: str) -> bool:
    try:
        ray.get_actor(name, namespace="clob")
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def chain_actor(
    exchange: Exchange, solana_rpc_url: str, chain_keys: ChainKeys,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:  # fmt: skip
    """The custody actors on the e2e exchange (stopped after the module if it started
    them: custody then runs only while these tests do)."""
    program_elf()
    exchange.create_market(ASSET)
    ours = not _running(CHAIN_ACTOR)
    keys_dir = tmp_path_factory.mktemp("keys")
    _write_keys(keys_dir, chain_keys)
    config = CustodyConfig(exchange.database_url, solana_rpc_url, "clob", str(keys_dir),
                           depth=4, poll_s=0.1, shard_count=SHARD_COUNT)  # fmt: skip
    chain, _ = start_custody(config)
    ray.get(chain.sync.remote())
    yield chain
    if ours:
        for name in (CHAIN_ACTOR, DEPOSITS_ACTOR):
            ray.kill(ray.get_actor(name, namespace="clob"), no_restart=True)


async def _deposit(url: str, keys: ChainKeys, mint: Pubkey, vault: Pubkey) -> None:
    async with ChainClient(url) as client:
        wallet = Keypair()
        await client.request_airdrop(wallet.pubkey(), 10**9)
        source = spl.get_associated_token_address(wallet.pubkey(), mint)
        create = spl.create_associated_token_account(keys.payer.pubkey(), wallet.pubkey(), mint)
        mint_to = spl.mint_to(spl.MintToParams(
            program_id=TOKEN_PROGRAM_ID, mint=mint, dest=source,
            mint_authority=keys.mint_authority.pubkey(), amount=ATOMS))  # fmt: skip
        await send_and_confirm(client, keys.payer, [create, mint_to], [keys.mint_authority])
        move = spl.transfer_checked(spl.TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID, source=source, mint=mint, dest=vault,
            owner=wallet.pubkey(), amount=ATOMS, decimals=9))  # fmt: skip
        await send_and_confirm(client, wallet, [move])


def _asset(body: dict[str, Any]) -> dict[str, Any]:
    (row,) = [a for a in body["assets"] if a["asset"] == ASSET]
    return row


def test_reserves_are_public_cached_and_balance_a_credited_deposit(
    exchange: Exchange, chain_actor: Any, solana_rpc_url: str, chain_keys: ChainKeys
) -> None:
    first = httpx.get(f"{exchange.url}/api/v1/reserves", timeout=60)  # no key: public
    assert first.status_code == 200, first.text
    again = httpx.get(f"{exchange.url}/api/v1/reserves", timeout=60)
    assert again.json()["as_of"] == first.json()["as_of"]  # one report, cached
    assert set(_asset(first.json())) == {
        "asset", "on_chain", "available", "locked", "fees", "ledger", "deposits_pending",
        "withdrawals_in_flight", "unsettled", "expected", "difference",
    }  # fmt: skip

    trader = exchange.trader()
    mint = Pubkey.from_string(ray.get(chain_actor.sync.remote())[ASSET])
    vault = Pubkey.from_string(ray.get(chain_actor.deposit_address.remote(trader.account_id,
                                                                          ASSET)))  # fmt: skip
    asyncio.run(_deposit(solana_rpc_url, chain_keys, mint, vault))
    deadline = time.monotonic() + 60
    while True:
        row = _asset(httpx.get(f"{exchange.url}/api/v1/reserves", timeout=60).json())
        if row["ledger"] == "2.500000000" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert row["on_chain"] == row["ledger"] == row["available"] == "2.500000000", row
    assert row["difference"] == row["deposits_pending"] == "0.000000000", row
    assert trader.balances()[ASSET] == ("2.500000000", "0.000000000")
