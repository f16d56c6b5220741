"""The withdrawal lifecycle as one transition table: pure, no I/O.

```
requested ──hold_for_confirmation──> pending_confirmation ──debit──> debited
    │  └───────────────────────debit──────────────────────────────────┘  │
    └──cancel──> cancelled <──cancel── pending_confirmation               │
debited ──send──> sent ──send (again: a new blockhash)──> sent ──land──> confirmed
debited ──fail──> failed <──fail── sent      (failed: re-credited once, `refunded_at`)
```

`requested` is the row's first state, written before the ledger is touched, so that the
debit's reference (`withdrawal:<id>`) exists first. The API debits it (or holds it for the
second step), the custody actor sends it, confirms it or fails and refunds it. A
`cancelled` withdrawal never moved money (the debit was refused or the confirmation
expired); a `failed` one did and is re-credited by `withdrawal-refund:<id>`. The SQL CHECK
on `withdrawals.status` (migration 0018) lists exactly `STATUSES`, and every UPDATE of a
status takes its source states from `sources` (`actors.custody.records`), so the database
moves a row only along this table.
"""

from __future__ import annotations

from enum import StrEnum


class WithdrawalStatus(StrEnum):
    """Where a withdrawal is (the `withdrawals.status` column)."""

    REQUESTED = "requested"
    PENDING_CONFIRMATION = "pending_confirmation"
    DEBITED = "debited"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WithdrawalEvent(StrEnum):
    """What happens to a withdrawal."""

    HOLD_FOR_CONFIRMATION = "hold_for_confirmation"  # above the two-step threshold
    DEBIT = "debit"  # the ledger took the funds (withdrawal:<id>)
    CANCEL = "cancel"  # refused before any debit: funds short, confirmation expired
    SEND = "send"  # the program's withdraw was sent (again, after a blockhash expired)
    LAND = "land"  # the transaction reached the confirmation depth
    FAIL = "fail"  # it cannot land: re-credit (withdrawal-refund:<id>)


class InvalidTransitionError(ValueError):
    """An event that the transition table does not list for the state."""


_S = WithdrawalStatus
_E = WithdrawalEvent
TRANSITIONS: dict[tuple[WithdrawalStatus, WithdrawalEvent], WithdrawalStatus] = {
    (_S.REQUESTED, _E.HOLD_FOR_CONFIRMATION): _S.PENDING_CONFIRMATION,
    (_S.REQUESTED, _E.DEBIT): _S.DEBITED,
    (_S.REQUESTED, _E.CANCEL): _S.CANCELLED,
    (_S.PENDING_CONFIRMATION, _E.DEBIT): _S.DEBITED,
    (_S.PENDING_CONFIRMATION, _E.CANCEL): _S.CANCELLED,
    (_S.DEBITED, _E.SEND): _S.SENT,
    (_S.DEBITED, _E.FAIL): _S.FAILED,
    (_S.SENT, _E.SEND): _S.SENT,
    (_S.SENT, _E.LAND): _S.CONFIRMED,
    (_S.SENT, _E.FAIL): _S.FAILED,
}
"""Every allowed (state, event) and the state it leads to; anything else is refused."""

STATUSES: tuple[str, ...] = tuple(s.value for s in WithdrawalStatus)
"""Every status, in lifecycle order (the SQL CHECK lists the same)."""

TERMINAL = frozenset({_S.CONFIRMED, _S.FAILED, _S.CANCELLED})
"""States no event leaves."""

DEBITED_STATES = frozenset({_S.DEBITED, _S.SENT, _S.CONFIRMED, _S.FAILED})
"""States whose funds the ledger took (a failed one is re-credited)."""

COUNTED_STATES = frozenset({_S.REQUESTED, _S.PENDING_CONFIRMATION, _S.DEBITED, _S.SENT,
                            _S.CONFIRMED})  # fmt: skip
"""States that count against the daily limit: out or on their way out (a failed one was
refunded, a cancelled one never left)."""


def transition(state: WithdrawalStatus, event: WithdrawalEvent) -> WithdrawalStatus:
    """Return the state after `event`.

    Raises:
        InvalidTransitionError: The table does not list `event` in `state`.
    """
    after = TRANSITIONS.get((state, event))
    if after is None:
        raise InvalidTransitionError(f"a {state.value} withdrawal cannot {event.value}")
    return after


def sources(event: WithdrawalEvent) -> list[str]:
    """Return the states `event` may leave, as the column's values (for a guarded UPDATE)."""
    return sorted(s.value for (s, e) in TRANSITIONS if e is event)


def target(event: WithdrawalEvent) -> WithdrawalStatus:
    """Return the state `event` leads to (the same from every source state)."""
    targets = {after for (_, e), after in TRANSITIONS.items() if e is event}
    (after,) = targets  # the table is built so: one target per event
    return after
