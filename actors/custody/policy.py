"""The withdrawal policy: pure rules over integers, no I/O and no clock (time is passed in).

- **Allowlist with cooling-off.** A destination must be on the account's allowlist, and
  usable: an address added at `t` is usable from `t + cooling_off_s` (0 in embedded mode).
- **Daily limit per asset** (rolling 24 h): the amounts of the account's withdrawals of
  the asset requested in the 24 h before now that are out or on their way out
  (`COUNTED_STATES`), plus this one, must not pass `daily_limit_atoms[asset]`. No entry
  for an asset: no limit.
- **Two-step confirmation** strictly above `two_step_threshold_atoms[asset]`: the request
  is held (`pending_confirmation`, nothing debited) until confirmed with its one-time
  code within `confirm_ttl_s`. No entry: never.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DAY_MS = 86_400_000
"""The daily limit's rolling window, in milliseconds."""


@dataclass(frozen=True, slots=True)
class CustodyPolicy:
    """The custody settings the rules read (`actors.infra.settings.CustodySettings`).

    Attributes:
        cooling_off_s: Seconds before a newly allowlisted address may be withdrawn to.
        daily_limit_atoms: Per asset symbol, the most that may leave an account in any
            24 h, in atoms; an asset not listed has no limit.
        two_step_threshold_atoms: Per asset symbol, the amount in atoms above which a
            withdrawal needs the second step; an asset not listed never does.
        confirm_ttl_s: Seconds a second step may wait for its confirmation.
    """

    cooling_off_s: int = 0
    daily_limit_atoms: Mapping[str, int] = field(default_factory=dict)
    two_step_threshold_atoms: Mapping[str, int] = field(default_factory=dict)
    confirm_ttl_s: int = 900


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the policy refuses a withdrawal (nothing is recorded or debited).

    Attributes:
        code: Stable API code: `address_not_allowed`, `address_cooling_off` or
            `daily_limit_exceeded`.
        message: For people.
        details: Structured context (integers in atoms or ms).
    """

    code: str
    message: str
    details: Mapping[str, int | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Allowed:
    """The policy lets the withdrawal go; `two_step` holds it for the second step."""

    two_step: bool


Decision = Allowed | Refusal


def active_from_ms(added_ms: int, policy: CustodyPolicy) -> int:
    """Return when an address added at `added_ms` becomes usable (ms since the epoch)."""
    return added_ms + policy.cooling_off_s * 1000


def used_in_window(recent: Iterable[tuple[int, int]], now_ms: int) -> int:
    """Return the atoms of the counted withdrawals requested in the 24 h before `now_ms`.

    Args:
        recent: `(requested at ms, amount atoms)` of the account's counted withdrawals of
            one asset (older ones may be included: they are left out here). One stamped
            after `now_ms` counts: it is recorded, and a request's clock may lag the
            stamp of one recorded while it waited for the account's lock.
        now_ms: Now, ms since the epoch.
    """
    return sum(atoms for at_ms, atoms in recent if at_ms > now_ms - DAY_MS)


def decide(  # noqa: PLR0917 (the rule's inputs, each one number)
    policy: CustodyPolicy,
    asset: str,
    amount_atoms: int,
    address_active_from_ms: int | None,
    recent: Iterable[tuple[int, int]],
    now_ms: int,
) -> Decision:
    """Apply the policy to one withdrawal request.

    Args:
        policy: The settings.
        asset: Asset symbol.
        amount_atoms: Amount asked (> 0).
        address_active_from_ms: When the destination became usable on the account's
            allowlist; None: it is not on the allowlist.
        recent: The account's counted withdrawals of the asset (`used_in_window`).
        now_ms: Now, ms since the epoch.

    Returns:
        `Allowed` (with or without the second step) or the first `Refusal`, checked in
        the order allowlist, cooling-off, daily limit.
    """
    if address_active_from_ms is None:
        return Refusal("address_not_allowed", "the destination is not on your allowlist")
    if address_active_from_ms > now_ms:
        return Refusal(
            "address_cooling_off",
            "the destination was added recently and is not usable yet",
            {"active_from_ms": address_active_from_ms},
        )
    limit = policy.daily_limit_atoms.get(asset)
    if limit is not None:
        used = used_in_window(recent, now_ms)
        if used + amount_atoms > limit:
            return Refusal(
                "daily_limit_exceeded",
                "the withdrawal would pass the daily limit of the asset",
                {"limit_atoms": limit, "used_atoms": used,
                 "remaining_atoms": max(0, limit - used)},
            )  # fmt: skip
    threshold = policy.two_step_threshold_atoms.get(asset)
    return Allowed(two_step=threshold is not None and amount_atoms > threshold)


def confirmation_expired(requested_ms: int, now_ms: int, policy: CustodyPolicy) -> bool:
    """Return whether a second step requested at `requested_ms` may no longer be confirmed."""
    return now_ms >= requested_ms + policy.confirm_ttl_s * 1000
