"""`GET /api/v1/reserves` over HTTP, with the custody actors running on the e2e Ray and the
session's embedded chain: public, cached, and a deposit credited leaves its asset at zero
difference with every term in whole units."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import ray
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys
from serve_app.demo_deposit import mint_and_deposit
from tests.e2e.conftest import Exchange

pytestmark = pytest.mark.timeout(300)
ASSET = "RSV"  # 9 decimals: the e2e markets' base decimals
ATOMS = 2_500_000_000


@pytest.fixture(scope="module")
def chain_actor(exchange: Exchange, custody: Any) -> Any:
    """The custody actors on the e2e exchange (the conftest's, for this module), with this
    module's market, its assets set up on chain."""
    exchange.create_market(ASSET)
    ray.get(custody.sync.remote(), timeout=120)
    return custody


async def _deposit(url: str, keys: ChainKeys, mint: Pubkey, vault: Pubkey) -> None:
    async with ChainClient(url) as client:
        await mint_and_deposit(client, keys, Keypair(), mint, vault, ATOMS, 9)


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


def test_an_unknown_query_parameter_is_refused(exchange: Exchange, chain_actor: Any) -> None:
    answer = httpx.get(f"{exchange.url}/api/v1/reserves", params={"asset": "X"}, timeout=60)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_request", answer.text
