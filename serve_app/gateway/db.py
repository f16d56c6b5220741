"""SQL of the API's reads: own orders and fills under row level security, the public tape
and the 24 h stats.

Account data is read as `clob_api` with `clob.account_id` set for one transaction, so the
database itself guarantees that a key reads only its own account's rows (docs/schema.md).
Pages are keyset-paginated; a cursor is an opaque string encoding the last row's sort key.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from serve_app.errors import ApiError
from serve_app.gateway.rejects import api_error

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LIVE_STATUSES = ("pending_new", "open", "untriggered", "partially_filled")

_ORDER_COLUMNS = """order_id, market_id, client_order_id, side, kind, tif, post_only, stp,
    price_ticks, stop_price_ticks, qty_lots, quote_qty_tick_lots, display_qty_lots, expire_at,
    open_qty_lots, filled_qty_lots, filled_quote_atoms, fee_atoms, status, reason, created_at,
    updated_at"""


@dataclass(frozen=True, slots=True)
class Markets:
    """The markets whose orders/trades projection a read waits for (see `projected`):
    every market, `only` one (None: every market), or every market `besides` one."""

    only: int | None = None
    besides: int | None = None


EVERY_MARKET = Markets()
PROJECTION_WAIT_S = 5.0  # longer than a market's restart: then 503, retry
_POLL_S = (0.001, 0.002, 0.004, 0.008)  # then every 10 ms


async def projected(
    conn: asyncpg.Connection, markets: Markets = EVERY_MARKET, timeout_s: float = PROJECTION_WAIT_S
) -> None:
    """Wait until the orders and trades tables reflect every journal row committed so far.

    A market answers its callers once a pass is journaled; the pass's orders/trades
    projection is written behind (docs/ARCHITECTURE.md, "Answers at the journal commit"
    and "Projection barrier"). A read of those tables calls this first, so it sees every
    command acknowledged before it started (read-your-writes). `clob_api` reads neither the
    journal nor the marks: two functions of migration 0013 answer how far they lag.

    Raises:
        ApiError: 503 `unavailable` when a market's projection does not catch up within
            `timeout_s` (its actor is restarting: recovery projects the journal).
    """
    rows = await conn.fetch(
        "SELECT * FROM clob_projection_lag($1, $2)", markets.only, markets.besides
    )
    heads = {int(r["market_id"]): int(r["head"]) for r in rows}
    give_up = time.monotonic() + timeout_s
    polls = 0
    while heads:
        if time.monotonic() > give_up:
            raise api_error(
                "unavailable",
                "a market's orders and trades are catching up (it is restarting); retry",
                market_ids=sorted(heads),
            )
        await asyncio.sleep(_POLL_S[polls] if polls < len(_POLL_S) else 0.01)
        polls += 1
        marks = await conn.fetch("SELECT * FROM clob_projection_marks($1)", list(heads))
        for r in marks:
            if int(r["projected_seq"]) >= heads[int(r["market_id"])]:
                del heads[int(r["market_id"])]


@asynccontextmanager
async def acting_as(
    pool: asyncpg.Pool, account_id: int, projection: Markets | None = EVERY_MARKET
) -> AsyncIterator[asyncpg.Connection]:
    """Yield a connection in a transaction as `clob_api`, acting for one account, once
    the `projection` of those markets caught up with their journals (None: no wait)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_api")
        if projection is not None:  # READ COMMITTED: the read after it sees what it waited for
            await projected(conn, projection)
        await conn.execute("SELECT set_config('clob.account_id', $1, true)", str(account_id))
        yield conn


def encode_cursor(at: datetime, key: str | int) -> str:
    """Return an opaque cursor for the sort key `(at, key)`."""
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{micros}:{key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Return the sort key of a cursor.

    Raises:
        ApiError: 422 `invalid_cursor`.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        micros, _, key = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        at = _EPOCH + timedelta(microseconds=int(micros))
    except (ValueError, UnicodeDecodeError, OverflowError, OSError):
        raise api_error("invalid_cursor", "the cursor is not one this API returned") from None
    if not key:
        raise api_error("invalid_cursor", "the cursor is not one this API returned")
    return at, key


async def get_order(conn: asyncpg.Connection, order_id: str) -> Any:
    """Return one of the acting account's orders, or None."""
    return await conn.fetchrow(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = $1", order_id)


async def list_orders(
    conn: asyncpg.Connection,
    market_id: int | None,
    statuses: tuple[str, ...] | None,
    limit: int,
    cursor: str | None,
) -> list[Any]:
    """Return a page of the acting account's orders, newest first."""
    where: list[str] = ["account_id = clob_current_account_id()"]
    args: list[Any] = []
    if market_id is not None:
        args.append(market_id)
        where.append(f"market_id = ${len(args)}")
    if statuses is not None:
        args.append(list(statuses))
        where.append(f"status = ANY(${len(args)}::text[])")
    if cursor is not None:
        at, key = decode_cursor(cursor)
        args.extend([at, key])
        where.append(f"(created_at, order_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    sql = (
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {' AND '.join(where)} "
        f"ORDER BY created_at DESC, order_id DESC LIMIT ${len(args)}"
    )
    return list(await conn.fetch(sql, *args))


async def live_market_ids(conn: asyncpg.Connection) -> list[int]:
    """Return the markets where the acting account has live orders."""
    rows = await conn.fetch(
        "SELECT DISTINCT market_id FROM orders "
        "WHERE account_id = clob_current_account_id() AND status = ANY($1::text[])",
        list(LIVE_STATUSES),
    )
    return [int(r["market_id"]) for r in rows]


_OWN_TRADES = """
SELECT f.*, (SELECT s.status FROM settlements s WHERE s.settlement_id = f.settlement_id)
       AS settlement_status FROM (
    (SELECT t.*, 'maker' AS liquidity FROM trades t
      WHERE maker_account_id = $1 {filters} {maker_after}
      ORDER BY executed_at DESC, trade_id DESC LIMIT $2)
    UNION ALL
    (SELECT t.*, 'taker' AS liquidity FROM trades t
      WHERE taker_account_id = $1 {filters} {taker_after}
      ORDER BY executed_at DESC, trade_id DESC LIMIT $2)
) f ORDER BY executed_at DESC, trade_id DESC, liquidity DESC LIMIT $2
"""
LIQUIDITIES = ("maker", "taker")


def fill_cursor(at: datetime, trade_id: int, liquidity: str) -> str:
    """Return the cursor after one of the caller's fills (a self-trade is two fills)."""
    return encode_cursor(at, f"{trade_id}:{liquidity}")


def _fill_after(cursor: str) -> tuple[datetime, int, str]:
    at, key = decode_cursor(cursor)
    trade_id, _, liquidity = key.partition(":")
    if not trade_id.isdigit() or len(trade_id) > 19 or liquidity not in LIQUIDITIES:
        raise api_error("invalid_cursor", "the cursor is not one this API returned")
    return at, int(trade_id), liquidity


async def own_trades(  # noqa: PLR0917 (one argument per filter)
    conn: asyncpg.Connection,
    account_id: int,
    market_id: int | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> list[Any]:
    """Return a page of the acting account's fills (maker or taker), newest first.

    A fill is one order's side of a trade, so a self-trade is two fills: the taker's, then
    the maker's (each with its own fee). Pages are ordered by (time, trade id, liquidity).
    """
    filters: list[str] = []
    args: list[Any] = [account_id, limit]
    for clause, value in (("market_id = ", market_id), ("executed_at >= ", start),
                          ("executed_at < ", end)):  # fmt: skip
        if value is not None:
            args.append(value)
            filters.append(f"AND {clause}${len(args)}")
    maker_after = taker_after = ""
    if cursor is not None:
        at, trade_id, liquidity = _fill_after(cursor)
        args.extend([at, trade_id])
        keys = f"(${len(args) - 1}, ${len(args)})"
        taker_after = f"AND (executed_at, trade_id) < {keys}"
        # After a self-trade's taker fill, its maker fill (same time and id) comes next.
        maker_op = "<=" if liquidity == "taker" else "<"
        maker_after = f"AND (executed_at, trade_id) {maker_op} {keys}"
    sql = _OWN_TRADES.format(
        filters=" ".join(filters), maker_after=maker_after, taker_after=taker_after
    )
    return list(await conn.fetch(sql, *args))


async def public_trades(
    pool: asyncpg.Pool, market_id: int, before_seq: int | None, limit: int
) -> list[Any]:
    """Return a market's trades with `seq < before_seq` (all when None), newest first, with
    their `settlement_id` and `settlement_status` (null until batched)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_api")
        return list(
            await conn.fetch(
                "SELECT p.seq, p.taker_side, p.price_ticks, p.qty_lots, p.executed_at, "
                "p.settlement_id, s.status AS settlement_status FROM public_trades p "
                "LEFT JOIN settlements s ON s.settlement_id = p.settlement_id "
                "WHERE p.market_id = $1 AND ($2::bigint IS NULL OR p.seq < $2) "
                "ORDER BY p.seq DESC LIMIT $3",
                market_id,
                before_seq,
                limit,
            )
        )


async def settlements_of(
    pool: asyncpg.Pool, market_id: int, first_seq: int, last_seq: int
) -> dict[int, tuple[int, str]]:
    """Return `seq -> (settlement id, status)` of a market's batched trades in a seq range
    (the trades of the market actor's memory have no settlement of their own)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_api")
        rows = await conn.fetch(
            "SELECT p.seq, p.settlement_id, s.status FROM public_trades p "
            "JOIN settlements s ON s.settlement_id = p.settlement_id "
            "WHERE p.market_id = $1 AND p.seq BETWEEN $2 AND $3",
            market_id, first_seq, last_seq,
        )  # fmt: skip
    return {int(r["seq"]): (int(r["settlement_id"]), r["status"]) for r in rows}


STATS_WAIT_S = 1.0  # a restarting market's stats are served as projected so far


async def market_stats(
    pool: asyncpg.Pool, market_ids: list[int] | None = None
) -> tuple[dict[int, Any], bool]:
    """Return 24 h statistics by market id (of every market, or of `market_ids`) once the
    trades projection covers every trade acknowledged before the call, and whether it
    did: False when a market was still catching up after `STATS_WAIT_S` (a restart)."""
    only = market_ids[0] if market_ids is not None and len(market_ids) == 1 else None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_api")
        complete = True
        try:
            await projected(conn, Markets(only=only), STATS_WAIT_S)
        except ApiError:
            complete = False
        rows = await conn.fetch(
            "SELECT * FROM market_stats_24h WHERE $1::int[] IS NULL OR market_id = ANY($1)",
            market_ids,
        )
    return {int(r["market_id"]): r for r in rows}, complete


async def account_exists(pool: asyncpg.Pool, account_id: int) -> bool:
    """Return whether an account exists (read through RLS as that account)."""
    async with acting_as(pool, account_id, projection=None) as conn:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM accounts WHERE account_id = $1)", account_id
        )
    return found
