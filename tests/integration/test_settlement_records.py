"""Settlement records on a real PostgreSQL, as `clob_system` (the batcher) and `clob_api`
(the API): the trigger and the transition table agree, a settlement is created atomically
with its batch ids, trade links and the market's mark (and refused for a stale mark or a
trade already settled, changing nothing), statuses move only from the state read,
attempts keep their signed bytes, and the API's reads show no account."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio

from actors.ledger import store
from actors.settlement import reads, records
from actors.settlement.cut import cut, instructions_of
from actors.settlement.records import StaleMarkError, TradeAlreadySettledError
from actors.settlement.states import STATUSES, TRANSITIONS, IllegalTransitionError
from actors.settlement.states import SettlementStatus as S
from tests.support.market_kit import new_accounts
from tests.support.settlement_kit import SIGNATURES, plan_of

ILLEGAL_TRANSITION = "CL004"
LOT_ATOMS = 1_000_000
CHAIN_MARKET = 7_777


@pytest_asyncio.fixture(scope="module")
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A `clob_system` connection to the module's database."""
    c = await store.connect(db_url)
    yield c
    await c.close()


async def _market(conn: asyncpg.Connection, db_url: str, trades: int) -> tuple[int, list[int]]:
    """Create a market with `trades` trades (seq 1..n, alternating sides, the last a
    self-trade) between two new accounts; return its id and the accounts."""
    tag = uuid.uuid4().hex[:6].upper()
    base, quote = [
        await conn.fetchval(
            "INSERT INTO assets (symbol, decimals) VALUES ($1, 6) RETURNING asset_id", s
        )
        for s in (f"B{tag}", f"Q{tag}")
    ]
    market_id = await conn.fetchval(
        "INSERT INTO markets (symbol, base_asset_id, quote_asset_id, lot_size_atoms, "
        "tick_size_atoms) VALUES ($1, $2, $3, $4, 1000) RETURNING market_id",
        f"B{tag}-Q{tag}", base, quote, LOT_ATOMS,
    )  # fmt: skip
    maker, taker = await new_accounts(db_url, 2)
    for seq in range(1, trades + 1):
        buyer = taker if seq < trades else maker
        await conn.execute(
            """INSERT INTO trades (market_id, seq, maker_order_id, taker_order_id,
                   maker_account_id, taker_account_id, taker_side, price_ticks, qty_lots,
                   quote_qty_atoms, maker_fee_atoms, taker_fee_atoms, executed_at)
               SELECT $1, s, 'm' || s, 't' || s, $3, $4, $5, 100, s, s * 1000, -1, 3,
                      to_timestamp(s) FROM (SELECT $2::bigint AS s) AS t""",
            market_id, seq, maker, buyer, "buy" if seq % 2 else "sell",
        )  # fmt: skip
    return int(market_id), [maker, taker]


async def _mark(conn: asyncpg.Connection, market_id: int) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        "SELECT mark_seq, next_batch_id, (SELECT count(*) FROM settlements WHERE market_id = $1)"
        " FROM settlement_markets WHERE market_id = $1", market_id,
    )  # fmt: skip
    return int(row[0]), int(row[1]), int(row[2])


async def _create(
    conn: asyncpg.Connection, market_id: int, after: int, n: int, *, netted: bool = True
) -> records.SettlementJob:
    trades = await records.trades_after(conn, market_id, after, n)
    return await records.create(conn, market_id, plan_of(trades, netted=netted), netted=netted)


# -- the trigger is the transition table ---------------------------------------------------

_PATHS = {S.PENDING: [], S.SUBMITTED: [S.SUBMITTED], S.FAILED: [S.FAILED],
          S.CONFIRMED: [S.SUBMITTED, S.CONFIRMED],
          S.FINALIZED: [S.SUBMITTED, S.CONFIRMED, S.FINALIZED]}  # fmt: skip
_SET_STATUS = """UPDATE settlements SET status = $2,
    confirmed_at = CASE WHEN $2 IN ('confirmed', 'finalized') THEN now() END,
    finalized_at = CASE WHEN $2 = 'finalized' THEN now() END,
    failed_at = CASE WHEN $2 = 'failed' THEN now() END WHERE settlement_id = $1"""


async def test_the_status_check_and_the_trigger_are_the_transition_table(
    conn: asyncpg.Connection, db_url: str
) -> None:
    definition = await conn.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'settlements_status_check'"
    )
    assert set(re.findall(r"'([a-z_]+)'::text", definition)) == set(STATUSES)
    market_id, _ = await _market(conn, db_url, 0)
    allowed = set()
    for old, new in itertools.product(S, S):
        if old == new:
            continue  # keeping the status is a field update, never refused
        sid = await conn.fetchval(
            "INSERT INTO settlements (market_id) VALUES ($1) RETURNING settlement_id", market_id
        )
        for step in _PATHS[old]:
            await conn.execute(_SET_STATUS, sid, step.value)
        try:
            await conn.execute(_SET_STATUS, sid, new.value)
            allowed.add((old, new))
        except asyncpg.PostgresError as refused:
            assert refused.sqlstate == ILLEGAL_TRANSITION, refused
    listed = {(old, new) for old, news in TRANSITIONS.items() for new in news if old != new}
    assert allowed == listed
    with pytest.raises(asyncpg.PostgresError) as refused:
        await conn.execute(
            "INSERT INTO settlements (market_id, status) VALUES ($1, 'submitted')", market_id
        )
    assert refused.value.sqlstate == ILLEGAL_TRANSITION


# -- create --------------------------------------------------------------------------------


async def test_a_settlement_takes_its_batch_ids_links_its_trades_and_moves_the_mark(
    conn: asyncpg.Connection, db_url: str
) -> None:
    market_id, (maker, taker) = await _market(conn, db_url, 6)
    state = await records.market_state(conn, market_id, CHAIN_MARKET)
    assert (state.mark_seq, state.next_batch_id, state.chain_market_id) == (0, 1, CHAIN_MARKET)
    [first] = await records.trades_after(conn, market_id, 0, 1)
    assert (first.seq, first.maker, first.taker, first.taker_side) == (1, maker, taker, "buy")
    assert (first.base_atoms, first.quote_atoms) == (LOT_ATOMS, 1000)
    assert (first.maker_fee_atoms, first.taker_fee_atoms, first.executed_at_ms) == (-1, 3, 1000)

    netted = await _create(conn, market_id, 0, 3)
    assert (netted.batch_id, netted.batch_count, netted.trade_count) == (1, 1, 3)
    assert (netted.status, netted.chain_market_id, netted.first_executed_at_ms) == (
        S.PENDING, CHAIN_MARKET, 1000,
    )  # fmt: skip
    assert (
        netted.instructions
        == plan_of(await records.trades_after(conn, market_id, 0, 3), netted=True).instructions
    )  # the deltas as planned, the fee vault's account None
    unnetted = await _create(conn, market_id, 3, 2, netted=False)
    assert (unnetted.batch_id, unnetted.batch_count) == (2, 2)
    assert await _mark(conn, market_id) == (5, 4, 2)
    linked = await conn.fetch(
        "SELECT seq, settlement_id FROM trades WHERE market_id = $1 ORDER BY seq", market_id
    )
    assert [r["settlement_id"] for r in linked] == [netted.settlement_id] * 3 + [
        unnetted.settlement_id
    ] * 2 + [None]  # fmt: skip
    assert [t.seq for t in await records.trades_after(conn, market_id, 5, 10)] == [6]
    await records.raise_batch_floor(conn, market_id, 1_025)
    await records.raise_batch_floor(conn, market_id, 900)  # never lowered
    assert (await records.market_state(conn, market_id, CHAIN_MARKET)).next_batch_id == 1_025
    with pytest.raises(ValueError, match="chain market"):
        await records.market_state(conn, market_id, CHAIN_MARKET + 1)
    assert [j.settlement_id for j in await records.unfinished(conn, [market_id])] == [
        netted.settlement_id, unnetted.settlement_id,
    ]  # fmt: skip


async def test_a_stale_mark_or_a_settled_trade_is_refused_and_changes_nothing(
    conn: asyncpg.Connection, db_url: str
) -> None:
    market_id, _ = await _market(conn, db_url, 6)
    await records.market_state(conn, market_id, CHAIN_MARKET + 1)
    trades = await records.trades_after(conn, market_id, 0, 6)
    mine = plan_of(trades[:3], netted=True)
    done = await records.create(conn, market_id, mine, netted=True)
    before = await _mark(conn, market_id)
    with pytest.raises(StaleMarkError):  # a second batcher planned the same trades
        await records.create(conn, market_id, mine, netted=True)
    with pytest.raises(StaleMarkError):  # trade 4 skipped
        await records.create(conn, market_id, plan_of(trades[4:], netted=True), netted=True)
    await conn.execute(  # trade 4 linked behind the mark's back
        "UPDATE trades SET settlement_id = $2 WHERE market_id = $1 AND seq = 4",
        market_id, done.settlement_id,
    )  # fmt: skip
    with pytest.raises(TradeAlreadySettledError):
        await records.create(conn, market_id, plan_of(trades[3:], netted=True), netted=True)
    assert await _mark(conn, market_id) == before
    unlinked = await conn.fetchval(
        "SELECT count(*) FROM trades WHERE market_id = $1 AND settlement_id IS NULL", market_id
    )
    assert unlinked == 2  # trades 5 and 6, as before the refusals
    with pytest.raises(ValueError, match="an unnetted one exactly one per trade"):
        await records.create(conn, market_id, plan_of(trades[4:], netted=True), netted=False)


# -- transitions and attempts --------------------------------------------------------------


async def test_statuses_move_only_from_the_state_read_with_their_times(
    conn: asyncpg.Connection, db_url: str
) -> None:
    market_id, _ = await _market(conn, db_url, 2)
    await records.market_state(conn, market_id, CHAIN_MARKET + 2)
    job = await _create(conn, market_id, 0, 1)
    sid = job.settlement_id
    assert await records.transition(conn, sid, S.PENDING, S.SUBMITTED, signature=SIGNATURES[0])
    assert not await records.transition(conn, sid, S.PENDING, S.SUBMITTED)  # moved already
    with pytest.raises(IllegalTransitionError):
        await records.transition(conn, sid, S.SUBMITTED, S.FINALIZED)
    with pytest.raises(ValueError, match="not settable"):
        await records.transition(conn, sid, S.SUBMITTED, S.CONFIRMED, status="finalized")
    assert await records.transition(conn, sid, S.SUBMITTED, S.SUBMITTED, retries=1,
                                    next_try_at=2_000_000_000.5)  # fmt: skip
    again = await records.get(conn, sid)
    assert again is not None and (again.retries, again.next_try_at) == (1, 2_000_000_000.5)
    assert await records.transition(conn, sid, S.SUBMITTED, S.CONFIRMED, slot=42,
                                    cu_consumed=7_150, fee_lamports=5_100)  # fmt: skip
    assert await records.transition(conn, sid, "confirmed", "finalized")
    row = await conn.fetchrow("SELECT * FROM settlements WHERE settlement_id = $1", sid)
    assert (row["status"], row["signature"], row["slot"], row["fee_lamports"]) == (
        "finalized", SIGNATURES[0], 42, 5_100,
    )  # fmt: skip
    assert row["submitted_at"] <= row["confirmed_at"] <= row["finalized_at"]

    failing = (await _create(conn, market_id, 1, 1)).settlement_id
    assert await records.transition(conn, failing, S.PENDING, S.FAILED, retries=3,
                                    last_error="BlockhashNotFound", alerted=True)  # fmt: skip
    assert [j.settlement_id for j in await records.unfinished(conn, [market_id])] == []
    assert await records.transition(conn, failing, S.FAILED, S.PENDING)  # an operator's retry
    retried = await conn.fetchrow("SELECT * FROM settlements WHERE settlement_id = $1", failing)
    assert (retried["retries"], retried["failed_at"], retried["alerted"]) == (0, None, False)
    assert retried["last_error"] == "BlockhashNotFound"  # kept for the operator


async def test_attempts_keep_their_signed_bytes_and_a_repeat_adds_none(
    conn: asyncpg.Connection, db_url: str
) -> None:
    market_id, _ = await _market(conn, db_url, 1)
    await records.market_state(conn, market_id, CHAIN_MARKET + 3)
    sid = (await _create(conn, market_id, 0, 1)).settlement_id
    wires = [bytes([n]) * (600 + n) for n in range(2)]
    assert await records.add_attempt(conn, sid, SIGNATURES[1], wires[0], 1_000, 9_000, 150) == 1
    assert await records.add_attempt(conn, sid, SIGNATURES[1], wires[0], 1_000, 9_000, 150) == 1
    assert await records.transition(conn, sid, S.PENDING, S.SUBMITTED)
    assert await records.mark_attempt(conn, sid, 1, "expired")
    assert not await records.mark_attempt(conn, sid, 1, "landed")  # it ended already
    assert await records.add_attempt(conn, sid, SIGNATURES[2], wires[1], 2_000, 9_100, 300) == 2
    sent = await records.attempts(conn, sid)
    assert [(a.attempt, a.signature, a.wire, a.status) for a in sent] == [
        (1, SIGNATURES[1], wires[0], "expired"), (2, SIGNATURES[2], wires[1], "sent"),
    ]  # fmt: skip
    assert (sent[1].priority_fee_micro_lamports, sent[1].cu_limit) == (2_000, 9_100)
    assert sent[1].last_valid_block_height == 300
    row = await conn.fetchrow(
        "SELECT attempts, signature, tx_bytes, cu_limit FROM settlements WHERE settlement_id = $1",
        sid,
    )
    assert tuple(row) == (2, SIGNATURES[2], 601, 9_100)
    await records.transition(conn, sid, S.SUBMITTED, S.CONFIRMED)
    with pytest.raises(records.RecordConflictError):
        await records.add_attempt(conn, sid, SIGNATURES[3], wires[0], 1, 1, 1)


# -- reads ---------------------------------------------------------------------------------


async def test_the_api_reads_show_trades_and_attempts_but_no_account(
    conn: asyncpg.Connection, db_url: str
) -> None:
    market_id, (maker, taker) = await _market(conn, db_url, 3)
    await records.market_state(conn, market_id, CHAIN_MARKET + 4)
    sid = (await _create(conn, market_id, 0, 3, netted=False)).settlement_id
    await records.add_attempt(conn, sid, SIGNATURES[4], b"\x01" * 300, 500, None, 10)
    assert await records.accounts_of(conn, sid) == {maker: [1, 2, 3], taker: [1, 2]}
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_api")
        found = await reads.view(conn, sid)
        listed = await reads.page(conn, "pending", market_id, None, 10)
        assert await reads.page(conn, "failed", market_id, None, 10) == []
        assert await reads.view(conn, sid + 1_000) is None
    assert found is not None
    assert (found["status"], found["batch_count"], found["netted"], found["trade_count"]) == (
        "pending", 3, False, 3,
    )  # fmt: skip
    assert [t["seq"] for t in found["trades"]] == [1, 2, 3]
    assert set(found["trades"][0]) == {"seq", "taker_side", "price_ticks", "qty_lots",
                                       "executed_at"}  # fmt: skip
    assert found["trades"][0]["executed_at"] == datetime.fromtimestamp(1, UTC)
    [attempt] = found["attempts"]
    assert (attempt["attempt"], attempt["signature"], attempt["status"]) == (1, SIGNATURES[4],
                                                                             "sent")  # fmt: skip
    assert "wire" not in attempt
    assert [s["settlement_id"] for s in listed] == [sid]


async def test_a_pending_settlement_is_cut_in_two_and_a_sent_one_never(
    conn: asyncpg.Connection, db_url: str
) -> None:
    market_id, _ = await _market(conn, db_url, 5)
    await records.market_state(conn, market_id, CHAIN_MARKET + 5)
    job = await _create(conn, market_id, 0, 5)
    trades = await records.trades_after(conn, market_id, 0, 5)

    new_id = await cut(conn, job.settlement_id)

    assert new_id is not None
    first, second = await records.get(conn, job.settlement_id), await records.get(conn, new_id)
    assert first is not None and second is not None
    assert (first.trade_count, first.batch_id, first.instructions) == (
        2, job.batch_id, instructions_of(trades[:2], netted=True),
    )  # fmt: skip
    assert (second.trade_count, second.status, second.instructions) == (
        3, S.PENDING, instructions_of(trades[2:], netted=True),
    )  # fmt: skip
    assert second.batch_id == job.batch_id + 1  # the market's next id, never used
    linked = await conn.fetch(
        "SELECT settlement_id FROM trades WHERE market_id = $1 ORDER BY seq", market_id
    )
    assert [r[0] for r in linked] == [job.settlement_id] * 2 + [new_id] * 3
    assert await _mark(conn, market_id) == (5, 3, 2)  # the mark stays; ids move on
    # Down to one trade; and never once an attempt exists.
    assert await cut(conn, job.settlement_id) is not None
    assert await cut(conn, job.settlement_id) is None  # a single trade
    await records.add_attempt(conn, new_id, SIGNATURES[-1], b"\x01", 0, None, 10)
    assert await cut(conn, new_id) is None
    counts = await conn.fetchval("SELECT sum(trade_count) FROM settlements WHERE market_id = $1",
                                 market_id)  # fmt: skip
    assert counts == 5
