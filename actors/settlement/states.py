"""A settlement's lifecycle as one transition table: pure, no I/O.

```
pending ──send──> submitted ──land──> confirmed ──finalize──> finalized
   │ └──failed submission, before any send──> pending
   │                 │ └──resend, rebuild or failed submission──> submitted
   └──fail──> failed <──fail (the 4th failed submission)
failed ──operator's retry──> pending
```

A settlement is created `pending` (its trades linked, its batch ids taken), `submitted`
once a transaction was sent, `confirmed` when one landed at `confirmed` commitment and
`finalized` at `finalized`. `failed` is where the retries end (an alert); only an
operator's retry leaves it. The trigger `settlements_transition` (migration 0021) refuses
every change of status this table does not list (SQLSTATE CL004); an UPDATE that keeps
the status changes other fields only, so the two self-loops listed here are field
updates: `submitted -> submitted` (a new attempt, or a failed submission counted) and
`pending -> pending` (a failed submission before any send - a simulation refused, an RPC
error - counted with its retry time, as a sent one's is).
"""

from __future__ import annotations

from enum import StrEnum


class SettlementStatus(StrEnum):
    """Where a settlement is (the `settlements.status` column)."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FINALIZED = "finalized"
    FAILED = "failed"


class IllegalTransitionError(ValueError):
    """A change of status that the transition table does not list."""


_S = SettlementStatus
TRANSITIONS: dict[SettlementStatus, frozenset[SettlementStatus]] = {
    _S.PENDING: frozenset({_S.PENDING, _S.SUBMITTED, _S.FAILED}),
    _S.SUBMITTED: frozenset({_S.SUBMITTED, _S.CONFIRMED, _S.FAILED}),
    _S.CONFIRMED: frozenset({_S.FINALIZED}),
    _S.FINALIZED: frozenset(),
    _S.FAILED: frozenset({_S.PENDING}),  # the operator's retry
}
"""The states each state may move to; anything else is refused."""

STATUSES: tuple[str, ...] = tuple(s.value for s in SettlementStatus)
"""Every status, in lifecycle order (the SQL CHECK lists the same)."""

UNFINISHED = frozenset({_S.PENDING, _S.SUBMITTED, _S.CONFIRMED})
"""States the batcher still works on (`records.unfinished`)."""

SETTLED = frozenset({_S.CONFIRMED, _S.FINALIZED})
"""States whose transaction landed: the trades' moves are on chain."""


def check(old: SettlementStatus | str, new: SettlementStatus | str) -> None:
    """Refuse a change of status the table does not list.

    Raises:
        IllegalTransitionError: `new` is not listed for `old` (or either is no status).
    """
    try:
        allowed = SettlementStatus(new) in TRANSITIONS[SettlementStatus(old)]
    except ValueError:
        allowed = False
    if not allowed:
        raise IllegalTransitionError(f"a settlement cannot go from {old} to {new}")
