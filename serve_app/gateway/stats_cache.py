"""The markets' 24 h statistics, cached in Redis per market and refreshed when a trade lands.

`market_stats:{market}` holds a market's stats (the `MarketStats` JSON) for up to
`STATS_TTL_S`: the 24 h window slides, so stats computed without a newer trade may age by
that much. A trade makes them stale at once, so the gateway's batcher drops the entry
(`trade_landed`) once per batch of a market whose answers hold a fill, before it answers
them, and the next read computes it again.
Every trade comes from a command answered by some gateway replica (a stop that triggers
trades inside the command that triggered it), so no trade is missed.

A read that computed stats before a trade landed must not store them after the entry was
dropped: `market_stats:{market}:gen` counts the drops, a reader notes it before computing
and stores only if it did not move (a compare-and-set script). The computation waits for
the trades projection of what was acknowledged before it (`db.market_stats`), so a read
after an answered trade includes it. Redis is a cache: when it fails, stats come from
PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
import redis.asyncio as aioredis

from actors.engine import Event, Fill
from actors.markets_repo import MarketRecord
from serve_app.gateway import db, views
from serve_app.gateway.models import MarketStats


class Stores(Protocol):
    """Where the stats live: the replica's Redis client and PostgreSQL pool (a
    `GatewayCore`, whose batcher calls `trade_landed`)."""

    async def redis(self) -> aioredis.Redis:
        """Return the Redis client."""

    async def pool(self) -> asyncpg.Pool:
        """Return the PostgreSQL pool."""


STATS_TTL_S = 300
# Store the stats (KEYS[1]) only if the generation (KEYS[2]) is still the one read before
# they were computed (ARGV[2]; "" when it did not exist).
_SET_IF_GEN = """
if (redis.call('GET', KEYS[2]) or '') == ARGV[2] then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
    return 1
end
return 0
"""


def stats_key(symbol: str) -> str:
    """Return the Redis key of a market's stats (the seed's `market_stats:{market}`)."""
    return f"market_stats:{symbol}"


def _gen_key(symbol: str) -> str:
    return f"market_stats:{symbol}:gen"


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


async def trade_landed(core: Stores, symbol: str) -> None:
    """Drop a market's cached stats after a trade (before its command is answered)."""
    with contextlib.suppress(Exception):  # Redis is a cache; the entry expires anyway
        pipe = (await core.redis()).pipeline(transaction=True)
        pipe.incr(_gen_key(symbol))
        pipe.delete(stats_key(symbol))
        await pipe.execute()


def has_fill(events: Sequence[Event]) -> bool:
    """Return whether a command's events hold a trade."""
    return any(type(e) is Fill for e in events)


async def market_stats(core: Stores, records: Sequence[MarketRecord]) -> dict[str, MarketStats]:
    """Return the 24 h stats of markets by symbol, from the cache where it has them."""
    symbols = [r.spec.symbol for r in records]
    keys = [k for s in symbols for k in (stats_key(s), _gen_key(s))]
    try:
        found = await (await core.redis()).mget(keys)
    except Exception:  # Redis is a cache: on failure, compute from PostgreSQL
        found = [None] * len(keys)
    out: dict[str, MarketStats] = {}
    missing: list[tuple[MarketRecord, str]] = []
    for i, record in enumerate(records):
        cached, gen = _text(found[2 * i]), _text(found[2 * i + 1])
        if cached is not None:
            out[record.spec.symbol] = MarketStats.model_validate_json(cached)
        else:
            missing.append((record, gen or ""))
    if missing:
        out.update(await _compute(core, missing))
    return out


async def _compute(core: Stores, missing: list[tuple[MarketRecord, str]]) -> dict[str, MarketStats]:
    rows, complete = await db.market_stats(
        await core.pool(), [record.market_id for record, _ in missing]
    )
    out = {r.spec.symbol: views.market_stats(r.spec, rows.get(r.market_id)) for r, _ in missing}
    if complete:  # else a restarting market's trades may be missing: do not keep them
        with contextlib.suppress(Exception):  # Redis is a cache
            redis = await core.redis()
            script = redis.register_script(_SET_IF_GEN)
            for record, gen in missing:
                symbol = record.spec.symbol
                value = json.dumps(out[symbol].model_dump(mode="json"))
                await script(keys=[stats_key(symbol), _gen_key(symbol)],
                             args=[value, gen, STATS_TTL_S])  # fmt: skip
    return out
