"""Admin endpoints (header `X-Admin-Token`): create, halt and resume markets; test credits;
failed settlements (list, retry)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query
from ray.exceptions import RayTaskError

from actors.engine import MarketSpec
from actors.engine.spec import InvalidMarketSpecError
from actors.engine.types import MAX_INT64_EXCLUSIVE
from actors.ledger.rules import AmountBoundError, CreditReferenceError
from serve_app import probes, units
from serve_app.gateway import db, settlements, stats_cache, views
from serve_app.gateway.core import GatewayCore
from serve_app.gateway.models import (
    Credit,
    CreditResult,
    MarketCreate,
    MarketView,
    SettlementState,
)
from serve_app.gateway.rejects import UNAVAILABLE, UNKNOWN_MARKET, UNKNOWN_SETTLEMENT, api_error
from serve_app.gateway.settlement_models import SettlementPage, SettlementView
from serve_app.http.deps import Core, require_admin
from serve_app.probes import ComponentStatus
from serve_app.routes.account import balances_of
from serve_app.routes.market_data import invalidate_markets
from serve_app.routes.settlements import SettlementId

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={403: {"description": "Missing or wrong X-Admin-Token"}},
)


def _int64(value: int, field: str) -> int:
    # The registry stores sizes and bounds as BIGINT (atoms, lots); the engine has no bound.
    if value >= MAX_INT64_EXCLUSIVE:
        raise units.UnitError("invalid_market_spec", field, f"{field} is beyond 64 bits")
    return value


def _lots(text: str | None, decimals: int, unit: int, field: str) -> int | None:
    if text is None:
        return None
    atoms = units.amount_to_atoms(text, decimals, field)
    if atoms % unit:
        raise units.UnitError("invalid_market_spec", field, f"{field} must be whole lots")
    return _int64(atoms // unit, field)


def _spec(body: MarketCreate) -> MarketSpec:
    tick = _int64(units.amount_to_atoms(body.tick_size, body.quote_decimals, "tick_size"),
                  "tick_size")  # fmt: skip
    lot = _int64(units.amount_to_atoms(body.lot_size, body.base_decimals, "lot_size"), "lot_size")
    spec = MarketSpec(
        symbol=body.symbol, base_asset=body.base_asset, quote_asset=body.quote_asset,
        base_decimals=body.base_decimals, quote_decimals=body.quote_decimals,
        tick_size=tick, lot_size=lot,
        min_qty=_lots(body.min_qty, body.base_decimals, lot, "min_qty"),
        max_qty=_lots(body.max_qty, body.base_decimals, lot, "max_qty"),
        maker_fee_bps=body.maker_fee_bps, taker_fee_bps=body.taker_fee_bps,
    )  # fmt: skip
    notional = _lots(body.min_notional, body.quote_decimals, spec.quote_atoms_per_tick_lot,
                     "min_notional")  # fmt: skip
    return MarketSpec.from_dict({**spec.to_dict(), "min_notional": notional})


async def _market_view(core: GatewayCore, symbol: str) -> MarketView:
    pool = await core.pool()
    await core.registry.reload(pool)
    await invalidate_markets(core)
    record = await core.registry.market(pool, symbol)
    stats = await stats_cache.market_stats(core, [record])
    return views.market_view(record, stats[record.spec.symbol])


@router.post(
    "/markets", response_model=MarketView, status_code=201, summary="Create a market",
    responses={409: {"description": "The symbol or the asset pair has a market "
                     "(`market_exists`)"}, **UNAVAILABLE},
)  # fmt: skip
async def create_market(body: MarketCreate, core: Core) -> MarketView:
    """Create a market and start its actor."""
    try:
        spec = _spec(body)
    except units.UnitError as exc:
        raise api_error("invalid_market_spec", str(exc), field=exc.field) from None
    except InvalidMarketSpecError as exc:
        raise api_error("invalid_market_spec", str(exc), field=exc.field) from None
    await core.registry.reload(await core.pool())
    try:
        await core.registry.market(await core.pool(), spec.symbol)
    except Exception:  # unknown: good, create it
        pass
    else:
        raise api_error("market_exists", f"market {spec.symbol} exists", market=spec.symbol)
    try:
        await core.call("controller", "create_market", spec.to_dict())
    except RayTaskError as exc:
        raise _refused_market(spec, exc) from None
    return await _market_view(core, spec.symbol)


def _refused_market(spec: MarketSpec, exc: RayTaskError) -> Exception:
    """Return the API error of a market the controller refused (the spec was checked)."""
    cause = exc.cause
    if isinstance(cause, asyncpg.UniqueViolationError):  # the symbol or the asset pair
        return api_error(
            "market_exists", f"a market {spec.symbol} or {spec.base_asset}/{spec.quote_asset} "
            "exists", market=spec.symbol,
        )  # fmt: skip
    if isinstance(cause, ValueError):  # our own words: an asset's decimals differ, ...
        return api_error("invalid_market_spec", str(cause).strip()[:300])
    return exc  # not a reject of the request: a failure (500), never PostgreSQL's text


async def _set_halted(core: GatewayCore, symbol: str, method: str) -> MarketView:
    record = await core.registry.market(await core.pool(), symbol)
    await core.call("controller", method, record.spec.symbol)
    return await _market_view(core, record.spec.symbol)


@router.post(
    "/markets/{symbol:path}/halt", response_model=MarketView, summary="Halt a market",
    responses={**UNKNOWN_MARKET, **UNAVAILABLE},
)  # fmt: skip
async def halt_market(symbol: str, core: Core) -> MarketView:
    """Halt a market: new orders and amends are refused, cancels still work."""
    return await _set_halted(core, symbol, "halt")


@router.post(
    "/markets/{symbol:path}/resume", response_model=MarketView, summary="Resume",
    responses={**UNKNOWN_MARKET, **UNAVAILABLE},
)  # fmt: skip
async def resume_market(symbol: str, core: Core) -> MarketView:
    """Resume a halted market."""
    return await _set_halted(core, symbol, "resume")


@router.post(
    "/markets/{symbol:path}/recover",
    response_model=list[ComponentStatus],
    summary="Recover a failed market",
    responses={**UNKNOWN_MARKET, **UNAVAILABLE},
)
async def recover_market(symbol: str, core: Core) -> list[ComponentStatus]:
    """Retry a market's recovery now, every ledger shard taking its journal back first
    (after an operator fixed why it failed: docs/operations.md). Answers the market's
    and the shards' state afterwards; a cause not fixed shows as failed again."""
    record = await core.registry.market(await core.pool(), symbol)
    health = await core.call("controller", "retry", record.spec.symbol)
    return probes.actor_statuses(health)


@router.post(
    "/credits", response_model=CreditResult, summary="Credit a test balance",
    responses={
        403: {"description": "Missing or wrong X-Admin-Token, or test credits are off "
              "(`test_credits_disabled`)"},
        404: {"description": "Unknown asset or account (`unknown_asset`, `unknown_account`)"},
        409: {"description": "The reference was used for another credit "
              "(`duplicate_reference`)"},
        422: {"description": "Past the amount bounds (`amount_too_large`, `total_too_large`)"},
        **UNAVAILABLE,
    },
)  # fmt: skip
async def credit(body: Credit, core: Core) -> Any:
    """Credit an account (embedded mode only, for tests and demos: real money arrives by
    deposit)."""
    if not core.args.test_credits:
        raise api_error("test_credits_disabled", "test credits are enabled only in embedded mode")
    pool = await core.pool()
    decimals = await core.registry.decimals(pool, body.asset)
    try:
        atoms = units.amount_to_atoms(body.amount, decimals, "amount")
    except units.UnitError as exc:
        raise api_error(exc.code, str(exc), field=exc.field) from None
    if not await db.account_exists(pool, body.account_id):
        raise api_error("unknown_account", account_id=body.account_id)
    reference = body.reference or f"api-credit:{uuid.uuid4()}"
    shard = await core.ledger_of(body.account_id)
    try:
        await core.call(shard, "credit", body.account_id, body.asset, atoms, reference)
    except RayTaskError as exc:
        if isinstance(exc.cause, AmountBoundError):  # over the bound: nothing was credited
            raise api_error(exc.cause.code, str(exc.cause), field="amount") from None
        if isinstance(exc.cause, CreditReferenceError):
            raise api_error(
                "duplicate_reference",
                "reference was used for another credit (account, asset or amount): only "
                "the same credit may repeat it",
                reference=reference,
            ) from None
        raise
    after = await balances_of(core, body.account_id)
    mine = next(b for b in after.balances if b.asset == body.asset)
    return CreditResult(account_id=body.account_id, balance=mine)


@router.get(
    "/settlements", response_model=SettlementPage, summary="List settlements",
    responses=UNKNOWN_MARKET,
)  # fmt: skip
async def list_settlements(
    core: Core,
    status: Annotated[SettlementState | None, Query(description="Only this status.")] = None,
    market: Annotated[str | None, Query(description="Only this market's.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
) -> SettlementPage:
    """Return settlements, newest first (`?status=failed`: the ones waiting for you)."""
    return await settlements.page(core, status, market, limit, cursor)


@router.post(
    "/settlements/{settlement_id}/retry", response_model=SettlementView,
    summary="Retry a failed settlement",
    responses={**UNKNOWN_SETTLEMENT,
               409: {"description": "The settlement is not failed (`settlement_not_failed`)"}},
)  # fmt: skip
async def retry_settlement(settlement_id: SettlementId, core: Core) -> SettlementView:
    """Make a failed settlement pending again, its retries reset: the batcher sends it
    with the same trades and deltas (the program applies each batch id once, so a batch
    that did land after all is not applied twice)."""
    return await settlements.retry(core, settlement_id)
