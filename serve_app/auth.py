"""API-key authentication and the admin token (the rate limit is `serve_app.edge.ratelimit`).

A key is `"<key_id>.<secret>"`, sent in the `X-API-Key` header. The secret is 32 random
bytes (`secrets.token_urlsafe`); only its SHA-256 is stored (`api_keys.secret_sha256`). A
fast hash is enough because the secret is random, not a password. The gateway checks a key
with `api_key_authenticate(key_id, sha256)` as the `clob_api` role (a SECURITY DEFINER
function: the API never reads stored hashes) and keeps the answer for `ttl_s` seconds in
process, so a revoked key keeps working for at most that long on a replica that saw it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from actors.accounts import AccountId
from serve_app.errors import ApiError

API_KEY_HEADER = "X-API-Key"
ADMIN_TOKEN_HEADER = "X-Admin-Token"
_MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for.

    Attributes:
        account_id: The key's account; every read and command is limited to it.
        key_id: The public key id (rate limits count per key).
        scopes: The key's scopes (`read`, `trade`, `withdraw`).
    """

    account_id: AccountId
    key_id: str
    scopes: tuple[str, ...]


def new_key() -> tuple[str, str]:
    """Return a fresh `(key_id, secret)` pair; the key the client sends is `key_id.secret`."""
    return secrets.token_hex(8), secrets.token_urlsafe(32)


def secret_sha256(secret: str) -> bytes:
    """Return the SHA-256 digest of a secret, as stored in `api_keys.secret_sha256`."""
    return hashlib.sha256(secret.encode()).digest()


def parse_key(raw: str | None) -> tuple[str, str] | None:
    """Split `key_id.secret`; return None when the header is missing or malformed."""
    if not raw or len(raw) > _MAX_KEY_LENGTH or not raw.isascii():
        return None
    key_id, dot, secret = raw.partition(".")
    if not dot or not key_id or not secret:
        return None
    return key_id, secret


def unauthorized(message: str = "a valid X-API-Key header is required") -> ApiError:
    """Return the 401 error of a missing or invalid key."""
    return ApiError(401, "unauthorized", message)


class Authenticator:
    """Check API keys against PostgreSQL, with a small in-process TTL cache."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    async def authenticate(self, pool: asyncpg.Pool, raw: str | None) -> Principal:
        """Return the principal of a key.

        Raises:
            ApiError: 401 `unauthorized` for a missing, malformed, unknown, revoked or
                expired key; 403 `forbidden` when the account is not active.
        """
        parsed = parse_key(raw)
        if parsed is None:
            raise unauthorized()
        key_id, secret = parsed
        digest = secret_sha256(secret)
        cache_key = hashlib.sha256(key_id.encode() + b"." + digest).digest()
        hit = self._cache.get(cache_key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = await _lookup(pool, key_id, digest)
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[cache_key] = (now + self._ttl_s, principal)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop what this replica trusts of a key (after revoking it), so that its next
        request is checked against PostgreSQL. Other replicas keep theirs until it expires."""
        stale = [k for k, (_, principal) in self._cache.items() if principal.key_id == key_id]
        for cache_key in stale:
            del self._cache[cache_key]


async def _lookup(pool: asyncpg.Pool, key_id: str, digest: bytes) -> Principal:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_api")
        row: Any = await conn.fetchrow(
            "SELECT account_id, scopes, account_status FROM api_key_authenticate($1, $2)",
            key_id,
            digest,
        )
        if row is not None:
            # Coarse last use: on a cache miss only, at most once a minute (not audited).
            await conn.execute(
                "SELECT set_config('clob.account_id', $1, true)", str(row["account_id"])
            )
            await conn.execute(_TOUCH_KEY, key_id)
    if row is None:
        raise unauthorized("the API key is unknown, revoked or expired")
    if row["account_status"] != "active":
        raise ApiError(403, "forbidden", f"the account is {row['account_status']}")
    return Principal(AccountId(int(row["account_id"])), key_id, tuple(row["scopes"]))


_TOUCH_KEY = """
UPDATE api_keys SET last_used_at = now()
 WHERE key_id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"""


def require_scope(principal: Principal, scope: str) -> None:
    """Raise 403 `forbidden` unless the key has `scope`."""
    if scope not in principal.scopes:
        raise ApiError(403, "forbidden", f"the API key lacks the {scope!r} scope")


def check_admin(expected: str | None, presented: str | None) -> None:
    """Raise 403 `forbidden` unless `presented` equals the configured admin token.

    With no token configured every admin request is refused.
    """
    if not expected or not presented:
        raise ApiError(403, "forbidden", "a valid X-Admin-Token header is required")
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise ApiError(403, "forbidden", "a valid X-Admin-Token header is required")
