"""Address lookup tables on the embedded chain: the addresses a v0 transaction loads, and
the SlotHashes sysvar the lookup table program checks a new table's recent slot against.

LiteSVM runs the address lookup table program and resolves a v0 transaction's tables
itself when it executes one; the chain resolves them again only to know every account the
transaction touched (balances in `meta`, the accounts it wrote, the address history).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from solders.account import Account
from solders.address_lookup_table_account import ID as LOOKUP_TABLE_PROGRAM_ID
from solders.address_lookup_table_account import AddressLookupTable
from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction_status import UiLoadedAddresses

MAX_SLOT_HASHES = 512
"""Entries of the SlotHashes sysvar, as on a validator: the slots before the current one;
a new table's recent slot must be one of them."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """The addresses a transaction loads from its tables, writable ones first."""

    writable: tuple[Pubkey, ...] = ()
    readonly: tuple[Pubkey, ...] = ()

    def ui(self) -> UiLoadedAddresses:
        """Return the `meta.loadedAddresses` form."""
        return UiLoadedAddresses(list(self.writable), list(self.readonly))


def loaded(message: Message | MessageV0, get: Callable[[Pubkey], Account | None]) -> Loaded:
    """Return what a message loads from its lookup tables (nothing if one cannot resolve:
    the VM then refuses the transaction and nothing of it lands)."""
    lookups = message.address_table_lookups if isinstance(message, MessageV0) else []
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    for lookup in lookups:
        account = get(lookup.account_key)
        if account is None or account.owner != LOOKUP_TABLE_PROGRAM_ID:
            return Loaded()
        addresses = AddressLookupTable.deserialize(bytes(account.data)).addresses
        indexes = [*lookup.writable_indexes, *lookup.readonly_indexes]
        if any(i >= len(addresses) for i in indexes):
            return Loaded()
        writable += [addresses[i] for i in lookup.writable_indexes]
        readonly += [addresses[i] for i in lookup.readonly_indexes]
    return Loaded(tuple(writable), tuple(readonly))


class SlotHashes:
    """The newest `MAX_SLOT_HASHES` (slot, hash) pairs, newest first when read."""

    def __init__(self) -> None:
        self._pairs: deque[tuple[int, Hash]] = deque(maxlen=MAX_SLOT_HASHES)
        self.dirty = True

    def push(self, slot: int, slot_hash: Hash) -> None:
        """Record a new slot's hash."""
        self._pairs.append((slot, slot_hash))
        self.dirty = True

    def fill(self, newest: int, hash_of: Callable[[int], Hash]) -> None:
        """Record the slots up to `newest` (a restart rebuilds the sysvar)."""
        for slot in range(max(newest - MAX_SLOT_HASHES + 1, 0), newest + 1):
            self.push(slot, hash_of(slot))

    def take(self) -> list[tuple[int, Hash]]:
        """Return the pairs, newest first, and mark them written to the VM."""
        self.dirty = False
        return list(reversed(self._pairs))
