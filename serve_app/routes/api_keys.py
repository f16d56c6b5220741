"""Key management for your own account: list, create and revoke API keys.

A key manages the keys of its own account only: the SQL runs as `clob_api` acting for the
caller's account, so row level security hides every other account's keys (another
account's key id answers 404 `unknown_key`, exactly like one that does not exist). A key
never hands out more than it has: a new key's scopes must be a subset of the caller's,
and a key may revoke only itself or keys whose scopes it has. The secret of a key is in
the answer that creates it and nowhere else.

Revocation takes effect at once on the gateway replica that revoked the key (it drops the
key from its cache); another replica may accept the key for up to its `auth_cache_ttl_s`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from serve_app import keys
from serve_app.auth import Principal
from serve_app.gateway import db
from serve_app.gateway.rejects import api_error
from serve_app.http.deps import Caller, Core, Reader

router = APIRouter(prefix="/keys", tags=["keys"])

Scope = Literal["read", "trade", "withdraw"]
_UNKNOWN_KEY: dict[int | str, dict[str, Any]] = {404: {"description": "No such key of yours"}}


class KeyCreate(BaseModel):
    """A new key for your account."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(default="", max_length=128, description="Your label for the key.")
    scopes: list[Scope] | None = Field(
        default=None,
        min_length=1,
        description="A subset of your key's scopes; default: your key's scopes.",
    )
    expires_at: datetime | None = Field(
        default=None, description="The key stops working at this time (RFC 3339); none: never."
    )

    @field_validator("expires_at")
    @classmethod
    def _with_a_zone(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires_at needs a time zone (e.g. 2030-01-01T00:00:00Z)")
        return value


class KeyView(BaseModel):
    """An API key (never its secret)."""

    key_id: str = Field(description="The public part of the key, before the dot.")
    label: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = Field(description="When it was revoked; null: live.")
    last_used_at: datetime | None = Field(description="Coarse: updated at most once a minute.")


class CreatedKeyView(KeyView):
    """A new key, with the one copy of its secret."""

    api_key: str = Field(description="`key_id.secret`, for X-API-Key: shown this once only.")


class KeyList(BaseModel):
    """Your account's keys, newest first (revoked ones included)."""

    keys: list[KeyView]


def _view(row: Any) -> KeyView:
    return KeyView.model_validate(dict(row))


@router.get("", response_model=KeyList, summary="Your API keys")
async def list_keys(core: Core, caller: Reader) -> KeyList:
    """Return every key of your account, without secrets."""
    async with db.acting_as(await core.pool(), caller.account_id, projection=None) as conn:
        rows = await keys.own_keys(conn)
    return KeyList(keys=[_view(row) for row in rows])


@router.post(
    "",
    response_model=CreatedKeyView,
    status_code=201,
    summary="Create an API key",
    responses={403: {"description": "A scope your key lacks"}, 409: {"description": "Limit"}},
)
async def create_key(body: KeyCreate, core: Core, caller: Caller) -> CreatedKeyView:
    """Create a key for your account; the answer holds its secret, shown this once only."""
    # Checked here, not by the model: "in the future" depends on the clock, which no
    # schema states, so it has a code of its own (like an order's past `expire_at`).
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise api_error("invalid_expiry", "expires_at must be in the future", field="expires_at")
    scopes = keys.canonical_scopes(body.scopes or caller.scopes)
    lacking = [scope for scope in scopes if scope not in caller.scopes]
    if lacking:
        raise api_error(
            "forbidden", "a new key's scopes must be a subset of your key's", scopes=lacking
        )
    async with db.acting_as(await core.pool(), caller.account_id, projection=None) as conn:
        made = await keys.create_own_key(
            conn, caller.account_id, body.label, scopes, body.expires_at
        )
    if made is None:
        raise api_error(
            "key_limit_reached",
            f"an account may have at most {keys.MAX_LIVE_KEYS} live keys: revoke one first",
            limit=keys.MAX_LIVE_KEYS,
        )
    row, api_key = made
    return CreatedKeyView(**_view(row).model_dump(), api_key=api_key)


def _may_revoke(caller: Principal, target: Any) -> bool:
    return target["key_id"] == caller.key_id or set(target["scopes"]) <= set(caller.scopes)


@router.delete(
    "/{key_id}",
    response_model=KeyView,
    summary="Revoke an API key",
    responses={403: {"description": "A key with scopes yours lacks"}, **_UNKNOWN_KEY},
)
async def revoke_key(
    key_id: Annotated[str, Path(max_length=64, description="The key's id.")],
    core: Core,
    caller: Caller,
) -> KeyView:
    """Revoke one of your keys (your own included); revoking it again changes nothing."""
    async with db.acting_as(await core.pool(), caller.account_id, projection=None) as conn:
        target = await keys.own_key(conn, key_id)
        if target is None:
            raise api_error("unknown_key", "no such key", key_id=key_id)
        if not _may_revoke(caller, target):
            raise api_error("forbidden", "a key may revoke only keys whose scopes it has")
        row = await keys.revoke_own_key(conn, key_id)
    core.auth.forget(key_id)
    return _view(row)
