"""The settlement lifecycle's one transition table: every listed change allowed, every
unlisted one refused (the database's trigger is compared with it in
`tests/integration/test_settlement_records.py`)."""

from __future__ import annotations

import itertools

import pytest

from actors.settlement.states import (
    SETTLED,
    STATUSES,
    TRANSITIONS,
    UNFINISHED,
    IllegalTransitionError,
    SettlementStatus,
    check,
)

S = SettlementStatus
EXPECTED = {
    (S.PENDING, S.PENDING), (S.PENDING, S.SUBMITTED), (S.PENDING, S.FAILED),
    (S.SUBMITTED, S.SUBMITTED), (S.SUBMITTED, S.CONFIRMED), (S.SUBMITTED, S.FAILED),
    (S.CONFIRMED, S.FINALIZED),
    (S.FAILED, S.PENDING),
}  # fmt: skip


@pytest.mark.parametrize(("old", "new"), sorted(EXPECTED))
def test_a_listed_change_is_allowed(old: SettlementStatus, new: SettlementStatus) -> None:
    check(old, new)
    check(old.value, new.value)  # the column's text, as the records read it


@pytest.mark.parametrize(("old", "new"), sorted(set(itertools.product(S, S)) - EXPECTED))
def test_every_unlisted_change_is_refused(old: SettlementStatus, new: SettlementStatus) -> None:
    with pytest.raises(IllegalTransitionError):
        check(old, new)


@pytest.mark.parametrize(("old", "new"), [("pending", "settled"), ("lost", "pending")])
def test_a_value_that_is_no_status_is_refused(old: str, new: str) -> None:
    with pytest.raises(IllegalTransitionError):
        check(old, new)


def test_the_table_is_exactly_the_expected_one() -> None:
    assert {(old, new) for old, news in TRANSITIONS.items() for new in news} == EXPECTED
    assert set(TRANSITIONS) == set(S)
    assert tuple(s.value for s in S) == STATUSES


def test_finalized_is_the_only_end_and_failed_waits_for_an_operator() -> None:
    assert [s for s, after in TRANSITIONS.items() if not after] == [S.FINALIZED]
    assert TRANSITIONS[S.FAILED] == {S.PENDING}
    assert {S.PENDING, S.SUBMITTED, S.CONFIRMED} == UNFINISHED
    assert {S.CONFIRMED, S.FINALIZED} == SETTLED
