"""REST routes of the gateway, included into the ingress app under `/api/v1`."""

from __future__ import annotations

from fastapi import FastAPI

from serve_app.routes import account, admin, api_keys, market_data, orders

ROUTERS = (orders.router, market_data.router, account.router, api_keys.router, admin.router)


def include_routes(app: FastAPI, prefix: str) -> None:
    """Add every REST route to `app` under `prefix`."""
    for router in ROUTERS:
        app.include_router(router, prefix=prefix)
