"""Custody through the running exchange, over HTTP as a client, with the custody actors on
the session's embedded chain: an account's deposit address is its vault; a transfer into
it shows in `GET /deposits`, pending with its confirmations, then credited once, and in
the balances; a withdrawal to an allowlisted wallet ends `confirmed` with the tokens in the
wallet's associated token account; bad input for the deposit address answers its code and
changes nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.token.instructions import get_associated_token_address

from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys
from actors.chain.program import PROGRAM_ID, vault_pda
from serve_app.demo_deposit import fund_wallet, mint_and_deposit, transfer
from tests.e2e.conftest import (
    CUSTODY_DEPTH,
    Exchange,
    deposit_address_count,
    withdrawing_account_keys,
)
from tests.support.chain import rpc

pytestmark = pytest.mark.timeout(300)
BASE, ASSET = "CUSTB", "CUSTQ"  # the quote has 6 decimals (MARKET_SPEC)


@dataclass
class Account:
    """An account with a full key (`http`) and a key without the `read` scope."""

    account_id: int
    http: httpx.Client
    trade_only: httpx.Client

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"/api/v1{path}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def available(self) -> str:
        found = [b["available"] for b in self.get("/balances")["balances"] if b["asset"] == ASSET]
        return found[0] if found else "0"


@pytest.fixture(scope="module")
def market(exchange: Exchange, custody: Any) -> str:
    return exchange.create_market(BASE, ASSET)


@pytest.fixture
def account(exchange: Exchange, market: str) -> Iterator[Account]:
    full, trade_only = asyncio.run(withdrawing_account_keys(exchange.database_url, ("trade",)))
    made = Account(
        full.account_id,
        httpx.Client(base_url=exchange.url, headers={"X-API-Key": full.key}, timeout=60),
        httpx.Client(base_url=exchange.url, headers={"X-API-Key": trade_only}, timeout=60),
    )
    yield made
    made.http.close()
    made.trade_only.close()


def _until(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _deposit_address(account: Account) -> dict[str, Any]:
    answer: dict[str, Any] = account.get("/deposit-address", asset=ASSET)
    return answer


def _deposits(account: Account) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = account.get("/deposits")["deposits"]
    return found


def _deposit(url: str, chain_keys: ChainKeys, address: dict[str, Any], atoms: int) -> str:
    async def go() -> str:
        async with ChainClient(url) as client:
            return await mint_and_deposit(
                client, chain_keys, Keypair(), Pubkey.from_string(address["mint"]),
                Pubkey.from_string(address["address"]), atoms, 6,
            )  # fmt: skip

    return asyncio.run(go())


def test_the_deposit_address_is_the_accounts_vault_and_stays_the_same(
    account: Account, exchange: Exchange
) -> None:
    first = _deposit_address(account)
    mint = asyncio.run(_mint(exchange.database_url))
    assert first["asset"] == ASSET and first["mint"] == mint
    assert first["address"] == str(vault_pda(PROGRAM_ID, Pubkey.from_string(mint),
                                             account.account_id))  # fmt: skip
    assert _deposit_address(account) == first


async def _mint(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return str(await conn.fetchval("SELECT mint FROM assets WHERE symbol = $1", ASSET))
    finally:
        await conn.close()


def test_a_deposit_is_pending_with_its_confirmations_then_credited_once(
    account: Account, solana_rpc_url: str, chain_keys: ChainKeys
) -> None:
    address = _deposit_address(account)
    # Slots stand still after the transfer lands two slots deep: the listener sees it
    # (confirmed) below the depth, so it must show as pending, not yet in the balance.
    signature = asyncio.run(_transfer_paused(solana_rpc_url, chain_keys, address, 2_500_000))
    try:
        # Recorded first (0 confirmations), then given its depth in the same listener pass.
        [seen] = _until("the deposit's depth",
                        lambda: [d for d in _deposits(account) if d["confirmations"]])  # fmt: skip
        assert (seen["tx_signature"], seen["status"], seen["amount"]) == (
            signature, "pending", "2.500000"
        )  # fmt: skip
        assert seen["address"] == address["address"] and seen["credited_at"] is None
        assert 1 <= seen["confirmations"] < CUSTODY_DEPTH
        assert account.available() == "0"
    finally:
        asyncio.run(rpc(solana_rpc_url, "clob_pauseSlots", False))
    _until("the credit", lambda: _deposits(account)[0]["status"] == "credited")
    [credited] = _deposits(account)
    assert credited["confirmations"] >= CUSTODY_DEPTH and credited["credited_at"] is not None
    assert account.available() == "2.500000"
    time.sleep(1.0)  # more passes of the listener credit nothing more
    assert account.available() == "2.500000" and len(_deposits(account)) == 1


async def _transfer_paused(
    url: str, chain_keys: ChainKeys, address: dict[str, Any], atoms: int
) -> str:
    """Fund a new wallet, stop the slots, transfer into the deposit address, and let it
    get two slots deep; return the transfer's signature (the slots stay stopped)."""
    wallet, mint = Keypair(), Pubkey.from_string(address["mint"])
    async with ChainClient(url) as client:
        source = await fund_wallet(client, chain_keys, wallet, mint, atoms)
        to = Pubkey.from_string(address["address"])
        move = transfer(wallet, source, mint, to, atoms=atoms, decimals=6)
        blockhash = await client.latest_blockhash("confirmed")
        message = MessageV0.try_compile(wallet.pubkey(), [move], [], blockhash.blockhash)
        await rpc(url, "clob_pauseSlots", True)
        signature = await client.send_transaction(VersionedTransaction(message, [wallet]))
        await rpc(url, "clob_advanceSlots", 2)
        return str(signature)


def test_a_withdrawal_to_an_allowlisted_wallet_is_confirmed_with_the_tokens_in_its_account(
    account: Account, solana_rpc_url: str, chain_keys: ChainKeys
) -> None:
    address = _deposit_address(account)
    _deposit(solana_rpc_url, chain_keys, address, 5_000_000)
    _until("the credit", lambda: account.available() == "5.000000")
    wallet = Keypair().pubkey()
    allowed = account.http.post("/api/v1/withdrawal-addresses", json={"address": str(wallet)})
    assert allowed.status_code == 201, allowed.text
    body = {"asset": ASSET, "amount": "1.25", "address": str(wallet)}
    made = account.http.post("/api/v1/withdrawals", json=body)
    assert made.status_code == 201 and made.json()["status"] == "debited", made.text
    wid = made.json()["withdrawal_id"]
    assert account.available() == "3.750000"

    def confirmed() -> dict[str, Any] | None:
        [w] = account.get("/withdrawals")["withdrawals"]
        assert w["status"] in ("debited", "sent", "confirmed"), w
        return w if w["status"] == "confirmed" else None

    done = _until("the withdrawal's confirmation", confirmed)
    assert done["withdrawal_id"] == wid and done["tx_signature"] and done["confirmed_at"]
    assert done["refunded_at"] is None and account.available() == "3.750000"
    mint = Pubkey.from_string(address["mint"])
    ata = get_associated_token_address(wallet, mint)
    vault = Pubkey.from_string(address["address"])
    assert asyncio.run(_token_balances(solana_rpc_url, [ata, vault])) == [1_250_000, 3_750_000]


async def _token_balances(url: str, accounts: list[Pubkey]) -> list[int | None]:
    async with ChainClient(url) as client:
        return [await client.token_balance(a) for a in accounts]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"asset": "NOPE"}, 404, "unknown_asset"),
        ({}, 422, None),
        ({"asset": ""}, 422, None),
        ({"asset": "no spaces!"}, 422, None),
        ({"asset": ASSET, "other": "1"}, 422, None),
    ],
)
def test_bad_input_for_the_deposit_address_answers_its_code_and_changes_nothing(
    account: Account, exchange: Exchange, params: dict[str, str], status: int, code: str | None
) -> None:
    response = account.http.get("/api/v1/deposit-address", params=params)
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["code"] == code
    assert asyncio.run(deposit_address_count(exchange.database_url, account.account_id)) == 0


def test_the_deposit_address_needs_the_read_scope_and_a_key(
    account: Account, exchange: Exchange
) -> None:
    refused = account.trade_only.get("/api/v1/deposit-address", params={"asset": ASSET})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden", refused.text
    anonymous = httpx.get(f"{exchange.url}/api/v1/deposit-address", params={"asset": ASSET})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
    assert asyncio.run(deposit_address_count(exchange.database_url, account.account_id)) == 0
