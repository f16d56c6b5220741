"""Vaults and withdrawals of the exchange program in the Solana VM (LiteSVM): deposit
addresses, the rolling outflow cap and its admin co-signed path, the withdrawal replay
window, halting, and every account check on the way."""

from __future__ import annotations

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.accounts import AccountId
from actors.chain import program as prog
from tests.support.program_kit import (
    Exchange,
    ProgramChain,
    funded_vault,
    program_elf,
    setup_exchange,
    swap,
    unsigned,
)

pytestmark = pytest.mark.litesvm  # the VM in this process: run last (tests/conftest.py)

CAP = 1_000
WINDOW = 100


@pytest.fixture(scope="module")
def elf() -> bytes:
    return program_elf()


@pytest.fixture
def ex(elf: bytes) -> Exchange:
    return setup_exchange(ProgramChain(elf), cap_atoms=CAP, window_slots=WINDOW)


@pytest.fixture
def user(ex: Exchange) -> Keypair:
    return ex.chain.funded()


@pytest.fixture
def dest(ex: Exchange, user: Keypair) -> Pubkey:
    """The user's own token account of the base mint (a withdrawal's destination)."""
    return ex.chain.token_account(ex.base, user.pubkey())


def _withdraw(
    ex: Exchange, dest: Pubkey, withdrawal_id: int, amount: int, account_id: int = 1
) -> Instruction:
    chain = ex.chain
    return prog.ix_withdraw(
        chain.program_id,
        operator=chain.operator.pubkey(),
        mint=ex.base,
        account_id=AccountId(account_id),
        withdrawal_id=withdrawal_id,
        amount_atoms=amount,
        destination=dest,
    )


def _approved(ex: Exchange, dest: Pubkey, withdrawal_id: int, amount: int) -> Instruction:
    chain = ex.chain
    return prog.ix_withdraw_approved(
        chain.program_id,
        operator=chain.operator.pubkey(),
        admin=chain.admin.pubkey(),
        mint=ex.base,
        account_id=AccountId(1),
        withdrawal_id=withdrawal_id,
        amount_atoms=amount,
        destination=dest,
    )


def _used(ex: Exchange) -> int:
    return prog.decode_asset(ex.chain.data(prog.asset_pda(ex.chain.program_id, ex.base))).used_atoms


# register_vault and deposits


def test_a_registered_vault_is_a_deposit_address_any_wallet_can_pay(
    ex: Exchange, user: Keypair, dest: Pubkey
) -> None:
    chain = ex.chain
    vault = funded_vault(ex, ex.base, 1, 0)
    data = chain.data(vault)
    assert data[:32] == bytes(ex.base)
    assert data[32:64] == bytes(prog.authority_pda(chain.program_id))
    chain.mint_to(ex.base, dest, 50)
    chain.transfer(dest, user, vault, 50)  # a plain SPL transfer is a deposit
    assert chain.balance(vault) == 50


def test_register_vault_needs_the_operator(ex: Exchange) -> None:
    chain = ex.chain
    intruder = chain.funded()
    ix = prog.ix_register_vault(
        chain.program_id, operator=intruder.pubkey(), mint=ex.base, account_id=AccountId(1)
    )
    assert chain.error(ix, intruder) == "WrongOperator"
    ix = prog.ix_register_vault(
        chain.program_id, operator=chain.operator.pubkey(), mint=ex.base, account_id=AccountId(1)
    )
    assert chain.error(unsigned(ix, "registerVault", "operator")) == "OperatorSignatureMissing"
    assert not chain.exists(prog.vault_pda(chain.program_id, ex.base, AccountId(1)))


def test_register_vault_checks_the_mint_the_pda_and_runs_once(ex: Exchange) -> None:
    chain = ex.chain
    pid, operator = chain.program_id, chain.operator.pubkey()
    ix = prog.ix_register_vault(pid, operator=operator, mint=ex.base, account_id=AccountId(1))
    wrong_mint = swap(ix, "registerVault", "asset", prog.asset_pda(pid, ex.quote))
    assert chain.error(wrong_mint, chain.operator) == "MintMismatch"
    other_id = swap(ix, "registerVault", "vault", prog.vault_pda(pid, ex.base, AccountId(2)))
    assert chain.error(other_id, chain.operator) == "VaultPdaMismatch"
    chain.ok(ix, chain.operator)
    assert chain.error(ix, chain.operator) == "AlreadyInitialized"


@pytest.mark.parametrize("lamports", [5_000, 10**9], ids=["below-rent", "above-rent"])
def test_a_deposit_address_someone_prefunded_can_still_be_registered(
    ex: Exchange, lamports: int
) -> None:
    chain = ex.chain
    vault = prog.vault_pda(chain.program_id, ex.base, AccountId(1))
    chain.svm.airdrop(vault, lamports)  # the System program would refuse to create it
    assert funded_vault(ex, ex.base, 1, 10) == vault
    assert chain.balance(vault) == 10
    assert chain.data(vault)[32:64] == bytes(prog.authority_pda(chain.program_id))


# withdraw


def test_withdraw_pays_the_destination_and_counts_in_the_bucket(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    vault = funded_vault(ex, ex.base, 1, 700)
    chain.ok(_withdraw(ex, dest, 1, 300), chain.operator)
    assert (chain.balance(vault), chain.balance(dest), _used(ex)) == (400, 300, 300)
    exchange = prog.decode_exchange(chain.data(prog.exchange_pda(chain.program_id)))
    assert exchange.withdrawals.contains(1)


def test_a_withdrawal_id_applies_once(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 700)
    chain.ok(_withdraw(ex, dest, 42, 100), chain.operator)
    assert chain.error(_withdraw(ex, dest, 42, 100), chain.operator) == "WithdrawalAlreadyApplied"
    assert chain.error(_approved(ex, dest, 42, 100), chain.operator, chain.admin) == (
        "WithdrawalAlreadyApplied"
    )
    assert chain.balance(dest) == 100


def test_an_id_left_below_the_window_is_refused_for_ever(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 700)
    chain.ok(_withdraw(ex, dest, 5 + prog.REPLAY_WINDOW_IDS, 1), chain.operator)
    assert chain.error(_withdraw(ex, dest, 5, 1), chain.operator) == "WithdrawalTooOld"
    chain.ok(_withdraw(ex, dest, 6, 1), chain.operator)  # still inside the window


def test_the_operator_alone_stops_at_the_cap_and_the_bucket_drains(
    ex: Exchange, dest: Pubkey
) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 10 * CAP)
    chain.ok(_withdraw(ex, dest, 1, CAP - 100), chain.operator)
    assert chain.error(_withdraw(ex, dest, 2, 101), chain.operator) == "OverWithdrawalCap"
    chain.ok(_withdraw(ex, dest, 3, 100), chain.operator)  # exactly the cap
    chain.warp(WINDOW // 4)  # a quarter of the window drains a quarter of the cap
    assert chain.error(_withdraw(ex, dest, 4, CAP // 4 + 1), chain.operator) == "OverWithdrawalCap"
    chain.ok(_withdraw(ex, dest, 5, CAP // 4), chain.operator)
    assert chain.balance(dest) == CAP + CAP // 4


def test_the_admin_co_signs_past_the_cap_and_it_still_counts(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 10 * CAP)
    chain.ok(_approved(ex, dest, 1, 3 * CAP), chain.operator, chain.admin)
    assert (chain.balance(dest), _used(ex)) == (3 * CAP, 3 * CAP)
    assert chain.error(_withdraw(ex, dest, 2, 1), chain.operator) == "OverWithdrawalCap"


def test_the_co_signed_path_needs_the_real_admin(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 10 * CAP)
    intruder = chain.funded()
    forged = swap(_approved(ex, dest, 1, 3 * CAP), "withdrawApproved", "admin", intruder.pubkey())
    assert chain.error(forged, chain.operator, intruder) == "WrongAdmin"
    missing = unsigned(_approved(ex, dest, 1, 3 * CAP), "withdrawApproved", "admin")
    assert chain.error(missing, chain.operator) == "AdminSignatureMissing"
    assert chain.balance(dest) == 0


def test_withdraw_needs_the_operator(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 700)
    intruder = chain.funded()
    forged = swap(_withdraw(ex, dest, 1, 100), "withdraw", "operator", intruder.pubkey())
    assert chain.error(forged, intruder) == "WrongOperator"
    missing = unsigned(_withdraw(ex, dest, 1, 100), "withdraw", "operator")
    assert chain.error(missing) == "OperatorSignatureMissing"
    assert chain.balance(dest) == 0


def test_a_halted_exchange_pays_no_withdrawal_until_resumed(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    pid, admin = chain.program_id, chain.admin.pubkey()
    funded_vault(ex, ex.base, 1, 700)
    chain.ok(prog.ix_update_exchange(pid, admin=admin, status=prog.STATUS_HALTED), chain.admin)
    assert chain.error(_withdraw(ex, dest, 1, 100), chain.operator) == "ExchangeHalted"
    assert chain.error(_approved(ex, dest, 2, 100), chain.operator, chain.admin) == "ExchangeHalted"
    chain.ok(prog.ix_update_exchange(pid, admin=admin, status=prog.STATUS_ACTIVE), chain.admin)
    chain.ok(_withdraw(ex, dest, 1, 100), chain.operator)


def test_a_foreign_token_account_is_not_a_vault(ex: Exchange, user: Keypair, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 700)
    foreign = chain.token_account(ex.base, user.pubkey())
    chain.mint_to(ex.base, foreign, 700)
    ix = swap(_withdraw(ex, dest, 1, 100), "withdraw", "vault", foreign)
    assert chain.error(ix, chain.operator) == "VaultNotOwnedByAuthority"


def test_the_vault_of_another_account_id_is_refused(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 700)
    other = funded_vault(ex, ex.base, 2, 700)
    ix = swap(_withdraw(ex, dest, 1, 100), "withdraw", "vault", other)
    assert chain.error(ix, chain.operator) == "VaultPdaMismatch"
    assert chain.balance(other) == 700


def test_wrong_mints_are_refused(ex: Exchange, user: Keypair, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 700)
    quote_vault = funded_vault(ex, ex.quote, 1, 700)
    ix = swap(_withdraw(ex, dest, 1, 100), "withdraw", "vault", quote_vault)
    assert chain.error(ix, chain.operator) == "MintMismatch"
    quote_dest = chain.token_account(ex.quote, user.pubkey())
    assert (
        chain.error(_withdraw(ex, quote_dest, 1, 100), chain.operator) == "DestinationMintMismatch"
    )
    not_a_token_account = swap(_withdraw(ex, dest, 1, 100), "withdraw", "destination", ex.base)
    assert chain.error(not_a_token_account, chain.operator) == "NotATokenAccount"


def test_zero_and_more_than_the_vault_holds_are_refused(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 700)
    assert chain.error(_withdraw(ex, dest, 1, 0), chain.operator) == "ZeroAmount"
    assert chain.error(_withdraw(ex, dest, 1, 701), chain.operator) == "InsufficientVaultBalance"


def test_a_read_only_exchange_account_is_refused(ex: Exchange, dest: Pubkey) -> None:
    chain = ex.chain
    funded_vault(ex, ex.base, 1, 700)
    ix = _withdraw(ex, dest, 1, 100)
    index = 1  # the exchange, after the operator
    meta = ix.accounts[index]
    accounts = list(ix.accounts)
    accounts[index] = type(meta)(meta.pubkey, meta.is_signer, False)
    read_only = Instruction(ix.program_id, ix.data, accounts)
    assert chain.error(read_only, chain.operator) == "AccountNotWritable"


def test_a_bucket_that_would_pass_u64_is_an_overflow(elf: bytes) -> None:
    u64_max = prog.U64_MAX
    ex = setup_exchange(ProgramChain(elf), cap_atoms=u64_max, window_slots=u64_max)
    chain = ex.chain
    user = chain.funded()
    dest = chain.token_account(ex.base, user.pubkey())
    vault = funded_vault(ex, ex.base, 1, u64_max)
    chain.ok(_withdraw(ex, dest, 1, u64_max - 1), chain.operator)
    chain.transfer(dest, user, vault, 1)  # the vault holds 2 again; the bucket u64_max - 1
    assert chain.error(_withdraw(ex, dest, 2, 2), chain.operator) == "ArithmeticOverflow"
    assert _used(ex) == u64_max - 1


def test_a_frozen_vault_or_destination_is_refused_with_its_own_code(
    ex: Exchange, user: Keypair
) -> None:
    chain = ex.chain
    mint = chain.create_mint(freezable=True)
    add = prog.ix_add_asset(
        chain.program_id,
        admin=chain.admin.pubkey(),
        payer=chain.payer.pubkey(),
        mint=mint,
        cap_atoms=CAP,
        window_slots=WINDOW,
    )
    chain.ok(add, chain.admin)
    vault = funded_vault(ex, mint, 1, 100)

    def withdraw(withdrawal_id: int, destination: Pubkey) -> Instruction:
        return prog.ix_withdraw(
            chain.program_id,
            operator=chain.operator.pubkey(),
            mint=mint,
            account_id=AccountId(1),
            withdrawal_id=withdrawal_id,
            amount_atoms=10,
            destination=destination,
        )

    frozen_dest = chain.token_account(mint, user.pubkey())
    chain.freeze(mint, frozen_dest)
    assert chain.error(withdraw(1, frozen_dest), chain.operator) == "TokenAccountFrozen"
    dest = chain.token_account(mint, user.pubkey())
    chain.ok(withdraw(2, dest), chain.operator)
    chain.freeze(mint, vault)
    assert chain.error(withdraw(3, dest), chain.operator) == "TokenAccountFrozen"
    assert chain.balance(vault) == 90
