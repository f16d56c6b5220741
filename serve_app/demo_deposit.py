"""The demo accounts' funds arrive as real deposits on the embedded chain.

A demo wallet (`<data_dir>/demo_wallet.json`, mode 0600) gets the demo mints' tokens from
the mint authority, then transfers them into each demo account's deposit address (its
vault); the deposit listener credits each once at the confirmation depth, as it credits
any user's deposit. Nothing here touches the ledger.

Idempotent per (account, asset): a deposit address that already holds tokens, or has a
deposit on record, is not funded again, so every `clob up` on the same data directory may
run it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import spl.token.instructions as spl
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys, load_or_create_keypair
from actors.chain.program import TOKEN_PROGRAM_ID
from actors.custody.setup import send_and_confirm
from serve_app import units

WALLET_FILE = "demo_wallet.json"
WALLET_LAMPORTS = 10 * 10**9
"""SOL (in lamports) airdropped to the demo wallet for its fees when it runs low."""
CREDIT_TIMEOUT_S = 120.0
"""How long `clob up` waits for the demo deposits to be credited."""


@dataclass(frozen=True, slots=True)
class Deposit:
    """One demo deposit to make.

    Attributes:
        account_id: The account credited.
        asset: The asset's symbol.
        amount: The amount in whole units (a decimal string).
    """

    account_id: int
    asset: str
    amount: str


def wallet_path(data_dir: Path) -> Path:
    """Return the demo wallet's keypair file."""
    return (data_dir / WALLET_FILE).resolve()


async def fund_wallet(
    client: ChainClient, keys: ChainKeys, wallet: Keypair, mint: Pubkey, atoms: int
) -> Pubkey:
    """Give a wallet SOL for fees (an airdrop, when low) and mint `atoms` to its associated
    token account (the mint authority signs); return that token account.

    Raises:
        ChainError: A transaction was refused, failed or the chain is unreachable.
    """
    if await client.balance(wallet.pubkey()) < WALLET_LAMPORTS // 10:
        blockhash = await client.latest_blockhash("confirmed")
        airdrop = await client.request_airdrop(wallet.pubkey(), WALLET_LAMPORTS)
        # The faucet signs with a blockhash at least as new as this one.
        await client.wait_for(airdrop, blockhash.last_valid_block_height, "confirmed")
    source = spl.get_associated_token_address(wallet.pubkey(), mint)
    create = spl.create_idempotent_associated_token_account(
        keys.payer.pubkey(), wallet.pubkey(), mint
    )
    mint_to = spl.mint_to(spl.MintToParams(
        program_id=TOKEN_PROGRAM_ID, mint=mint, dest=source,
        mint_authority=keys.mint_authority.pubkey(), amount=atoms))  # fmt: skip
    await send_and_confirm(client, keys.payer, [create, mint_to], [keys.mint_authority])
    return source


def transfer(
    wallet: Keypair, source: Pubkey, mint: Pubkey, address: Pubkey, *, atoms: int, decimals: int
) -> Instruction:
    """Return the wallet's SPL transfer of `atoms` from its token account to an address."""
    return spl.transfer_checked(spl.TransferCheckedParams(
        program_id=TOKEN_PROGRAM_ID, source=source, mint=mint, dest=address,
        owner=wallet.pubkey(), amount=atoms, decimals=decimals))  # fmt: skip


async def mint_and_deposit(  # noqa: PLR0917 (the transfer's parts)
    client: ChainClient, keys: ChainKeys, wallet: Keypair, mint: Pubkey, address: Pubkey,
    atoms: int, decimals: int,
) -> str:  # fmt: skip
    """Mint `atoms` to the wallet (`fund_wallet`), then transfer them from it into a
    deposit address; return the transfer's signature.

    Raises:
        ChainError: A transaction was refused, failed or the chain is unreachable.
    """
    source = await fund_wallet(client, keys, wallet, mint, atoms)
    move = transfer(wallet, source, mint, address, atoms=atoms, decimals=decimals)
    return str((await send_and_confirm(client, wallet, [move])).signature)


async def fund(  # noqa: PLR0917 (what a deposit needs)
    chain_actor: Any, rpc_url: str, database_url: str, keys: ChainKeys, wallet: Keypair,
    deposits: Sequence[Deposit], progress: Callable[[str], None],
) -> list[str]:  # fmt: skip
    """Make each demo deposit not made yet and wait until all are credited.

    Returns:
        The signatures of the deposits made now.

    Raises:
        TimeoutError: They were not credited within `CREDIT_TIMEOUT_S`.
    """
    mints: Mapping[str, str] = await chain_actor.sync.remote()
    made = []
    conn = await asyncpg.connect(database_url)
    try:
        decimals = dict(await conn.fetch("SELECT symbol, decimals FROM assets"))
        async with ChainClient(rpc_url) as client:
            for d in deposits:
                address = Pubkey.from_string(
                    await chain_actor.deposit_address.remote(d.account_id, d.asset)
                )
                if await _funded(conn, client, address):
                    continue
                mint = Pubkey.from_string(mints[d.asset])
                places = int(decimals[d.asset])
                atoms = units.amount_to_atoms(d.amount, places, "amount")
                made.append(await mint_and_deposit(client, keys, wallet, mint, address, atoms,
                                                   places))  # fmt: skip
        if made:
            progress(f"demo deposits sent ({len(made)}); waiting for their confirmations")
            await _until_credited(conn, made)
    finally:
        await conn.close()
    return made


async def _funded(conn: asyncpg.Connection, client: ChainClient, address: Pubkey) -> bool:
    recorded = await conn.fetchval("SELECT 1 FROM deposits WHERE address = $1 LIMIT 1",
                                   str(address))  # fmt: skip
    return recorded is not None or bool(await client.token_balance(address))


async def _until_credited(conn: asyncpg.Connection, signatures: list[str]) -> None:
    deadline = time.monotonic() + CREDIT_TIMEOUT_S
    while True:
        credited = await conn.fetchval(
            "SELECT count(*) FROM deposits WHERE tx_signature = ANY($1) AND status = 'credited'",
            signatures,
        )
        if credited >= len(signatures):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(signatures) - credited} demo deposits not credited yet")
        await asyncio.sleep(0.5)


def load_wallet(data_dir: Path) -> Keypair:
    """Return the demo wallet, creating its file (mode 0600) on first use."""
    return load_or_create_keypair(wallet_path(data_dir))
