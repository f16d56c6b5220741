"""The settle transaction: built, signed and measured from a batch plan's instructions.

A settle transaction is `[SetComputeUnitLimit, SetComputeUnitPrice]` and one `settle`
instruction per planned instruction (netted: one; unnetted: one per trade), batch ids
`batch_id + i`, in a v0 message the operator pays and signs, optionally compiled against
the market's address lookup tables. Pure: nothing here talks to the chain.

Sizes are measured, never estimated: `tx_size` serialises a real signed transaction with
the same accounts. A netted transaction's size depends only on its set of vaults (every
delta is an i64, every id a u64), so a planner re-measures only when a new vault comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction as SolanaInstruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from actors.accounts import AccountId
from actors.chain.program import fee_vault_pda, ix_settle, vault_pda
from actors.settlement.trades import Instruction, VaultKey

MAX_TX_BYTES = 1232
"""Solana's limit on a serialised transaction (the IPv6 MTU less headers)."""
MAX_COMPUTE_UNITS = 1_400_000
"""A transaction's compute-unit ceiling: the limit a simulation runs with, so it never
stops short of what the transaction needs."""
CU_MARGIN_PCT = 10
CU_MARGIN_UNITS = 1_000
_SIZING_CU_LIMIT = MAX_COMPUTE_UNITS  # a u32 on the wire whatever its value


@dataclass(frozen=True, slots=True)
class SettleContext:
    """What every settle transaction of one market needs.

    Attributes:
        program_id: The exchange program.
        operator: Signs every settle and pays its fee.
        chain_market_id: The market's id on chain (`actors.chain.program.chain_market_id`).
        base_mint: The market's base mint.
        quote_mint: The market's quote mint.
        lookup_tables: Address lookup tables the message is compiled against (usable ones).
    """

    program_id: Pubkey
    operator: Keypair
    chain_market_id: int
    base_mint: Pubkey
    quote_mint: Pubkey
    lookup_tables: tuple[AddressLookupTableAccount, ...] = ()


@cache
def _vault(program_id: Pubkey, mint: Pubkey, account: AccountId | None) -> Pubkey:
    # Deriving a PDA searches bumps; the planner asks for the same vaults again and again.
    if account is None:
        return fee_vault_pda(program_id, mint)
    return vault_pda(program_id, mint, account)


def vault_of(ctx: SettleContext, key: VaultKey) -> Pubkey:
    """Return a vault key's token account: a user vault, or the side's fee vault."""
    account, side = key
    return _vault(ctx.program_id, ctx.base_mint if side == "base" else ctx.quote_mint, account)


def compute_unit_limit(simulated_units: int) -> int:
    """Return the unit limit for a transaction that simulated at `simulated_units`: 10 %
    and 1,000 units of margin (the state may change between simulation and landing),
    capped at the transaction ceiling."""
    margin = -(-simulated_units * CU_MARGIN_PCT // 100)  # rounded up
    return min(simulated_units + margin + CU_MARGIN_UNITS, MAX_COMPUTE_UNITS)


def build_settle_tx(
    ctx: SettleContext,
    *,
    batch_id: int,
    instructions: Sequence[Instruction],
    blockhash: Hash,
    cu_limit: int | None,
    cu_price: int,
) -> VersionedTransaction:
    """Build and sign the settle transaction of a batch.

    Args:
        ctx: The market's context.
        batch_id: The first instruction's batch id; instruction i gets `batch_id + i`.
        instructions: The planned instructions' (vault, delta) entries.
        blockhash: The blockhash to sign with.
        cu_limit: The compute-unit limit; None: no limit instruction (simulate with
            `MAX_COMPUTE_UNITS` instead to keep the size of the final transaction).
        cu_price: The priority fee, in micro-lamports per compute unit.

    Raises:
        ValueError: No instruction, or one `ix_settle` refuses (too many entries, a delta
            outside i64, an id outside u64).
    """
    if not instructions:
        raise ValueError("a settle transaction needs at least one instruction")
    budget = [] if cu_limit is None else [set_compute_unit_limit(cu_limit)]
    budget.append(set_compute_unit_price(cu_price))
    settles = [_settle_ix(ctx, batch_id + i, entries) for i, entries in enumerate(instructions)]
    payer = ctx.operator.pubkey()
    message = MessageV0.try_compile(payer, budget + settles, list(ctx.lookup_tables), blockhash)
    return VersionedTransaction(message, [ctx.operator])


def _settle_ix(ctx: SettleContext, batch_id: int, entries: Instruction) -> SolanaInstruction:
    return ix_settle(
        ctx.program_id, operator=ctx.operator.pubkey(), market_id=ctx.chain_market_id,
        batch_id=batch_id, entries=[(vault_of(ctx, key), delta) for key, delta in entries],
    )  # fmt: skip


def tx_size(ctx: SettleContext, vault_sets: Sequence[Sequence[VaultKey]]) -> int:
    """Return the serialised size in bytes of a settle transaction with these vaults.

    One instruction per vault set; deltas, ids and the blockhash are dummies of the same
    encoded size, and the signature is a real one, so the size is the real transaction's.
    """
    instructions = [tuple((key, 0) for key in vaults) for vaults in vault_sets]
    tx = build_settle_tx(ctx, batch_id=0, instructions=instructions, blockhash=Hash.default(),
                         cu_limit=_SIZING_CU_LIMIT, cu_price=0)  # fmt: skip
    return len(bytes(tx))


def fits(ctx: SettleContext, vault_sets: Sequence[Sequence[VaultKey]]) -> bool:
    """Tell whether a settle transaction with these vaults fits `MAX_TX_BYTES` (the
    planner's measure)."""
    return tx_size(ctx, vault_sets) <= MAX_TX_BYTES
