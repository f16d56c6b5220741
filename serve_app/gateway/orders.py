"""The order services: place, amend, cancel and cancel all, shared by REST
(`serve_app.routes.orders`, `serve_app.lean`) and the WebSocket trading ops
(`serve_app.ws.trading`), so both validate, deduplicate and answer alike.

Commands go to the market actor through the replica's batcher (`GatewayCore.submit_one`);
reads come from PostgreSQL under row level security, so another account's order is simply
not found (404 `unknown_order`).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from actors.contracts import CancelAllOrders, CancelOrder, OrderCommand, OrderRequest, OrderResult
from actors.engine import Cancelled, Event, OrderId
from actors.markets_repo import MarketRecord
from serve_app.auth import Principal, require_scope
from serve_app.gateway import db, views
from serve_app.gateway.commands import amend_command, new_order_command, new_order_id, order_digest
from serve_app.gateway.core import GatewayCore
from serve_app.gateway.models import CancelAllResult, OrderAmend, OrderCreate, OrderView
from serve_app.gateway.rejects import api_error


def _rejected(result: OrderResult) -> Exception:
    return api_error(result.code or "invalid_command", request_id=result.request_id)


async def own_order(core: GatewayCore, caller: Principal, order_id: str) -> Any:
    """Return the caller's `orders` row of an order.

    Raises:
        ApiError: 404 `unknown_order` when the caller has no such order.
    """
    async with db.acting_as(await core.pool(), caller.account_id) as conn:
        row = await db.get_order(conn, order_id)
    if row is None:
        raise api_error("unknown_order", order_id=order_id)
    return row


async def order_view(core: GatewayCore, row: Any, events: tuple[Event, ...] = ()) -> OrderView:
    """Return the view of an `orders` row, with the fills among `events`."""
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


async def place(core: GatewayCore, caller: Principal, body: OrderCreate) -> tuple[int, OrderView]:
    """Place an order; return the HTTP status (201 placed, 200 a retry) and the order.

    `POST /orders` runs this from FastAPI's route or from the lean ASGI route
    (`serve_app.lean`), the WebSocket's `place` op too.

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
            return 200, await order_view(core, await own_order(core, caller, existing["order_id"]))
    request = OrderRequest(
        request_id=coid or order_id, account_id=caller.account_id, command=command,
        client_order_id=coid, digest=digest,
    )  # fmt: skip
    result = await core.submit_one(record.spec.symbol, request)
    if result.code == "duplicate_client_order_id":
        raise _reused(coid or "", result.order_id)
    if result.duplicate and result.order_id and result.ok:
        return 200, await order_view(core, await own_order(core, caller, result.order_id))
    if not result.ok:  # a retry of a refused order is refused alike
        raise _rejected(result)
    return 201, views.placed_order(record.spec, command, coid, result.events, result.ts_ms)


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
    return await order_view(core, await own_order(core, caller, row["order_id"]), result.events)


async def amend(core: GatewayCore, caller: Principal, order_id: str, body: OrderAmend) -> OrderView:
    """Amend one of the caller's live orders; return its state after the amend.

    Raises:
        ApiError: Refused (nothing changed), unknown order or unavailable market.
    """
    require_scope(caller, "trade")
    row = await own_order(core, caller, order_id)
    record = await core.registry.by_id(await core.pool(), int(row["market_id"]))
    return await _command_on(core, caller, row, amend_command(record.spec, body, order_id))


async def cancel(core: GatewayCore, caller: Principal, order_id: str) -> OrderView:
    """Cancel one of the caller's live orders; return its final state.

    Raises:
        ApiError: Unknown or closed order, or unavailable market.
    """
    require_scope(caller, "trade")
    row = await own_order(core, caller, order_id)
    return await _command_on(core, caller, row, CancelOrder(OrderId(order_id)))


async def cancel_all(
    core: GatewayCore, caller: Principal, market: str | None = None
) -> CancelAllResult:
    """Cancel every live order and pending stop of the caller, in one market or in all.

    Raises:
        ApiError: Unknown market, refused, or a market unavailable.
    """
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
