"""What a ledger shard publishes after a call: the (account, asset) pairs whose balance
may have changed (moves and holds alike), one message per account with REST's figures."""

from __future__ import annotations

from ledger_harness import SPEC

from actors.accounts import AccountId
from actors.contracts import Reservation
from actors.engine import Cancelled, CancelReason, Lots, OrderId
from actors.ledger.core import LedgerCore
from actors.stream.balances import balance_messages
from actors.stream.messages import account_channel, decode_account

SPEC_MARKET = SPEC.symbol


def _buy(oid: str, atoms: int, account: int = 2) -> Reservation:
    return Reservation(SPEC_MARKET, oid, AccountId(account), "Q", atoms, "buy", 1, atoms)


def test_credits_holds_and_releases_mark_their_pairs_touched_once_taken() -> None:
    core = LedgerCore(0, 2)
    core.credit(AccountId(2), "Q", 100, "dep")
    core.credit(AccountId(4), "B", 5, "dep-b")
    assert core.take_touched() == {(2, "Q"), (4, "B")}
    assert core.take_touched() == set()
    assert core.hold(_buy("o1", 60))  # in memory only: no move, still a change of balance
    assert core.take_touched() == {(2, "Q")}
    core.reserve(_buy("o2", 10))
    core.release(SPEC_MARKET, "o2")
    assert core.take_touched() == {(2, "Q")}
    assert core.take_touched() == set()


def test_balance_messages_give_one_batch_per_account_with_rests_figures() -> None:
    core = LedgerCore(0, 2)
    core.credit(AccountId(2), "Q", 100, "dep")
    core.credit(AccountId(2), "B", 7, "dep-b")
    assert core.hold(_buy("o1", 60))
    messages = balance_messages(core.take_touched(), core.balance, 1_234)
    [(channel, data)] = messages
    batch = decode_account(data)
    assert channel == account_channel(2) and (batch.account_id, batch.E) == (2, 1_234)
    assert [(b.asset, b.available, b.locked) for b in batch.balances] == [
        ("B", 7, 0), ("Q", 40, 60)
    ]  # fmt: skip
    assert batch.orders == [] and batch.fills == []


def test_a_cancel_applied_from_the_journal_touches_the_owner() -> None:
    core = LedgerCore(0, 2)
    core.credit(AccountId(2), "Q", 100, "dep")
    core.reserve(_buy("o1", 30))
    core.take_touched()
    cancel = Cancelled(1, OrderId("o1"), CancelReason.USER, Lots(30))
    core.apply_events(SPEC, SPEC_MARKET, 1, [cancel])
    assert core.take_touched() == {(2, "Q")} and core.balance(AccountId(2), "Q") == (100, 0)
