"""SQL of the withdrawal records and the allowlist (every statement on these tables).

Two kinds of caller, two roles. The gateway takes the user's steps on a connection acting
for one account as `clob_api` (row level security confines it to that account: the
functions marked *user step*). The ledger's and the custody actor's steps run as
`clob_system` (*system step*), each a guarded UPDATE whose source states come from the
transition table (`withdrawals.sources`): a row moves only along it, and a repeated step
finds nothing to move and answers so. Amounts are `NUMERIC(38,0)` read as text: no
`Decimal` on a money path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from actors.accounts import AccountId
from actors.custody.references import debit_reference, refund_reference
from actors.custody.withdrawals import WithdrawalEvent, WithdrawalStatus, sources, target

_ADVISORY_CLASS = 18
"""First key of the per-account advisory lock of withdrawal requests (the API keys use
17, the migration runner a one-key lock)."""

_COLUMNS = """w.withdrawal_id, w.account_id, a.symbol AS asset, w.amount_atoms::text AS amount,
    w.destination, w.status, w.client_request_id, w.tx_signature, w.last_valid_block_height,
    w.attempts, w.last_error, w.created_at, w.updated_at, w.confirm_expires_at, w.debited_at,
    w.sent_at, w.completed_at, w.refunded_at"""
_FROM = "FROM withdrawals w JOIN assets a USING (asset_id)"


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """One withdrawal as stored (`withdrawals`; amounts in atoms)."""

    withdrawal_id: int
    account_id: AccountId
    asset: str
    amount_atoms: int
    destination: str
    status: WithdrawalStatus
    client_request_id: str | None
    tx_signature: str | None
    last_valid_block_height: int | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    confirm_expires_at: datetime | None
    debited_at: datetime | None
    sent_at: datetime | None
    completed_at: datetime | None
    refunded_at: datetime | None

    @property
    def debit_reference(self) -> str:
        """The ledger reference of its debit."""
        return debit_reference(self.withdrawal_id)

    @property
    def refund_reference(self) -> str:
        """The ledger reference of its refund."""
        return refund_reference(self.withdrawal_id)


@dataclass(frozen=True, slots=True)
class AllowedAddress:
    """An allowlisted destination (`withdrawal_addresses`)."""

    address: str
    label: str
    created_at: datetime
    active_from: datetime


def _withdrawal(row: Any) -> Withdrawal:
    values = dict(row)
    values["amount_atoms"] = int(values.pop("amount"))
    values["status"] = WithdrawalStatus(values["status"])
    return Withdrawal(**values)


# -- the allowlist (user steps) ------------------------------------------------------------


async def add_address(
    conn: asyncpg.Connection, account_id: int, address: str, label: str, cooling_off_s: int
) -> AllowedAddress:
    """Allowlist a destination, usable after `cooling_off_s`; adding one already listed
    changes nothing (its cooling-off is not restarted) and returns it."""
    await conn.execute(
        "INSERT INTO withdrawal_addresses (account_id, address, label, active_from) "
        "VALUES ($1, $2, $3, now() + make_interval(secs => $4)) ON CONFLICT DO NOTHING",
        account_id, address, label, cooling_off_s,
    )  # fmt: skip
    found = await find_address(conn, address)
    assert found is not None  # inserted or already there, in this account (RLS)
    return found


async def find_address(conn: asyncpg.Connection, address: str) -> AllowedAddress | None:
    """Return an allowlisted destination of the acting account, if listed."""
    row = await conn.fetchrow(
        "SELECT address, label, created_at, active_from FROM withdrawal_addresses "
        "WHERE address = $1", address,
    )  # fmt: skip
    return None if row is None else AllowedAddress(**dict(row))


async def list_addresses(conn: asyncpg.Connection) -> list[AllowedAddress]:
    """Return the acting account's allowlist, oldest first."""
    rows = await conn.fetch(
        "SELECT address, label, created_at, active_from FROM withdrawal_addresses "
        "ORDER BY created_at, address"
    )
    return [AllowedAddress(**dict(r)) for r in rows]


async def remove_address(conn: asyncpg.Connection, address: str) -> bool:
    """Remove a destination from the acting account's allowlist; False if not listed."""
    return await conn.fetchval(
        "DELETE FROM withdrawal_addresses WHERE address = $1 RETURNING true", address
    ) is not None  # fmt: skip


# -- requests (user steps) -----------------------------------------------------------------


async def lock_requests(conn: asyncpg.Connection, account_id: int) -> None:
    """Serialize the account's withdrawal requests until the transaction ends (the daily
    limit counts what the others recorded)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2::int)", _ADVISORY_CLASS,
                       account_id % 2**31)  # fmt: skip


async def recent_counted(
    conn: asyncpg.Connection, asset_id: int, states: frozenset[WithdrawalStatus]
) -> list[tuple[datetime, int]]:
    """Return `(created_at, amount atoms)` of the acting account's withdrawals of an asset
    in `states` requested in the last 24 h (the database's clock)."""
    rows = await conn.fetch(
        "SELECT created_at, amount_atoms::text AS a FROM withdrawals WHERE asset_id = $1 "
        "AND status = ANY($2::text[]) AND created_at > now() - interval '24 hours'",
        asset_id, sorted(s.value for s in states),
    )  # fmt: skip
    return [(r["created_at"], int(r["a"])) for r in rows]


async def insert_request(  # noqa: PLR0917 (one argument per column)
    conn: asyncpg.Connection,
    account_id: int,
    asset_id: int,
    amount_atoms: int,
    destination: str,
    client_request_id: str | None,
) -> tuple[Withdrawal, bool]:
    """Record a `requested` withdrawal; return it and whether it is new (a retry with the
    same `client_request_id` returns the first one, whatever its terms)."""
    new_id = await conn.fetchval(
        "INSERT INTO withdrawals (account_id, asset_id, amount_atoms, destination, "
        "client_request_id) VALUES ($1, $2, $3::text::numeric, $4, $5) "
        "ON CONFLICT (account_id, client_request_id) DO NOTHING RETURNING withdrawal_id",
        account_id, asset_id, str(amount_atoms), destination, client_request_id,
    )  # fmt: skip
    if new_id is not None:
        found = await get(conn, int(new_id))
    else:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} {_FROM} WHERE w.account_id = $1 AND w.client_request_id = $2",
            account_id, client_request_id,
        )  # fmt: skip
        found = None if row is None else _withdrawal(row)
    assert found is not None
    return found, new_id is not None


async def hold_for_confirmation(
    conn: asyncpg.Connection, withdrawal_id: int, code_sha256: bytes, ttl_s: int
) -> Withdrawal | None:
    """Hold a `requested` withdrawal for its second step (user step)."""
    return await _step(
        conn, withdrawal_id, WithdrawalEvent.HOLD_FOR_CONFIRMATION,
        "confirm_code_sha256 = $3, confirm_expires_at = now() + make_interval(secs => $4)",
        code_sha256, ttl_s,
    )  # fmt: skip


async def check_code(conn: asyncpg.Connection, withdrawal_id: int, code_sha256: bytes) -> bool:
    """Return whether a code's SHA-256 is the one stored for the withdrawal."""
    stored = await conn.fetchval(
        "SELECT confirm_code_sha256 FROM withdrawals WHERE withdrawal_id = $1", withdrawal_id
    )
    return stored is not None and bytes(stored) == code_sha256


async def cancel_expired(conn: asyncpg.Connection) -> int:
    """Cancel the acting account's second steps whose time ran out; return how many."""
    status = await conn.execute(
        "UPDATE withdrawals SET status = $1, updated_at = now(), "
        "last_error = 'confirmation expired' "
        "WHERE status = 'pending_confirmation' AND confirm_expires_at <= now()",
        target(WithdrawalEvent.CANCEL).value,
    )
    return int(status.split()[-1])


async def get(conn: asyncpg.Connection, withdrawal_id: int) -> Withdrawal | None:
    """Return a withdrawal (as `clob_api`: only the acting account's)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} {_FROM} WHERE w.withdrawal_id = $1",
                              withdrawal_id)  # fmt: skip
    return None if row is None else _withdrawal(row)


async def page(
    conn: asyncpg.Connection, limit: int, before_id: int | None, status: str | None = None
) -> list[Withdrawal]:
    """Return the acting account's withdrawals, newest first, below `before_id`."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE ($1::bigint IS NULL OR w.withdrawal_id < $1) "
        "AND ($2::text IS NULL OR w.status = $2) ORDER BY w.withdrawal_id DESC LIMIT $3",
        before_id, status, limit,
    )  # fmt: skip
    return [_withdrawal(r) for r in rows]


# -- system steps --------------------------------------------------------------------------


async def _step(
    conn: asyncpg.Connection, withdrawal_id: int, event: WithdrawalEvent, sets: str, *args: Any
) -> Withdrawal | None:
    """Move a withdrawal by `event` if the transition table allows it from its state;
    return it after, or None when it was not in a source state (nothing changed)."""
    extra = f", {sets}" if sets else ""
    moved = await conn.fetchval(
        f"UPDATE withdrawals SET status = $2, updated_at = now(){extra} "
        f"WHERE withdrawal_id = $1 AND status = ANY(ARRAY{sources(event)!r}::text[]) "
        "RETURNING withdrawal_id",
        withdrawal_id, target(event).value, *args,
    )  # fmt: skip
    return None if moved is None else await get(conn, withdrawal_id)


async def mark_debited(conn: asyncpg.Connection, withdrawal_id: int) -> Withdrawal | None:
    """Record that the ledger debited `withdrawal:<id>` (from requested or
    pending_confirmation); None if it was not waiting for it."""
    return await _step(conn, withdrawal_id, WithdrawalEvent.DEBIT, "debited_at = now()")


async def cancel(conn: asyncpg.Connection, withdrawal_id: int, reason: str) -> Withdrawal | None:
    """Cancel a withdrawal that was never debited (requested or pending_confirmation)."""
    return await _step(conn, withdrawal_id, WithdrawalEvent.CANCEL, "last_error = $3", reason)


async def drop_refused(conn: asyncpg.Connection, withdrawal_id: int) -> bool:
    """Delete a `requested` row whose debit the ledger refused while its request was
    being answered: the request then changed nothing."""
    return await conn.fetchval(
        "DELETE FROM withdrawals WHERE withdrawal_id = $1 AND status = 'requested' "
        "RETURNING true", withdrawal_id,
    ) is not None  # fmt: skip


async def stale_requested(conn: asyncpg.Connection, older_than_s: float) -> list[Withdrawal]:
    """Return `requested` rows older than `older_than_s`: their request died between the
    row and its debit (`flows.resolve_requested` finishes them)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE w.status = 'requested' "
        "AND w.created_at < now() - make_interval(secs => $1) ORDER BY w.withdrawal_id",
        older_than_s,
    )  # fmt: skip
    return [_withdrawal(r) for r in rows]


async def claim_debited(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[Withdrawal]:
    """Claim up to `limit` debited withdrawals to send, oldest first, for `lease_s`
    seconds (rows claimed by another sender whose lease still runs are skipped); each
    claim counts an attempt."""
    rows = await conn.fetch(
        "UPDATE withdrawals SET lease_until = now() + make_interval(secs => $2), "
        "attempts = attempts + 1, updated_at = now() WHERE withdrawal_id IN ("
        "  SELECT withdrawal_id FROM withdrawals WHERE status = 'debited' "
        "  AND (lease_until IS NULL OR lease_until < now()) ORDER BY withdrawal_id "
        "  LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING withdrawal_id",
        limit, lease_s,
    )  # fmt: skip
    claimed = [await get(conn, int(r[0])) for r in rows]
    return sorted((w for w in claimed if w is not None), key=lambda w: w.withdrawal_id)


async def mark_sent(
    conn: asyncpg.Connection,
    withdrawal_id: int,
    signature: str,
    last_valid_block_height: int,
    wire: bytes | None = None,
) -> Withdrawal | None:
    """Record a transaction sent for a debited (or already sent) withdrawal, in one
    transaction with its `withdrawal_sends` row (with its signed bytes `wire`, to send
    again); None if it is in another state."""
    async with conn.transaction():
        moved = await _step(
            conn, withdrawal_id, WithdrawalEvent.SEND,
            "tx_signature = $3, last_valid_block_height = $4, sent_at = now()",
            signature, last_valid_block_height,
        )  # fmt: skip
        if moved is not None:
            await conn.execute(
                "INSERT INTO withdrawal_sends (tx_signature, withdrawal_id, "
                "last_valid_block_height, tx_wire) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                signature, withdrawal_id, last_valid_block_height, wire,
            )  # fmt: skip
    return moved


async def sends(conn: asyncpg.Connection, withdrawal_id: int) -> list[tuple[str, int]]:
    """Return `(signature, last valid block height)` of every transaction sent for it."""
    rows = await conn.fetch(
        "SELECT tx_signature, last_valid_block_height FROM withdrawal_sends "
        "WHERE withdrawal_id = $1 ORDER BY sent_at", withdrawal_id,
    )  # fmt: skip
    return [(r[0], int(r[1])) for r in rows]


async def sent_wires(conn: asyncpg.Connection, withdrawal_id: int) -> list[tuple[str, int, bytes]]:
    """Return `(signature, last valid block height, signed bytes)` of every transaction
    sent for it whose bytes were kept, oldest first."""
    rows = await conn.fetch(
        "SELECT tx_signature, last_valid_block_height, tx_wire FROM withdrawal_sends "
        "WHERE withdrawal_id = $1 AND tx_wire IS NOT NULL ORDER BY sent_at", withdrawal_id,
    )  # fmt: skip
    return [(r[0], int(r[1]), bytes(r[2])) for r in rows]


async def in_flight(conn: asyncpg.Connection) -> list[Withdrawal]:
    """Return every `sent` withdrawal (waiting for its confirmation depth or expiry)."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} {_FROM} WHERE w.status = 'sent' "
                            "ORDER BY w.withdrawal_id")  # fmt: skip
    return [_withdrawal(r) for r in rows]


async def mark_confirmed(
    conn: asyncpg.Connection, withdrawal_id: int, signature: str
) -> Withdrawal | None:
    """Record that `signature` (one of its sends) landed at the confirmation depth."""
    return await _step(conn, withdrawal_id, WithdrawalEvent.LAND,
                       "tx_signature = $3, completed_at = now()", signature)  # fmt: skip


async def mark_failed(
    conn: asyncpg.Connection, withdrawal_id: int, error: str
) -> Withdrawal | None:
    """Record that a debited or sent withdrawal cannot land (its refund is then owed:
    `flows.fail_and_refund` does both)."""
    return await _step(conn, withdrawal_id, WithdrawalEvent.FAIL, "last_error = $3", error[:500])


async def mark_refunded(conn: asyncpg.Connection, withdrawal_id: int) -> bool:
    """Record that a failed withdrawal was re-credited; False if it was already."""
    return await conn.fetchval(
        "UPDATE withdrawals SET refunded_at = now(), updated_at = now() "
        "WHERE withdrawal_id = $1 AND status = 'failed' AND refunded_at IS NULL "
        "RETURNING true", withdrawal_id,
    ) is not None  # fmt: skip


async def owed_refunds(conn: asyncpg.Connection) -> list[Withdrawal]:
    """Return the failed withdrawals not yet re-credited."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} {_FROM} WHERE w.status = 'failed' "
                            "AND w.refunded_at IS NULL ORDER BY w.withdrawal_id")  # fmt: skip
    return [_withdrawal(r) for r in rows]
