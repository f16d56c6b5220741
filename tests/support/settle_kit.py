"""Helpers of the settlement tests on the embedded chain: a market of two new mints with
funded vaults, balanced deltas, and a settle transaction sent the product's way
(simulate, size the compute budget, send, confirm) with its effects checked."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import spl.token.instructions as spl
from solders.instruction import Instruction as SolanaInstruction
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from actors.accounts import AccountId
from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys
from actors.chain.program import (
    PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    chain_market_id,
    ix_register_vault,
    vault_pda,
)
from actors.custody.setup import AssetPlan, MarketPlan, ensure_exchange, send_and_confirm
from actors.settlement.trades import FEE_VAULT, Instruction, VaultKey
from actors.settlement.tx import (
    MAX_COMPUTE_UNITS,
    MAX_TX_BYTES,
    SettleContext,
    build_settle_tx,
    compute_unit_limit,
    tx_size,
    vault_of,
)

SOL = 10**9
FUNDED_ATOMS = 1_000_000
"""What each user vault holds at the start: far more than any test's deltas move."""
MAX_DELTA_ATOMS = 1_000
PRIORITY_FEE = 1_000  # micro-lamports per compute unit


@dataclass
class SettleMarket:
    """A market on the embedded chain, its users' funded vaults and its batch ids."""

    client: ChainClient
    keys: ChainKeys
    ctx: SettleContext
    accounts: list[AccountId]
    batch_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def vault_keys(self) -> list[VaultKey]:
        """Every user vault of the market, then the quote fee vault."""
        users: list[VaultKey] = [(a, s) for a in self.accounts for s in ("base", "quote")]
        return [*users, FEE_VAULT]


async def settle_market(
    client: ChainClient, keys: ChainKeys, users: int, ids_from: int = 1
) -> SettleMarket:
    """Set up a market of two new mints on the session's exchange, with a base and a quote
    vault holding `FUNDED_ATOMS` for each of `users` accounts."""
    for key in (keys.payer, keys.operator):
        await client.request_airdrop(key.pubkey(), 100 * SOL)
    plans = [AssetPlan(s, 6, None, cap_atoms=10**12, window_slots=1_000) for s in ("B", "Q")]
    mints = await ensure_exchange(client, PROGRAM_ID, keys, plans, [])
    market_id = chain_market_id(mints["B"], mints["Q"])
    known = [AssetPlan(p.symbol, 6, mints[p.symbol], 10**12, 1_000) for p in plans]
    await ensure_exchange(client, PROGRAM_ID, keys, known, [MarketPlan(market_id, "B", "Q")])
    ctx = SettleContext(PROGRAM_ID, keys.operator, market_id, mints["B"], mints["Q"])
    market = SettleMarket(
        client, keys, ctx, [AccountId(i) for i in range(ids_from, ids_from + users)]
    )
    await _fund_vaults(market)
    return market


async def _fund_vaults(market: SettleMarket) -> None:
    ctx, operator = market.ctx, market.keys.operator
    registers: list[SolanaInstruction] = []
    mints: list[SolanaInstruction] = []
    for account in market.accounts:
        for mint in (ctx.base_mint, ctx.quote_mint):
            registers.append(ix_register_vault(PROGRAM_ID, operator=operator.pubkey(),
                                               mint=mint, account_id=account))  # fmt: skip
            mints.append(spl.mint_to(spl.MintToParams(
                program_id=TOKEN_PROGRAM_ID, mint=mint, dest=vault_pda(PROGRAM_ID, mint, account),
                mint_authority=market.keys.mint_authority.pubkey(), amount=FUNDED_ATOMS,
            )))  # fmt: skip
    for start in range(0, len(registers), 6):
        await send_and_confirm(market.client, operator, registers[start : start + 6])
    authority = market.keys.mint_authority
    for start in range(0, len(mints), 8):
        await send_and_confirm(market.client, market.keys.payer, mints[start : start + 8],
                               [authority])  # fmt: skip


def balanced(vaults: Sequence[VaultKey], rng: random.Random) -> Instruction:
    """Return random deltas for `vaults`, summing to zero per side (each side needs two
    vaults or none); a fee vault only receives (it holds just the fees)."""
    out: list[tuple[VaultKey, int]] = []
    for side in ("base", "quote"):
        group = sorted((v for v in vaults if v[1] == side), key=lambda v: v[0] is None)
        deltas = [rng.randint(0 if v[0] is None else -MAX_DELTA_ATOMS, MAX_DELTA_ATOMS)
                  for v in group[1:]]  # fmt: skip
        out += zip(group, [-sum(deltas), *deltas], strict=True)
    return tuple(out)


def trade(buyer: AccountId, seller: AccountId, base: int, quote: int, fee: int) -> Instruction:
    """Return one unnetted trade's entries: the buyer pays `quote + fee`, the seller gets
    `quote` and the fee vault `fee`."""
    return (
        ((buyer, "base"), base), ((seller, "base"), -base),
        ((buyer, "quote"), -(quote + fee)), ((seller, "quote"), quote), (FEE_VAULT, fee),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Landed:
    """A settle transaction that landed: what it cost."""

    signature: Signature
    tx_bytes: int
    units_consumed: int
    cu_limit: int


async def land(market: SettleMarket, instructions: Sequence[Instruction]) -> Landed:
    """Simulate, size, send and confirm a settle transaction; check that its measured size
    is `tx_size`'s and that every vault moved by exactly its deltas' sum."""
    client, ctx = market.client, market.ctx
    batch_id = next(market.batch_ids)
    for _ in instructions[1:]:
        next(market.batch_ids)
    blockhash = await client.latest_blockhash("confirmed")

    def build(cu_limit: int) -> VersionedTransaction:
        return build_settle_tx(ctx, batch_id=batch_id, instructions=instructions,
                               blockhash=blockhash.blockhash, cu_limit=cu_limit,
                               cu_price=PRIORITY_FEE)  # fmt: skip

    simulation = await client.simulate(build(MAX_COMPUTE_UNITS))
    assert simulation.ok and simulation.units_consumed, (simulation.err, simulation.logs)
    limit = compute_unit_limit(simulation.units_consumed)
    tx = build(limit)
    size = len(bytes(tx))
    assert size == tx_size(ctx, [[key for key, _ in ix] for ix in instructions]) <= MAX_TX_BYTES
    moved: dict[VaultKey, int] = {}
    for key, delta in itertools.chain.from_iterable(instructions):
        moved[key] = moved.get(key, 0) + delta
    vaults = {key: vault_of(ctx, key) for key in moved}
    before = await client.token_balances(list(vaults.values()), "confirmed")
    signature = await client.send_transaction(tx)
    await client.wait_for(signature, blockhash.last_valid_block_height, "confirmed")
    after = await client.token_balances(list(vaults.values()), "confirmed")
    for key, address in vaults.items():
        assert after[address] == (before[address] or 0) + moved[key], key
    landed = await client.transaction(signature)
    assert landed is not None and landed.err is None
    changes = {c.account: c.delta_atoms for c in landed.token_changes if c.delta_atoms}
    assert changes == {vaults[k]: d for k, d in moved.items() if d}, "meta's token balances"
    return Landed(signature, size, simulation.units_consumed, limit)
