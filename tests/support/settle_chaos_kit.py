"""What the settlement chaos test does on chain: deposits that survive the embedded chain's
fault switches (a whale wallet holds a mint's tokens and lands transfers into vaults,
signing anew when a dropped transaction expires and retrying calls the RPC fault switch
fails), and the settle transactions that landed, read back from a market's history."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
import ray
import spl.token.instructions as spl
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from actors.chain.client import (
    AlreadyProcessedError,
    ChainClient,
    ChainUnavailableError,
    TransactionExpiredError,
    program_error_code,
)
from actors.chain.keys import ChainKeys
from actors.chain.program import (
    PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    chain_market_id,
    decode_market,
    error_name,
    ix_settle,
    market_pda,
)
from actors.custody.reconcile import Gathered, gather_once
from actors.custody.reserves import VaultReserves
from actors.custody.setup import send_and_confirm
from actors.ledger.rules import Holdings
from tests.support.chain import rpc

WHALE_ATOMS = 10**12
# The first 8 bytes of every settle instruction's data (its discriminator).
SETTLE_TAG = ix_settle(PROGRAM_ID, operator=Pubkey.default(), market_id=0, batch_id=0,
                       entries=[]).data[:8]  # fmt: skip


@dataclass(frozen=True)
class Whale:
    """A wallet holding a mint's tokens in its associated token account."""

    wallet: Keypair
    mint: Pubkey

    @property
    def source(self) -> Pubkey:
        """Return the wallet's token account of the mint."""
        return spl.get_associated_token_address(self.wallet.pubkey(), self.mint)


async def retry_chain(call: Callable[[], Awaitable[Any]], timeout_s: float = 30) -> Any:
    """Call until the chain answers (the RPC fault switch fails the tests' calls too)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except ChainUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def new_whale(client: ChainClient, keys: ChainKeys, mint: Pubkey) -> Whale:
    """Fund a new wallet with SOL and `WHALE_ATOMS` of the mint (call with faults off)."""
    whale = Whale(Keypair(), mint)
    await client.request_airdrop(whale.wallet.pubkey(), 10 * 10**9)
    create = spl.create_associated_token_account(keys.payer.pubkey(), whale.wallet.pubkey(), mint)
    mint_to = spl.mint_to(spl.MintToParams(program_id=TOKEN_PROGRAM_ID, mint=mint,
                                           dest=whale.source,
                                           mint_authority=keys.mint_authority.pubkey(),
                                           amount=WHALE_ATOMS))  # fmt: skip
    await send_and_confirm(client, keys.payer, [create, mint_to], [keys.mint_authority])
    return whale


async def land_deposit(
    client: ChainClient, whale: Whale, vault: Pubkey, atoms: int
) -> tuple[str, int]:
    """Transfer `atoms` into a vault until one copy lands (a dropped one expires; then
    sign anew); return the landed signature and how many copies were signed anew."""
    params = spl.TransferParams(program_id=TOKEN_PROGRAM_ID, source=whale.source, dest=vault,
                                owner=whale.wallet.pubkey(), amount=atoms)  # fmt: skip
    move, resent = spl.transfer(params), 0
    while True:
        blockhash = await retry_chain(lambda: client.latest_blockhash("confirmed"))
        message = MessageV0.try_compile(whale.wallet.pubkey(), [move], [], blockhash.blockhash)
        tx = VersionedTransaction(message, [whale.wallet])
        with contextlib.suppress(AlreadyProcessedError):
            await retry_chain(partial(client.send_transaction, tx, skip_preflight=True))
        wait = partial(client.wait_for, tx.signatures[0], blockhash.last_valid_block_height)
        try:
            status = await retry_chain(partial(wait, "confirmed"), timeout_s=120)
        except TransactionExpiredError:
            resent += 1
            continue
        assert status.err is None, status
        return str(tx.signatures[0]), resent


async def landed_settles(url: str, client: ChainClient,
                          chain_id: int) -> list[tuple[int, str | None]]:  # fmt: skip
    """Return (batch id, error name or None) of every settle transaction of the market
    that landed, read from the market account's history."""
    found: list[tuple[int, str | None]] = []
    history = await client.signatures_since(market_pda(PROGRAM_ID, chain_id), None, "confirmed")
    async with AsyncClient(url) as raw:
        for entry in history:
            batch_id = await _settle_batch_id(raw, entry.signature)
            if batch_id is None:
                continue  # the market's creation
            error = None
            if entry.err is not None:
                code = program_error_code(entry.err)
                error = (None if code is None else error_name(code)) or str(entry.err)
            found.append((batch_id, error))
    return found


async def _settle_batch_id(raw: AsyncClient, signature: Signature) -> int | None:
    answer = await raw.get_transaction(signature, "base64", Confirmed, 0)
    assert answer.value is not None, signature
    tx = answer.value.transaction.transaction
    assert isinstance(tx, VersionedTransaction)
    keys = tx.message.account_keys
    for ix in tx.message.instructions:
        if keys[ix.program_id_index] == PROGRAM_ID and bytes(ix.data[:8]) == SETTLE_TAG:
            return int.from_bytes(bytes(ix.data[16:24]), "little")  # market id, then batch id
    return None


async def soon(check: Callable[[], Awaitable[Any]], timeout_s: float = 5) -> bool:
    """Poll `check` until it holds (True) or `timeout_s` has passed (False)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout_s: float) -> Any:
    """Poll `check` until it answers something true; return it (fail after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while not (found := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return found


async def market_ids(conn: asyncpg.Connection, symbol: str) -> tuple[int, int]:
    """Return a market's database id and its chain market id."""
    row = await conn.fetchrow(
        "SELECT m.market_id, b.mint AS base, q.mint AS quote FROM markets m "
        "JOIN assets b ON b.asset_id = m.base_asset_id "
        "JOIN assets q ON q.asset_id = m.quote_asset_id WHERE m.symbol = $1", symbol)  # fmt: skip
    mints = Pubkey.from_string(row["base"]), Pubkey.from_string(row["quote"])
    return int(row["market_id"]), chain_market_id(*mints)


async def agreed_vaults(
    conn: asyncpg.Connection, client: ChainClient, namespace: str, shards: int,
    assets: Sequence[str], *, timeout_s: float = 60,
) -> list[VaultReserves]:  # fmt: skip
    """Return the assets' vault rows of a gathering whose reads agree (`gather_once`)."""

    async def holdings() -> list[Holdings]:
        handles = [ray.get_actor(f"ledger:{i}", namespace=namespace) for i in range(shards)]
        return list(await asyncio.gather(*(h.holdings.remote() for h in handles)))

    async def agreed() -> Gathered | None:
        found = await gather_once(conn, client, PROGRAM_ID, holdings)
        return found if found.agreed else None

    gathered: Gathered = await until("reads that agree", agreed, timeout_s)
    return [v for v in gathered.vaults if v.asset in assets]


async def applied_once(
    url: str, client: ChainClient, chain_id: int, batch_ids: Sequence[int]
) -> Counter[str]:
    """Assert that the market's replay window holds every batch id and that exactly one
    settle transaction of each landed successfully (none was applied twice); return how
    many landed refused, by error (the program's refusals of duplicates among them)."""
    data = await client.account_data(market_pda(PROGRAM_ID, chain_id), "finalized")
    assert data is not None
    window = decode_market(data).batches
    assert all(window.contains(b) for b in batch_ids), batch_ids
    landed = await landed_settles(url, client, chain_id)
    ok = Counter(b for b, error in landed if error is None)
    assert sorted(ok.elements()) == sorted(batch_ids), (ok, batch_ids)
    return Counter(error for _, error in landed if error is not None)


async def calm(url: str) -> None:
    """Turn the embedded chain's fault switches off."""
    await rpc(url, "clob_dropTransactions", 0)
    await rpc(url, "clob_failRequests", 0)
    await rpc(url, "clob_delayConfirmations", 0)
