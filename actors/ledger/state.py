"""The state of one ledger shard in memory and its bookkeeping: pure, integer-only.

`LedgerState` holds what a shard owns (balances, fee accounts, reservation records,
credited totals, per-market journal marks and the holds), answers queries about it, moves
money between its cells with the non-negativity checks, and tracks what changed for the
writer (`take_changes`). `LedgerCore` (core.py) adds the commands and the event rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from actors.accounts import AccountId
from actors.contracts import BalanceView
from actors.engine import MarketSpec
from actors.engine.types import MAX_ATOMS
from actors.ledger.holds import Holds
from actors.ledger.rules import (
    Changes,
    Holdings,
    Key,
    LedgerInvariantError,
    LedgerRequestError,
    Move,
    Moves,
    OrderReservation,
    Totals,
    is_done,
    required_now,
    shard_of,
)


class LedgerState:
    """Balances, fees, reservations, holds and journal marks of one ledger shard.

    Args:
        shard_id: This shard's number, `0 <= shard_id < shard_count`.
        shard_count: Number of shards.
    """

    def __init__(self, shard_id: int = 0, shard_count: int = 1) -> None:
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard {shard_id} out of range for {shard_count} shards")
        self.shard_id = shard_id
        self.shard_count = shard_count
        self._balances: dict[tuple[AccountId, str], list[int]] = {}
        self._fees: dict[str, int] = {}
        self._credited: dict[str, int] = {}
        self._debited: dict[str, int] = {}
        # Credit reference -> (account, asset, amount atoms) of the credit made with it.
        self._references: dict[str, tuple[AccountId, str, int]] = {}
        # The same for debits (another namespace: a refund's credit and its withdrawal's
        # debit are two operations).
        self._debit_references: dict[str, tuple[AccountId, str, int]] = {}
        self._records: dict[Key, OrderReservation] = {}
        self._marks: dict[str, int] = {}
        self._moves: Moves = []
        self._changes = Changes()
        self._dirty_balances: set[tuple[AccountId, str]] = set()
        self._dirty_fees: set[str] = set()
        self._dirty_records: set[Key] = set()
        self._dirty_marks: set[str] = set()
        self.holds = Holds()
        # (account, asset) pairs whose balance may have changed since `take_touched`.
        self._touched: set[tuple[AccountId, str]] = set()
        # While True (catching up from the journal at recovery), balances may go negative
        # on the way: the journals of several markets are replayed one after the other,
        # not in the order their entries happened. `check_balances` checks the end state.
        self.replaying = False

    # -- loading (no change tracking) ------------------------------------------------------

    def load_balance(self, account_id: AccountId, asset: str, available: int, locked: int) -> None:
        """Set a stored balance while recovering."""
        self._balances[(account_id, asset)] = [available, locked]

    def load_fees(self, asset: str, amount: int) -> None:
        """Set the stored fee balance of an asset while recovering."""
        self._fees[asset] = amount

    def load_credited(self, asset: str, amount: int) -> None:
        """Set the stored credited total of an asset while recovering."""
        self._credited[asset] = amount

    def load_debited(self, asset: str, amount: int) -> None:
        """Set the stored debited total of an asset while recovering."""
        self._debited[asset] = amount

    def load_reservation(self, record: OrderReservation) -> None:
        """Add a stored reservation record while recovering."""
        self._records[(record.market, record.order_id)] = record

    def load_mark(self, market: str, journal_seq: int) -> None:
        """Set the stored journal high-water mark of a market while recovering."""
        self._marks[market] = journal_seq

    # -- queries ---------------------------------------------------------------------------

    def owns(self, account_id: AccountId) -> bool:
        """Return True if this shard owns the account."""
        return shard_of(account_id, self.shard_count) == self.shard_id

    def mark(self, market: str) -> int:
        """Return the last journal seq of the market applied here (0 if none)."""
        return self._marks.get(market, 0)

    def balance(self, account_id: AccountId, asset: str) -> tuple[int, int]:
        """Return `(available, locked)` atoms of one account and asset (holds count as
        locked)."""
        available, locked = self._balances.get((account_id, asset), (0, 0))
        held = self.holds.held(account_id, asset)
        return available - held, locked + held

    def durable_balance(self, account_id: AccountId, asset: str) -> tuple[int, int]:
        """Return `(available, locked)` without the holds: what is persisted."""
        available, locked = self._balances.get((account_id, asset), (0, 0))
        return available, locked

    def balances(self, account_id: AccountId) -> list[BalanceView]:
        """Return every balance of an account, by asset symbol (holds count as locked)."""
        return [
            BalanceView(asset, *self.balance(acct, asset))
            for (acct, asset) in sorted(self._balances)
            if acct == account_id
        ]

    def fees(self, asset: str) -> int:
        """Return the fee account's balance of an asset (may be negative, see module)."""
        return self._fees.get(asset, 0)

    def reservation(self, market: str, order_id: str) -> OrderReservation | None:
        """Return a copy of an order's reservation record, or None."""
        record = self._records.get((market, order_id))
        return None if record is None else replace(record)

    def order_ids(self, market: str) -> list[str]:
        """Return the ids of every order of a market that holds a reservation here."""
        return [oid for (m, oid) in self._records if m == market]

    def supply(self, asset: str) -> int:
        """Return what this shard holds of an asset by its books: credited - debited."""
        return self._credited.get(asset, 0) - self._debited.get(asset, 0)

    def totals(self) -> dict[str, Totals]:
        """Return per asset the sums of available, locked, fees, credited and debited
        atoms (conservation: available + locked + fees == credited - debited, summed
        over every shard)."""
        assets = (
            {a for _, a in self._balances} | set(self._fees) | set(self._credited)
            | set(self._debited)
        )  # fmt: skip
        out = {}
        for asset in sorted(assets):
            values = [self.balance(acct, a) for (acct, a) in self._balances if a == asset]
            out[asset] = Totals(
                sum(v[0] for v in values),
                sum(v[1] for v in values),
                self._fees.get(asset, 0),
                self._credited.get(asset, 0),
                self._debited.get(asset, 0),
            )
        return out

    def holdings(self) -> Holdings:
        """Return every account's available + locked per asset, the totals and the marks
        (the fee balances are the totals' `fees`)."""
        accounts = {key: sum(cell) for key, cell in self._balances.items() if any(cell)}
        return Holdings(accounts, self.totals(), dict(self._marks))

    def records(self) -> Iterator[OrderReservation]:
        """Iterate over the live reservation records (read-only use)."""
        return iter(self._records.values())

    def check_balances(self) -> None:
        """Raise `LedgerInvariantError` if a balance is negative or above `MAX_ATOMS`
        (after a catch-up, which may pass through such values on the way)."""
        for (account, asset), (available, locked) in self._balances.items():
            if not (0 <= available <= MAX_ATOMS and 0 <= locked <= MAX_ATOMS):
                raise LedgerInvariantError(
                    f"balance of account {account} in {asset} is out of [0, {MAX_ATOMS}] "
                    f"after the journal catch-up: ({available}, {locked})"
                )

    def take_touched(self) -> set[tuple[AccountId, str]]:
        """Return the (account, asset) pairs whose `balance` may have changed since the
        last call (moves and holds), and forget them."""
        touched = self._touched | self.holds.touched
        self._touched = set()
        self.holds.touched = set()
        return touched

    def take_changes(self) -> Changes:
        """Return everything changed since the last call, as values to persist."""
        changes = self._changes
        changes.balances = [
            (a, s, *self.durable_balance(a, s)) for a, s in sorted(self._dirty_balances)
        ]
        changes.fees = [(asset, self._fees.get(asset, 0)) for asset in sorted(self._dirty_fees)]
        for key in sorted(self._dirty_records):
            record = self._records.get(key)
            if record is None:
                changes.dropped.append(key)
            else:
                changes.reservations.append(replace(record))
        changes.marks = [(m, self._marks[m]) for m in sorted(self._dirty_marks)]
        self._changes = Changes()
        self._dirty_balances.clear()
        self._dirty_fees.clear()
        self._dirty_records.clear()
        self._dirty_marks.clear()
        return changes

    # -- helpers ---------------------------------------------------------------------------

    def _settle_remainder(self, spec: MarketSpec, record: OrderReservation) -> None:
        if is_done(record):
            self._drop(record)
        else:
            self._true_up(spec, record)

    def _true_up(self, spec: MarketSpec, record: OrderReservation) -> None:
        need = required_now(spec, record)
        if need is not None and record.reserved_atoms > need:
            self._unlock(record, record.reserved_atoms - need)
            record.reserved_atoms = need
        self._touch(record)

    def _pay(self, record: OrderReservation, atoms: int) -> None:
        if atoms > record.reserved_atoms:
            raise LedgerInvariantError(
                f"order {record.market}/{record.order_id} must pay {atoms} atoms "
                f"but has {record.reserved_atoms} reserved"
            )
        record.reserved_atoms -= atoms
        self._move(record.account_id, record.asset, 0, -atoms)

    def _drop(self, record: OrderReservation) -> None:
        self._unlock(record, record.reserved_atoms + record.pending_atoms)
        record.reserved_atoms = record.pending_atoms = 0
        key = (record.market, record.order_id)
        del self._records[key]
        self._dirty_records.add(key)

    def _unlock(self, record: OrderReservation, atoms: int) -> None:
        if atoms:
            self._move(record.account_id, record.asset, atoms, -atoms)

    def _touch(self, record: OrderReservation) -> None:
        self._dirty_records.add((record.market, record.order_id))

    def _move(self, account_id: AccountId, asset: str, d_available: int, d_locked: int) -> None:
        value = self._balances.setdefault((account_id, asset), [0, 0])
        available, locked = value[0] + d_available, value[1] + d_locked
        if not (0 <= available <= MAX_ATOMS and 0 <= locked <= MAX_ATOMS) and not self.replaying:
            # Neither can happen: reservations cover every payment, and the amount bounds
            # (`exceeds_amount_bounds`, the credit checks) keep every total within MAX_ATOMS.
            raise LedgerInvariantError(
                f"balance of account {account_id} in {asset} would leave [0, {MAX_ATOMS}]: "
                f"{value} + ({d_available}, {d_locked})"
            )
        value[0] += d_available
        value[1] += d_locked
        self._dirty_balances.add((account_id, asset))
        self._touched.add((account_id, asset))
        self._moves.append(Move(account_id, asset, d_available, d_locked))

    def _fee(self, asset: str, delta: int) -> None:
        if delta:
            self._fees[asset] = self._fees.get(asset, 0) + delta
            self._dirty_fees.add(asset)
            self._moves.append(Move(None, asset, delta, 0))

    def check_owner(self, account_id: AccountId) -> None:
        """Raise `LedgerRequestError` unless this shard owns the account."""
        if not self.owns(account_id):
            raise LedgerRequestError(
                f"account {account_id} belongs to shard {shard_of(account_id, self.shard_count)}"
                f", not {self.shard_id}"
            )
