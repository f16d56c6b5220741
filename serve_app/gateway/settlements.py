"""The settlement endpoints' work: a settlement's view (public: no account data), the
operators' list and retry. The SQL is `actors.settlement.reads` (as `clob_api`) and
`actors.settlement.records` (the retry, as `clob_system`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from actors.settlement import reads, records
from actors.settlement.states import SettlementStatus
from serve_app.gateway import views
from serve_app.gateway.core import GatewayCore
from serve_app.gateway.rejects import api_error
from serve_app.gateway.settlement_models import (
    SettlementAttempt,
    SettlementPage,
    SettlementSummary,
    SettlementView,
)

MAX_SETTLEMENT_ID = 2**63 - 1  # BIGINT


@asynccontextmanager
async def _as(pool: asyncpg.Pool, role: str) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {role}")
        yield conn


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    fields = set(SettlementSummary.model_fields) - {"compute_units"}
    return {**{k: row[k] for k in fields}, "compute_units": row["cu_consumed"]}


async def _view(core: GatewayCore, row: dict[str, Any]) -> SettlementView:
    spec = (await core.registry.by_id(await core.pool(), int(row["market_id"]))).spec
    settled = (int(row["settlement_id"]), row["status"])
    trades = [
        views.public_trade(spec, int(t["seq"]), t["taker_side"], int(t["price_ticks"]),
                           int(t["qty_lots"]), t["executed_at"], settled)
        for t in row["trades"]
    ]  # fmt: skip
    attempts = [SettlementAttempt(**a) for a in row["attempts"]]
    return SettlementView(**_summary(row), trades=trades, attempts=attempts)


async def settlement(core: GatewayCore, settlement_id: int) -> SettlementView:
    """Return a settlement with its trades and attempts.

    Raises:
        ApiError: 404 `settlement_not_found`.
    """
    async with _as(await core.pool(), "clob_api") as conn:
        row = await reads.view(conn, settlement_id)
    if row is None:
        raise api_error("settlement_not_found", settlement_id=settlement_id)
    return await _view(core, row)


async def page(
    core: GatewayCore, status: str | None, market: str | None, limit: int, cursor: str | None
) -> SettlementPage:
    """Return settlements, newest first, of a status and a market when given.

    Raises:
        ApiError: 404 `unknown_market`; 422 `invalid_cursor`.
    """
    pool = await core.pool()
    market_id = (await core.registry.market(pool, market)).market_id if market else None
    before = _cursor(cursor)
    async with _as(pool, "clob_api") as conn:
        rows = await reads.page(conn, status, market_id, before, limit)
    found = [SettlementSummary(**_summary(r)) for r in rows]
    next_cursor = str(found[-1].settlement_id) if len(found) == limit else None
    return SettlementPage(settlements=found, next_cursor=next_cursor)


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19 or int(cursor) > MAX_SETTLEMENT_ID:
        raise api_error("invalid_cursor", "the cursor is not one this API returned")
    return int(cursor)


async def retry(core: GatewayCore, settlement_id: int) -> SettlementView:
    """Send a failed settlement again: it becomes pending, its retries start afresh, and
    the batcher picks it up in batch-id order (its trades and deltas stay as planned).

    Raises:
        ApiError: 404 `settlement_not_found`; 409 `settlement_not_failed`.
    """
    async with _as(await core.pool(), "clob_system") as conn:
        moved = await records.transition(
            conn, settlement_id, SettlementStatus.FAILED, SettlementStatus.PENDING
        )
        job = None if moved else await records.get(conn, settlement_id)
    if not moved and job is None:
        raise api_error("settlement_not_found", settlement_id=settlement_id)
    if job is not None:
        status = job.status.value
        raise api_error("settlement_not_failed", f"the settlement is {status}, not failed",
                        settlement_id=settlement_id, status=status)  # fmt: skip
    return await settlement(core, settlement_id)
