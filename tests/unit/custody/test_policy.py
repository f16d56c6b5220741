"""The withdrawal policy, by example and by property: the allowlist, the cooling-off, the
rolling 24 h limit per asset and the two-step threshold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.custody.policy import (
    DAY_MS,
    Allowed,
    CustodyPolicy,
    Refusal,
    active_from_ms,
    confirmation_expired,
    decide,
    used_in_window,
)

NOW = 10 * DAY_MS
POLICY = CustodyPolicy(
    cooling_off_s=3600,
    daily_limit_atoms={"USDC": 1_000},
    two_step_threshold_atoms={"USDC": 500},
    confirm_ttl_s=900,
)


def test_an_address_not_on_the_allowlist_is_refused() -> None:
    refusal = decide(POLICY, "USDC", 1, None, [], NOW)
    assert isinstance(refusal, Refusal) and refusal.code == "address_not_allowed"


def test_a_new_address_waits_through_its_cooling_off() -> None:
    added = NOW - 3_599_999
    refusal = decide(POLICY, "USDC", 1, active_from_ms(added, POLICY), [], NOW)
    assert isinstance(refusal, Refusal) and refusal.code == "address_cooling_off"
    assert refusal.details == {"active_from_ms": NOW + 1}
    assert decide(POLICY, "USDC", 1, active_from_ms(NOW - 3_600_000, POLICY), [], NOW) == (
        Allowed(two_step=False)
    )


def test_no_cooling_off_in_embedded_mode() -> None:
    embedded = CustodyPolicy(cooling_off_s=0)
    assert decide(embedded, "USDC", 1, active_from_ms(NOW, embedded), [], NOW) == Allowed(False)


def test_the_daily_limit_counts_the_last_24_hours_only() -> None:
    recent = [(NOW - DAY_MS, 900), (NOW - DAY_MS + 1, 300), (NOW - 5, 200)]  # first is out
    assert used_in_window(recent, NOW) == 500
    # Recorded by a request that took the account's lock first, stamped after this one's
    # clock: still counted.
    assert used_in_window([(NOW + 3, 100)], NOW) == 100
    assert decide(POLICY, "USDC", 500, 0, recent, NOW) == Allowed(two_step=False)
    refusal = decide(POLICY, "USDC", 501, 0, recent, NOW)
    assert isinstance(refusal, Refusal) and refusal.code == "daily_limit_exceeded"
    assert refusal.details == {"limit_atoms": 1_000, "used_atoms": 500, "remaining_atoms": 500}


def test_an_asset_without_settings_has_no_limit_and_no_second_step() -> None:
    assert decide(POLICY, "SOL", 10**18, 0, [(NOW, 10**18)], NOW) == Allowed(two_step=False)


def test_the_second_step_applies_strictly_above_the_threshold() -> None:
    assert decide(POLICY, "USDC", 500, 0, [], NOW) == Allowed(two_step=False)
    assert decide(POLICY, "USDC", 501, 0, [], NOW) == Allowed(two_step=True)


def test_a_confirmation_expires_after_its_ttl() -> None:
    assert not confirmation_expired(NOW, NOW + 899_999, POLICY)
    assert confirmation_expired(NOW, NOW + 900_000, POLICY)


_history = st.lists(st.tuples(st.integers(NOW - 2 * DAY_MS, NOW), st.integers(1, 400)), max_size=20)


@given(history=_history, limit=st.integers(0, 3_000), amounts=st.lists(st.integers(1, 400)))
def test_what_the_policy_allows_never_passes_the_limit_in_any_window(
    history: list[tuple[int, int]], limit: int, amounts: list[int]
) -> None:
    # Requests arrive one ms apart, each recorded when allowed: in no 24 h window does
    # the sum of the allowed ones (plus what was there) pass the limit, unless the history
    # alone did already.
    policy = CustodyPolicy(daily_limit_atoms={"A": limit})
    recorded = list(history)
    for i, amount in enumerate(amounts):
        now = NOW + i
        before = used_in_window(recorded, now)
        decision = decide(policy, "A", amount, 0, recorded, now)
        if isinstance(decision, Allowed):
            assert before + amount <= limit
            recorded.append((now, amount))
        else:
            assert decision.code == "daily_limit_exceeded"
            assert before + amount > limit


@given(
    amount=st.integers(1, 10**20),
    threshold=st.one_of(st.none(), st.integers(0, 10**20)),
    active_from=st.one_of(st.none(), st.integers(NOW - DAY_MS, NOW + DAY_MS)),
)
def test_the_checks_come_in_order_and_two_step_follows_the_threshold(
    amount: int, threshold: int | None, active_from: int | None
) -> None:
    policy = CustodyPolicy(two_step_threshold_atoms={} if threshold is None else {"A": threshold})
    decision = decide(policy, "A", amount, active_from, [], NOW)
    if active_from is None:
        assert isinstance(decision, Refusal) and decision.code == "address_not_allowed"
    elif active_from > NOW:
        assert isinstance(decision, Refusal) and decision.code == "address_cooling_off"
    else:
        assert decision == Allowed(two_step=threshold is not None and amount > threshold)
