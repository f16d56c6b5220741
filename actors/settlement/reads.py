"""The API's reads of the settlement records, as `clob_api`: settlements and their attempts
(no account data), their trades through the `public_trades` view (no account ids). The
batcher's SQL is `records.py`."""

from __future__ import annotations

from typing import Any

import asyncpg

_SUMMARY = """s.settlement_id, m.symbol AS market, s.market_id, s.status, s.signature, s.slot,
    s.batch_id, s.batch_count, s.netted, s.trade_count, s.retries, s.fee_lamports,
    s.cu_consumed, s.tx_bytes, s.last_error, s.created_at, s.submitted_at, s.confirmed_at,
    s.finalized_at, s.failed_at"""
_SUMMARY_FROM = "FROM settlements s JOIN markets m USING (market_id)"


async def view(conn: asyncpg.Connection, settlement_id: int) -> dict[str, Any] | None:
    """Return a settlement for the API: its columns (`_SUMMARY`), `trades` (public tape
    rows: seq, taker_side, price_ticks, qty_lots, executed_at) and `attempts`."""
    row = await conn.fetchrow(f"SELECT {_SUMMARY} {_SUMMARY_FROM} WHERE s.settlement_id = $1",
                              settlement_id)  # fmt: skip
    if row is None:
        return None
    trades = await conn.fetch(
        "SELECT seq, taker_side, price_ticks, qty_lots, executed_at FROM public_trades "
        "WHERE market_id = $1 AND settlement_id = $2 ORDER BY seq",
        row["market_id"], settlement_id,
    )  # fmt: skip
    sent = await conn.fetch(
        "SELECT attempt, signature, status, priority_fee_micro_lamports, error, sent_at "
        "FROM settlement_attempts WHERE settlement_id = $1 ORDER BY attempt", settlement_id,
    )  # fmt: skip
    return {**dict(row), "trades": [dict(t) for t in trades], "attempts": [dict(a) for a in sent]}


async def page(
    conn: asyncpg.Connection, status: str | None, market_id: int | None,
    before_id: int | None, limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Return settlements (the `_SUMMARY` columns), newest first, below `before_id`,
    of one status and one market when given."""
    rows = await conn.fetch(
        f"SELECT {_SUMMARY} {_SUMMARY_FROM} WHERE ($1::text IS NULL OR s.status = $1) "
        "AND ($2::int IS NULL OR s.market_id = $2) "
        "AND ($3::bigint IS NULL OR s.settlement_id < $3) "
        "ORDER BY s.settlement_id DESC LIMIT $4",
        status, market_id, before_id, limit,
    )  # fmt: skip
    return [dict(r) for r in rows]
