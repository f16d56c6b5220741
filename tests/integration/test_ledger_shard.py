"""The ledger shard actor on a real Ray and PostgreSQL: holds made durable by the journal,
recovery across a crash, idempotent apply, catch-up from the journal, the shard epoch
fencing journal appends that rely on lost holds, orphan release and conservation."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from actors.contracts import BalanceView, JsonDict, LedgerEntry, Reservation
from actors.engine import MarketSpec, MatchingEngine
from actors.engine.codec import command_from_dict, event_to_dict
from actors.engine.types import MAX_ATOMS
from actors.infra.migrate import apply_migrations
from actors.ledger import store
from actors.ledger.rules import (
    AmountBoundError,
    DebitReferenceError,
    InsufficientBalanceError,
    required_reservation,
)
from actors.ledger.shard import LedgerShard, ledger_shard_options
from actors.markets_repo import create_market

SPEC = MarketSpec(
    symbol="LB-LQ", base_asset="LB", quote_asset="LQ", tick_size=1, lot_size=10,
    maker_fee_bps=10, taker_fee_bps=30,
)  # fmt: skip


class Market:
    """The market actor's part: a real engine whose entries go to the journal table."""

    def __init__(self, conn: asyncpg.Connection, market_id: int, epoch: int) -> None:
        self.conn, self.market_id, self.epoch = conn, market_id, epoch
        self.engine = MatchingEngine(SPEC)
        self.seq = 0

    async def journal(
        self, account: int, command: JsonDict, held: tuple[Reservation, int] | None = None
    ) -> LedgerEntry:
        """Match one command and append it to the journal with the reservation held for
        it and the shard epoch it was held under (`held`); return the entry."""
        seq = self.seq + 1
        command = {**command, "owner": str(account), "ts": seq}
        typed = tuple(self.engine.submit(command_from_dict(command)))
        events = [event_to_dict(e) for e in typed]
        payload: JsonDict = {"request_id": f"r{seq}", "account_id": account,
                             "command": command, "events": events}  # fmt: skip
        reservation = None if held is None else held[0].to_dict()
        if reservation is not None:
            payload["reservation"] = reservation
        hold = (None, None) if held is None else (0, held[1])
        await self.conn.execute(
            "INSERT INTO journal (market_id, seq, epoch, kind, payload, ledger_shard, "
            "ledger_epoch) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            self.market_id, seq, self.epoch, command["type"], json.dumps(payload), *hold,
        )  # fmt: skip
        self.seq = seq
        return LedgerEntry(seq, typed, None if held is None else held[0])

    async def place(self, held: Reservation, shard_epoch: int) -> LedgerEntry:
        """Journal the limit order a reservation was held for (its account, id, side, price
        and quantity), with that hold's shard epoch; return the entry."""
        price, qty = held.limit_price_ticks, held.qty_lots
        assert price is not None and qty is not None
        new = _new(held.order_id, held.side, price, qty)
        return await self.journal(held.account_id, new, (held, shard_epoch))


def _reservation(account: int, oid: str, side: str, price: int, qty: int) -> Reservation:
    amount = required_reservation(SPEC, side, "limit", price, qty)
    asset = SPEC.quote_asset if side == "buy" else SPEC.base_asset
    return Reservation(SPEC.symbol, oid, account, asset, amount, side, price, qty)


async def _held_pair(
    shard: Any, conn: asyncpg.Connection, market: Market, tag: str, *,
    sell: tuple[int, int], buy: tuple[int, int], funds: tuple[int, int] = (100, 10_000),
) -> tuple[int, int, Reservation, Reservation, int]:  # fmt: skip
    """A seller credited `funds[0]` LB and a buyer `funds[1]` LQ, both new, and a limit
    sell and a limit buy (price, qty) held for them (ids `{tag}s` and `{tag}b`); return
    (seller, buyer, sell, buy, the shard epoch of the holds)."""
    seller, buyer = await _accounts(conn, 2)
    await shard.credit.remote(seller, "LB", funds[0], f"{tag}-{seller}")
    await shard.credit.remote(buyer, "LQ", funds[1], f"{tag}-{buyer}")
    held = [
        _reservation(seller, f"{tag}s", "sell", *sell),
        _reservation(buyer, f"{tag}b", "buy", *buy),
    ]
    epoch, flags = await shard.reserve.remote(held, market.epoch)
    assert flags == [True, True]
    return seller, buyer, held[0], held[1], epoch


def _new(oid: str, side: str, price: int, qty: int) -> JsonDict:
    return {"type": "new", "id": oid, "side": side, "kind": "limit", "price": price, "qty": qty}


@pytest_asyncio.fixture(scope="module")
async def db(pg_dsn: str) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A database of this module's own, migrated, with the market."""
    name = f"ledger_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_dsn.rpartition("/")[0] + "/" + name
    conn = await asyncpg.connect(url)
    await apply_migrations(conn)
    await create_market(conn, SPEC)
    yield url, conn
    await conn.close()
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="module")
def shard(db: tuple[str, asyncpg.Connection], namespace: str) -> Any:
    """Shard 0 of 1, in the module's namespace (its actors are killed after it)."""
    options = {**ledger_shard_options(0), "namespace": namespace}
    return ray.remote(LedgerShard).options(**options).remote(0, 1, db[0])


@pytest_asyncio.fixture(scope="module")
async def market(db: tuple[str, asyncpg.Connection]) -> Market:
    """The market's journal writer (holding the market's epoch)."""
    conn = db[1]
    market_id = await conn.fetchval("SELECT market_id FROM markets WHERE symbol = $1", SPEC.symbol)
    epoch = await conn.fetchval("SELECT clob_acquire_market_epoch($1, 'test')", market_id)
    return Market(conn, market_id, epoch)


async def _accounts(conn: asyncpg.Connection, n: int) -> list[int]:
    rows = await conn.fetch(
        "INSERT INTO accounts (kind) SELECT 'user' FROM generate_series(1, $1) "
        "RETURNING account_id",
        n,
    )
    return [r["account_id"] for r in rows]


async def _balances(shard: Any, account: int) -> dict[str, tuple[int, int]]:
    views: list[BalanceView] = await shard.balances.remote(account)
    return {v.asset: (v.available_atoms, v.locked_atoms) for v in views}


async def _restart(shard: Any) -> None:
    """Kill the shard's process and wait for its restarted incarnation to answer."""
    before = await shard.__ray_call__.remote(getattr, "pid")
    ray.kill(shard, no_restart=False)
    for _ in range(300):
        try:
            if await shard.__ray_call__.remote(getattr, "pid") != before:
                assert await shard.ping.remote() == 0
                return
        except (RayActorError, ActorUnavailableError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the shard did not come back")


async def _assert_conserved(shard: Any, conn: asyncpg.Connection) -> None:
    totals = await shard.totals.remote()
    await shard.flush.remote()  # the tables are written behind the calls
    for asset in ("LB", "LQ"):
        t = totals.get(asset, {"available": 0, "locked": 0, "fees": 0, "credited": 0,
                               "debited": 0})  # fmt: skip
        assert t["available"] + t["locked"] + t["fees"] == t["credited"] - t["debited"], asset
    stored = await conn.fetch(
        """SELECT a.symbol,
                  (SELECT coalesce(sum(available_atoms + locked_atoms), 0) FROM balances b
                    WHERE b.asset_id = a.asset_id)
                + (SELECT coalesce(sum(amount_atoms), 0) FROM fee_balances f
                    WHERE f.asset_id = a.asset_id)
                - (SELECT coalesce(sum(amount_atoms), 0) FROM ledger_credits c
                    WHERE c.asset_id = a.asset_id)
                + (SELECT coalesce(sum(amount_atoms), 0) FROM ledger_debits d
                    WHERE d.asset_id = a.asset_id) AS gap
             FROM assets a WHERE a.symbol IN ('LB', 'LQ')"""
    )
    assert {r["symbol"]: int(r["gap"]) for r in stored} == {"LB": 0, "LQ": 0}


async def test_credit_is_idempotent_and_needs_a_known_account(
    shard: Any, db: tuple[str, asyncpg.Connection]
) -> None:
    [account] = await _accounts(db[1], 1)
    first = await shard.credit.remote(account, "LQ", 500, f"dep-{account}")
    again = await shard.credit.remote(account, "LQ", 500, f"dep-{account}")
    assert first == again == BalanceView("LQ", 500, 0)
    with pytest.raises(Exception, match="unknown account"):
        await shard.credit.remote(10**12, "LQ", 5, "dep-nobody")
    assert await _balances(shard, account) == {"LQ": (500, 0)}


async def test_debits_and_refunds_apply_once_and_survive_a_restart(
    shard: Any, db: tuple[str, asyncpg.Connection]
) -> None:
    [account] = await _accounts(db[1], 1)
    await shard.credit.remote(account, "LQ", 1_000, f"dep-{account}")
    ref = f"withdrawal:{account}"
    assert await shard.debit.remote(account, "LQ", 300, ref) == (True, BalanceView("LQ", 700, 0))
    assert await shard.debit.remote(account, "LQ", 300, ref) == (False, BalanceView("LQ", 700, 0))
    with pytest.raises(RayTaskError) as short:
        await shard.debit.remote(account, "LQ", 701, f"withdrawal:{account}-2")
    assert isinstance(short.value.cause, InsufficientBalanceError)
    with pytest.raises(RayTaskError) as reused:
        await shard.debit.remote(account, "LQ", 1, ref)
    assert isinstance(reused.value.cause, DebitReferenceError)
    await _restart(shard)  # the debit was written before it was answered
    assert await _balances(shard, account) == {"LQ": (700, 0)}
    # The repeat after the restart is found in the table: still once.
    assert (await shard.debit.remote(account, "LQ", 300, ref))[0] is False
    refund = f"withdrawal-refund:{account}"
    await shard.credit.remote(account, "LQ", 300, refund)
    await _restart(shard)
    await shard.credit.remote(account, "LQ", 300, refund)
    assert await _balances(shard, account) == {"LQ": (1_000, 0)}
    stored = await db[1].fetch(
        "SELECT reference, amount_atoms FROM ledger_debits WHERE account_id = $1", account
    )
    assert [(r[0], int(r[1])) for r in stored] == [(ref, 300)]
    totals = (await shard.totals.remote())["LQ"]
    assert totals["debited"] >= 300
    await _assert_conserved(shard, db[1])


async def test_an_assets_credits_fill_a_u64_exactly_and_no_more(
    shard: Any, db: tuple[str, asyncpg.Connection]
) -> None:
    [account] = await _accounts(db[1], 1)
    await db[1].execute("INSERT INTO assets (symbol, decimals) VALUES ('LW', 18)")
    for amount, reference, code in ((MAX_ATOMS + 1, "w0", "amount_too_large"),
                                    (MAX_ATOMS - 1, "w1", None), (2, "w2", "total_too_large"),
                                    (1, "w3", None), (1, "w4", "total_too_large")):  # fmt: skip
        call = shard.credit.remote(account, "LW", amount, f"{reference}-{account}")
        if code is None:
            await call
            continue
        with pytest.raises(RayTaskError) as refused:
            await call
        assert isinstance(refused.value.cause, AmountBoundError)
        assert refused.value.cause.code == code
    # Exact in memory and in the table (NUMERIC: beyond a BIGINT), once.
    stored = await db[1].fetchval(
        "SELECT available_atoms FROM balances b JOIN assets a USING (asset_id) "
        "WHERE b.account_id = $1 AND a.symbol = 'LW'", account,
    )  # fmt: skip
    assert (await _balances(shard, account))["LW"] == (MAX_ATOMS, 0) and stored == MAX_ATOMS
    # The table's own bound holds whatever a shard's check saw (two shards racing).
    with pytest.raises(asyncpg.CheckViolationError) as refused_by_table:
        await db[1].execute(
            "INSERT INTO ledger_credits (reference, account_id, asset_id, amount_atoms) "
            "SELECT 'race', $1, asset_id, 1 FROM assets WHERE symbol = 'LW'", account,
        )  # fmt: skip
    assert refused_by_table.value.constraint_name == store.SUPPLY_BOUND_CONSTRAINT


async def test_trades_survive_a_crash_and_apply_exactly_once(
    shard: Any, db: tuple[str, asyncpg.Connection], market: Market
) -> None:
    seller, buyer, sell, buy, epoch = await _held_pair(
        shard, db[1], market, "t", sell=(90, 5), buy=(100, 10), funds=(1_000, 100_000)
    )
    assert await _balances(shard, buyer) == {"LQ": (100_000 - 10_030, 10_030)}  # held
    entries = [await market.place(sell, epoch), await market.place(buy, epoch)]
    await shard.apply.remote(SPEC.symbol, entries)
    # 5 lots at 90 (4,500 + taker fee 14); 5 open lots at 100 keep 5,000 + 15 locked.
    expected = {"LB": (50, 0), "LQ": (100_000 - 4_514 - 5_015, 5_015)}
    assert await _balances(shard, buyer) == expected
    await shard.apply.remote(SPEC.symbol, entries)  # redelivery: applied once
    assert await _balances(shard, buyer) == expected
    before = await shard.totals.remote()
    await _restart(shard)  # nothing flushed need be: the journal has it all
    assert await _balances(shard, buyer) == expected
    assert await shard.totals.remote() == before
    # The reservation survived the crash: cancelling releases exactly what is left.
    cancel = await market.journal(buyer, {"type": "cancel", "id": "tb"})
    await shard.apply.remote(SPEC.symbol, [cancel])
    assert await _balances(shard, buyer) == {"LB": (50, 0), "LQ": (100_000 - 4_514, 0)}
    assert await _balances(shard, seller) == {"LB": (950, 0), "LQ": (4_500 - 5, 0)}
    await _assert_conserved(shard, db[1])


async def test_gaps_and_restarts_catch_up_from_the_journal(
    shard: Any, db: tuple[str, asyncpg.Connection], market: Market
) -> None:
    seller, buyer = await _accounts(db[1], 2)
    await shard.credit.remote(seller, "LB", 100, f"s-{seller}")
    await shard.credit.remote(buyer, "LQ", 10_000, f"b-{buyer}")
    s2 = _reservation(seller, "s2", "sell", 100, 5)
    b2, b3 = _reservation(buyer, "b2", "buy", 100, 2), _reservation(buyer, "b3", "buy", 100, 1)
    epoch, flags = await shard.reserve.remote([s2, b2, b3], market.epoch)
    assert flags == [True, True, True]
    # Never sent to the shard: the gap before the next entry comes from the journal.
    await market.place(s2, epoch)
    last = await market.place(b2, epoch)
    await shard.apply.remote(SPEC.symbol, [last])
    assert await _balances(shard, seller) == {"LB": (50, 30), "LQ": (2_000 - 2, 0)}
    # Only in the journal, journaled before the crash: recovery takes its reservation from
    # the journal, although the hold died with the old incarnation.
    await market.place(b3, epoch)
    await _restart(shard)
    assert await _balances(shard, seller) == {"LB": (50, 20), "LQ": (3_000 - 3, 0)}
    assert await _balances(shard, buyer) == {"LB": (30, 0), "LQ": (10_000 - 3_009, 0)}
    assert await shard.sync.remote(SPEC.symbol) == market.seq
    await _assert_conserved(shard, db[1])


async def test_a_routed_apply_reads_what_it_does_not_vouch_for_and_moves_the_mark(
    shard: Any, db: tuple[str, asyncpg.Connection], market: Market
) -> None:
    """`since`/`through` (routed applies): below `since` the shard reads the journal
    itself; it takes the entries of `(since, through]` from the call; an empty call only
    moves the mark, and the mark is what is persisted."""
    # At 61: no order of the earlier tests rests there.
    seller, buyer, sell, buy, epoch = await _held_pair(
        shard, db[1], market, "r", sell=(61, 3), buy=(61, 2)
    )
    first = await market.place(sell, epoch)  # not sent: below the next call's `since`
    second = await market.place(buy, epoch)
    await shard.apply.remote(SPEC.symbol, [second], first[0], second[0])
    # 2 lots at 61: 1,220 + taker fee 4 (30 bps, rounded up); the maker pays 2 (10 bps).
    assert await _balances(shard, buyer) == {"LB": (20, 0), "LQ": (10_000 - 1_224, 0)}
    assert await _balances(shard, seller) == {"LB": (70, 10), "LQ": (1_220 - 2, 0)}
    # An entry that concerns no order of the shard (a cancel of an unknown order), and an
    # empty call vouching for it: the mark moves past it and is written.
    stray = await market.journal(seller, {"type": "cancel", "id": "no-such-order"})
    await shard.apply.remote(SPEC.symbol, [], second[0], stray[0])
    await shard.flush.remote()
    mark = await db[1].fetchval(
        "SELECT applied_journal_seq FROM ledger_shard_marks WHERE shard_id = 0 AND market_id = $1",
        market.market_id,
    )
    assert mark == stray[0] == await shard.sync.remote(SPEC.symbol)
    with pytest.raises(Exception, match="needs since and through"):
        await shard.apply.remote(SPEC.symbol, [])
    cancel = await market.journal(seller, {"type": "cancel", "id": "rs"})  # leave no book
    await shard.apply.remote(SPEC.symbol, [cancel])
    assert await _balances(shard, seller) == {"LB": (80, 0), "LQ": (1_220 - 2, 0)}
    await _assert_conserved(shard, db[1])


async def _resting_sell(
    shard: Any, conn: asyncpg.Connection, market: Market, oid: str, qty: int
) -> int:
    """A new seller credited 100 LB with a sell of `qty` lots resting at 500 (held,
    journaled and applied: no buy rests that high); return the seller."""
    [seller] = await _accounts(conn, 1)
    await shard.credit.remote(seller, "LB", 100, f"{oid}-{seller}")
    sell = _reservation(seller, oid, "sell", 500, qty)
    epoch, flags = await shard.reserve.remote([sell], market.epoch)
    assert flags == [True]
    since = await shard.sync.remote(SPEC.symbol)
    entry = await market.place(sell, epoch)
    await shard.apply.remote(SPEC.symbol, [entry], since, entry[0])
    return seller


async def test_a_balance_read_first_applies_what_was_journaled_before_it(
    shard: Any, db: tuple[str, asyncpg.Connection], market: Market
) -> None:
    """A market answers at its journal commit, and its apply may still be on its way: a
    balance read first applies from the journal what was journaled before it, and the
    apply that lands afterwards changes nothing."""
    seller = await _resting_sell(shard, db[1], market, "rd", 3)
    assert await _balances(shard, seller) == {"LB": (70, 30)}
    cancel = await market.journal(seller, {"type": "cancel", "id": "rd"})  # not sent
    assert await _balances(shard, seller) == {"LB": (100, 0)}
    await shard.apply.remote(SPEC.symbol, [cancel], cancel[0] - 1, cancel[0])  # late
    assert await _balances(shard, seller) == {"LB": (100, 0)}
    await _assert_conserved(shard, db[1])


async def test_a_reservation_short_of_funds_first_applies_what_was_journaled(
    shard: Any, db: tuple[str, asyncpg.Connection], market: Market
) -> None:
    """Funds a cancel released are the account's as soon as the cancel is answered, even
    while its apply is on its way (an order in another market may need them): a
    reservation that comes up short first applies the journal, then holds."""
    seller = await _resting_sell(shard, db[1], market, "rf", 10)  # all 100 LB locked
    await market.journal(seller, {"type": "cancel", "id": "rf"})  # not sent
    again = _reservation(seller, "rf2", "sell", 500, 10)
    epoch, flags = await shard.reserve.remote([again], market.epoch)
    assert flags == [True]
    short = _reservation(seller, "rf3", "sell", 500, 1)
    assert (await shard.reserve.remote([short], market.epoch))[1] == [False]
    await market.place(again, epoch)
    await market.journal(seller, {"type": "cancel", "id": "rf2"})
    assert await _balances(shard, seller) == {"LB": (100, 0)}
    await _assert_conserved(shard, db[1])


async def test_a_hold_lost_in_a_restart_cannot_be_journaled(
    shard: Any, db: tuple[str, asyncpg.Connection], market: Market
) -> None:
    [buyer] = await _accounts(db[1], 1)
    await shard.credit.remote(buyer, "LQ", 1_000, f"f-{buyer}")
    r = _reservation(buyer, "lost", "buy", 50, 1)
    epoch, flags = await shard.reserve.remote([r], market.epoch)
    assert flags == [True]
    await _restart(shard)  # the hold is gone; the shard's epoch moved on
    assert await _balances(shard, buyer) == {"LQ": (1_000, 0)}
    with pytest.raises(asyncpg.PostgresError, match="hold of ledger shard 0") as caught:
        await market.place(r, epoch)
    assert caught.value.sqlstate == "CL003"
    new_epoch, flags = await shard.reserve.remote([r], market.epoch)  # the market retries
    assert flags == [True] and new_epoch == epoch + 1
    market.engine.submit(command_from_dict({"type": "cancel", "id": "lost", "owner": str(buyer),
                                            "ts": market.seq}))  # fmt: skip
    entry = await market.place(r, new_epoch)
    await shard.apply.remote(SPEC.symbol, [entry])
    assert await _balances(shard, buyer) == {"LQ": (1_000 - 502, 502)}
    await _assert_conserved(shard, db[1])


async def test_a_restarted_shard_recovers_before_any_call(
    shard: Any, db: tuple[str, asyncpg.Connection]
) -> None:
    """Recovery starts in the constructor: the epoch moves with no call made."""
    await shard.ping.remote()
    query = "SELECT epoch FROM ledger_shard_epochs WHERE shard_id = 0"
    epoch = await db[1].fetchval(query)
    ray.kill(shard, no_restart=False)
    for _ in range(600):
        if await db[1].fetchval(query) == epoch + 1:
            break
        await asyncio.sleep(0.05)
    assert await db[1].fetchval(query) == epoch + 1
    assert await shard.ping.remote() == 0
    assert await db[1].fetchval(query) == epoch + 1  # the first call did not recover again


async def test_a_failed_background_write_rebuilds_the_shard_from_the_journal(
    shard: Any, db: tuple[str, asyncpg.Connection], market: Market
) -> None:
    """The tables lag the shard's memory; if a write fails, the shard throws its memory
    away and rebuilds it (new epoch) from the tables and the journal: nothing is lost."""
    # At 77: no order of the earlier tests rests there.
    seller, buyer, sell, buy, epoch = await _held_pair(
        shard, db[1], market, "w", sell=(77, 3), buy=(77, 2)
    )
    save = "clob_ledger_save_json(integer, integer, json, json, json, json, json, json, json)"
    await db[1].execute(f"ALTER FUNCTION {save} RENAME TO clob_ledger_save_gone")
    try:  # the next background write fails
        entries = [await market.place(sell, epoch), await market.place(buy, epoch)]
        await shard.apply.remote(SPEC.symbol, entries)
        await asyncio.sleep(0.5)
    finally:
        gone = save.replace("clob_ledger_save_json", "clob_ledger_save_gone")
        await db[1].execute(f"ALTER FUNCTION {gone} RENAME TO clob_ledger_save_json")
    # The failed write threw the state away: the next call rebuilds it, as a new incarnation.
    assert await shard.reserve.remote([], market.epoch) == (epoch + 1, [])
    # 2 lots at 77: 1,540 + taker fee 5 (30 bps, rounded up); the maker pays 2 (10 bps).
    assert await _balances(shard, buyer) == {"LB": (20, 0), "LQ": (10_000 - 1_545, 0)}
    assert await _balances(shard, seller) == {"LB": (70, 10), "LQ": (1_540 - 2, 0)}
    await _assert_conserved(shard, db[1])


async def test_holds_of_dead_market_incarnations_are_released(
    shard: Any, db: tuple[str, asyncpg.Connection], market: Market
) -> None:
    [account] = await _accounts(db[1], 1)
    await shard.credit.remote(account, "LQ", 10_000, f"o-{account}")
    held = [_reservation(account, oid, "buy", 10, 5) for oid in ("x1", "x2", "live")]
    epoch, flags = await shard.reserve.remote(held, market.epoch)
    assert flags == [True, True, True]
    entry = await market.place(held[2], epoch)
    await shard.apply.remote(SPEC.symbol, [entry])
    # The market restarts as epoch + 1: x1 and x2 never reached the journal.
    live = [o.id for o in market.engine.l3()]
    assert await shard.release_orphans.remote(SPEC.symbol, live, market.epoch + 1) == 2
    assert await _balances(shard, account) == {"LQ": (10_000 - 502, 502)}
    with pytest.raises(Exception, match="stale"):  # the dead incarnation holds no more
        await shard.reserve.remote([_reservation(account, "x3", "buy", 10, 5)], market.epoch)
    # ... and that refusal changed nothing: same incarnation, same holds.
    x4 = _reservation(account, "x4", "buy", 10, 5)
    assert await shard.reserve.remote([x4], market.epoch + 1) == (epoch, [True])
    assert await _balances(shard, account) == {"LQ": (10_000 - 2 * 502, 2 * 502)}
    assert await shard.release_orphans.remote(SPEC.symbol, live, market.epoch + 2) == 1
    await _assert_conserved(shard, db[1])


async def test_the_shard_count_is_recorded_once_and_another_refused(
    db: tuple[str, asyncpg.Connection],
) -> None:
    _, conn = db
    await conn.execute("DELETE FROM ledger_layout")
    assert await store.claim_shard_count(conn, 3) == 3
    assert await store.claim_shard_count(conn, 3) == 3
    assert await store.claim_shard_count(conn, None) == 3  # unset: the recorded count
    with pytest.raises(store.LedgerLayoutError, match="partitioned over 3 shards"):
        await store.claim_shard_count(conn, 4)
    assert await conn.fetchval("SELECT shard_count FROM ledger_layout") == 3
    await conn.execute("DELETE FROM ledger_layout")
    assert await store.claim_shard_count(conn, None) == store.DEFAULT_SHARD_COUNT
    assert await conn.fetchval("SELECT shard_count FROM ledger_layout") == 2
