"""The settlement monitor's decisions: a table of the cases, and properties over random
histories."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.settlement.monitor import (
    ALREADY_APPLIED,
    AttemptState,
    Decision,
    Landed,
    Rebuild,
    Resend,
    Retry,
    Seen,
    Unknown,
    Wait,
    backoff_s,
    decide,
    fee_of,
)

A1 = AttemptState("sig1", last_valid_height=150, sent_at=10.0)
A2 = AttemptState("sig2", last_valid_height=400, sent_at=20.0)
A1_COUNTED = AttemptState("sig1", last_valid_height=150, sent_at=10.0, counted=True)
OK = Seen(100, "confirmed")
REFUSED = Seen(100, "confirmed", "InsufficientVaultBalance")


@pytest.mark.parametrize(
    ("attempts", "seen", "height", "now", "next_try_at", "expected"),
    [
        ([A1], {}, 120, 10.5, None, Wait()),  # sent half a second ago: not yet again
        ([A1], {}, 120, 11.0, None, Resend("sig1")),  # the same bytes again
        ([A1], {"sig1": None}, 151, 30.0, None, Rebuild()),  # expired unseen: a drop
        ([A1], {"sig1": Seen(100, "processed")}, 130, 30.0, None, Landed("sig1", 100, "processed")),
        ([A1], {"sig1": OK}, 130, 30.0, None, Landed("sig1", 100, "confirmed")),
        ([A1], {"sig1": Seen(100, "finalized")}, 200, 30.0, None, Landed("sig1", 100, "finalized")),
        ([A1], {"sig1": REFUSED}, 130, 30.0, None, Retry("sig1", "InsufficientVaultBalance")),
        ([A1], {"sig1": Seen(100, "confirmed", ALREADY_APPLIED)}, 130, 30.0, None, Unknown("sig1")),
        # A counted failure: the retry waits for its backoff, then goes.
        ([A1_COUNTED], {"sig1": REFUSED}, 130, 30.0, 32.0, Wait()),
        ([A1_COUNTED], {"sig1": REFUSED}, 130, 32.0, 32.0, Rebuild()),
        ([A1_COUNTED], {}, 130, 32.5, 32.0, Rebuild()),  # refused at the send
        # An old attempt landed after all: that is the outcome, whatever the newest says.
        (
            [A1, A2],
            {"sig1": OK, "sig2": Seen(120, "confirmed", ALREADY_APPLIED)},
            300,
            30.0,
            None,
            Landed("sig1", 100, "confirmed"),
        ),
        ([A1, A2], {}, 151, 30.0, None, Resend("sig2")),
        ([A1, A2], {}, 401, 30.0, None, Rebuild()),
    ],
)
def test_decisions(
    attempts: list[AttemptState], seen: dict[str, Seen | None], height: int, *, now: float,
    next_try_at: float | None, expected: Decision,
) -> None:  # fmt: skip
    assert decide(attempts, seen, height=height, now=now, next_try_at=next_try_at) == expected


def test_no_attempt_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        decide([], {}, height=0, now=0.0)


def test_backoff_and_fee_double() -> None:
    assert [backoff_s(r) for r in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert [fee_of(1_000, r) for r in range(4)] == [1_000, 2_000, 4_000, 8_000]


_commitments = st.sampled_from(["processed", "confirmed", "finalized"])
_seen = st.one_of(
    st.none(),
    st.builds(Seen, st.integers(0, 500), _commitments,
              st.sampled_from([None, None, "InsufficientVaultBalance", ALREADY_APPLIED])),
)  # fmt: skip


@given(
    st.lists(st.tuples(st.integers(0, 500), st.booleans(), _seen), min_size=1, max_size=5),
    st.integers(0, 600),
    st.floats(0, 100),
)
def test_properties(history: list[tuple[int, bool, Seen | None]], height: int, now: float) -> None:
    attempts = [AttemptState(f"s{i}", valid, 0.0, counted)
                for i, (valid, counted, _) in enumerate(history)]  # fmt: skip
    seen = {f"s{i}": status for i, (_, _, status) in enumerate(history)}
    decision = decide(attempts, seen, height=height, now=now)
    successes = {s for s, status in seen.items() if status is not None and status.error is None}
    if successes:  # a success always wins, at its deepest commitment
        assert isinstance(decision, Landed) and decision.signature in successes
        return
    newest, status = attempts[-1], seen[attempts[-1].signature]
    if isinstance(decision, Resend):  # only bytes that can still land, never a landed one
        assert decision.signature == newest.signature and status is None
        assert height <= newest.last_valid_height and not newest.counted
    if isinstance(decision, Retry):  # only an uncounted landed failure is counted
        assert status is not None and not newest.counted
    if isinstance(decision, Rebuild) and not newest.counted:
        # a drop: nothing sent can land any more (expired, or landed already)
        assert all(height > a.last_valid_height or seen[a.signature] is not None
                   for a in attempts)  # fmt: skip
