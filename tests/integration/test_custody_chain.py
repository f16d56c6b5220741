"""Custody's chain side against the embedded chain with the exchange program loaded, all
through JSON-RPC: first-start setup (idempotent), a vault as deposit address, a deposit
found in its history, withdrawals paid to a wallet, refused over the cap and never paid
twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import spl.token.instructions as spl
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.accounts import AccountId
from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys
from actors.chain.program import (
    PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    asset_pda,
    chain_market_id,
    decode_market,
    exchange_pda,
    market_pda,
)
from actors.custody.detect import Vault, deposits_in
from actors.custody.ports import WithdrawalJob
from actors.custody.rpc import RpcChain
from actors.custody.setup import (
    AssetPlan,
    MarketPlan,
    ensure_exchange,
    ensure_vault,
    send_and_confirm,
)
from tests.support.chain import advance
from tests.support.program_kit import program_elf

pytestmark = pytest.mark.timeout(120)
SOL = 10**9
CAP = 1_000


@dataclass
class World:
    url: str
    client: ChainClient
    keys: ChainKeys
    mint: Pubkey
    chain: RpcChain


@pytest.fixture
async def world(solana_rpc_url: str, chain_keys: ChainKeys) -> AsyncIterator[World]:
    program_elf()  # skip (or fail under CI) without the built program
    async with ChainClient(solana_rpc_url) as client:
        for key in (chain_keys.payer, chain_keys.operator):
            await client.request_airdrop(key.pubkey(), 100 * SOL)
        plan = [AssetPlan("USDC", 6, None, cap_atoms=CAP, window_slots=1_000_000)]
        mints = await ensure_exchange(client, PROGRAM_ID, chain_keys, plan, [])
        chain = RpcChain(client, PROGRAM_ID, chain_keys.operator, mints)
        yield World(solana_rpc_url, client, chain_keys, mints["USDC"], chain)


async def _wallet_with(world: World, atoms: int) -> tuple[Keypair, Pubkey]:
    """Return a wallet and its token account holding `atoms` of the world's mint."""
    wallet = Keypair()
    await world.client.request_airdrop(wallet.pubkey(), SOL)
    ata = spl.get_associated_token_address(wallet.pubkey(), world.mint)
    mint_to = spl.mint_to(spl.MintToParams(
        program_id=TOKEN_PROGRAM_ID, mint=world.mint, dest=ata,
        mint_authority=world.keys.mint_authority.pubkey(), amount=atoms))  # fmt: skip
    create = spl.create_associated_token_account(
        world.keys.payer.pubkey(), wallet.pubkey(), world.mint
    )
    await send_and_confirm(
        world.client, world.keys.payer, [create, mint_to], [world.keys.mint_authority]
    )
    return wallet, ata


async def _deposit(world: World, wallet: Keypair, source: Pubkey, vault: Pubkey, atoms: int) -> str:
    ix = spl.transfer_checked(spl.TransferCheckedParams(
        program_id=TOKEN_PROGRAM_ID, source=source, mint=world.mint, dest=vault,
        owner=wallet.pubkey(), amount=atoms, decimals=6))  # fmt: skip
    return str((await send_and_confirm(world.client, wallet, [ix])).signature)


async def test_setup_is_idempotent_and_keys_markets_by_their_mints(world: World) -> None:
    plan = [AssetPlan("USDC", 6, world.mint, CAP, 1_000_000)]
    again = await ensure_exchange(world.client, PROGRAM_ID, world.keys, plan, [])
    assert again == {"USDC": world.mint}
    for address in (exchange_pda(PROGRAM_ID), asset_pda(PROGRAM_ID, world.mint)):
        assert await world.client.account_data(address) is not None
    # A market is made at the id of its mints (the chain is shared by every test database,
    # so a database's market id would collide), once however often setup runs.
    plan.append(AssetPlan("SOL", 9, None, CAP, 1_000_000))
    market = MarketPlan("SOL-USDC", "SOL", "USDC")
    mints = await ensure_exchange(world.client, PROGRAM_ID, world.keys, plan, [market])
    plan[1] = AssetPlan("SOL", 9, mints["SOL"], CAP, 1_000_000)
    assert await ensure_exchange(world.client, PROGRAM_ID, world.keys, plan, [market]) == mints
    market_id = chain_market_id(mints["SOL"], world.mint)
    data = await world.client.account_data(market_pda(PROGRAM_ID, market_id))
    assert data is not None
    state = decode_market(data)
    expected = (market_id, mints["SOL"], world.mint)
    assert (state.market_id, state.base_mint, state.quote_mint) == expected


async def test_a_deposit_into_a_vault_is_found_in_its_history(world: World) -> None:
    account = AccountId(41)
    vault = await ensure_vault(world.client, PROGRAM_ID, world.keys.operator, world.mint, account)
    assert vault == await ensure_vault(
        world.client, PROGRAM_ID, world.keys.operator, world.mint, account
    )
    wallet, source = await _wallet_with(world, 500)
    signature = await _deposit(world, wallet, source, vault, 300)
    await advance(world.url, 2)
    registered, deposited = await world.chain.signatures_since(str(vault), None)
    assert deposited == signature
    known = {str(vault): Vault(str(vault), account, "USDC", str(world.mint))}
    ours = await world.chain.transaction(registered)
    assert ours is not None and str(PROGRAM_ID) in ours.programs
    assert deposits_in(ours, known, str(PROGRAM_ID)) == []  # the program made it: no deposit
    assert await world.chain.signatures_since(str(vault), registered) == [signature]
    tx = await world.chain.transaction(signature)
    assert tx is not None
    (seen,) = deposits_in(tx, known, str(PROGRAM_ID))
    assert (seen.amount_atoms, seen.signature) == (300, signature)
    statuses = await world.chain.statuses([signature])
    landed = statuses[signature]
    assert landed is not None and landed.error is None and landed.slot == tx.slot


async def _withdraw(world: World, job: WithdrawalJob) -> str | None:
    tx = await world.chain.build_withdrawal(job)
    await world.chain.send(tx)
    await world.chain.send(tx)  # the same bytes again: nothing more happens
    await advance(world.url, 2)
    landed = (await world.chain.statuses([tx.signature]))[tx.signature]
    assert landed is not None
    return landed.error


async def test_withdrawals_pay_a_wallet_once_and_stop_at_the_cap(world: World) -> None:
    account = AccountId(42)
    vault = await ensure_vault(world.client, PROGRAM_ID, world.keys.operator, world.mint, account)
    wallet, source = await _wallet_with(world, 2_000)
    await _deposit(world, wallet, source, vault, 2_000)
    destination = Keypair().pubkey()  # a wallet with no token account yet
    job = WithdrawalJob(9_001, account, "USDC", 400, str(destination))
    assert await _withdraw(world, job) is None
    ata = spl.get_associated_token_address(destination, world.mint)
    assert await world.client.token_balance(ata) == 400
    assert await _withdraw(world, job) == "WithdrawalAlreadyApplied"  # rebuilt: refused
    over = WithdrawalJob(9_002, account, "USDC", CAP - 400 + 1, str(destination))
    assert await _withdraw(world, over) == "OverWithdrawalCap"  # 400 of the window is used
    assert await world.client.token_balance(ata) == 400
    assert await world.client.token_balance(vault) == 1_600
