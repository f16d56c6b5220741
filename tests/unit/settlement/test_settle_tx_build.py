"""`actors.settlement.tx` without a chain: instructions, batch ids, budgets and sizes."""

from __future__ import annotations

import itertools

import pytest
from solders.compute_budget import ID as COMPUTE_BUDGET_ID
from solders.hash import Hash
from solders.keypair import Keypair

from actors.accounts import AccountId
from actors.chain import program as prog
from actors.settlement.trades import FEE_VAULT, Instruction, VaultKey
from actors.settlement.tx import (
    MAX_COMPUTE_UNITS,
    MAX_TX_BYTES,
    SettleContext,
    build_settle_tx,
    compute_unit_limit,
    fits,
    tx_size,
    vault_of,
)

CTX = SettleContext(prog.PROGRAM_ID, Keypair(), 77, Keypair().pubkey(), Keypair().pubkey())
ONE, TWO = AccountId(1), AccountId(2)
TRADE: Instruction = (((ONE, "base"), 5), ((TWO, "base"), -5), (FEE_VAULT, 0))


def test_vault_keys_map_to_the_side_s_mint() -> None:
    assert vault_of(CTX, (ONE, "base")) == prog.vault_pda(CTX.program_id, CTX.base_mint, ONE)
    assert vault_of(CTX, (ONE, "quote")) == prog.vault_pda(CTX.program_id, CTX.quote_mint, ONE)
    assert vault_of(CTX, FEE_VAULT) == prog.fee_vault_pda(CTX.program_id, CTX.quote_mint)


@pytest.mark.parametrize(("units", "limit"), [(0, 1_000), (10_001, 12_002), (2_000_000, 1_400_000)])
def test_the_unit_limit_adds_a_tenth_rounded_up_and_1000_within_the_ceiling(
    units: int, limit: int
) -> None:
    assert compute_unit_limit(units) == limit


def test_the_budget_comes_first_and_instructions_take_consecutive_batch_ids() -> None:
    tx = build_settle_tx(CTX, batch_id=40, instructions=[TRADE, TRADE], blockhash=Hash.default(),
                         cu_limit=9_000, cu_price=3)  # fmt: skip
    message = tx.message
    keys = message.account_keys
    programs = [keys[ix.program_id_index] for ix in message.instructions]
    assert programs == [COMPUTE_BUDGET_ID, COMPUTE_BUDGET_ID, CTX.program_id, CTX.program_id]
    # settle's data: 8 bytes of discriminator, then market_id and batch_id as u64 LE.
    ids = [int.from_bytes(bytes(ix.data)[16:24], "little") for ix in message.instructions[2:]]
    assert ids == [40, 41]
    assert int.from_bytes(bytes(message.instructions[2].data)[8:16], "little") == 77
    assert keys[0] == CTX.operator.pubkey() and tx.verify_with_results() == [True]
    unlimited = build_settle_tx(CTX, batch_id=40, instructions=[TRADE], blockhash=Hash.default(),
                                cu_limit=None, cu_price=3)  # fmt: skip
    assert len(unlimited.message.instructions) == 2


def test_a_transaction_needs_an_instruction_and_each_one_the_program_s_bounds() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_settle_tx(CTX, batch_id=1, instructions=[], blockhash=Hash.default(),
                        cu_limit=None, cu_price=0)  # fmt: skip
    too_many: Instruction = tuple(
        ((AccountId(i), "base"), 0) for i in range(prog.MAX_SETTLE_ENTRIES + 1)
    )
    with pytest.raises(ValueError, match="at most"):
        build_settle_tx(CTX, batch_id=1, instructions=[too_many], blockhash=Hash.default(),
                        cu_limit=MAX_COMPUTE_UNITS, cu_price=0)  # fmt: skip


def test_the_size_depends_on_the_vaults_only_and_grows_41_bytes_a_vault() -> None:
    keys: list[VaultKey] = [(AccountId(i), "base") for i in range(1, 30)]
    sizes = [tx_size(CTX, [keys[:n]]) for n in range(1, 30)]
    # A key, its index and an i64 each; once, the data's length takes a second byte.
    assert {b - a for a, b in itertools.pairwise(sizes)} == {41, 42}
    extremes: Instruction = ((keys[0], -(2**62)),)
    signed = build_settle_tx(CTX, batch_id=2**63, instructions=[extremes],
                             blockhash=Hash(bytes(range(32))), cu_limit=1,
                             cu_price=2**60)  # fmt: skip
    assert len(bytes(signed)) == sizes[0]
    largest = max(n for n in range(1, 30) if sizes[n - 1] <= MAX_TX_BYTES)
    assert fits(CTX, [keys[:largest]]) and not fits(CTX, [keys[: largest + 1]])
