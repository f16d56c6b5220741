"""The steps that span the ledger and the custody records, each safe to repeat.

The ledger and PostgreSQL's custody rows cannot change in one transaction (a shard owns
its balances), so every step moves the ledger first, by a reference that makes it
exactly once, and records the outcome second, by a guarded UPDATE. A crash between the
two leaves a row behind its ledger; doing the step again moves the ledger no more (the
reference is spent) and records the outcome:

- debit a withdrawal: `withdrawal:<id>`, then `requested`/`pending_confirmation` ->
  `debited` (`debit_withdrawal`; `resolve_requested` finishes the requests that died in
  between, cancelling those the ledger now refuses);
- fail and refund: `debited`/`sent` -> `failed`, then `withdrawal-refund:<id>`, then
  `refunded_at` (`fail_and_refund`; `refund_owed` finishes those that died in between);
- credit a deposit: `deposit:<signature>:<address>`, then `pending` -> `credited`
  (`credit_deposit`).

`conn` is a connection acting as `clob_system` (`actors.ledger.store.connect`), outside a
transaction. `Ledger` is the port to the shards; `ShardLedger` is its adapter over Ray.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
from ray.exceptions import RayTaskError

from actors.accounts import AccountId
from actors.custody import deposits, records
from actors.custody.deposits import Deposit
from actors.custody.records import Withdrawal
from actors.custody.withdrawals import WithdrawalStatus
from actors.ledger.rules import InsufficientBalanceError, LedgerRequestError


class Ledger(Protocol):
    """What custody needs of the ledger shards."""

    async def debit(
        self, account_id: AccountId, asset: str, amount_atoms: int, reference: str
    ) -> bool:
        """Debit once per reference (True: now); raise `InsufficientBalanceError` when
        short, changing nothing."""

    async def credit(
        self, account_id: AccountId, asset: str, amount_atoms: int, reference: str
    ) -> None:
        """Credit once per reference."""


class ShardLedger:
    """`Ledger` over the shard actors: `call(actor name, method, *args)` awaits a call
    (the gateway's `GatewayCore.call`, or Ray handles), `shard_of(account)` names the
    account's shard. A refusal of the shard is raised as its own exception.
    """

    def __init__(
        self,
        call: Callable[..., Awaitable[Any]],
        shard_of: Callable[[AccountId], Awaitable[str]],
    ) -> None:
        self._call = call
        self._shard_of = shard_of

    async def debit(
        self, account_id: AccountId, asset: str, amount_atoms: int, reference: str
    ) -> bool:
        """See `Ledger.debit`."""
        done, _ = await self._request(account_id, "debit", asset, amount_atoms, reference)
        return bool(done)

    async def credit(
        self, account_id: AccountId, asset: str, amount_atoms: int, reference: str
    ) -> None:
        """See `Ledger.credit`."""
        await self._request(account_id, "credit", asset, amount_atoms, reference)

    async def _request(self, account_id: AccountId, method: str, *args: Any) -> Any:
        shard = await self._shard_of(account_id)
        try:
            return await self._call(shard, method, account_id, *args)
        except RayTaskError as exc:
            if isinstance(exc.cause, LedgerRequestError):
                raise exc.cause from None
            raise


async def debit_withdrawal(conn: asyncpg.Connection, ledger: Ledger, w: Withdrawal) -> Withdrawal:
    """Debit a requested (or confirmed second-step) withdrawal and record it `debited`.

    Returns:
        The withdrawal after (as found, if another caller recorded the debit first).

    Raises:
        InsufficientBalanceError: Less is available; neither the ledger nor the row moved.
    """
    await ledger.debit(w.account_id, w.asset, w.amount_atoms, w.debit_reference)
    moved = await records.mark_debited(conn, w.withdrawal_id)
    return moved or await _reread(conn, w.withdrawal_id)


async def resolve_requested(conn: asyncpg.Connection, ledger: Ledger, older_than_s: float) -> int:
    """Finish the `requested` rows older than `older_than_s` whose request died before
    recording its debit: debit them (a no-op if the debit was made) or, when the ledger
    refuses, cancel them. Returns how many were finished."""
    stale = await records.stale_requested(conn, older_than_s)
    for w in stale:
        try:
            await debit_withdrawal(conn, ledger, w)
        except InsufficientBalanceError:
            await records.cancel(conn, w.withdrawal_id, "insufficient_balance")
    return len(stale)


async def fail_and_refund(
    conn: asyncpg.Connection, ledger: Ledger, withdrawal_id: int, error: str
) -> Withdrawal | None:
    """Record that a debited or sent withdrawal cannot land and re-credit it, exactly
    once however often this runs.

    Returns:
        The withdrawal after, or None when it is in no state that fails (it landed, was
        never debited, or does not exist): nothing changed.
    """
    w = await records.mark_failed(conn, withdrawal_id, error)
    if w is None:
        w = await records.get(conn, withdrawal_id)
        if w is None or w.status is not WithdrawalStatus.FAILED:
            return None
    return await _refund(conn, ledger, w)


async def refund_owed(conn: asyncpg.Connection, ledger: Ledger) -> int:
    """Re-credit every failed withdrawal whose refund was not recorded; return how many."""
    owed = await records.owed_refunds(conn)
    for w in owed:
        await _refund(conn, ledger, w)
    return len(owed)


async def credit_deposit(conn: asyncpg.Connection, ledger: Ledger, d: Deposit) -> bool:
    """Credit a pending deposit once and record it `credited`; False if it was already
    recorded (the credit, if made again, changed nothing)."""
    await ledger.credit(d.account_id, d.asset, d.amount_atoms, d.credit_reference)
    return await deposits.mark_credited(conn, d.tx_signature, d.address)


async def _refund(conn: asyncpg.Connection, ledger: Ledger, w: Withdrawal) -> Withdrawal:
    if w.refunded_at is None:
        await ledger.credit(w.account_id, w.asset, w.amount_atoms, w.refund_reference)
        await records.mark_refunded(conn, w.withdrawal_id)
    return await _reread(conn, w.withdrawal_id)


async def _reread(conn: asyncpg.Connection, withdrawal_id: int) -> Withdrawal:
    found = await records.get(conn, withdrawal_id)
    assert found is not None, withdrawal_id  # rows are never deleted once debited
    return found
