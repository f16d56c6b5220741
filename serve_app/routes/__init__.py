"""REST routes of the gateway, included into the ingress app under `/api/v1`."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from serve_app.http.contract import document_errors, strict_request
from serve_app.routes import (
    account,
    admin,
    api_keys,
    custody,
    market_data,
    orders,
    reserves,
    settlements,
    system,
)  # fmt: skip

ROUTERS = (
    orders.router, market_data.router, account.router, api_keys.router, custody.router,
    reserves.router, settlements.router, admin.router, system.router,
)  # fmt: skip


def include_routes(app: FastAPI, prefix: str) -> None:
    """Add every REST route to `app` under `prefix`, keeping the contract of
    `serve_app.http.contract` (strict queries and media types, documented errors)."""
    for router in ROUTERS:
        document_errors(router)
        app.include_router(router, prefix=prefix, dependencies=[Depends(strict_request)])
