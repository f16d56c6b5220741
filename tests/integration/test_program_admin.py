"""The exchange program's admin instructions in the Solana VM (LiteSVM), and the
agreement of the committed IDL with the program."""

from __future__ import annotations

import hashlib
import re

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair

from actors.chain import program as prog
from tests.support.program_kit import (
    REPO_ROOT,
    Exchange,
    ProgramChain,
    program_elf,
    setup_exchange,
    swap,
    unsigned,
)

pytestmark = pytest.mark.litesvm  # the VM in this process: run last (tests/conftest.py)

U64_MAX = prog.U64_MAX


@pytest.fixture(scope="module")
def elf() -> bytes:
    return program_elf()


@pytest.fixture
def chain(elf: bytes) -> ProgramChain:
    return ProgramChain(elf)


@pytest.fixture
def ex(chain: ProgramChain) -> Exchange:
    return setup_exchange(chain, cap_atoms=1_000, window_slots=100)


def _init(chain: ProgramChain) -> Instruction:
    return prog.ix_initialize(
        chain.program_id, chain.payer.pubkey(), chain.admin.pubkey(), chain.operator.pubkey()
    )


def _add_asset(chain: ProgramChain, mint: object, window_slots: int = 100) -> Instruction:
    return prog.ix_add_asset(
        chain.program_id,
        admin=chain.admin.pubkey(),
        payer=chain.payer.pubkey(),
        mint=mint,  # type: ignore[arg-type]
        cap_atoms=500,
        window_slots=window_slots,
    )


# initialize


def test_initialize_creates_the_exchange_with_its_authorities(chain: ProgramChain) -> None:
    chain.ok(_init(chain), chain.admin)
    state = prog.decode_exchange(chain.data(prog.exchange_pda(chain.program_id)))
    assert state.admin == chain.admin.pubkey()
    assert state.operator == chain.operator.pubkey()
    assert state.authority == prog.authority_pda(chain.program_id)
    assert state.status == prog.STATUS_ACTIVE
    assert state.withdrawals.base == 0


def test_initialize_runs_once(chain: ProgramChain) -> None:
    chain.ok(_init(chain), chain.admin)
    assert chain.error(_init(chain), chain.admin) == "AlreadyInitialized"


def test_initialize_needs_the_admin_signature(chain: ProgramChain) -> None:
    assert chain.error(unsigned(_init(chain), "initialize", "admin")) == "AdminSignatureMissing"
    assert not chain.exists(prog.exchange_pda(chain.program_id))


def test_initialize_needs_the_payer_signature(chain: ProgramChain) -> None:
    other = chain.funded()
    ix = unsigned(swap(_init(chain), "initialize", "payer", other.pubkey()), "initialize", "payer")
    assert chain.error(ix, chain.admin) == "PayerSignatureMissing"


def test_initialize_refuses_an_exchange_account_off_its_pda(chain: ProgramChain) -> None:
    other = Keypair()
    ix = swap(_init(chain), "initialize", "exchange", other.pubkey())
    assert chain.error(ix, chain.admin) == "ExchangePdaMismatch"


def test_initialize_refuses_a_fake_system_program(chain: ProgramChain) -> None:
    ix = swap(_init(chain), "initialize", "systemProgram", prog.TOKEN_PROGRAM_ID)
    assert chain.error(ix, chain.admin) == "WrongSystemProgram"


# add_asset


def test_add_asset_creates_its_config_and_a_fee_vault_owned_by_the_authority(
    ex: Exchange,
) -> None:
    chain = ex.chain
    asset = prog.decode_asset(chain.data(prog.asset_pda(chain.program_id, ex.base)))
    fee_vault = prog.fee_vault_pda(chain.program_id, ex.base)
    assert (asset.mint, asset.fee_vault, asset.decimals) == (ex.base, fee_vault, 9)
    assert (asset.cap_atoms, asset.window_slots, asset.used_atoms) == (1_000, 100, 0)
    data = chain.data(fee_vault)
    assert data[:32] == bytes(ex.base)
    assert data[32:64] == bytes(prog.authority_pda(chain.program_id))


def test_add_asset_needs_the_admin(chain: ProgramChain) -> None:
    chain.ok(_init(chain), chain.admin)
    mint = chain.create_mint()
    intruder = chain.funded()
    ix = swap(_add_asset(chain, mint), "addAsset", "admin", intruder.pubkey())
    assert chain.error(ix, intruder) == "WrongAdmin"
    assert chain.error(unsigned(_add_asset(chain, mint), "addAsset", "admin")) == (
        "AdminSignatureMissing"
    )
    assert not chain.exists(prog.asset_pda(chain.program_id, mint))


def test_add_asset_refuses_what_is_not_a_mint(chain: ProgramChain) -> None:
    chain.ok(_init(chain), chain.admin)
    mint = chain.create_mint()
    not_a_mint = chain.token_account(mint, chain.payer.pubkey())
    assert chain.error(_add_asset(chain, not_a_mint), chain.admin) == "InvalidMint"


def test_add_asset_refuses_a_zero_window_and_a_second_add(chain: ProgramChain) -> None:
    chain.ok(_init(chain), chain.admin)
    mint = chain.create_mint()
    assert chain.error(_add_asset(chain, mint, window_slots=0), chain.admin) == "InvalidWindow"
    chain.ok(_add_asset(chain, mint), chain.admin)
    assert chain.error(_add_asset(chain, mint), chain.admin) == "AlreadyInitialized"


def test_add_asset_refuses_configs_off_their_pdas(chain: ProgramChain) -> None:
    chain.ok(_init(chain), chain.admin)
    mint, other = chain.create_mint(), chain.create_mint()
    wrong_asset = swap(
        _add_asset(chain, mint), "addAsset", "asset", prog.asset_pda(chain.program_id, other)
    )
    assert chain.error(wrong_asset, chain.admin) == "AssetPdaMismatch"
    wrong_fee = swap(
        _add_asset(chain, mint), "addAsset", "feeVault", prog.fee_vault_pda(chain.program_id, other)
    )
    assert chain.error(wrong_fee, chain.admin) == "FeeVaultPdaMismatch"
    fake_authority = swap(_add_asset(chain, mint), "addAsset", "vaultAuthority", Keypair().pubkey())
    assert chain.error(fake_authority, chain.admin) == "AuthorityPdaMismatch"
    fake_token = swap(_add_asset(chain, mint), "addAsset", "tokenProgram", prog.SYSTEM_PROGRAM_ID)
    assert chain.error(fake_token, chain.admin) == "WrongTokenProgram"


# add_market


def test_add_market_records_its_mints(ex: Exchange) -> None:
    market = prog.decode_market(ex.chain.data(prog.market_pda(ex.chain.program_id, ex.market_id)))
    assert (market.market_id, market.base_mint, market.quote_mint) == (
        ex.market_id,
        ex.base,
        ex.quote,
    )
    assert market.batches.base == 0


def test_add_market_refuses_one_asset_twice_and_accounts_of_another_type(ex: Exchange) -> None:
    chain = ex.chain
    pid, admin = chain.program_id, chain.admin.pubkey()
    same = prog.ix_add_market(
        pid,
        admin=admin,
        payer=chain.payer.pubkey(),
        market_id=8,
        base_mint=ex.base,
        quote_mint=ex.base,
    )
    assert chain.error(same, chain.admin) == "SameBaseAndQuote"
    ix = prog.ix_add_market(
        pid,
        admin=admin,
        payer=chain.payer.pubkey(),
        market_id=8,
        base_mint=ex.base,
        quote_mint=ex.quote,
    )
    # A mint is not an asset config (another owner); the exchange config is not one either.
    assert (
        chain.error(swap(ix, "addMarket", "baseAsset", ex.base), chain.admin) == "WrongAccountOwner"
    )
    exchange = prog.exchange_pda(pid)
    assert (
        chain.error(swap(ix, "addMarket", "baseAsset", exchange), chain.admin) == "WrongAccountType"
    )
    wrong_pda = swap(ix, "addMarket", "market", prog.market_pda(pid, 9))
    assert chain.error(wrong_pda, chain.admin) == "MarketPdaMismatch"
    intruder = chain.funded()
    assert chain.error(swap(ix, "addMarket", "admin", intruder.pubkey()), intruder) == "WrongAdmin"


# update_exchange, update_asset, rotate_authorities


def test_update_exchange_halts_and_resumes_and_refuses_other_statuses(ex: Exchange) -> None:
    chain = ex.chain
    pid, admin = chain.program_id, chain.admin.pubkey()
    chain.ok(prog.ix_update_exchange(pid, admin=admin, status=prog.STATUS_HALTED), chain.admin)
    assert prog.decode_exchange(chain.data(prog.exchange_pda(pid))).status == prog.STATUS_HALTED
    assert chain.error(prog.ix_update_exchange(pid, admin=admin, status=2), chain.admin) == (
        "InvalidStatus"
    )
    chain.ok(prog.ix_update_exchange(pid, admin=admin, status=prog.STATUS_ACTIVE), chain.admin)
    assert prog.decode_exchange(chain.data(prog.exchange_pda(pid))).status == prog.STATUS_ACTIVE
    operator = chain.operator
    as_operator = prog.ix_update_exchange(pid, admin=operator.pubkey(), status=prog.STATUS_HALTED)
    assert chain.error(as_operator, operator) == "WrongAdmin"


def test_update_asset_changes_the_cap(ex: Exchange) -> None:
    chain = ex.chain
    pid, admin = chain.program_id, chain.admin.pubkey()
    ix = prog.ix_update_asset(pid, admin=admin, mint=ex.base, cap_atoms=77, window_slots=10)
    chain.ok(ix, chain.admin)
    asset = prog.decode_asset(chain.data(prog.asset_pda(pid, ex.base)))
    assert (asset.cap_atoms, asset.window_slots) == (77, 10)
    zero = prog.ix_update_asset(pid, admin=admin, mint=ex.base, cap_atoms=77, window_slots=0)
    assert chain.error(zero, chain.admin) == "InvalidWindow"
    operator = chain.operator
    as_operator = prog.ix_update_asset(
        pid, admin=operator.pubkey(), mint=ex.base, cap_atoms=U64_MAX, window_slots=1
    )
    assert chain.error(as_operator, operator) == "WrongAdmin"


def test_rotate_authorities_installs_both_keys_and_retires_the_old_admin(ex: Exchange) -> None:
    chain = ex.chain
    pid = chain.program_id
    new_admin, new_operator = chain.funded(), chain.funded()
    ix = prog.ix_rotate_authorities(
        pid,
        admin=chain.admin.pubkey(),
        new_admin=new_admin.pubkey(),
        new_operator=new_operator.pubkey(),
    )
    assert chain.error(unsigned(ix, "rotateAuthorities", "newAdmin"), chain.admin) == (
        "NewAdminSignatureMissing"
    )
    chain.ok(ix, chain.admin, new_admin)
    state = prog.decode_exchange(chain.data(prog.exchange_pda(pid)))
    assert (state.admin, state.operator) == (new_admin.pubkey(), new_operator.pubkey())
    old = prog.ix_update_exchange(pid, admin=chain.admin.pubkey(), status=prog.STATUS_HALTED)
    assert chain.error(old, chain.admin) == "WrongAdmin"
    chain.ok(prog.ix_update_exchange(pid, admin=new_admin.pubkey(), status=1), new_admin)


# The IDL and the program agree.


def test_every_idl_error_is_the_programs_with_the_same_code() -> None:
    source = (REPO_ROOT / "programs/exchange/src/error.rs").read_text()
    program = {int(code): name for name, code in re.findall(r"^\s+(\w+) = (\d+),", source, re.M)}
    assert dict(prog.ERRORS) == program
    assert min(program) == 6000
    assert sorted(program) == list(range(6000, 6000 + len(program)))


def test_every_idl_discriminator_is_the_programs() -> None:
    source = (REPO_ROOT / "programs/exchange/src/constants.rs").read_text()
    consts = dict(re.findall(r"pub const (\w+): \[u8; 8\] = \[([\d, ]+)\];", source))
    for ix in prog.load_idl().instructions:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", ix.name).lower()
        expected = hashlib.sha256(f"global:{snake}".encode()).digest()[:8]
        assert bytes(int(b) for b in consts[snake.upper()].split(",")) == expected, ix.name
    for account in prog.load_idl().accounts:
        expected = hashlib.sha256(f"account:{account.name}".encode()).digest()[:8]
        assert bytes(int(b) for b in consts[account.name.upper()].split(",")) == expected


def test_an_unknown_or_malformed_instruction_is_refused(ex: Exchange) -> None:
    chain = ex.chain
    ix = prog.ix_update_exchange(chain.program_id, admin=chain.admin.pubkey(), status=0)
    unknown = Instruction(ix.program_id, b"\x00" * 8 + ix.data[8:], ix.accounts)
    assert chain.error(unknown, chain.admin) == "UnknownInstruction"
    short = Instruction(ix.program_id, ix.data[:8], ix.accounts)
    assert chain.error(short, chain.admin) == "InvalidInstructionData"
    long = Instruction(ix.program_id, ix.data + b"\x00", ix.accounts)
    assert chain.error(long, chain.admin) == "InvalidInstructionData"
    few = Instruction(ix.program_id, ix.data, ix.accounts[:1])
    assert chain.error(few, chain.admin) == "NotEnoughAccounts"


def test_the_decoders_refuse_another_account_type(ex: Exchange) -> None:
    data = ex.chain.data(prog.exchange_pda(ex.chain.program_id))
    with pytest.raises(ValueError, match="Asset"):
        prog.decode_asset(data)
