"""What to do next with a settlement on chain, decided purely from the chain's answers and
the settlement's own record: wait, re-send the same bytes, rebuild, retry after a failure,
or record how far it landed.

The rules (docs/settlement.md, "Retries and the monitor"):

- A transaction can land only while its blockhash is valid. While the newest attempt has
  not landed and its blockhash is valid, its **same signed bytes** are re-sent (at most
  every `resend_s`): a dropped transaction costs nothing more.
- Once every attempt's blockhash has expired unseen, none of them can ever land: the
  settlement is **rebuilt** (a new blockhash, the same batch id and deltas). A drop is not
  a failure and is not counted.
- A **failed submission** (the newest attempt landed with an error, or the simulation or
  the send was refused by the node) is retried after 2, 4 and 8 s, each time with twice
  the priority fee; the failure after the third retry fails the settlement.
- Any attempt that succeeded settles the question: the program refuses a batch id it has
  applied, so whatever else was sent for the batch can never move money again. A newest
  attempt refused with `BatchAlreadyApplied` while no attempt of ours is seen succeeding
  means the id was applied by a transaction we do not know: reported as such, for a
  person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Commitment = Literal["processed", "confirmed", "finalized"]
LEVELS: dict[str, int] = {"processed": 0, "confirmed": 1, "finalized": 2}

MAX_RETRIES = 3
BACKOFF_S = (2.0, 4.0, 8.0)
ALREADY_APPLIED = "BatchAlreadyApplied"


def backoff_s(retry: int) -> float:
    """Return the pause before retry number `retry` (1-based): 2, 4, 8 s."""
    return BACKOFF_S[min(retry, len(BACKOFF_S)) - 1]


def fee_of(base_micro_lamports: int, retries: int) -> int:
    """Return the priority fee after `retries` failed submissions: doubled each time."""
    return base_micro_lamports << retries


@dataclass(frozen=True, slots=True)
class AttemptState:
    """One signed transaction sent for a settlement, as recorded.

    Attributes:
        signature: Its signature (base58).
        last_valid_height: The last block height its blockhash is valid for.
        sent_at: When it was last sent (seconds, the batcher's clock).
        counted: Its failure was already counted as a failed submission.
    """

    signature: str
    last_valid_height: int
    sent_at: float
    counted: bool = False


@dataclass(frozen=True, slots=True)
class Seen:
    """A signature's status on chain.

    Attributes:
        slot: The slot it landed in.
        commitment: How deep: processed, confirmed or finalized.
        error: Why it failed (the program's error name, or the runtime's), None on success.
    """

    slot: int
    commitment: Commitment
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do now."""


@dataclass(frozen=True, slots=True)
class Resend:
    """Send the newest attempt's signed bytes again."""

    signature: str


@dataclass(frozen=True, slots=True)
class Rebuild:
    """Build and send a new attempt: every attempt expired unseen (a drop, not a failure),
    or a counted failure's backoff has passed (the retry)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """The newest attempt failed: count it; a new attempt goes after the backoff.

    Attributes:
        signature: The failed attempt.
        error: Why.
    """

    signature: str
    error: str


@dataclass(frozen=True, slots=True)
class Landed:
    """An attempt succeeded, at this commitment."""

    signature: str
    slot: int
    commitment: Commitment


@dataclass(frozen=True, slots=True)
class Unknown:
    """The batch id is applied on chain by no attempt we know (`BatchAlreadyApplied`)."""

    signature: str


Decision = Wait | Resend | Rebuild | Retry | Landed | Unknown


def decide(
    attempts: Sequence[AttemptState],
    seen: Mapping[str, Seen | None],
    *,
    height: int,
    now: float,
    next_try_at: float | None = None,
    resend_s: float = 1.0,
) -> Decision:
    """Decide the next step for a submitted settlement.

    Args:
        attempts: Every attempt so far, oldest first (at least one).
        seen: Each attempt's status by signature (None or absent: not seen on chain).
        height: The chain's block height now.
        now: The batcher's clock now (seconds).
        next_try_at: When the retry of a counted failure may go (None: at once).
        resend_s: The least pause between two sends of the same bytes.
    """
    if not attempts:
        raise ValueError("decide needs at least one attempt")
    best: tuple[AttemptState, Seen] | None = None
    for attempt in attempts:
        status = seen.get(attempt.signature)
        if status is None or status.error is not None:
            continue
        if best is None or LEVELS[status.commitment] > LEVELS[best[1].commitment]:
            best = (attempt, status)
    if best is not None:
        return Landed(best[0].signature, best[1].slot, best[1].commitment)
    newest = attempts[-1]
    status = seen.get(newest.signature)
    if newest.counted:  # its failure is counted: the retry goes after the backoff
        return Rebuild() if next_try_at is None or now >= next_try_at else Wait()
    if status is not None:  # the newest landed with an error
        if status.error == ALREADY_APPLIED:
            return Unknown(newest.signature)
        return Retry(newest.signature, status.error or "failed")
    if height <= newest.last_valid_height:
        return Resend(newest.signature) if now - newest.sent_at >= resend_s else Wait()
    if any(height <= a.last_valid_height and seen.get(a.signature) is None for a in attempts):
        return Wait()  # an older attempt can still land: never two live ones
    return Rebuild()
