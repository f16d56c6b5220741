"""The market actor on a real Ray and PostgreSQL: pipeline, balances, idempotency,
insufficient funds, crash recovery and epoch fencing."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import ray

from actors import controller as controller_module
from actors.bootstrap import start_core
from actors.controller import Controller
from actors.engine import Fill
from actors.ledger import store as ledger_store
from actors.ledger.store import LedgerLayoutError
from actors.market.actor import MarketActor, market_actor_options
from actors.market.journal import FencedError
from tests.support.market_kit import (
    balances,
    cancel,
    create_database,
    credit,
    drop_database,
    kill_and_wait,
    kinds,
    limit,
    new_accounts,
    request,
    submit_until_acked,
)

SHARDS = 2
PLACEMENT_RETRY = (0.0, 0.05, 0.1)


@pytest_asyncio.fixture(scope="module")
async def core(pg_dsn: str, namespace: str) -> AsyncIterator[tuple[str, Any]]:
    """A migrated database and the started core (controller, shards)."""
    url = await create_database(pg_dsn, "market")
    controller = await asyncio.to_thread(start_core, url, SHARDS, namespace)
    try:
        yield url, controller
    finally:
        await drop_database(pg_dsn, url)


async def _market(controller: Any, namespace: str, **spec: Any) -> tuple[str, Any]:
    tag = uuid.uuid4().hex[:6].upper()
    symbol = f"B{tag}-Q{tag}"
    await controller.create_market.remote(
        {"symbol": symbol, "base_asset": f"B{tag}", "quote_asset": f"Q{tag}", **spec}
    )
    return symbol, ray.get_actor(f"market:{symbol}", namespace=namespace)


async def _market_and_seller(
    core: tuple[str, Any], namespace: str, base_atoms: int
) -> tuple[str, Any, int]:
    """A new market and an account credited `base_atoms` of its base asset."""
    url, controller = core
    symbol, market = await _market(controller, namespace)
    [account] = await new_accounts(url, 1)
    await credit(namespace, SHARDS, account, symbol.split("-")[0], base_atoms)
    return symbol, market, account


async def _traders(
    url: str, namespace: str, symbol: str, base_atoms: int, quote_atoms: int
) -> tuple[int, int]:
    """A seller credited `base_atoms` of the market's base and a buyer `quote_atoms` of its
    quote."""
    base, quote = symbol.split("-")
    seller, buyer = await new_accounts(url, 2)
    await credit(namespace, SHARDS, seller, base, base_atoms)
    await credit(namespace, SHARDS, buyer, quote, quote_atoms)
    return seller, buyer


async def test_place_match_amend_cancel_moves_exact_balances(
    core: tuple[str, Any], namespace: str
) -> None:
    url, controller = core
    symbol, market = await _market(controller, namespace, taker_fee_bps=10)
    base, quote = symbol.split("-")
    seller, buyer = await _traders(url, namespace, symbol, 100, 10_000)
    [sell] = await market.submit.remote([limit(seller, "s1", "sell", 100, 10)])
    assert sell.ok and sell.seq == 1
    [buy] = await market.submit.remote([limit(buyer, "b1", "buy", 100, 4)])
    assert buy.ok and kinds(buy) == ["accepted", "fill"]
    amend = request("am1", seller, {"type": "amend", "id": "s1", "qty": 8})
    [amended] = await market.submit.remote([amend])
    assert amended.ok and amended.events[0].priority_kept is False
    assert await balances(namespace, SHARDS, seller) == {base: (88, 8), quote: (400, 0)}
    [cancelled] = await market.submit.remote([cancel(seller, "s1")])
    assert cancelled.ok and cancelled.events[0].remaining_qty == 8
    # Taker fee: ceil(400 * 10 / 10^4) = 1 quote atom.
    assert await balances(namespace, SHARDS, seller) == {base: (96, 0), quote: (400, 0)}
    assert await balances(namespace, SHARDS, buyer) == {base: (4, 0), quote: (9_599, 0)}
    assert (await market.l2.remote())["asks"] == []
    trades = await market.recent_trades.remote(10)
    assert [(t["price"], t["qty"]) for t in trades] == [(100, 4)]


async def test_large_and_small_applies_both_reach_the_shards(
    core: tuple[str, Any], namespace: str
) -> None:
    """Applies are routed: a batch of resting sells concerns the seller's shard only; a
    large batch whose entries all concern both shards (each buy fills a sell) goes whole to
    each; so does a small one. All are applied exactly."""
    url, controller = core
    symbol, market = await _market(controller, namespace)
    base, quote = symbol.split("-")
    seller, buyer = await _traders(url, namespace, symbol, 1_000, 1_000_000)
    assert seller % SHARDS != buyer % SHARDS
    many = 80
    sells = [limit(seller, f"s{i}", "sell", 100 + i % 3, 1) for i in range(many + 3)]
    assert all(r.ok for r in await market.submit.remote(sells))
    assert await balances(namespace, SHARDS, seller) == {base: (997 - many, many + 3)}
    buys = [limit(buyer, f"b{i}", "buy", 102, 1) for i in range(many)]
    assert all(r.ok for r in await market.submit.remote(buys))
    paid = sum(sorted(100 + i % 3 for i in range(many + 3))[:many])  # best asks first
    assert await balances(namespace, SHARDS, seller) == {base: (997 - many, 3), quote: (paid, 0)}
    assert await balances(namespace, SHARDS, buyer) == {base: (many, 0), quote: (10**6 - paid, 0)}
    [buy] = await market.submit.remote([limit(buyer, "b", "buy", 102, 3)])
    assert buy.ok and sum(e.qty for e in buy.events if isinstance(e, Fill)) == 3
    rest = 3 * 102  # the three dearest asks were left
    assert await balances(namespace, SHARDS, seller) == {
        base: (997 - many, 0), quote: (paid + rest, 0),
    }  # fmt: skip
    assert await balances(namespace, SHARDS, buyer) == {
        base: (many + 3, 0), quote: (10**6 - paid - rest, 0),
    }  # fmt: skip


async def test_an_apply_reaches_only_the_shards_of_the_accounts_it_concerns(
    core: tuple[str, Any], namespace: str
) -> None:
    """A resting order concerns its owner's shard only: the other shard gets no call, so
    its written mark of the market stays put; a fill concerns both, and both marks move."""
    url, controller = core
    symbol, market = await _market(controller, namespace)
    seller, buyer = await _traders(url, namespace, symbol, 100, 10_000)
    assert seller % SHARDS != buyer % SHARDS

    async def marks() -> dict[int, int]:
        await market.settled.remote()  # the applies reached the shards
        for shard in range(SHARDS):
            await ray.get_actor(f"ledger:{shard}", namespace=namespace).flush.remote()
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT shard_id, applied_journal_seq FROM ledger_shard_marks m "
                "JOIN markets USING (market_id) WHERE symbol = $1",
                symbol,
            )
        finally:
            await conn.close()
        return {r["shard_id"]: r["applied_journal_seq"] for r in rows}

    before = await marks()
    assert all(before.get(s, 0) == 0 for s in range(SHARDS))
    [sell] = await market.submit.remote([limit(seller, "s", "sell", 100, 5)])
    assert sell.ok and sell.seq == 1
    after = await marks()
    assert after[seller % SHARDS] == 1 and after.get(buyer % SHARDS, 0) == 0
    [buy] = await market.submit.remote([limit(buyer, "b", "buy", 100, 2)])
    assert buy.ok and kinds(buy) == ["accepted", "fill"]
    assert await marks() == {seller % SHARDS: 2, buyer % SHARDS: 2}
    base, quote = symbol.split("-")
    assert await balances(namespace, SHARDS, buyer) == {base: (2, 0), quote: (9_800, 0)}


async def test_same_request_twice_gives_one_order_and_a_duplicate_answer(
    core: tuple[str, Any], namespace: str
) -> None:
    _, market, account = await _market_and_seller(core, namespace, 50)
    request = limit(account, "dup-1", "sell", 7, 5)
    [first] = await market.submit.remote([request])
    [again, in_batch] = await market.submit.remote([request, request])
    assert first.ok and not first.duplicate
    assert again.duplicate and in_batch.duplicate and again.seq == first.seq
    assert len(await market.l3.remote()) == 1
    assert (await market.status.remote())["seq"] == 1


async def test_callers_are_answered_at_the_journal_commit_without_waiting_for_the_projection(
    core: tuple[str, Any], namespace: str
) -> None:
    """An answer waits for the journal commit only; the ledger apply and the orders/trades
    projection follow. With the projection blocked (its mark's row locked), an order is
    still answered, and its funds read as held; its row appears once the lock goes. The
    lag is bounded: with two passes' projections pending, the next pass waits."""
    url = core[0]
    symbol, market, seller = await _market_and_seller(core, namespace, 100)
    base = symbol.split("-")[0]
    first, second_id, third, fourth = (
        f"{name}-{uuid.uuid4().hex}" for name in ("first", "second", "third", "fourth")
    )
    await market.submit.remote([limit(seller, first, "sell", 100, 10)])
    assert await market.settled.remote() == 1  # projected: the mark's row exists
    lock, reader = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        market_id = await reader.fetchval("SELECT market_id FROM markets WHERE symbol = $1", symbol)
        count = "SELECT count(*) FROM orders WHERE market_id = $1"
        blocking = lock.transaction()
        await blocking.start()
        await lock.execute(
            "SELECT FROM market_projection_marks WHERE market_id = $1 FOR UPDATE", market_id
        )
        [second] = await asyncio.wait_for(
            market.submit.remote([limit(seller, second_id, "sell", 101, 10)]), timeout=30
        )
        assert second.ok and second.seq == 2
        assert await balances(namespace, SHARDS, seller) == {base: (80, 20)}
        settled = asyncio.ensure_future(market.settled.remote())
        [answer] = await asyncio.wait_for(
            market.submit.remote([limit(seller, third, "sell", 102, 10)]), timeout=30
        )
        assert answer.ok and answer.seq == 3  # a second pass behind the projection
        waiting = asyncio.ensure_future(
            market.submit.remote([limit(seller, fourth, "sell", 103, 10)])
        )
        await asyncio.sleep(0.3)
        assert not settled.done() and not waiting.done()  # the third pass behind waits
        assert await reader.fetchval(count, market_id) == 1
        await blocking.rollback()
        assert await asyncio.wait_for(settled, timeout=30) == 2
        [answer] = await asyncio.wait_for(waiting, timeout=30)
        assert answer.ok and answer.seq == 4
        assert await market.settled.remote() == 4
        assert await reader.fetchval(count, market_id) == 4
    finally:
        await lock.close()
        await reader.close()


async def test_concurrent_submits_share_passes_and_each_gets_its_own_answers(
    core: tuple[str, Any], namespace: str
) -> None:
    url = core[0]
    symbol, market, account = await _market_and_seller(core, namespace, 1_000)
    calls = 60
    answers = await asyncio.gather(
        *(
            market.submit.remote([limit(account, f"gc-{i}", "sell", 100 + i, 1)])
            for i in range(calls)
        )
    )
    assert [a[0].order_id for a in answers] == [f"gc-{i}" for i in range(calls)]
    assert all(a[0].ok for a in answers)
    assert sorted(a[0].seq for a in answers) == list(range(1, calls + 1))
    conn = await asyncpg.connect(url)
    try:
        transactions = await conn.fetchval(
            "SELECT count(DISTINCT j.xmin::text) FROM journal j JOIN markets m USING (market_id) "
            "WHERE m.symbol = $1",
            symbol,
        )
    finally:
        await conn.close()
    # Calls queued behind a pass in flight are journaled together (group commit).
    assert transactions < calls


async def test_insufficient_funds_is_rejected_and_not_journaled(
    core: tuple[str, Any], namespace: str
) -> None:
    url, controller = core
    symbol, market = await _market(controller, namespace)
    [account] = await new_accounts(url, 1)
    await credit(namespace, SHARDS, account, symbol.split("-")[1], 99)
    [short, fits] = await market.submit.remote(
        [limit(account, "big", "buy", 10, 10), limit(account, "small", "buy", 9, 11)]
    )
    assert (short.ok, short.code, short.seq) == (False, "insufficient_funds", None)
    assert fits.ok and fits.seq == 1
    assert (await market.status.remote())["seq"] == 1


async def test_killed_actor_recovers_the_same_book_and_continues(
    core: tuple[str, Any], namespace: str
) -> None:
    url, controller = core
    symbol, market = await _market(controller, namespace, maker_fee_bps=-1, taker_fee_bps=5)
    base, quote = symbol.split("-")
    a, b = await new_accounts(url, 2)
    await credit(namespace, SHARDS, a, base, 1_000)
    await credit(namespace, SHARDS, b, quote, 1_000_000)
    orders = [limit(a, f"a{i}", "sell", 100 + i % 5, 3 + i % 4) for i in range(20)]
    orders += [limit(b, f"b{i}", "buy", 99 + i % 4, 2 + i % 3) for i in range(20)]
    await market.submit.remote(orders)
    await market.snapshot_now.remote()
    await market.submit.remote([limit(b, "late", "buy", 98, 1), cancel(a, "a3")])
    before = await market.l3.remote()
    status = await market.status.remote()
    again = await kill_and_wait(market)
    assert await market.l3.remote() == before
    assert again["epoch"] == status["epoch"] + 1 and again["seq"] == status["seq"]
    [next_one] = await market.submit.remote([limit(b, "next", "buy", 97, 1)])
    assert next_one.seq == status["seq"] + 1


async def test_the_replayed_tail_counts_toward_the_next_snapshot(
    core: tuple[str, Any], namespace: str
) -> None:
    """After recovery the next snapshot is due `snapshot_every_events` after the restored
    snapshot, not after the restart: a long replayed tail is not replayed again and again."""
    _, market, account = await _market_and_seller(core, namespace, 100)
    await market.submit.remote([limit(account, f"t{i}", "sell", 10 + i, 1) for i in range(5)])
    again = await kill_and_wait(market)  # no snapshot yet: the whole journal is the tail
    assert again["events_since_snapshot"] == again["event_seq"] == 5
    await market.snapshot_now.remote()
    await market.submit.remote([limit(account, "t9", "sell", 30, 1)])
    again = await kill_and_wait(market)
    assert (again["events_since_snapshot"], again["event_seq"]) == (1, 6)


async def test_a_restarted_actor_recovers_before_anyone_calls_it(
    core: tuple[str, Any], namespace: str
) -> None:
    """Recovery starts in the constructor, overlapping the time callers need to find the
    new incarnation: the epoch moves (recovery's first step) with no call made."""
    url, controller = core
    symbol, market = await _market(controller, namespace)
    epoch = (await market.status.remote())["epoch"]
    conn = await asyncpg.connect(url)
    try:
        query = (
            "SELECT e.epoch FROM market_epochs e JOIN markets m USING (market_id) "
            "WHERE m.symbol = $1"
        )
        assert await conn.fetchval(query, symbol) == epoch
        ray.kill(market, no_restart=False)
        for _ in range(600):
            if await conn.fetchval(query, symbol) == epoch + 1:
                break
            await asyncio.sleep(0.05)
        assert await conn.fetchval(query, symbol) == epoch + 1
    finally:
        await conn.close()
    status = await market.status.remote()
    assert status["epoch"] == epoch + 1
    assert status["startup_seconds"]["recovery"] <= status["startup_seconds"]["since_constructed"]


async def test_stale_incarnation_cannot_write(core: tuple[str, Any], namespace: str) -> None:
    url = core[0]
    symbol, market, account = await _market_and_seller(core, namespace, 100)
    await market.submit.remote([limit(account, "x1", "sell", 10, 1)])
    rival = ray.remote(MarketActor).remote(symbol, url, SHARDS, namespace)
    assert (await rival.status.remote())["seq"] == 1  # It took the market over.
    with pytest.raises(FencedError):
        await market.submit.remote([limit(account, "x2", "sell", 10, 1)])
    [ok] = await rival.submit.remote([limit(account, "x3", "sell", 10, 1)])
    assert ok.seq == 2
    # The named actor restarts and takes over again.
    assert (await kill_and_wait(market))["seq"] == 2
    with pytest.raises(FencedError):
        await rival.submit.remote([limit(account, "x4", "sell", 10, 1)])
    ray.kill(rival)


async def test_a_batch_whose_ledger_hold_died_is_not_journaled_and_its_retry_is_exact(
    core: tuple[str, Any], namespace: str
) -> None:
    """A shard incarnation other than the one that held a batch's funds took over before
    the batch was journaled: the journal refuses it, the market restarts, the hold made on
    the other shard is released, and the client's retry is applied exactly once."""
    url, controller = core
    symbol, market = await _market(controller, namespace)
    base, quote = symbol.split("-")
    seller, buyer = await _traders(url, namespace, symbol, 100, 10_000)
    assert seller % SHARDS != buyer % SHARDS
    [warm] = await market.submit.remote([limit(seller, "w", "sell", 100, 1)])
    assert warm.ok
    pid = (await market.status.remote())["pid"]
    conn = await asyncpg.connect(url)
    try:
        # Another incarnation of the seller's shard took over (as a restart does first).
        await conn.fetchval("SELECT clob_acquire_ledger_epoch($1)", seller % SHARDS)
        batch = [limit(seller, "s", "sell", 100, 5), limit(buyer, "b", "buy", 50, 2)]
        with pytest.raises(ray.exceptions.RayActorError):
            await market.submit.remote(batch)
        seqs = await conn.fetch(
            "SELECT j.seq FROM journal j JOIN markets m USING (market_id) WHERE m.symbol = $1",
            symbol,
        )
        assert [r["seq"] for r in seqs] == [1]
    finally:
        await conn.close()
    # The shard restarts (taking the current epoch over); the client retries.
    ledger = ray.get_actor(f"ledger:{seller % SHARDS}", namespace=namespace)
    ray.kill(ledger, no_restart=False)
    [sold] = await submit_until_acked(lambda: market, batch[:1])  # the buyer gave up
    assert sold.ok and not sold.duplicate and sold.seq == 2
    assert (await market.status.remote())["pid"] != pid
    assert await balances(namespace, SHARDS, seller) == {base: (94, 6)}
    # The buyer's hold of the dead incarnation was released by the market's recovery.
    assert await balances(namespace, SHARDS, buyer) == {quote: (10_000, 0)}
    [bought] = await market.submit.remote(batch[1:])
    assert bought.ok and bought.seq == 3


_VOLATILE = {"created_at", "updated_at", "trade_id"}


async def _projection(conn: asyncpg.Connection, table: str, market_id: int) -> list[dict[str, Any]]:
    key = "order_id" if table == "orders" else "seq"
    rows = await conn.fetch(f"SELECT * FROM {table} WHERE market_id = $1 ORDER BY {key}", market_id)
    return [{k: v for k, v in dict(r).items() if k not in _VOLATILE} for r in rows]


async def test_rows_journaled_but_not_projected_are_projected_at_recovery(
    core: tuple[str, Any], namespace: str
) -> None:
    """A crash between a batch's journal commit and its orders/trades transaction: the
    recovering actor re-projects exactly the rows after the projection mark, even when a
    newer snapshot exists (it restores an older one to replay them)."""
    url, controller = core
    symbol, market = await _market(controller, namespace, maker_fee_bps=-2, taker_fee_bps=7)
    base, quote = symbol.split("-")
    a, b = await new_accounts(url, 2)
    await credit(namespace, SHARDS, a, base, 10_000)
    await credit(namespace, SHARDS, b, quote, 10_000_000)
    await market.submit.remote([limit(a, f"s{i}", "sell", 100 + i % 3, 5) for i in range(10)])
    assert await market.settled.remote() == 10  # answered: applied; settled: projected too
    conn = await asyncpg.connect(url)
    try:
        market_id = await conn.fetchval("SELECT market_id FROM markets WHERE symbol = $1", symbol)
        mark = await conn.fetchval(
            "SELECT projected_seq FROM market_projection_marks WHERE market_id = $1", market_id
        )
        assert mark == (await market.status.remote())["seq"] == 10
        early = {t: await _projection(conn, t, market_id) for t in ("orders", "trades")}
        await market.submit.remote(
            [limit(b, f"b{i}", "buy", 101, 4) for i in range(5)] + [cancel(a, "s9")]
        )
        await market.snapshot_now.remote()  # newer than the mark we are about to restore
        late = {t: await _projection(conn, t, market_id) for t in ("orders", "trades")}
        assert late["trades"] and late != early
        # Roll the projection back to seq 10, as if the process died before writing it.
        await conn.execute("DELETE FROM trades WHERE market_id = $1", market_id)
        await conn.execute("DELETE FROM orders WHERE market_id = $1", market_id)
        for table, rows in early.items():
            if rows:
                columns = list(rows[0])
                records = [tuple(r[c] for c in columns) for r in rows]
                await conn.copy_records_to_table(table, records=records, columns=columns)
        await conn.execute(
            "UPDATE market_projection_marks SET projected_seq = 10 WHERE market_id = $1",
            market_id,
        )
        status = await kill_and_wait(market)
        assert status["seq"] == 16
        assert {t: await _projection(conn, t, market_id) for t in ("orders", "trades")} == late
        assert (
            await conn.fetchval(
                "SELECT projected_seq FROM market_projection_marks WHERE market_id = $1", market_id
            )
            == 16
        )
    finally:
        await conn.close()


async def test_exchange_workers_run_at_niceness_zero(core: tuple[str, Any], namespace: str) -> None:
    """Ray's default worker niceness (15) would let PostgreSQL starve the actors."""
    _, controller = core
    _, market = await _market(controller, namespace)
    status = await market.status.remote()
    assert os.getpriority(os.PRIO_PROCESS, status["pid"]) == 0


async def test_a_retry_after_a_restart_gets_the_original_answer(
    core: tuple[str, Any], namespace: str
) -> None:
    _, market, account = await _market_and_seller(core, namespace, 50)
    request = limit(account, "retry-1", "sell", 7, 5)
    first, _ = await market.submit.remote([request, limit(account, "other", "sell", 8, 1)])
    await kill_and_wait(market)
    [again] = await market.submit.remote([request])
    assert first.ok and again.duplicate and (again.seq, again.events) == (first.seq, first.events)
    assert (await market.status.remote())["seq"] == 2


@pytest.mark.parametrize("recorded", [None, 3])
async def test_a_core_without_a_shard_count_takes_the_ledgers_or_the_default(
    pg_dsn: str, namespace: str, recorded: int | None
) -> None:
    url = await create_database(pg_dsn, "layout")
    other = f"{namespace}-{uuid.uuid4().hex[:6]}"
    try:
        if recorded is not None:  # a ledger that started before with `recorded` shards
            conn = await asyncpg.connect(url)
            try:
                await ledger_store.claim_shard_count(conn, recorded)
            finally:
                await conn.close()
        controller = await asyncio.to_thread(start_core, url, None, other)
        expected = recorded or ledger_store.DEFAULT_SHARD_COUNT
        assert await controller.shard_count.remote() == expected
        shards = [ray.get_actor(f"ledger:{i}", namespace=other) for i in range(expected)]
        with pytest.raises(ValueError):
            ray.get_actor(f"ledger:{expected}", namespace=other)
        for actor in [controller, *shards]:
            ray.kill(actor)
    finally:
        await drop_database(pg_dsn, url)


async def test_a_core_with_another_shard_count_is_refused_and_starts_nothing(
    core: tuple[str, Any], namespace: str
) -> None:
    # Accounts, marks and epochs belong to the SHARDS shards this ledger started with.
    url, _ = core
    other = f"{namespace}-resharded"
    with pytest.raises(LedgerLayoutError, match=f"partitioned over {SHARDS} shards"):
        await asyncio.to_thread(start_core, url, SHARDS + 1, other)
    with pytest.raises(ValueError):
        ray.get_actor("ledger:0", namespace=other)
    ray.kill(ray.get_actor("controller", namespace=other))
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT shard_count FROM ledger_layout") == SHARDS
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("unseen_views", "starts"),
    [(1, 2), (99, 1 + len(PLACEMENT_RETRY)), (0, 1)],
    ids=["seen-after-one-retry", "never-seen", "seen-at-once"],
)
async def test_a_new_market_placed_off_its_target_node_is_started_again(
    core: tuple[str, Any],
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    unseen_views: int,
    starts: int,
) -> None:
    """The controller's list of alive nodes names a node Ray's placement does not know yet
    (one that has just joined), so the actor lands elsewhere: a new market is started again
    until it lands on its target, at most `PLACEMENT_RETRY_S` times, then stays put."""
    url, _ = core
    here = ray.get_runtime_context().get_node_id()
    joining = "ab" * 28  # a node id no raylet knows
    controller = Controller(url, SHARDS, namespace)  # in this process, to steer what it sees
    await controller.ready()
    calls = 0

    def alive() -> list[str]:
        # Two calls per placement: choosing the target, then checking it is still alive.
        nonlocal calls
        calls += 1
        return [joining] if calls <= 2 * unseen_views else [here]

    monkeypatch.setattr(controller_module, "_alive_nodes", alive)
    monkeypatch.setattr(controller_module, "PLACEMENT_RETRY_S", PLACEMENT_RETRY)
    tag = uuid.uuid4().hex[:6].upper()
    symbol = f"P{tag}-Q{tag}"
    await controller.create_market(
        {"symbol": symbol, "base_asset": f"P{tag}", "quote_asset": f"Q{tag}"}
    )
    market = ray.get_actor(f"market:{symbol}", namespace=namespace)
    status = await market.status.remote()
    assert status["node_id"] == here
    assert status["epoch"] == starts  # one epoch per incarnation
    assert (await controller.market_nodes())[symbol] == here
    [account] = await new_accounts(url, 1)
    await credit(namespace, SHARDS, account, f"P{tag}", 5)
    [ack] = await market.submit.remote([limit(account, f"p-{tag}", "sell", 10, 5)])
    assert ack.ok


async def test_a_pass_that_fails_after_matching_restarts_the_market_from_its_journal(
    core: tuple[str, Any], namespace: str
) -> None:
    """The engine raised halfway through a pass: the orders it had matched are in no
    journal entry, so the market restarts from its journal instead of trading on with
    them, and the pass's holds are released."""

    # Defined here, not at module level, so that Ray ships them by value to the worker.
    class BoomEngine:
        """The market's engine, except that it raises on the order `boom` (a stand-in for a
        bug in the middle of a pass, after earlier orders of the pass were matched)."""

        def __init__(self, engine: Any) -> None:
            self._engine = engine

        def submit(self, command: Any) -> Any:
            if getattr(command, "id", None) == "boom":
                raise RuntimeError("engine bug")
            return self._engine.submit(command)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._engine, name)

    class BoomMarket(MarketActor):
        async def _ready(self) -> Any:
            core = await super()._ready()
            if not isinstance(core.engine, BoomEngine):
                core.engine = BoomEngine(core.engine)
            return core

    url, controller = core
    symbol, market = await _market(controller, namespace)
    base, quote = symbol.split("-")
    seller, buyer = await _traders(url, namespace, symbol, 100, 10_000)
    ray.kill(market, no_restart=True)
    await asyncio.sleep(0.5)  # the name is released once the actor is gone
    boom: Any = ray.remote(BoomMarket).options(**market_actor_options(symbol, namespace))
    market = boom.remote(symbol, url, SHARDS, namespace)
    pid = (await market.status.remote())["pid"]
    sell = limit(seller, "s", "sell", 100, 5)
    with pytest.raises(ray.exceptions.RayActorError):
        await market.submit.remote([sell, limit(buyer, "boom", "buy", 50, 2)])
    [sold] = await submit_until_acked(lambda: market, [sell])
    assert sold.ok and not sold.duplicate and sold.seq == 1
    status = await market.status.remote()
    assert status["pid"] != pid and status["orders"] == 1
    assert await balances(namespace, SHARDS, seller) == {base: (95, 5)}
    assert await balances(namespace, SHARDS, buyer) == {quote: (10_000, 0)}
