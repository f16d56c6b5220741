"""What to do next with a transaction the exchange sent, decided purely from the chain's
answers: wait, re-send the same bytes, rebuild it, or settle its fate.

A transaction can land only while its blockhash is valid (until `last_valid_height`). Once
every attempt's blockhash has expired, an attempt that has not landed never will: only then
may the exchange rebuild it, or give up and undo its effect off chain (re-credit a
withdrawal). Rebuilding cannot apply it twice: the program refuses an id it has applied
(its replay window), so the chain, not only the database, holds exactly-once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attempt:
    """One signed transaction sent for an operation.

    Attributes:
        signature: Its signature (base58).
        last_valid_height: The last block height its blockhash is valid for.
    """

    signature: str
    last_valid_height: int


@dataclass(frozen=True, slots=True)
class Landed:
    """A signature's status on chain.

    Attributes:
        slot: The slot it landed in.
        error: Why it failed (the program's or the runtime's error), None if it succeeded.
    """

    slot: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do yet: an attempt may still land, or one landed and is not deep enough."""


@dataclass(frozen=True, slots=True)
class Resend:
    """Send an attempt's signed bytes again (it has not landed; its blockhash is valid)."""

    signature: str


@dataclass(frozen=True, slots=True)
class Rebuild:
    """Every attempt expired without landing: build and send a new one."""


@dataclass(frozen=True, slots=True)
class Confirmed:
    """An attempt succeeded and is deep enough."""

    signature: str
    slot: int


@dataclass(frozen=True, slots=True)
class Failed:
    """No attempt succeeded and none ever can: undo the operation off chain.

    Attributes:
        reason: The last chain error, or `expired` when no attempt landed.
    """

    reason: str


Decision = Wait | Resend | Rebuild | Confirmed | Failed


def decide(
    attempts: Sequence[Attempt],
    statuses: Mapping[str, Landed | None],
    *,
    height: int,
    slot: int,
    depth: int,
    max_attempts: int,
) -> Decision:
    """Decide the next step for an operation's attempts.

    Args:
        attempts: Every attempt so far, oldest first (at least one).
        statuses: Each attempt's status by signature (None or absent: not seen on chain).
        height: The chain's current block height.
        slot: The chain's current slot.
        depth: Slots an attempt must be below `slot` to count as confirmed.
        max_attempts: Attempts allowed before giving up.
    """
    if not attempts:
        raise ValueError("decide needs at least one attempt")
    landed = [(a, statuses.get(a.signature)) for a in attempts]
    for attempt, status in landed:
        if status is not None and status.error is None:
            if slot - status.slot >= depth:
                return Confirmed(attempt.signature, status.slot)
            return Wait()
    pending = [a for a, status in landed if status is None and height <= a.last_valid_height]
    if pending:
        return Resend(pending[-1].signature)
    refused = [status for _, status in landed if status is not None]
    if refused:
        if any(slot - status.slot < depth for status in refused):
            return Wait()  # a refusal is final only once it is as deep as a success must be
        return Failed(str(refused[-1].error))  # rebuilding would be refused again
    if len(attempts) < max_attempts:
        return Rebuild()
    return Failed("expired")
