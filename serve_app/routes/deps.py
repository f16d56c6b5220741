"""FastAPI dependencies: the replica's `GatewayCore`, the caller's identity, admin access."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader
from ray import serve

from serve_app.auth import (
    ADMIN_TOKEN_HEADER,
    API_KEY_HEADER,
    Principal,
    check_admin,
    over_rate_limit,
    require_scope,
)
from serve_app.routes.core import GatewayCore
from serve_app.routes.rejects import api_error

_api_key = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="ApiKey",
    description="`<key_id>.<secret>` as printed by `clob keys create`.",
)
_admin_token = APIKeyHeader(
    name=ADMIN_TOKEN_HEADER,
    auto_error=False,
    scheme_name="AdminToken",
    description="The admin token the exchange was started with.",
)


async def get_core() -> GatewayCore:
    """Return the `GatewayCore` of the replica serving this request."""
    return replica_core()


def replica_core() -> GatewayCore:
    """Return the `GatewayCore` of this Serve replica."""
    servable: Any = serve.get_replica_context().servable_object
    core: GatewayCore = servable.core
    return core


Core = Annotated[GatewayCore, Depends(get_core)]


async def get_principal(
    core: Core, raw_key: Annotated[str | None, Security(_api_key)] = None
) -> Principal:
    """Authenticate the request's API key and count it against the rate limit."""
    return await authorize(core, raw_key)


async def authorize(core: GatewayCore, raw_key: str | None) -> Principal:
    """Authenticate an API key and count it against the rate limit.

    Raises:
        ApiError: 401 `unauthorized`, 403 `forbidden` or 429 `rate_limited`.
    """
    principal = await core.auth.authenticate(await core.pool(), raw_key)
    limit = core.args.rate_limit_per_minute
    if limit > 0 and await over_rate_limit(await core.redis(), principal.key_id, limit):
        raise api_error("rate_limited", f"more than {limit} requests a minute", limit=limit)
    return principal


Caller = Annotated[Principal, Depends(get_principal)]


async def get_reader(principal: Caller) -> Principal:
    """A caller whose key has the `read` scope (account data: orders, balances, fills).

    Raises:
        ApiError: 403 `forbidden` without it.
    """
    require_scope(principal, "read")
    return principal


Reader = Annotated[Principal, Depends(get_reader)]


async def require_admin(
    core: Core, token: Annotated[str | None, Security(_admin_token)] = None
) -> None:
    """Refuse the request (403 `forbidden`) unless it carries the admin token."""
    check_admin(core.args.admin_token, token)
