"""Order endpoints: place, list, get, amend, cancel, cancel all.

The routes only translate HTTP: the order services (`serve_app.gateway.orders`) place,
amend and cancel, the same functions the WebSocket trading ops call. Reads come from
PostgreSQL under row level security, so another account's order is simply not found
(404 `unknown_order`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from serve_app.gateway import db, orders
from serve_app.gateway.models import (
    CancelAllResult,
    OrderAmend,
    OrderCreate,
    OrderPage,
    OrderStatus,
    OrderView,
)
from serve_app.gateway.rejects import READ_CATCHING_UP, UNKNOWN_MARKET
from serve_app.http.deps import Caller, Core, Reader

router = APIRouter(tags=["orders"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in (
        (401, "Missing or invalid API key"),
        (404, "Unknown market or order"),
        (409, "Conflicts with the order's or market's state"),
        (422, "Invalid or refused (tick, lot, minimum, funds, ...): nothing changed"),
        (503, "The market is unavailable; retry with the same client_order_id"),
    )
}


@router.post(
    "/orders",
    response_model=OrderView,
    status_code=201,
    summary="Place an order",
    responses={200: {"model": OrderView, "description": "A retry: the original order"}, **_ERRORS},
)
async def place_order(body: OrderCreate, core: Core, caller: Caller, response: Response) -> Any:
    """Place an order of any kind; answer 201 with it (200 with the original on a retry)."""
    response.status_code, view = await orders.place(core, caller, body)
    return view


@router.get(
    "/orders", response_model=OrderPage, summary="List your orders",
    responses={**UNKNOWN_MARKET, **READ_CATCHING_UP},
)  # fmt: skip
async def list_orders(  # noqa: PLR0917 (FastAPI query parameters)
    core: Core,
    caller: Reader,
    market: Annotated[str | None, Query(description="Market symbol.")] = None,
    status: Annotated[
        OrderStatus | Literal["live", "closed"] | None,
        Query(description="An order status, or `live` / `closed` for the groups."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
) -> OrderPage:
    """Return a page of your orders, newest first, optionally by market and status."""
    pool = await core.pool()
    market_id = (await core.registry.market(pool, market)).market_id if market else None
    statuses = _statuses(status)
    async with db.acting_as(pool, caller.account_id, db.Markets(only=market_id)) as conn:
        rows = await db.list_orders(conn, market_id, statuses, limit, cursor)
    views = [await orders.order_view(core, row) for row in rows]
    last = rows[-1] if len(rows) == limit else None
    next_cursor = db.encode_cursor(last["created_at"], last["order_id"]) if last else None
    return OrderPage(orders=views, next_cursor=next_cursor)


def _statuses(status: str | None) -> tuple[str, ...] | None:
    if status == "live":
        return db.LIVE_STATUSES
    if status == "closed":
        return ("filled", "cancelled", "expired", "rejected")
    return None if status is None else (status,)


@router.get(
    "/orders/{order_id}",
    response_model=OrderView,
    summary="Get one of your orders",
    responses={
        404: {"description": "No such order of yours (`unknown_order`)"},
        **READ_CATCHING_UP,
    },
)
async def get_order(order_id: str, core: Core, caller: Reader) -> OrderView:
    """Return one of your orders (404 `unknown_order` for any other id)."""
    return await orders.order_view(core, await orders.own_order(core, caller, order_id))


@router.patch(
    "/orders/{order_id}", response_model=OrderView, summary="Amend an order", responses=_ERRORS
)
async def amend_order(order_id: str, body: OrderAmend, core: Core, caller: Caller) -> OrderView:
    """Change price and/or open quantity; a lower qty at the same price keeps priority."""
    return await orders.amend(core, caller, order_id, body)


@router.put(
    "/orders/{order_id}", response_model=OrderView, summary="Amend an order (alias of PATCH)",
    responses=_ERRORS,
)  # fmt: skip
async def amend_order_put(order_id: str, body: OrderAmend, core: Core, caller: Caller) -> OrderView:
    """Amend an order exactly as `PATCH /orders/{order_id}` does (the same body)."""
    return await amend_order(order_id, body, core, caller)


@router.delete(
    "/orders/{order_id}", response_model=OrderView, summary="Cancel an order", responses=_ERRORS
)
async def cancel_order(order_id: str, core: Core, caller: Caller) -> OrderView:
    """Cancel one of your live orders; answer with its final state."""
    return await orders.cancel(core, caller, order_id)


@router.delete(
    "/orders",
    response_model=CancelAllResult,
    summary="Cancel all your orders",
    responses={**UNKNOWN_MARKET, 503: _ERRORS[503]},
)
async def cancel_all(
    core: Core,
    caller: Caller,
    market: Annotated[str | None, Query(description="Only this market (default: all).")] = None,
) -> CancelAllResult:
    """Cancel every live order and pending stop of yours, in one market or in all."""
    return await orders.cancel_all(core, caller, market)
