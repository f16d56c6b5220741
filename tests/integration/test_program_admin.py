"""The exchange program's admin instructions in the Solana VM (LiteSVM), and the
agreement of the committed IDL with the program."""

from __future__ import annotations

import pytest

from actors.chain import program as prog
from tests.support.program_kit import ProgramChain, program_elf


@pytest.fixture(scope="module")
def elf() -> bytes:
    return program_elf()


@pytest.fixture
def chain(elf: bytes) -> ProgramChain:
    return ProgramChain(elf)


def test_initialize_creates_the_exchange_with_its_authorities(chain: ProgramChain) -> None:
    pid = chain.program_id
    ix = prog.ix_initialize(
        pid, chain.payer.pubkey(), chain.admin.pubkey(), chain.operator.pubkey()
    )
    chain.ok(ix, chain.admin)
    state = prog.decode_exchange(chain.data(prog.exchange_pda(pid)))
    assert state.admin == chain.admin.pubkey()
    assert state.operator == chain.operator.pubkey()
    assert state.authority == prog.authority_pda(pid)
    assert state.status == prog.STATUS_ACTIVE
    assert state.withdrawals.base == 0
