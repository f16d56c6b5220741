"""The exchange's accounts on chain, made on first start and checked on every start: the
demo mints (embedded chain), the program's exchange config, one asset config (with its fee
vault) per asset and one market config per market; and the users' vaults on demand.

Every step looks first and creates only what is missing, so a start that crashed half way
finishes on the next start. Transactions go through JSON-RPC like everything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import spl.token.instructions as spl
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction

from actors.accounts import AccountId
from actors.chain.client import ChainClient, SignatureStatus
from actors.chain.keys import ChainKeys
from actors.chain.program import (
    TOKEN_PROGRAM_ID,
    asset_pda,
    chain_market_id,
    exchange_pda,
    ix_add_asset,
    ix_add_market,
    ix_initialize,
    ix_register_vault,
    market_pda,
    vault_pda,
)

MINT_LEN = 82
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class AssetPlan:
    """An asset as the chain needs it.

    Attributes:
        symbol: Its symbol.
        decimals: Its decimals (a new mint gets them).
        mint: Its mint; None: create one (embedded chain only).
        cap_atoms: The program's rolling outflow cap per window.
        window_slots: The cap's window.
    """

    symbol: str
    decimals: int
    mint: Pubkey | None
    cap_atoms: int
    window_slots: int


@dataclass(frozen=True, slots=True)
class MarketPlan:
    """A market as the chain needs it: its two assets' symbols. Its id on chain is
    `chain_market_id` of their mints, not the database's id (see there)."""

    symbol: str
    base: str
    quote: str


async def send_and_confirm(
    client: ChainClient, payer: Keypair, instructions: Sequence[Instruction],
    signers: Sequence[Keypair] = (),
) -> SignatureStatus:  # fmt: skip
    """Send a transaction paid by `payer` and wait until it is confirmed.

    Raises:
        ChainError: Refused, failed, expired or unreachable (see `actors.chain.client`).
    """
    blockhash = await client.latest_blockhash("confirmed")
    message = MessageV0.try_compile(payer.pubkey(), list(instructions), [], blockhash.blockhash)
    unique = {k.pubkey(): k for k in (payer, *signers)}
    tx = VersionedTransaction(message, list(unique.values()))
    signature = await client.send_transaction(tx)
    return await client.wait_for(signature, blockhash.last_valid_block_height, "confirmed")


async def _exists(client: ChainClient, address: Pubkey) -> bool:
    return await client.account_data(address, "confirmed") is not None


async def create_mint(client: ChainClient, keys: ChainKeys, decimals: int) -> Pubkey:
    """Create an SPL mint whose authority is the mint authority key; return it."""
    mint = Keypair()
    rent = await client.minimum_balance_for_rent_exemption(MINT_LEN)
    payer = keys.payer.pubkey()
    instructions = [
        create_account(CreateAccountParams(from_pubkey=payer, to_pubkey=mint.pubkey(),
                                           lamports=rent, space=MINT_LEN,
                                           owner=TOKEN_PROGRAM_ID)),
        spl.initialize_mint(spl.InitializeMintParams(
            decimals=decimals, program_id=TOKEN_PROGRAM_ID, mint=mint.pubkey(),
            mint_authority=keys.mint_authority.pubkey(), freeze_authority=None)),
    ]  # fmt: skip
    await send_and_confirm(client, keys.payer, instructions, [mint])
    return mint.pubkey()


SETUP_IN_FLIGHT = 16
"""Setup transactions sent and awaited at once. Each waits for its confirmation (slots and
a poll); one after another, a start after many new assets and markets took a second per
few of them (a mint, an asset config and a market config each)."""


async def ensure_exchange(
    client: ChainClient, program_id: Pubkey, keys: ChainKeys, assets: Sequence[AssetPlan],
    markets: Sequence[MarketPlan],
) -> dict[str, Pubkey]:  # fmt: skip
    """Make whatever of the exchange's accounts is missing; return every asset's mint.

    Assets without a mint get a new one (the caller records it). The assets are made
    concurrently (up to `SETUP_IN_FLIGHT` at once), then the markets, which need them.
    """
    admin, payer = keys.admin, keys.payer
    if not await _exists(client, exchange_pda(program_id)):
        ix = ix_initialize(program_id, payer.pubkey(), admin.pubkey(), keys.operator.pubkey())
        await send_and_confirm(client, payer, [ix], [admin])
    slots = asyncio.Semaphore(SETUP_IN_FLIGHT)
    made = await _all(_ensure_asset(client, program_id, keys, a, slots=slots) for a in assets)
    mints = {asset.symbol: mint for asset, mint in zip(assets, made, strict=True)}
    await _all(_ensure_market(client, program_id, keys, mints, m, slots=slots) for m in markets)
    return mints


async def _all(steps: Iterable[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run the steps concurrently; return their results in order (the first failure
    cancels the rest and is raised)."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(step) for step in steps]
    return [task.result() for task in tasks]


async def _ensure_asset(
    client: ChainClient, program_id: Pubkey, keys: ChainKeys, asset: AssetPlan, *,
    slots: asyncio.Semaphore,
) -> Pubkey:  # fmt: skip
    async with slots:
        mint = asset.mint or await create_mint(client, keys, asset.decimals)
        if not await _exists(client, asset_pda(program_id, mint)):
            ix = ix_add_asset(
                program_id, admin=keys.admin.pubkey(), payer=keys.payer.pubkey(), mint=mint,
                cap_atoms=asset.cap_atoms, window_slots=asset.window_slots,
            )  # fmt: skip
            await send_and_confirm(client, keys.payer, [ix], [keys.admin])
        return mint


async def _ensure_market(
    client: ChainClient, program_id: Pubkey, keys: ChainKeys, mints: dict[str, Pubkey],
    market: MarketPlan, *, slots: asyncio.Semaphore,
) -> None:  # fmt: skip
    base, quote = mints[market.base], mints[market.quote]
    market_id = chain_market_id(base, quote)
    async with slots:
        if not await _exists(client, market_pda(program_id, market_id)):
            ix = ix_add_market(program_id, admin=keys.admin.pubkey(), payer=keys.payer.pubkey(),
                               market_id=market_id, base_mint=base,
                               quote_mint=quote)  # fmt: skip
            await send_and_confirm(client, keys.payer, [ix], [keys.admin])


async def ensure_vault(
    client: ChainClient, program_id: Pubkey, operator: Keypair, mint: Pubkey,
    account_id: AccountId,
) -> Pubkey:  # fmt: skip
    """Return an account's vault (deposit address) for a mint, registering it if needed."""
    vault = vault_pda(program_id, mint, account_id)
    if not await _exists(client, vault):
        ix = ix_register_vault(program_id, operator=operator.pubkey(), mint=mint,
                               account_id=account_id)  # fmt: skip
        await send_and_confirm(client, operator, [ix])
    return vault
