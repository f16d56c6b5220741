"""The exchange's one account id type, and the one conversion to and from the engine.

Outside the engine an account is an `AccountId`, an integer (the `accounts` table's key).
The engine keys orders by `Owner`, a string, because its replay format (ENGINE_SPEC.md)
names owners freely. A market's engine owner is the account id in decimal, so the two
functions here are the only place either becomes the other.
"""

from __future__ import annotations

from typing import NewType

from actors.engine import Owner

AccountId = NewType("AccountId", int)
"""An exchange account (`accounts.account_id`)."""


# The NewType wrappers are not called below: each call is a Python call, and these run
# several times per order (the values are already the types' plain int and str).


def owner_of(account_id: AccountId) -> Owner:
    """Return the engine owner of an account: its id in decimal."""
    return str(account_id)  # type: ignore[return-value]


def account_of(owner: str) -> AccountId | None:
    """Return the account an engine owner names, or None when it names none.

    Only ASCII digits name an account: `int` also reads other scripts' digits and
    signs, which `owner_of` never writes.
    """
    if owner.isascii() and owner.isdigit():
        return int(owner)  # type: ignore[return-value]
    return None


def account_id_of(owner: str) -> AccountId:
    """Return the account an engine owner names (every owner of an exchange market does).

    Raises:
        ValueError: The owner names no account.
    """
    if owner.isascii() and owner.isdigit():
        return int(owner)  # type: ignore[return-value]
    raise ValueError(f"engine owner {owner!r} names no account")
