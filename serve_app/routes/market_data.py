"""Public market data: markets with 24 h stats, the order book, the trade tape.

Caches (Redis, best effort: a Redis failure falls through to the source):
`markets:all` (the market list without stats, 5 minutes; admin changes delete it),
`market_stats:{market}` (a market's stats, 5 minutes, dropped when a trade lands: see
`stats_cache`) and `orderbook:{market}:{depth}` (100 ms). `/markets/{symbol}/orderbook`
and `/markets/{symbol}/trades` are aliases of `/orderbook/{market}` and `/trades/{market}`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from actors.markets_repo import MarketRecord
from serve_app.gateway import db, stats_cache, views
from serve_app.gateway.core import GatewayCore
from serve_app.gateway.models import (
    MarketStats,
    MarketView,
    OrderBook,
    PublicTrade,
    PublicTradePage,
)
from serve_app.gateway.rejects import UNAVAILABLE, UNKNOWN_MARKET, api_error
from serve_app.http.deps import Core

router = APIRouter(tags=["market data"])

MARKETS_CACHE_KEY = "markets:all"
MARKETS_CACHE_TTL_S = 300
ORDERBOOK_CACHE_TTL_MS = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_STATS = MarketStats(
    last_price=None,
    open_price=None,
    high=None,
    low=None,
    change=None,
    change_percent=None,
    volume="0",
    quote_volume="0",
    trade_count=0,
)


async def _cached(
    core: GatewayCore,
    key: str,
    load: Callable[[], Awaitable[str]],
    ttl_s: int | None = None,
    ttl_ms: int | None = None,
) -> str:
    redis = await core.redis()
    try:
        hit = await redis.get(key)
    except Exception:  # Redis is a cache: on failure, serve from the source
        hit = None
    if hit is not None:
        return hit.decode() if isinstance(hit, bytes) else str(hit)
    value = await load()
    with contextlib.suppress(Exception):  # Redis is a cache: on failure, serve from the source
        await redis.set(key, value, ex=ttl_s, px=ttl_ms)
    return value


async def invalidate_markets(core: GatewayCore) -> None:
    """Drop the cached market list (after an admin change)."""
    with contextlib.suppress(Exception):  # else the entry expires within 5 minutes
        await (await core.redis()).delete(MARKETS_CACHE_KEY)


async def _load_markets(core: GatewayCore) -> str:
    records = await core.registry.all(await core.pool())
    return json.dumps([views.market_view(r, _NO_STATS).model_dump(mode="json", exclude={"stats"})
                       for r in records])  # fmt: skip


async def _markets(core: GatewayCore) -> list[dict[str, Any]]:
    """Return every market's view: the spec list from `markets:all`, each market's stats
    from `market_stats:{market}` (`stats_cache`)."""
    text = await _cached(
        core, MARKETS_CACHE_KEY, lambda: _load_markets(core), ttl_s=MARKETS_CACHE_TTL_S
    )
    markets: list[dict[str, Any]] = json.loads(text)
    pool = await core.pool()
    records = [await core.registry.market(pool, m["symbol"]) for m in markets]
    stats = await stats_cache.market_stats(core, records)
    for market in markets:
        market["stats"] = stats[market["symbol"]].model_dump(mode="json")
    return markets


@router.get("/markets", response_model=list[MarketView], summary="List markets")
async def list_markets(core: Core) -> list[dict[str, Any]]:
    """Return every market's spec, fees, filters and 24 h stats (stats cached up to 5
    minutes, refreshed when a trade lands)."""
    return await _markets(core)


# Declared before `/markets/{symbol:path}`, which would take `SOL-USDC/orderbook` as a symbol.
@router.get(
    "/markets/{symbol:path}/orderbook", response_model=OrderBook,
    summary="Order book (L2), alias of /orderbook/{market}",
    responses={**UNKNOWN_MARKET, **UNAVAILABLE},
)  # fmt: skip
async def market_orderbook(
    symbol: Annotated[str, Path(description="Market symbol.")],
    core: Core,
    depth: Annotated[int, Query(ge=1, le=1000, description="Levels per side.")] = 20,
) -> dict[str, Any]:
    """Return the aggregated book, as `GET /orderbook/{market}` does."""
    return await orderbook(symbol, core, depth)


@router.get(
    "/markets/{symbol:path}/trades", response_model=PublicTradePage,
    summary="Recent trades, alias of /trades/{market}", responses=UNKNOWN_MARKET,
)  # fmt: skip
async def market_recent_trades(
    symbol: Annotated[str, Path(description="Market symbol.")],
    core: Core,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
) -> PublicTradePage:
    """Return a market's trades, newest first, as `GET /trades/{market}` does."""
    return await market_trades(symbol, core, limit, cursor)


@router.get(
    "/markets/{symbol:path}", response_model=MarketView, summary="Get a market",
    responses=UNKNOWN_MARKET,
)  # fmt: skip
async def get_market(symbol: str, core: Core) -> dict[str, Any]:
    """Return one market (cached with the list)."""
    for market in await _markets(core):
        if market["symbol"] == symbol:
            return market
    record = await core.registry.market(await core.pool(), symbol)  # 404 when unknown
    await invalidate_markets(core)  # new since the list was cached
    stats = await stats_cache.market_stats(core, [record])
    return views.market_view(record, stats[record.spec.symbol]).model_dump(mode="json")


@router.get(
    "/orderbook/{market:path}", response_model=OrderBook, summary="Order book (L2)",
    responses={**UNKNOWN_MARKET, **UNAVAILABLE},
)  # fmt: skip
async def orderbook(
    market: Annotated[str, Path(description="Market symbol.")],
    core: Core,
    depth: Annotated[int, Query(ge=1, le=1000, description="Levels per side.")] = 20,
) -> dict[str, Any]:
    """Return the aggregated book: price, quantity and order count per level (100 ms cache)."""
    record = await core.registry.market(await core.pool(), market)
    spec = record.spec

    async def load() -> str:
        raw = await core.call(f"market:{spec.symbol}", "l2", depth)
        seq = int(raw.get("seq", 0))
        book = OrderBook(
            market=spec.symbol,
            seq=seq,
            last_update_id=seq,
            bids=views.levels(spec, raw["bids"]),
            asks=views.levels(spec, raw["asks"]),
        )
        return book.model_dump_json()

    key = f"orderbook:{spec.symbol}:{depth}"
    book: dict[str, Any] = json.loads(await _cached(core, key, load, ttl_ms=ORDERBOOK_CACHE_TTL_MS))
    return book


@router.get(
    "/trades/{market:path}", response_model=PublicTradePage, summary="Recent trades",
    responses=UNKNOWN_MARKET,
)  # fmt: skip
async def market_trades(
    market: Annotated[str, Path(description="Market symbol.")],
    core: Core,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the last page.")] = None,
) -> PublicTradePage:
    """Return a market's trades, newest first, each with its settlement once batched: the
    latest from the market actor's memory, older pages from PostgreSQL."""
    record = await core.registry.market(await core.pool(), market)
    before = _seq_cursor(cursor)
    trades = [] if before is not None else await _from_memory(core, record, limit)
    if len(trades) < limit:
        oldest = trades[-1].seq if trades else before
        rows = await db.public_trades(
            await core.pool(), record.market_id, oldest, limit - len(trades)
        )
        trades += [
            views.public_trade(record.spec, int(r["seq"]), r["taker_side"], int(r["price_ticks"]),
                               int(r["qty_lots"]), r["executed_at"], _settlement(r))
            for r in rows
        ]  # fmt: skip
    next_cursor = str(trades[-1].seq) if len(trades) == limit else None
    return PublicTradePage(trades=trades, next_cursor=next_cursor)


def _seq_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise api_error("invalid_cursor", "the cursor is not one this API returned")
    return int(cursor)


def _settlement(row: Any) -> tuple[int, str] | None:
    sid = row["settlement_id"]
    return None if sid is None else (int(sid), row["settlement_status"])


async def _from_memory(core: GatewayCore, record: MarketRecord, limit: int) -> list[PublicTrade]:
    symbol = record.spec.symbol
    try:
        raw = await core.call(f"market:{symbol}", "recent_trades", limit)
    except Exception:  # the tape is also in PostgreSQL: fall back to it
        return []
    raw = raw[:limit]
    seqs = [int(t["seq"]) for t in raw]
    batched = (
        await db.settlements_of(await core.pool(), record.market_id, min(seqs), max(seqs))
        if seqs
        else {}
    )
    return [
        views.public_trade(record.spec, int(t["seq"]), t["taker_side"], int(t["price"]),
                           int(t["qty"]), _EPOCH + timedelta(milliseconds=int(t["ts"])),
                           batched.get(int(t["seq"])))
        for t in raw
    ]  # fmt: skip
