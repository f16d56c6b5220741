"""Account endpoints: your balances and your fills."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serve_app.gateway import db, views
from serve_app.gateway.core import GatewayCore
from serve_app.gateway.models import Balances, OwnTradePage, Rfc3339
from serve_app.gateway.rejects import READ_CATCHING_UP, UNKNOWN_MARKET, api_error
from serve_app.http.deps import Core, Reader

router = APIRouter(tags=["account"])


async def balances_of(core: GatewayCore, account_id: int) -> Balances:
    """Return an account's balances from its ledger shard, as decimal strings."""
    shard = await core.ledger_of(account_id)
    raw = await core.call(shard, "balances", account_id)
    pool = await core.pool()
    out = [
        views.balance(b.asset, await core.registry.decimals(pool, b.asset), b.available_atoms,
                      b.locked_atoms)
        for b in sorted(raw, key=lambda b: b.asset)
    ]  # fmt: skip
    return Balances(account_id=account_id, balances=out)


@router.get(
    "/balances", response_model=Balances, summary="Your balances", responses=READ_CATCHING_UP
)
async def balances(core: Core, caller: Reader) -> Balances:
    """Return the available and locked amount of every asset you hold."""
    return await balances_of(core, caller.account_id)


@router.get(
    "/users/{account_id}/balance",
    response_model=Balances,
    summary="An account's balances (your own only)",
    responses={403: {"description": "Not your account"}, **READ_CATCHING_UP},
)
async def user_balance(account_id: int, core: Core, caller: Reader) -> Balances:
    """Return your balances; any other account id answers 403 `forbidden`."""
    if account_id != caller.account_id:
        raise api_error("forbidden", "you may read only your own account's balance")
    return await balances_of(core, account_id)


@router.get(
    "/trades", response_model=OwnTradePage, summary="Your fills",
    responses={**UNKNOWN_MARKET, **READ_CATCHING_UP},
)  # fmt: skip
async def own_trades(  # noqa: PLR0917 (FastAPI query parameters)
    core: Core,
    caller: Reader,
    market: Annotated[str | None, Query(description="Market symbol.")] = None,
    start: Annotated[Rfc3339 | None, Query(description="From this time (inclusive).")] = None,
    end: Annotated[Rfc3339 | None, Query(description="Before this time (exclusive).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
) -> OwnTradePage:
    """Return your fills as maker or taker, newest first."""
    pool = await core.pool()
    market_id = (await core.registry.market(pool, market)).market_id if market else None
    async with db.acting_as(pool, caller.account_id, db.Markets(only=market_id)) as conn:
        rows = await db.own_trades(conn, caller.account_id, market_id, start, end, limit, cursor)
    trades = [views.own_trade((await core.registry.by_id(pool, int(r["market_id"]))).spec, r)
              for r in rows]  # fmt: skip
    last = rows[-1] if len(rows) == limit else None
    next_cursor = (
        db.fill_cursor(last["executed_at"], int(last["trade_id"]), last["liquidity"])
        if last
        else None
    )
    return OwnTradePage(trades=trades, next_cursor=next_cursor)
