"""Netted settlement of the exchange program in the Solana VM (LiteSVM): the greedy
transfers, the per-market batch replay window, and every refusal of a batch."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from actors.chain import program as prog
from tests.support.program_kit import (
    Exchange,
    ProgramChain,
    funded_vault,
    program_elf,
    setup_exchange,
    swap,
)

pytestmark = pytest.mark.litesvm  # the VM in this process: run last (tests/conftest.py)


@pytest.fixture(scope="module")
def elf() -> bytes:
    return program_elf()


@pytest.fixture
def ex(elf: bytes) -> Exchange:
    return setup_exchange(ProgramChain(elf))


@pytest.fixture
def vaults(ex: Exchange) -> dict[str, Pubkey]:
    """A buyer (account 1) and a seller (account 2), each with base and quote vaults,
    and the quote fee vault."""
    return {
        "buyer_base": funded_vault(ex, ex.base, 1, 0),
        "buyer_quote": funded_vault(ex, ex.quote, 1, 10_000),
        "seller_base": funded_vault(ex, ex.base, 2, 500),
        "seller_quote": funded_vault(ex, ex.quote, 2, 0),
        "fee": prog.fee_vault_pda(ex.chain.program_id, ex.quote),
    }


def _settle(ex: Exchange, batch_id: int, entries: Sequence[tuple[Pubkey, int]]) -> Instruction:
    chain = ex.chain
    return prog.ix_settle(
        chain.program_id,
        operator=chain.operator.pubkey(),
        market_id=ex.market_id,
        batch_id=batch_id,
        entries=entries,
    )


def _trade(v: dict[str, Pubkey]) -> list[tuple[Pubkey, int]]:
    """The buyer gets 100 base for 1,000 quote plus a fee of 3; the seller pays 2 of fee."""
    return [
        (v["buyer_base"], 100),
        (v["seller_base"], -100),
        (v["buyer_quote"], -1_003),
        (v["seller_quote"], 998),
        (v["fee"], 5),
    ]


def test_a_netted_batch_moves_each_vault_by_its_delta(
    ex: Exchange, vaults: dict[str, Pubkey]
) -> None:
    chain = ex.chain
    before = {k: chain.balance(v) for k, v in vaults.items()}
    sent = chain.ok(_settle(ex, 1, _trade(vaults)), chain.operator)
    after = {k: chain.balance(v) for k, v in vaults.items()}
    for vault, delta in _trade(vaults):
        name = next(k for k, v in vaults.items() if v == vault)
        assert after[name] - before[name] == delta, name
    # One base transfer and two quote transfers (the buyer pays the seller, then the fee).
    transfers = [
        line for line in sent.logs if line.startswith(f"Program {prog.TOKEN_PROGRAM_ID} invoke")
    ]
    assert len(transfers) == 3
    market = prog.decode_market(chain.data(prog.market_pda(chain.program_id, ex.market_id)))
    assert market.batches.contains(1)


def test_a_batch_applies_once_per_market(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    chain.ok(_settle(ex, 9, _trade(vaults)), chain.operator)
    assert chain.error(_settle(ex, 9, _trade(vaults)), chain.operator) == "BatchAlreadyApplied"
    assert chain.balance(vaults["buyer_base"]) == 100
    chain.ok(_settle(ex, 10, _trade(vaults)), chain.operator)
    assert chain.balance(vaults["buyer_base"]) == 200


def test_a_batch_left_below_the_window_is_refused(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    chain.ok(_settle(ex, 3 + prog.REPLAY_WINDOW_IDS, _trade(vaults)), chain.operator)
    assert chain.error(_settle(ex, 3, _trade(vaults)), chain.operator) == "BatchTooOld"


def test_deltas_of_a_mint_must_sum_to_zero(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    entries = _trade(vaults)
    entries[4] = (vaults["fee"], 6)  # a fee from nowhere
    assert chain.error(_settle(ex, 1, entries), chain.operator) == "UnbalancedDeltas"
    # Balanced overall but not per mint: base paid with quote.
    cross = [(vaults["buyer_base"], 100), (vaults["buyer_quote"], -100)]
    assert chain.error(_settle(ex, 1, cross), chain.operator) == "UnbalancedDeltas"
    assert chain.balance(vaults["buyer_base"]) == 0


def test_a_sum_leaving_i64_is_an_overflow(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    # Credits of i64::MAX and 1 pass i64 before the debit of 1 could bring them back.
    entries = [
        (vaults["seller_quote"], prog.I64_MAX),
        (vaults["fee"], 1),
        (vaults["buyer_quote"], -1),
    ]
    assert chain.error(_settle(ex, 1, entries), chain.operator) == "ArithmeticOverflow"


def test_a_foreign_token_account_cannot_take_part(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    thief = chain.funded()
    foreign = chain.token_account(ex.base, thief.pubkey())
    entries = _trade(vaults)
    entries[0] = (foreign, 100)
    assert chain.error(_settle(ex, 1, entries), chain.operator) == "VaultNotOwnedByAuthority"
    assert chain.balance(foreign) == 0


def test_a_vault_of_another_mint_cannot_take_part(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    pid, admin, payer = chain.program_id, chain.admin.pubkey(), chain.payer.pubkey()
    third = chain.create_mint()
    add = prog.ix_add_asset(pid, admin=admin, payer=payer, mint=third, cap_atoms=1, window_slots=1)
    chain.ok(add, chain.admin)
    other = funded_vault(ex, third, 2, 100)
    entries = [(other, -100), (funded_vault(ex, third, 1, 0), 100)]
    assert chain.error(_settle(ex, 1, entries), chain.operator) == "VaultMintNotInMarket"
    assert chain.balance(other) == 100


def test_each_vault_appears_once(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    entries = [(vaults["seller_base"], -100), (vaults["seller_base"], 100)]
    assert chain.error(_settle(ex, 1, entries), chain.operator) == "DuplicateVault"


def test_a_vault_cannot_pay_more_than_it_holds(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    entries = [(vaults["seller_base"], -501), (vaults["buyer_base"], 501)]
    assert chain.error(_settle(ex, 1, entries), chain.operator) == "InsufficientVaultBalance"


def test_the_batch_shape_is_checked(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    assert chain.error(_settle(ex, 1, []), chain.operator) == "EmptyBatch"
    ix = _settle(ex, 1, _trade(vaults))
    fewer = Instruction(ix.program_id, ix.data, ix.accounts[:-1])
    assert chain.error(fewer, chain.operator) == "DeltaCountMismatch"
    too_many = prog.instruction(
        chain.program_id,
        "settle",
        [ex.market_id, 1, [0] * (prog.MAX_SETTLE_ENTRIES + 1)],
        _settle_accounts(ex),
        [AccountMeta(vaults["fee"], is_signer=False, is_writable=True)],
    )
    assert chain.error(too_many, chain.operator) == "TooManyEntries"
    with pytest.raises(ValueError, match="at most"):
        _settle(ex, 1, [(vaults["fee"], 0)] * (prog.MAX_SETTLE_ENTRIES + 1))


def _settle_accounts(ex: Exchange) -> dict[str, Pubkey]:
    pid = ex.chain.program_id
    return {
        "operator": ex.chain.operator.pubkey(),
        "exchange": prog.exchange_pda(pid),
        "market": prog.market_pda(pid, ex.market_id),
        "vault_authority": prog.authority_pda(pid),
        "token_program": prog.TOKEN_PROGRAM_ID,
    }


def test_settle_needs_the_operator_and_the_right_market(
    ex: Exchange, vaults: dict[str, Pubkey]
) -> None:
    chain = ex.chain
    intruder = chain.funded()
    forged = swap(_settle(ex, 1, _trade(vaults)), "settle", "operator", intruder.pubkey())
    assert chain.error(forged, intruder) == "WrongOperator"
    ix = prog.ix_settle(
        chain.program_id,
        operator=chain.operator.pubkey(),
        market_id=ex.market_id + 1,
        batch_id=1,
        entries=_trade(vaults),
    )
    wrong_id = swap(ix, "settle", "market", prog.market_pda(chain.program_id, ex.market_id))
    assert chain.error(wrong_id, chain.operator) == "MarketIdMismatch"
    not_a_market = swap(ix, "settle", "market", prog.asset_pda(chain.program_id, ex.base))
    assert chain.error(not_a_market, chain.operator) == "WrongAccountType"
    assert chain.balance(vaults["buyer_base"]) == 0


def test_a_halted_exchange_settles_nothing(ex: Exchange, vaults: dict[str, Pubkey]) -> None:
    chain = ex.chain
    halt = prog.ix_update_exchange(chain.program_id, admin=chain.admin.pubkey(), status=1)
    chain.ok(halt, chain.admin)
    assert chain.error(_settle(ex, 1, _trade(vaults)), chain.operator) == "ExchangeHalted"


def test_random_balanced_batches_move_every_vault_by_exactly_its_delta(ex: Exchange) -> None:
    chain = ex.chain
    rng = random.Random(15)
    pool = {
        mint: [funded_vault(ex, mint, account, 50_000) for account in range(1, 11)]
        for mint in (ex.base, ex.quote)
    }
    for batch_id in range(1, 9):
        entries: list[tuple[Pubkey, int]] = []
        for vaults in pool.values():
            chosen = rng.sample(vaults, rng.randint(2, 8))
            deltas = [rng.randint(-5_000, 5_000) for _ in chosen[:-1]]
            deltas.append(-sum(deltas))
            entries += zip(chosen, deltas, strict=True)
        rng.shuffle(entries)
        before = {vault: chain.balance(vault) for vault, _ in entries}
        chain.ok(_settle(ex, batch_id, entries), chain.operator)
        for vault, delta in entries:
            assert chain.balance(vault) == before[vault] + delta
