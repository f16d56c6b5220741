"""SQL of the deposit records (`deposits`) and the listener's cursors (`deposit_cursors`).

The deposit listener (the lead's custody actor, `clob_system`) records each transaction
that raised a deposit address's token balance once (`insert_seen`, idempotent by
signature and address), updates its confirmations, credits the ledger with
`credit_reference` once the confirmation depth is reached, then `mark_credited`. A crash
between the credit and the mark is harmless: the credit is exactly once per reference,
so the listener credits again (a no-op) and marks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from actors.accounts import AccountId
from actors.custody.references import deposit_reference

DepositStatus = Literal["pending", "credited", "failed"]
"""Where a deposit is: seen and waiting for its depth, credited once, or never to be."""

_COLUMNS = """d.deposit_id, d.account_id, a.symbol AS asset, d.amount_atoms::text AS amount,
    d.address, d.tx_signature, d.slot, d.confirmations, d.status, d.created_at,
    d.credited_at"""
_FROM = "FROM deposits d JOIN assets a USING (asset_id)"


@dataclass(frozen=True, slots=True)
class Deposit:
    """One deposit as stored (amount in atoms)."""

    deposit_id: int
    account_id: AccountId
    asset: str
    amount_atoms: int
    address: str
    tx_signature: str
    slot: int | None
    confirmations: int
    status: DepositStatus
    created_at: datetime
    credited_at: datetime | None

    @property
    def credit_reference(self) -> str:
        """The ledger reference of its credit."""
        return deposit_reference(self.tx_signature, self.address)


def _deposit(row: Any) -> Deposit:
    values = dict(row)
    values["amount_atoms"] = int(values.pop("amount"))
    return Deposit(**values)


async def insert_seen(  # noqa: PLR0917 (one argument per column)
    conn: asyncpg.Connection,
    account_id: int,
    asset_id: int,
    amount_atoms: int,
    address: str,
    signature: str,
    slot: int,
) -> bool:
    """Record a deposit seen on chain as `pending`; False (changing nothing) if this
    transaction's deposit to this address is recorded already."""
    return await conn.fetchval(
        "INSERT INTO deposits (account_id, asset_id, amount_atoms, address, tx_signature, "
        "slot) VALUES ($1, $2, $3::text::numeric, $4, $5, $6) "
        "ON CONFLICT (tx_signature, address) DO NOTHING RETURNING true",
        account_id, asset_id, str(amount_atoms), address, signature, slot,
    ) is not None  # fmt: skip


async def set_confirmations(
    conn: asyncpg.Connection, signature: str, address: str, confirmations: int
) -> None:
    """Update the confirmations seen of a deposit (never lowered)."""
    await conn.execute(
        "UPDATE deposits SET confirmations = greatest(confirmations, $3) "
        "WHERE tx_signature = $1 AND address = $2", signature, address, confirmations,
    )  # fmt: skip


async def mark_credited(conn: asyncpg.Connection, signature: str, address: str) -> bool:
    """Record that the ledger credited a pending deposit; False if it was already."""
    return await conn.fetchval(
        "UPDATE deposits SET status = 'credited', credited_at = now() "
        "WHERE tx_signature = $1 AND address = $2 AND status = 'pending' RETURNING true",
        signature, address,
    ) is not None  # fmt: skip


async def mark_failed(conn: asyncpg.Connection, signature: str, address: str) -> bool:
    """Record that a pending deposit will never be credited (its transaction failed or
    was dropped from the chain); False if it was not pending."""
    return await conn.fetchval(
        "UPDATE deposits SET status = 'failed' WHERE tx_signature = $1 AND address = $2 "
        "AND status = 'pending' RETURNING true", signature, address,
    ) is not None  # fmt: skip


async def pending(conn: asyncpg.Connection) -> list[Deposit]:
    """Return every deposit not yet credited, oldest first."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} {_FROM} WHERE d.status = 'pending' "
                            "ORDER BY d.deposit_id")  # fmt: skip
    return [_deposit(r) for r in rows]


async def page(conn: asyncpg.Connection, limit: int, before_id: int | None) -> list[Deposit]:
    """Return deposits newest first below `before_id` (as `clob_api`: the acting account's)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE ($1::bigint IS NULL OR d.deposit_id < $1) "
        "ORDER BY d.deposit_id DESC LIMIT $2", before_id, limit,
    )  # fmt: skip
    return [_deposit(r) for r in rows]


async def cursor(conn: asyncpg.Connection, address: str) -> tuple[str, int] | None:
    """Return `(signature, slot)` of the newest transaction recorded for an address."""
    row = await conn.fetchrow(
        "SELECT last_signature, last_slot FROM deposit_cursors WHERE address = $1", address
    )
    return None if row is None else (str(row[0]), int(row[1]))


async def set_cursor(conn: asyncpg.Connection, address: str, signature: str, slot: int) -> None:
    """Move an address's cursor to a newer transaction (an older slot never moves it
    back)."""
    await conn.execute(
        "INSERT INTO deposit_cursors AS c (address, last_signature, last_slot) "
        "VALUES ($1, $2, $3) ON CONFLICT (address) DO UPDATE "
        "SET last_signature = EXCLUDED.last_signature, last_slot = EXCLUDED.last_slot, "
        "updated_at = now() WHERE c.last_slot <= EXCLUDED.last_slot",
        address, signature, slot,
    )  # fmt: skip
