"""FastAPI dependencies: the replica's `GatewayCore`, the caller's identity, admin access."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from ray import serve

from serve_app.auth import (
    ADMIN_TOKEN_HEADER,
    API_KEY_HEADER,
    Principal,
    check_admin,
    require_scope,
)
from serve_app.edge.context import RequestContext, context_of
from serve_app.gateway.core import GatewayCore

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
    request: Request, core: Core, raw_key: Annotated[str | None, Security(_api_key)] = None
) -> Principal:
    """Authenticate the request's API key."""
    return await authorize(core, raw_key, context_of(request.scope))


async def authorize(
    core: GatewayCore, raw_key: str | None, context: RequestContext | None = None
) -> Principal:
    """Authenticate an API key, once per request: the edge's rate limit may have done it
    already (`context`); the caller is recorded there for the request log.

    Raises:
        ApiError: 401 `unauthorized` or 403 `forbidden`.
    """
    if context is not None and context.principal is not None:
        return context.principal
    if context is not None and context.auth_error is not None:
        raise context.auth_error
    principal = await core.auth.authenticate(await core.pool(), raw_key)
    if context is not None:
        context.principal = principal
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


async def get_withdrawer(principal: Caller) -> Principal:
    """A caller whose key has the `withdraw` scope (the allowlist, withdrawals).

    Raises:
        ApiError: 403 `forbidden` without it.
    """
    require_scope(principal, "withdraw")
    return principal


Withdrawer = Annotated[Principal, Depends(get_withdrawer)]


async def require_admin(
    core: Core, token: Annotated[str | None, Security(_admin_token)] = None
) -> None:
    """Refuse the request (403 `forbidden`) unless it carries the admin token."""
    check_admin(core.args.admin_token, token)
