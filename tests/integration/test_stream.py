"""The real-time stream's publishers on a real Ray, PostgreSQL and Redis: what a market
and the ledger shards publish, checked against the book, the orders and trades tables and
the balances; then Redis stopped mid-way (trading goes on, the counters move) and back
(publishing resumes, and the first message after shows the gap)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import ray
import redis.asyncio as aioredis

from actors.bootstrap import start_core
from actors.infra.embedded import EmbeddedRedis, free_port
from actors.stream.messages import (
    AccountBatch,
    MarketBatch,
    OrderState,
    decode_account,
    decode_market,
    md_channel,
)
from tests.support.market_kit import (
    balances,
    cancel,
    credit,
    kill_and_wait,
    limit,
    new_accounts,
    request,
)

pytestmark = pytest.mark.timeout(300)
SHARDS = 2


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A Redis of this module's own, which the tests stop and start again."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("stream-redis")), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="module")
async def core(db_url: str, namespace: str, own_redis: EmbeddedRedis) -> AsyncIterator[Any]:
    """The trading core, publishing to `own_redis`."""
    url = own_redis.url(own_redis.port)
    yield await asyncio.to_thread(start_core, db_url, SHARDS, namespace, url)


class Listener:
    """Collects every stream message from Redis (markets' and accounts' channels)."""

    def __init__(self, url: str, symbol: str) -> None:
        self._client = aioredis.Redis.from_url(url)
        self._pubsub = self._client.pubsub()
        self._symbol = symbol
        self.market: list[MarketBatch] = []
        self.accounts: list[AccountBatch] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        await self._pubsub.subscribe(md_channel(self._symbol))
        await self._pubsub.psubscribe("stream:acct:*")
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._pubsub.aclose()
        await self._client.aclose()

    async def _read(self) -> None:
        while True:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            data = message["data"]
            if message["channel"].startswith(b"stream:md:"):
                self.market.append(decode_market(data))
            else:
                self.accounts.append(decode_account(data))

    async def quiet(self, seconds: float = 0.5) -> None:
        """Wait until no message came for `seconds`."""
        while True:
            count = len(self.market) + len(self.accounts)
            await asyncio.sleep(seconds)
            if len(self.market) + len(self.accounts) == count:
                return


async def _setup(db_url: str, controller: Any, namespace: str) -> tuple[str, Any, int, int]:
    tag = uuid.uuid4().hex[:6].upper()
    symbol = f"B{tag}-Q{tag}"
    spec = {"symbol": symbol, "base_asset": f"B{tag}", "quote_asset": f"Q{tag}",
            "maker_fee_bps": 10, "taker_fee_bps": 20}  # fmt: skip
    await controller.create_market.remote(spec)
    market = ray.get_actor(f"market:{symbol}", namespace=namespace)
    seller, buyer = await new_accounts(db_url, 2)
    await credit(namespace, SHARDS, seller, f"B{tag}", 1_000)
    await credit(namespace, SHARDS, buyer, f"Q{tag}", 1_000_000)
    return symbol, market, seller, buyer


def _chain(batches: list[MarketBatch]) -> None:
    for before, after in itertools.pairwise(batches):
        assert before.u + 1 == after.U, (before, after)
    assert all(b.u >= b.U for b in batches)


def _book(batches: list[MarketBatch]) -> dict[str, dict[int, tuple[int, int]]]:
    sides: dict[str, dict[int, tuple[int, int]]] = {"bids": {}, "asks": {}}
    for b in batches:
        for name, levels in (("bids", b.bids), ("asks", b.asks)):
            for lv in levels:
                if lv.qty:
                    sides[name][lv.price] = (lv.qty, lv.count)
                else:
                    sides[name].pop(lv.price, None)
    return sides


_ORDER_SQL = (
    "SELECT order_id, status, reason, price_ticks, qty_lots, open_qty_lots, filled_qty_lots, "
    "filled_quote_atoms, fee_atoms, last_event_seq, client_order_id, "
    "(extract(epoch FROM created_at) * 1000)::bigint AS created, "
    "(extract(epoch FROM updated_at) * 1000)::bigint AS updated FROM orders WHERE order_id = $1"
)


def _state_tuple(s: OrderState) -> tuple[Any, ...]:
    return (s.order_id, s.status, s.reason, s.price, s.qty, s.open_qty, s.filled_qty,
            s.filled_quote, s.fee, s.u, s.client_order_id, s.created_at, s.updated_at)  # fmt: skip


async def test_a_market_and_its_shards_publish_what_the_book_tables_and_balances_hold(
    core: Any, db_url: str, namespace: str, own_redis: EmbeddedRedis
) -> None:
    symbol, market, seller, buyer = await _setup(db_url, core, namespace)
    base, quote = symbol.split("-")
    s1, s2, b1, b2 = (f"{x}-{uuid.uuid4().hex[:8]}" for x in ("s1", "s2", "b1", "b2"))
    async with Listener(own_redis.url(own_redis.port), symbol) as listener:
        first = {"type": "new", "id": s1, "side": "sell", "kind": "limit", "price": 100, "qty": 10}
        iceberg = limit(seller, s2, "sell", 101, 5, display_qty=2)
        await market.submit.remote([request(s1, seller, first, client_order_id="c-s1"), iceberg])
        await market.submit.remote([limit(buyer, b1, "buy", 101, 12)])  # s1 all, s2 a slice
        amend = {"type": "amend", "id": s2, "qty": 2, "price": 102}
        await market.submit.remote([request(f"am-{b2}", seller, amend)])
        await market.submit.remote([limit(buyer, b2, "buy", 99, 3)])
        await market.submit.remote([cancel(buyer, b2)])
        await market.settled.remote()
        await listener.quiet()
    batches = [b for b in listener.market if b.market == symbol]
    assert len(batches) == 5
    _chain(batches)
    book = await market.l2.remote()
    assert batches[-1].u == book["seq"]
    assert _book(batches) == {
        name: {lv["price"]: (lv["qty"], lv["count"]) for lv in book[name]}
        for name in ("bids", "asks")
    }
    trades = [t for b in batches for t in b.trades]
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT seq, price_ticks, qty_lots, taker_side FROM trades t JOIN markets m "
            "USING (market_id) WHERE m.symbol = $1 ORDER BY seq", symbol,
        )  # fmt: skip
        assert [(t.id, t.price, t.qty, t.taker_side) for t in trades] == [tuple(r) for r in rows]
        states: dict[str, OrderState] = {}
        fills: dict[int, list[Any]] = {seller: [], buyer: []}
        for a in listener.accounts:
            for s in a.orders:
                states[s.order_id] = s
            fills.setdefault(a.account_id, []).extend(a.fills)
        assert set(states) == {s1, s2, b1, b2}
        for oid, state in states.items():
            row = await conn.fetchrow(_ORDER_SQL, oid)
            assert _state_tuple(state) == tuple(row), oid  # what REST's GET /orders/{id} reads
    finally:
        await conn.close()
    assert states[s1].client_order_id == "c-s1" and states[b2].status == "cancelled"
    maker_fills = [(f.order_id, f.liquidity, f.qty) for f in fills[seller]]
    assert maker_fills == [(s1, "maker", 10), (s2, "maker", 2)]
    assert sum(f.quote for f in fills[buyer]) == 100 * 10 + 101 * 2
    for account in (seller, buyer):
        last: dict[str, tuple[int, int]] = {}
        for a in listener.accounts:
            if a.account_id == account:
                last.update({b.asset: (b.available, b.locked) for b in a.balances})
        assert {k: last[k] for k in (base, quote) if k in last} == {
            k: v for k, v in (await balances(namespace, SHARDS, account)).items() if k in last
        }
        assert last  # every change of balance was published
    status = await market.status.remote()
    assert status["stream"]["batches"] == 5 and status["stream"]["dropped"] == 0


async def test_trading_goes_on_without_redis_and_the_stream_resumes_with_a_gap(
    core: Any, db_url: str, namespace: str, own_redis: EmbeddedRedis
) -> None:
    symbol, market, seller, buyer = await _setup(db_url, core, namespace)
    url = own_redis.url(own_redis.port)
    async with Listener(url, symbol) as listener:
        await market.submit.remote([limit(seller, f"s-{uuid.uuid4().hex[:8]}", "sell", 100, 5)])
        await listener.quiet()
    before = [b for b in listener.market if b.market == symbol]
    assert len(before) == 1
    own_redis.stop()
    try:
        for i in range(3):  # trading goes on
            [ok] = await market.submit.remote(
                [limit(buyer, f"b{i}-{uuid.uuid4().hex[:8]}", "buy", 100, 1)]
            )
            assert ok.ok
        await asyncio.sleep(0.5)
        down = (await market.status.remote())["stream"]
        assert down["errors"] >= 1 and down["dropped"] >= 1 and down["connected"] == 0
    finally:
        own_redis.start()
    async with Listener(url, symbol) as listener:
        deadline = asyncio.get_running_loop().time() + 30
        while not [b for b in listener.market if b.market == symbol]:
            assert asyncio.get_running_loop().time() < deadline, "publishing did not resume"
            await market.submit.remote([limit(buyer, f"r-{uuid.uuid4().hex[:8]}", "buy", 90, 1)])
            await asyncio.sleep(0.5)
        after = [b for b in listener.market if b.market == symbol]
    assert before[-1].u + 1 < after[0].U  # the gap shows
    up = (await market.status.remote())["stream"]
    assert up["connected"] == 1 and up["published"] > 1


async def test_a_restarted_market_continues_the_chain_and_its_states_from_the_orders_table(
    core: Any, db_url: str, namespace: str, own_redis: EmbeddedRedis
) -> None:
    symbol, market, seller, buyer = await _setup(db_url, core, namespace)
    s1 = f"s1-{uuid.uuid4().hex[:8]}"
    expire_at = int(time.time() * 1000) + 3_600_000
    gtd = {"type": "new", "id": s1, "side": "sell", "kind": "limit", "price": 100, "qty": 6,
           "tif": "gtd", "expire_at": expire_at, "display_qty": 2}  # fmt: skip
    async with Listener(own_redis.url(own_redis.port), symbol) as listener:
        await market.submit.remote([request(s1, seller, gtd, client_order_id=f"c-{s1}")])
        await market.settled.remote()
        await listener.quiet()
        await kill_and_wait(market)  # the new incarnation seeds from the table and the book
        await market.submit.remote([limit(buyer, f"b-{s1}", "buy", 100, 3)])
        await market.settled.remote()
        await listener.quiet()
    batches = [b for b in listener.market if b.market == symbol]
    assert len(batches) == 2
    _chain(batches)
    # The iceberg: its 2-lot slice filled, refilled, 1 lot of it filled: 1 visible.
    assert [(lv.price, lv.qty, lv.count) for lv in batches[1].asks] == [(100, 1, 1)]
    [state] = [s for a in listener.accounts for s in a.orders if s.order_id == s1][-1:]
    assert (state.status, state.open_qty, state.filled_qty, state.expire_at) == (
        "partially_filled",
        3,
        3,
        expire_at,
    )
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(_ORDER_SQL, s1)
    finally:
        await conn.close()
    assert _state_tuple(state) == tuple(row)
