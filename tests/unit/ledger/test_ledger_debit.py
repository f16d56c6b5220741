"""The ledger's debit (a withdrawal): the mirror of a credit, exactly once per reference,
from available funds only (holds excluded), persisted with its balance, and counted in
the conservation and supply totals."""

from __future__ import annotations

import pytest

from actors.contracts import Reservation
from actors.engine.types import MAX_ATOMS
from actors.ledger.core import Changes, LedgerCore
from actors.ledger.rules import (
    AmountBoundError,
    DebitReferenceError,
    InsufficientBalanceError,
    LedgerRequestError,
)


def _funded(atoms: int = 100, shard_id: int = 0, shard_count: int = 1) -> LedgerCore:
    core = LedgerCore(shard_id, shard_count)
    core.credit(shard_id, "Q", atoms, f"dep-{shard_id}")
    core.take_changes()
    return core


def test_a_debit_takes_available_funds_once_per_reference() -> None:
    core = _funded()
    assert core.debit(0, "Q", 30, "withdrawal:1")
    assert core.balance(0, "Q") == (70, 0)
    assert not core.debit(0, "Q", 30, "withdrawal:1")  # a repeat changes nothing
    assert core.balance(0, "Q") == (70, 0)
    totals = core.totals()["Q"]
    assert (totals.available, totals.credited, totals.debited) == (70, 100, 30)


def test_a_repeated_debit_is_a_no_op_even_when_the_balance_is_now_short() -> None:
    core = _funded()
    assert core.debit(0, "Q", 100, "withdrawal:1")
    assert not core.debit(0, "Q", 100, "withdrawal:1")
    assert core.balance(0, "Q") == (0, 0)


def test_a_debit_beyond_available_is_refused_and_changes_nothing() -> None:
    core = _funded()
    with pytest.raises(InsufficientBalanceError):
        core.debit(0, "Q", 101, "withdrawal:1")
    assert core.balance(0, "Q") == (100, 0)
    assert core.take_changes() == Changes()
    assert core.debit(0, "Q", 100, "withdrawal:1")  # the reference was not used up


def test_held_funds_cannot_be_debited() -> None:
    core = _funded()
    assert core.hold(Reservation("B-Q", "o1", 0, "Q", 60, "buy", 1, 60))
    with pytest.raises(InsufficientBalanceError):
        core.debit(0, "Q", 41, "withdrawal:1")
    assert core.debit(0, "Q", 40, "withdrawal:1")
    assert core.balance(0, "Q") == (0, 60)


def test_a_reference_reused_for_another_debit_is_refused() -> None:
    core = _funded()
    core.debit(0, "Q", 10, "withdrawal:1")
    with pytest.raises(DebitReferenceError):
        core.debit(0, "Q", 11, "withdrawal:1")
    assert core.balance(0, "Q") == (90, 0)


@pytest.mark.parametrize("amount", [0, -1])
def test_a_debit_must_be_positive(amount: int) -> None:
    core = _funded()
    with pytest.raises(LedgerRequestError, match="positive"):
        core.debit(0, "Q", amount, "withdrawal:1")


def test_a_debit_of_another_shards_account_is_refused() -> None:
    core = _funded(shard_count=2)
    with pytest.raises(LedgerRequestError, match="belongs to shard"):
        core.debit(1, "Q", 1, "withdrawal:1")


def test_a_debit_is_persisted_with_its_balance() -> None:
    core = _funded()
    core.debit(0, "Q", 30, "withdrawal:7")
    changes = core.take_changes()
    assert changes.debits == [("withdrawal:7", 0, "Q", 30)]
    assert changes.balances == [(0, "Q", 70, 0)]


def test_a_refund_credit_restores_the_balance_and_conservation() -> None:
    core = _funded()
    core.debit(0, "Q", 30, "withdrawal:1")
    assert core.credit(0, "Q", 30, "withdrawal-refund:1")
    assert not core.credit(0, "Q", 30, "withdrawal-refund:1")
    t = core.totals()["Q"]
    assert core.balance(0, "Q") == (100, 0)
    assert t.available + t.locked + t.fees == t.credited - t.debited == 100


def test_debits_make_room_under_the_supply_bound() -> None:
    core = LedgerCore()
    core.credit(0, "Q", MAX_ATOMS, "dep-1")
    with pytest.raises(AmountBoundError):
        core.credit(0, "Q", 1, "dep-2")
    core.debit(0, "Q", 5, "withdrawal:1")
    assert core.credit(0, "Q", 5, "withdrawal-refund:1")  # what the ledger holds is bounded
    with pytest.raises(AmountBoundError):
        core.credit(0, "Q", 1, "dep-3")


def test_a_rebuilt_shard_keeps_its_debited_total() -> None:
    core = _funded()
    core.debit(0, "Q", 30, "withdrawal:1")
    rebuilt = LedgerCore()
    rebuilt.load_balance(0, "Q", *core.durable_balance(0, "Q"))
    rebuilt.load_credited("Q", 100)
    rebuilt.load_debited("Q", 30)
    assert rebuilt.totals() == core.totals()
    assert rebuilt.supply("Q") == 70
