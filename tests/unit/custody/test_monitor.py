"""The monitor's decisions: a table of the cases, and properties over random histories."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.custody.monitor import (
    Attempt,
    Confirmed,
    Decision,
    Failed,
    Landed,
    Rebuild,
    Resend,
    Wait,
    decide,
)

A1, A2 = Attempt("sig1", last_valid_height=150), Attempt("sig2", last_valid_height=400)
OK_AT_100, REFUSED_AT_100 = Landed(100), Landed(100, "OverWithdrawalCap")


@pytest.mark.parametrize(
    ("attempts", "statuses", "height", "slot", "expected"),
    [
        ([A1], {}, 120, 120, Resend("sig1")),  # not seen, still valid: send the bytes again
        ([A1], {"sig1": None}, 151, 151, Rebuild()),  # expired without landing
        ([A1], {"sig1": OK_AT_100}, 101, 101, Wait()),  # landed, not deep yet
        ([A1], {"sig1": OK_AT_100}, 132, 132, Confirmed("sig1", 100)),
        ([A1], {"sig1": REFUSED_AT_100}, 101, 101, Wait()),  # a refusal must be deep too
        ([A1], {"sig1": REFUSED_AT_100}, 140, 140, Failed("OverWithdrawalCap")),
        ([A1, A2], {}, 151, 151, Resend("sig2")),  # the first expired, the second may land
        ([A1, A2], {"sig1": OK_AT_100}, 300, 300, Confirmed("sig1", 100)),  # an old one landed
        ([A1, A2], {}, 401, 401, Failed("expired")),  # out of attempts
        # The second was refused as a replay: the first landed, and that is the outcome.
        ([A1, A2], {"sig1": OK_AT_100, "sig2": Landed(200, "AlreadyApplied")}, 300, 300,
         Confirmed("sig1", 100)),
    ],
)  # fmt: skip
def test_decisions(
    attempts: list[Attempt], statuses: dict[str, Landed | None], height: int, slot: int,
    expected: Decision,
) -> None:  # fmt: skip
    assert (
        decide(attempts, statuses, height=height, slot=slot, depth=32, max_attempts=2) == expected
    )


def test_no_attempt_is_a_bug() -> None:
    with pytest.raises(ValueError):
        decide([], {}, height=0, slot=0, depth=1, max_attempts=1)


_status = st.one_of(
    st.none(),
    st.builds(Landed, st.integers(0, 500), st.sampled_from([None, "Custom(6003)"])),
)


@given(
    st.lists(st.tuples(st.integers(0, 500), _status), min_size=1, max_size=4),
    st.integers(0, 600),
    st.integers(0, 40),
    st.integers(1, 5),
)
def test_it_never_gives_up_or_rebuilds_while_an_attempt_can_land(
    history: list[tuple[int, Landed | None]], height: int, depth: int, max_attempts: int
) -> None:
    attempts = [Attempt(f"s{i}", valid) for i, (valid, _) in enumerate(history)]
    statuses = {f"s{i}": status for i, (_, status) in enumerate(history)}
    slot = height  # the embedded chain's block height is its slot
    decision = decide(attempts, statuses, height=height, slot=slot, depth=depth,
                      max_attempts=max_attempts)  # fmt: skip
    can_land = any(s is None and height <= a.last_valid_height for a, (_, s) in
                   zip(attempts, history, strict=True))  # fmt: skip
    succeeded = [s for _, s in history if s is not None and s.error is None]
    if isinstance(decision, Failed | Rebuild):
        assert not can_land and not succeeded
    if isinstance(decision, Rebuild):
        assert len(attempts) < max_attempts
        assert all(s is None for _, s in history)
    if isinstance(decision, Confirmed):
        landed = statuses[decision.signature]
        assert landed is not None and landed.error is None and slot - landed.slot >= depth
    if succeeded:
        assert isinstance(decision, Wait | Confirmed)
