"""The withdrawal lifecycle's one transition table: every listed step, every unlisted one
refused, and the shapes the SQL relies on (one target per event, terminal states)."""

from __future__ import annotations

import itertools

import pytest

from actors.custody.withdrawals import (
    COUNTED_STATES,
    DEBITED_STATES,
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    InvalidTransitionError,
    WithdrawalEvent,
    WithdrawalStatus,
    sources,
    target,
    transition,
)

S, E = WithdrawalStatus, WithdrawalEvent

EXPECTED = [
    (S.REQUESTED, E.HOLD_FOR_CONFIRMATION, S.PENDING_CONFIRMATION),
    (S.REQUESTED, E.DEBIT, S.DEBITED),
    (S.REQUESTED, E.CANCEL, S.CANCELLED),
    (S.PENDING_CONFIRMATION, E.DEBIT, S.DEBITED),
    (S.PENDING_CONFIRMATION, E.CANCEL, S.CANCELLED),
    (S.DEBITED, E.SEND, S.SENT),
    (S.DEBITED, E.FAIL, S.FAILED),
    (S.SENT, E.SEND, S.SENT),
    (S.SENT, E.LAND, S.CONFIRMED),
    (S.SENT, E.FAIL, S.FAILED),
]


@pytest.mark.parametrize(("state", "event", "after"), EXPECTED)
def test_a_listed_step_leads_where_the_table_says(
    state: WithdrawalStatus, event: WithdrawalEvent, after: WithdrawalStatus
) -> None:
    assert transition(state, event) is after


UNLISTED = [
    (s, e) for s, e in itertools.product(S, E) if (s, e) not in {(a, b) for a, b, _ in EXPECTED}
]


@pytest.mark.parametrize(("state", "event"), UNLISTED)
def test_every_unlisted_step_is_refused(state: WithdrawalStatus, event: WithdrawalEvent) -> None:
    with pytest.raises(InvalidTransitionError):
        transition(state, event)


def test_the_table_is_exactly_the_expected_one() -> None:
    assert {(s, e): a for s, e, a in EXPECTED} == TRANSITIONS


def test_no_event_leaves_a_terminal_state() -> None:
    assert not [key for key in TRANSITIONS if key[0] in TERMINAL]
    assert {S.CONFIRMED, S.FAILED, S.CANCELLED} == TERMINAL


def test_each_event_has_one_target_and_its_sources_for_a_guarded_update() -> None:
    assert sources(E.DEBIT) == ["pending_confirmation", "requested"]
    assert sources(E.FAIL) == ["debited", "sent"]
    assert sources(E.SEND) == ["debited", "sent"]
    assert {e: target(e) for e in E} == {
        E.HOLD_FOR_CONFIRMATION: S.PENDING_CONFIRMATION, E.DEBIT: S.DEBITED,
        E.CANCEL: S.CANCELLED, E.SEND: S.SENT, E.LAND: S.CONFIRMED, E.FAIL: S.FAILED,
    }  # fmt: skip


def test_money_leaves_only_through_debited_and_cancelled_never_took_any() -> None:
    # Every path into a debited state passes the debit event; cancel is reachable only
    # from states before it, so a cancelled withdrawal moved no money.
    assert {s for (s, e), a in TRANSITIONS.items() if a is S.DEBITED} == {
        S.REQUESTED, S.PENDING_CONFIRMATION
    }  # fmt: skip
    assert all(s not in DEBITED_STATES for (s, e) in TRANSITIONS if e is E.CANCEL)
    assert S.FAILED not in COUNTED_STATES and S.CANCELLED not in COUNTED_STATES
    assert tuple(s.value for s in S) == STATUSES
