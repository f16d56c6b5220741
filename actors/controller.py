"""`Controller`: the registry of markets and ledger shards (a named detached Ray actor).

It keeps no state of its own beyond handles: the `markets` table is the registry, and
every actor it starts is named, detached and restarted by Ray, so a restarted controller
only looks the actors up again (get-or-create by name).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.engine import MarketSpec
from actors.ledger import store as ledger_store
from actors.ledger.shard import LedgerShard, ledger_shard_options
from actors.market.actor import MarketActor, market_actor_name, market_actor_options
from actors.market.journal import connect
from actors.markets_repo import create_market, load_markets, set_market_status

log = logging.getLogger(__name__)
CONTROLLER_NAME = "controller"
# Pauses before placing a new market again when it landed off its target node.
PLACEMENT_RETRY_S = (0.2, 0.5, 1.0, 2.0, 4.0)


def controller_options(namespace: str) -> dict[str, Any]:
    """Return the `.options(...)` of the controller actor."""
    return {
        "name": CONTROLLER_NAME,
        "namespace": namespace,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": -1,
        "num_cpus": 0,
        "get_if_exists": True,
    }


def _start_shard(
    i: int, database_url: str, shard_count: int, namespace: str, redis_url: str | None
) -> Any:
    options = dict(ledger_shard_options(i), namespace=namespace, get_if_exists=True)
    cls: Any = ray.remote(LedgerShard)
    return cls.options(**options).remote(i, shard_count, database_url, redis_url)


def least_loaded_node(alive: list[str], placed: dict[str, str]) -> str | None:
    """Return the alive node hosting the fewest markets in `placed` (first of a tie).

    `placed` maps each market to its node; markets on nodes that are gone do not count.
    None when no node is alive (let Ray choose).
    """
    if not alive:
        return None
    load = dict.fromkeys(alive, 0)
    for node in placed.values():
        if node in load:
            load[node] += 1
    return min(alive, key=load.__getitem__)


HEALTH_TIMEOUT_S = 2.0


async def _health(name: str, handle: Any) -> dict[str, Any]:
    """Return an actor's `health()`, or `down` with the reason when it does not answer."""
    try:
        answer: dict[str, Any] = await asyncio.wait_for(handle.health.remote(), HEALTH_TIMEOUT_S)
    except Exception as exc:  # dead, restarting or stuck: all mean down right now
        return {"name": name, "status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return answer


def _alive_nodes() -> list[str]:
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))  # type: ignore[no-untyped-call]


class Controller:
    """Registry of markets and shards.

    Args:
        database_url: PostgreSQL URL.
        shard_count: Number of ledger shards; None: the number the ledger recorded (or
            `DEFAULT_SHARD_COUNT` for a new ledger). Another number than the recorded one
            is refused (`LedgerLayoutError`).
        namespace: Ray namespace of every actor of the exchange.
        redis_url: Where markets and shards publish the real-time stream; None: nowhere.
    """

    def __init__(
        self,
        database_url: str,
        shard_count: int | None,
        namespace: str = "clob",
        redis_url: str | None = None,
    ) -> None:
        self._url = database_url
        self._redis_url = redis_url
        self._configured_shards = shard_count
        self._shard_count = 0  # the ledger's, known once started
        self._namespace = namespace
        self._markets: dict[str, Any] = {}
        self._placed: dict[str, str] = {}  # symbol -> node id, to spread new markets
        self._shards: list[Any] = []
        self._init: asyncio.Task[None] | None = None

    async def _ready(self) -> None:
        if self._init is None:
            self._init = asyncio.create_task(self._start())
        await asyncio.shield(self._init)

    async def _start(self) -> None:
        conn = await connect(self._url)
        try:
            self._shard_count = await ledger_store.claim_shard_count(conn, self._configured_shards)
            records = await load_markets(conn)
        finally:
            await conn.close()
        self._shards = [
            _start_shard(i, self._url, self._shard_count, self._namespace, self._redis_url)
            for i in range(self._shard_count)
        ]
        # A shard that cannot load its state stops nothing else: it reports it in `health`
        # and tries again on its next call (docs/operations.md, "When a market or shard
        # fails"); the markets whose recovery needs it report themselves failed.
        pings = await asyncio.gather(
            *(s.ping.remote() for s in self._shards), return_exceptions=True
        )
        for i, ping in enumerate(pings):
            if isinstance(ping, BaseException):
                log.error("ledger shard %d did not start: %s", i, ping)
        running = {s: h for s in records if (h := self._running(s)) is not None}
        statuses = await asyncio.gather(*(h.status.remote() for h in running.values()))
        self._placed = {st["symbol"]: st["node_id"] for st in statuses}
        missing = [s for s in records if s not in running]
        placed = await asyncio.gather(*(self._place(s) for s in missing))
        self._markets = {**running, **dict(zip(missing, placed, strict=True))}

    def _running(self, symbol: str) -> Any | None:
        """Return the actor of a market that Ray already runs (or restarts), else None."""
        try:
            return ray.get_actor(market_actor_name(symbol), namespace=self._namespace)
        except ValueError:
            return None

    async def _place(self, symbol: str) -> Any:
        """Start a market's actor on the alive node with the fewest markets; return its handle.

        The affinity is soft: when that node is gone (at a restart too), Ray places the
        actor on another node. Ray's placement is made by one raylet with its own view of
        the cluster, which can lag the GCS's list of alive nodes (a node that has just
        joined); the actor then lands on another node. A new actor found off its target
        while the target is still alive has not traded: it is killed and started again
        after a pause (`PLACEMENT_RETRY_S`), then left where it lands.
        """
        for pause in (*PLACEMENT_RETRY_S, None):
            others = {s: n for s, n in self._placed.items() if s != symbol}
            target = least_loaded_node(_alive_nodes(), others)
            if target is not None:  # claimed while starting, so concurrent placements spread
                self._placed[symbol] = target
            handle = self._start_market(symbol, target)
            node = (await handle.status.remote())["node_id"]
            self._placed[symbol] = node
            if target is None or node == target or pause is None or target not in _alive_nodes():
                break
            log.warning("market %s landed on %s, not %s; placing it again", symbol, node, target)
            ray.kill(handle, no_restart=True)
            await asyncio.sleep(pause)
        return handle

    def _start_market(self, symbol: str, node: str | None) -> Any:
        """Get or start a market's actor, with a soft affinity to `node` (None: Ray chooses)."""
        options = dict(market_actor_options(symbol), namespace=self._namespace, get_if_exists=True)
        if node is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
        cls: Any = ray.remote(MarketActor)
        return cls.options(**options).remote(
            symbol, self._url, self._shard_count, self._namespace, redis_url=self._redis_url
        )

    async def ready(self) -> bool:
        """Wait until the shards and every market actor are up; return True."""
        await self._ready()
        return True

    async def shard_count(self) -> int:
        """Return the number of ledger shards."""
        await self._ready()
        return self._shard_count

    async def create_market(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Validate and register a market, start its actor; return its spec and id.

        Raises:
            InvalidMarketSpecError: The spec is invalid.
            asyncpg.UniqueViolationError: The symbol or asset pair exists.
        """
        await self._ready()
        market = MarketSpec.from_dict(spec)
        conn = await connect(self._url)
        try:
            record = await create_market(conn, market)
        finally:
            await conn.close()
        self._markets[market.symbol] = await self._place(market.symbol)
        return {"market_id": record.market_id, **record.spec.to_dict()}

    async def list_markets(self) -> list[dict[str, Any]]:
        """Return every market's id and spec (with its registry status)."""
        conn = await connect(self._url)
        try:
            records = await load_markets(conn)
            statuses = {
                r["symbol"]: r["status"]
                for r in await conn.fetch("SELECT symbol, status FROM markets")
            }
        finally:
            await conn.close()
        return [
            {"market_id": r.market_id, **r.spec.to_dict(), "status": statuses[s]}
            for s, r in records.items()
        ]

    async def _set_status(self, symbol: str, status: str) -> None:
        conn: asyncpg.Connection = await connect(self._url)
        try:
            if not await set_market_status(conn, symbol, status):
                raise KeyError(f"unknown market {symbol}")
        finally:
            await conn.close()

    async def halt(self, symbol: str) -> dict[str, Any]:
        """Halt a market (journaled by its actor) and mark it halted in the registry."""
        await self._ready()
        await self._markets[symbol].halt.remote()
        await self._set_status(symbol, "halted")
        return dict(await self._markets[symbol].status.remote())

    async def resume(self, symbol: str) -> dict[str, Any]:
        """Resume a market and mark it active in the registry."""
        await self._ready()
        await self._markets[symbol].resume.remote()
        await self._set_status(symbol, "active")
        return dict(await self._markets[symbol].status.remote())

    async def health(self) -> dict[str, list[dict[str, Any]]]:
        """Return the state of every market actor and ledger shard, without waiting for a
        recovery: `status` is `up`, `recovering`, `degraded` (a shard with markets set
        aside), `failed` or `down` (no answer within `HEALTH_TIMEOUT_S`)."""
        await self._ready()
        markets = [(f"market:{s}", h) for s, h in self._markets.items()]
        shards = [(f"ledger:{i}", h) for i, h in enumerate(self._shards)]
        market_health, shard_health = await asyncio.gather(
            asyncio.gather(*(_health(name, h) for name, h in markets)),
            asyncio.gather(*(_health(name, h) for name, h in shards)),
        )
        return {"markets": list(market_health), "ledger_shards": list(shard_health)}

    async def retry(self, symbol: str) -> dict[str, list[dict[str, Any]]]:
        """Recover a market again after an operator fixed why it failed: every shard takes
        its journal back (`readmit`), then the market retries its recovery now.

        Returns:
            The market's and every shard's `health()` afterwards, shaped as `health`'s.

        Raises:
            KeyError: No such market.
        """
        await self._ready()
        market = self._markets[symbol]
        shards = await asyncio.gather(*(s.readmit.remote(symbol) for s in self._shards))
        await market.retry.remote()
        return {"markets": [await _health(f"market:{symbol}", market)], "ledger_shards": shards}

    async def market_nodes(self) -> dict[str, str]:
        """Return the node id each market actor runs on."""
        await self._ready()
        symbols = list(self._markets)
        statuses = await asyncio.gather(*(self._markets[s].status.remote() for s in symbols))
        nodes = {s: st["node_id"] for s, st in zip(symbols, statuses, strict=True)}
        self._placed.update(nodes)
        return nodes
