"""Order endpoints: place, list, get, amend, cancel, cancel all.

Commands go to the market actor through the replica's batcher (`GatewayCore.submit_one`);
reads come from PostgreSQL under row level security, so another account's order is simply
not found (404 `unknown_order`).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from actors.contracts import (
    CancelAllOrders,
    CancelOrder,
    OrderCommand,
    OrderRequest,
    OrderResult,
)
from actors.engine import Cancelled, Event, OrderId
from actors.markets_repo import MarketRecord
from serve_app.auth import Principal, require_scope
from serve_app.gateway import db, views
from serve_app.gateway.commands import (
    amend_command,
    new_order_command,
    new_order_id,
    order_digest,
)
from serve_app.gateway.core import GatewayCore
from serve_app.gateway.models import (
    CancelAllResult,
    OrderAmend,
    OrderCreate,
    OrderPage,
    OrderStatus,
    OrderView,
)
from serve_app.gateway.rejects import READ_CATCHING_UP, UNKNOWN_MARKET, api_error
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


def _rejected(result: OrderResult) -> Exception:
    return api_error(result.code or "invalid_command", request_id=result.request_id)


async def _own_order(core: GatewayCore, caller: Principal, order_id: str) -> Any:
    async with db.acting_as(await core.pool(), caller.account_id) as conn:
        row = await db.get_order(conn, order_id)
    if row is None:
        raise api_error("unknown_order", order_id=order_id)
    return row


async def _view(core: GatewayCore, row: Any, events: tuple[Event, ...]) -> OrderView:
    record = await core.registry.by_id(await core.pool(), int(row["market_id"]))
    fills = views.fills_of(record.spec, row["order_id"], events)
    return views.order_from_row(record.spec, row, fills)


async def _existing(
    core: GatewayCore, caller: Principal, client_order_id: str, market_id: int
) -> Any:
    # The order's own market remembers its recent client order ids (a retry there is
    # answered as a duplicate), so only the other markets' projections need to catch up.
    projection = db.Markets(besides=market_id)
    async with db.acting_as(await core.pool(), caller.account_id, projection) as conn:
        return await conn.fetchrow(
            "SELECT order_id, request_digest FROM orders WHERE client_order_id = $1",
            client_order_id,
        )


def _reused(client_order_id: str, order_id: str | None) -> Exception:
    return api_error(
        "duplicate_client_order_id",
        "client_order_id is taken by an order with other terms: only an identical retry "
        "returns it",
        client_order_id=client_order_id, order_id=order_id,
    )  # fmt: skip


@router.post(
    "/orders",
    response_model=OrderView,
    status_code=201,
    summary="Place an order",
    responses={200: {"model": OrderView, "description": "A retry: the original order"}, **_ERRORS},
)
async def place_order(body: OrderCreate, core: Core, caller: Caller, response: Response) -> Any:
    """Place an order of any kind; answer 201 with it (200 with the original on a retry)."""
    response.status_code, view = await place(core, caller, body)
    return view


async def place(core: GatewayCore, caller: Principal, body: OrderCreate) -> tuple[int, OrderView]:
    """Place an order; return the HTTP status (201 placed, 200 a retry) and the order.

    `POST /orders` runs this from FastAPI's route or from the lean ASGI route
    (`serve_app.lean`), which answers well-formed requests without FastAPI's machinery.

    Raises:
        ApiError: The order was refused (nothing changed) or its market is unavailable.
    """
    require_scope(caller, "trade")
    record = await core.registry.market(await core.pool(), body.market)
    order_id = new_order_id()
    command = new_order_command(record.spec, body, order_id)
    coid = body.client_order_id
    digest = None if coid is None else order_digest(record.spec.symbol, command)
    if coid is not None:
        existing = await _existing(core, caller, coid, record.market_id)
        if existing is not None:
            # NULL: an order from before digests were kept, taken as the same terms.
            if existing["request_digest"] not in (None, digest):
                raise _reused(coid, existing["order_id"])
            return 200, await _view(core, await _own_order(core, caller, existing["order_id"]), ())
    request = OrderRequest(
        request_id=coid or order_id, account_id=caller.account_id, command=command,
        client_order_id=coid, digest=digest,
    )  # fmt: skip
    result = await core.submit_one(record.spec.symbol, request)
    if result.code == "duplicate_client_order_id":
        raise _reused(coid or "", result.order_id)
    if result.duplicate and result.order_id and result.ok:
        return 200, await _view(core, await _own_order(core, caller, result.order_id), ())
    if not result.ok:  # a retry of a refused order is refused alike
        raise _rejected(result)
    return 201, views.placed_order(record.spec, command, coid, result.events, result.ts_ms)


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
    orders = [await _view(core, row, ()) for row in rows]
    last = rows[-1] if len(rows) == limit else None
    next_cursor = db.encode_cursor(last["created_at"], last["order_id"]) if last else None
    return OrderPage(orders=orders, next_cursor=next_cursor)


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
    return await _view(core, await _own_order(core, caller, order_id), ())


async def _command_on(
    core: GatewayCore, caller: Principal, row: Any, command: OrderCommand
) -> OrderView:
    if row["status"] not in db.LIVE_STATUSES:
        raise api_error("order_not_open", f"the order is {row['status']}", status=row["status"])
    record: MarketRecord = await core.registry.by_id(await core.pool(), int(row["market_id"]))
    request = OrderRequest(str(uuid.uuid4()), caller.account_id, command)
    result = await core.submit_one(record.spec.symbol, request)
    if not result.ok:
        raise _rejected(result)
    return await _view(core, await _own_order(core, caller, row["order_id"]), result.events)


@router.patch(
    "/orders/{order_id}", response_model=OrderView, summary="Amend an order", responses=_ERRORS
)
async def amend_order(order_id: str, body: OrderAmend, core: Core, caller: Caller) -> OrderView:
    """Change price and/or open quantity; a lower qty at the same price keeps priority."""
    require_scope(caller, "trade")
    row = await _own_order(core, caller, order_id)
    record = await core.registry.by_id(await core.pool(), int(row["market_id"]))
    return await _command_on(core, caller, row, amend_command(record.spec, body, order_id))


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
    require_scope(caller, "trade")
    row = await _own_order(core, caller, order_id)
    return await _command_on(core, caller, row, CancelOrder(OrderId(order_id)))


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
    require_scope(caller, "trade")
    pool = await core.pool()
    if market is not None:
        symbols = [(await core.registry.market(pool, market)).spec.symbol]
    else:
        async with db.acting_as(pool, caller.account_id) as conn:
            ids = await db.live_market_ids(conn)
        symbols = [await core.registry.symbol_of(pool, market_id) for market_id in ids]
    command = CancelAllOrders()
    requests = [(s, OrderRequest(str(uuid.uuid4()), caller.account_id, command)) for s in symbols]
    results = await asyncio.gather(*(core.submit_one(s, r) for s, r in requests))
    cancelled: list[str] = []
    for result in results:
        if not result.ok:
            raise _rejected(result)
        cancelled += [e.id for e in result.events if isinstance(e, Cancelled)]
    return CancelAllResult(cancelled=cancelled)
