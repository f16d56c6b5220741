"""Accounts and API keys: creation and listing for `clob keys` and the tests.

Runs as `clob_system` (an operator tool, not the API): the secret is returned once and only
its SHA-256 is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from actors.infra.errors import ClobError
from serve_app.auth import new_key, secret_sha256


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


async def create_account(conn: asyncpg.Connection, kind: str = "user") -> int:
    """Create an account; return its id."""
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        account_id: int = await conn.fetchval(
            "INSERT INTO accounts (kind) VALUES ($1) RETURNING account_id", kind
        )
    return account_id


async def create_key(
    conn: asyncpg.Connection, account_id: int | None = None, label: str = ""
) -> CreatedKey:
    """Create an API key (and an account first when `account_id` is None).

    Raises:
        KeysError: The account does not exist or is not active.
    """
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
            "INSERT INTO api_keys (key_id, account_id, secret_sha256, label) "
            "VALUES ($1, $2, $3, $4)",
            key_id,
            account_id,
            secret_sha256(secret),
            label,
        )
    return CreatedKey(account_id, key_id, f"{key_id}.{secret}")


async def list_keys(conn: asyncpg.Connection, account_id: int) -> list[dict[str, Any]]:
    """Return the keys of an account (never secrets or hashes), newest first."""
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        rows = await conn.fetch(
            "SELECT key_id, label, scopes, created_at, expires_at, revoked_at, last_used_at "
            "FROM api_keys WHERE account_id = $1 ORDER BY created_at DESC, key_id",
            account_id,
        )
    return [
        {
            "key_id": row["key_id"],
            "label": row["label"],
            "scopes": list(row["scopes"]),
            "created_at": row["created_at"].isoformat(),
            "expires_at": _iso(row["expires_at"]),
            "revoked_at": _iso(row["revoked_at"]),
            "last_used_at": _iso(row["last_used_at"]),
        }
        for row in rows
    ]


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())
