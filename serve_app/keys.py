"""Accounts and API keys: the SQL of `clob keys`, the demo data and the `/keys` endpoints.

The operator functions (`create_key`, `list_keys`, `revoke_key`, `ensure_account`) run as
`clob_system`. The `own_*` functions run on a connection acting for one account as
`clob_api` (`serve_app.gateway.db.acting_as`), so row level security confines them to that
account's keys. A secret is returned once, at creation; only its SHA-256 is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from actors.infra.errors import ClobError
from serve_app.auth import new_key, secret_sha256

SCOPES = ("read", "trade", "withdraw")
"""Every scope a key can have (the `api_keys.scopes` check constraint), in canonical order."""
DEFAULT_SCOPES = ("read", "trade")
MAX_LIVE_KEYS = 20
"""Live (not revoked, not expired) keys an account may create through the API."""

_KEY_COLUMNS = "key_id, label, scopes, created_at, expires_at, revoked_at, last_used_at"
_LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
# Two-key advisory locks live apart from the one-key lock of the migration runner.
_KEYS_LOCK_CLASS = 17


class KeysError(ClobError):
    """An account or key operation failed; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new API key; `key` is shown once and never stored.

    Attributes:
        account_id: The account the key acts for.
        key_id: The public key id.
        key: The full key to send as `X-API-Key` (`key_id.secret`).
    """

    account_id: int
    key_id: str
    key: str


def canonical_scopes(scopes: Sequence[str]) -> list[str]:
    """Return the scopes without repeats, in the order of `SCOPES`.

    Raises:
        KeysError: A scope is unknown or none is given.
    """
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise KeysError(f"unknown scope {unknown[0]!r} (choose from {', '.join(SCOPES)})")
    if not scopes:
        raise KeysError("a key needs at least one scope")
    return [scope for scope in SCOPES if scope in scopes]


async def create_account(
    conn: asyncpg.Connection, kind: str = "user", external_ref: str | None = None
) -> int:
    """Create an account; return its id."""
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        account_id: int = await conn.fetchval(
            "INSERT INTO accounts (kind, external_ref) VALUES ($1, $2) RETURNING account_id",
            kind,
            external_ref,
        )
    return account_id


async def ensure_account(conn: asyncpg.Connection, external_ref: str) -> tuple[int, bool]:
    """Return the id of the account with this external reference, creating it if missing,
    and whether it was created now."""
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        created = await conn.fetchval(
            "INSERT INTO accounts (external_ref) VALUES ($1) "
            "ON CONFLICT (external_ref) DO NOTHING RETURNING account_id",
            external_ref,
        )
        if created is not None:
            return int(created), True
        found = await conn.fetchval(
            "SELECT account_id FROM accounts WHERE external_ref = $1", external_ref
        )
    return int(found), False


async def create_key(
    conn: asyncpg.Connection,
    account_id: int | None = None,
    label: str = "",
    scopes: Sequence[str] = DEFAULT_SCOPES,
) -> CreatedKey:
    """Create an API key (and an account first when `account_id` is None).

    Raises:
        KeysError: The account does not exist or is not active, or a scope is unknown.
    """
    scope_list = canonical_scopes(scopes)
    if account_id is None:
        account_id = await create_account(conn)
    key_id, secret = new_key()
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        status = await conn.fetchval(
            "SELECT status FROM accounts WHERE account_id = $1", account_id
        )
        if status is None:
            raise KeysError(f"account {account_id} does not exist")
        if status != "active":
            raise KeysError(f"account {account_id} is {status}")
        await conn.execute(
            "INSERT INTO api_keys (key_id, account_id, secret_sha256, label, scopes) "
            "VALUES ($1, $2, $3, $4, $5)",
            key_id,
            account_id,
            secret_sha256(secret),
            label,
            scope_list,
        )
    return CreatedKey(account_id, key_id, f"{key_id}.{secret}")


async def list_keys(conn: asyncpg.Connection, account_id: int) -> list[dict[str, Any]]:
    """Return the keys of an account (never secrets or hashes), newest first."""
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        rows = await conn.fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE account_id = $1 "
            "ORDER BY created_at DESC, key_id",
            account_id,
        )
    return [key_json(row) for row in rows]


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> tuple[int, dict[str, Any]]:
    """Revoke a key (a revoked key stays revoked: a repeat changes nothing); return its
    account and the key.

    Raises:
        KeysError: No such key.
    """
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        row = await conn.fetchrow(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1 "
            f"RETURNING account_id, {_KEY_COLUMNS}",
            key_id,
        )
    if row is None:
        raise KeysError(f"no key {key_id!r}")
    return int(row["account_id"]), key_json(row)


async def live_key_ids(conn: asyncpg.Connection, account_id: int) -> set[str]:
    """Return the ids of an account's live keys (not revoked, not expired)."""
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        rows = await conn.fetch(
            f"SELECT key_id FROM api_keys WHERE account_id = $1 AND {_LIVE}", account_id
        )
    return {str(row["key_id"]) for row in rows}


async def own_keys(conn: asyncpg.Connection) -> list[Any]:
    """Return the acting account's keys, newest first."""
    return list(
        await conn.fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE account_id = clob_current_account_id() "
            "ORDER BY created_at DESC, key_id"
        )
    )


async def own_key(conn: asyncpg.Connection, key_id: str) -> Any:
    """Return one of the acting account's keys, or None (also for another account's)."""
    return await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = $1", key_id)


async def create_own_key(
    conn: asyncpg.Connection,
    account_id: int,
    label: str,
    scopes: Sequence[str],
    expires_at: datetime | None,
) -> tuple[Any, str] | None:
    """Create a key for the acting account; return its row and the full key, or None when
    the account has `MAX_LIVE_KEYS` live keys already.

    Concurrent creations for one account take turns (an advisory lock until the end of
    the transaction), so the limit holds exactly.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, ($2::bigint % 2147483647)::int)",
        _KEYS_LOCK_CLASS,
        account_id,
    )
    live = await conn.fetchval(
        f"SELECT count(*) FROM api_keys WHERE account_id = clob_current_account_id() AND {_LIVE}"
    )
    if live >= MAX_LIVE_KEYS:
        return None
    key_id, secret = new_key()
    row = await conn.fetchrow(
        "INSERT INTO api_keys (key_id, account_id, secret_sha256, label, scopes, expires_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_KEY_COLUMNS}",
        key_id, account_id, secret_sha256(secret), label, canonical_scopes(scopes), expires_at,
    )  # fmt: skip
    return row, f"{key_id}.{secret}"


async def revoke_own_key(conn: asyncpg.Connection, key_id: str) -> Any:
    """Revoke one of the acting account's keys (a repeat changes nothing); return its row,
    or None when the account has no such key."""
    return await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1 "
        f"RETURNING {_KEY_COLUMNS}",
        key_id,
    )


def key_json(row: Any) -> dict[str, Any]:
    """Return a key row as JSON-ready values (never a secret or a hash)."""
    return {
        "key_id": row["key_id"],
        "label": row["label"],
        "scopes": list(row["scopes"]),
        "created_at": row["created_at"].isoformat(),
        "expires_at": _iso(row["expires_at"]),
        "revoked_at": _iso(row["revoked_at"]),
        "last_used_at": _iso(row["last_used_at"]),
    }


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())
