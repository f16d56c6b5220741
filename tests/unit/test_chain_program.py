"""`actors.chain.program` without a chain: argument bounds, PDAs, decoders, errors."""

from __future__ import annotations

import hashlib

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.accounts import AccountId
from actors.chain import program as prog

KEY = Keypair().pubkey()


def test_the_program_id_and_errors_come_from_the_idl() -> None:
    assert Pubkey.from_string(prog.load_idl().metadata["address"]) == prog.PROGRAM_ID  # type: ignore[index]
    assert prog.error_name(6030) == "OverWithdrawalCap"
    assert prog.error_name(1) is None


def test_program_id_from_settings_defaults_to_the_idls() -> None:
    assert prog.program_id_from(None) == prog.PROGRAM_ID
    assert prog.program_id_from(str(KEY)) == KEY
    with pytest.raises(ValueError, match="CLOB_PROGRAM_ID"):
        prog.program_id_from("not base58!")


def test_pdas_are_distinct_per_seed() -> None:
    pid = prog.PROGRAM_ID
    one, two = prog.vault_pda(pid, KEY, AccountId(1)), prog.vault_pda(pid, KEY, AccountId(2))
    assert one != two
    assert prog.asset_pda(pid, KEY) != prog.fee_vault_pda(pid, KEY)
    assert prog.market_pda(pid, 1) != prog.market_pda(prog.authority_pda(pid), 1)


def test_the_chain_market_id_is_the_mints_hash_and_fits_a_bigint() -> None:
    base, quote = Keypair().pubkey(), Keypair().pubkey()
    market_id = prog.chain_market_id(base, quote)
    digest = hashlib.sha256(b"clob-market" + bytes(base) + bytes(quote)).digest()
    assert market_id == int.from_bytes(digest[:8], "little") & (2**63 - 1)
    assert 0 <= market_id < 2**63 and market_id == prog.chain_market_id(base, quote)
    assert prog.chain_market_id(quote, base) != market_id  # base and quote are ordered


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_u64_arguments_out_of_range_are_refused_before_encoding(bad: int) -> None:
    with pytest.raises(ValueError, match="account_id must be a u64"):
        prog.vault_pda(prog.PROGRAM_ID, KEY, AccountId(bad))
    with pytest.raises(ValueError, match="amount_atoms must be a u64"):
        prog.ix_withdraw(
            prog.PROGRAM_ID,
            operator=KEY,
            mint=KEY,
            account_id=AccountId(1),
            withdrawal_id=1,
            amount_atoms=bad,
            destination=KEY,
        )


def test_settle_refuses_deltas_outside_i64_and_oversized_batches() -> None:
    def settle(entries: list[tuple[Pubkey, int]]) -> object:
        return prog.ix_settle(
            prog.PROGRAM_ID, operator=KEY, market_id=1, batch_id=1, entries=entries
        )

    with pytest.raises(ValueError, match="i64"):
        settle([(KEY, 2**63)])
    with pytest.raises(ValueError, match="at most 32"):
        settle([(KEY, 0)] * 33)
    ix = settle([(KEY, -(2**63)), (KEY, 2**63 - 1)])
    assert len(ix.accounts) == 5 + 2
    assert ix.data[:8] == bytes([175, 42, 185, 87, 144, 131, 102, 212])


def test_the_replay_window_view_reads_the_ring() -> None:
    bits = bytearray(128)
    bits[1] = 0b0000_0100  # ring position 10
    window = prog.ReplayWindowState(base=1024, bits=bytes(bits))
    assert window.contains(1034)
    assert not window.contains(10)  # below the base
    assert not window.contains(1035)
    assert not window.contains(1034 + 1024)  # past the window


def test_decoders_refuse_other_data() -> None:
    with pytest.raises(ValueError, match="Exchange"):
        prog.decode_exchange(b"\x00" * 248)


def test_the_chain_market_id_is_a_bigint_hash_of_the_ordered_mints() -> None:
    one, two = Pubkey(bytes([1]) * 32), Pubkey(bytes([2]) * 32)
    # sha256(b"clob-market" + base + quote)[:8] little-endian, top bit cleared (the design's
    # formula, pinned so a change of it cannot pass unnoticed).
    assert prog.chain_market_id(one, two) == 4879644904448032743
    assert prog.chain_market_id(one, two) != prog.chain_market_id(two, one)
    ids = {prog.chain_market_id(Keypair().pubkey(), two) for _ in range(64)}
    assert len(ids) == 64
    assert all(0 <= i < 2**63 for i in ids | {prog.chain_market_id(two, one)})
