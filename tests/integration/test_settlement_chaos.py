"""Settlement under faults, on real servers (PostgreSQL, two markets sharing their quote
asset and two ledger shards on Ray, the embedded chain with the program, the custody
actors and a settlement batcher): accounts funded by real deposits trade (crossing limit
orders, partial fills, cancels), deposit and withdraw while the chain drops transactions,
expires blockhashes, fails RPC requests and delays confirmations, and the batcher (also
between a send and its confirmation) and the markets are killed. A bridge account holding
only one market's base sells it there and spends the quote in the other market, so that
market's batches wait for the first's. Afterwards every trade is in exactly one finalized
settlement, each batch id landed once on chain (the program refused every duplicate), and
every vault equals its ledger balance to the atom.

Seeded (`CLOB_SETTLEMENT_CHAOS_SEED`, printed); `CLOB_SETTLEMENT_CHAOS_STEPS` sets the size
(the default runs in about a minute), `CLOB_SETTLEMENT_CHAOS_TIMEOUT_S` how long the end may
take to settle. `-s` prints what was injected and what survived it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import ray
from ray.exceptions import ActorUnavailableError, RayActorError
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient
from actors.custody import records as custody_records
from actors.ledger import store
from actors.ledger.rules import InsufficientBalanceError
from actors.settlement.actor import SettlementConfig, settlement_actor_name, start_settlement
from actors.settlement.config import BatcherConfig
from tests.support.chain import rpc
from tests.support.custody_kit import CustodyExchange, start_custody_exchange, withdraw_debited
from tests.support.market_kit import cancel, limit, new_accounts, submit_until_acked
from tests.support.settle_chaos_kit import (
    Whale,
    agreed_vaults,
    applied_once,
    calm,
    land_deposit,
    market_ids,
    new_whale,
    soon,
    until,
)

SEED = int(os.environ.get("CLOB_SETTLEMENT_CHAOS_SEED", "16"))
STEPS = int(os.environ.get("CLOB_SETTLEMENT_CHAOS_STEPS", "30"))
SETTLE_TIMEOUT_S = float(os.environ.get("CLOB_SETTLEMENT_CHAOS_TIMEOUT_S", "120"))
pytestmark = pytest.mark.timeout(max(300, int(SETTLE_TIMEOUT_S) + 10 * STEPS))

SHARDS = 2
USERS = 4
LOT = 10
FAULTS = ("drop", "expire", "rpc", "rpc:submit", "delay")
KILLS = ("batcher", "batcher:submitted", "market")
TRADING = ("trade", "trade", "trade", "cross", "cancel", "deposit", "withdraw")
# A failed call on the submit path is a failed submission (retried 3 times): at most 3
# in a row, and only while no unfinished settlement has a failure counted already, so no
# settlement meets more than 3 (the retry policy survives; a 4th would fail it, by design).
SUBMIT_METHODS = ("sendTransaction", "simulateTransaction", "getLatestBlockhash")
FREE_METHODS = ("getSignatureStatuses", "getBlockHeight", "getSignaturesForAddress",
                "getTransaction", "getMultipleAccounts")  # fmt: skip
SETTLEMENTS_SQL = """
    SELECT s.batch_id, s.batch_count, s.status, s.trade_count, s.retries,
           (SELECT count(*) FROM trades t WHERE t.settlement_id = s.settlement_id) AS linked,
           (SELECT count(*) FROM settlement_attempts a
             WHERE a.settlement_id = s.settlement_id) AS attempts
      FROM settlements s WHERE s.market_id = $1"""
BATCHER_COUNTS = ("sent", "resent", "rebuilt", "failures", "blocked", "errors", "passes")


@pytest_asyncio.fixture(scope="module")
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await store.connect(db_url)
    yield c
    await c.close()


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> CustodyExchange:
    """The trading core and the custody actors of this module's database."""
    return start_custody_exchange(request, tmp_path_factory, SHARDS)


@dataclass
class Tally:
    """What was injected and what came of the flow."""

    kills: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    deposits: dict[str, tuple[int, str, int]] = field(default_factory=dict)  # sig: account..
    redeposits: int = 0
    withdrawals: list[int] = field(default_factory=list)
    short: int = 0  # withdrawals the ledger refused
    batcher: Counter[str] = field(default_factory=Counter)  # its counts, every incarnation


@dataclass
class Flow:
    world: CustodyExchange
    conn: asyncpg.Connection
    client: ChainClient
    rng: random.Random
    symbols: tuple[str, str]  # two markets, one quote asset
    base: tuple[str, str]
    quote: str
    users: list[int]
    bridge: int  # holds only the first market's base
    whales: dict[str, Whale]
    tally: Tally = field(default_factory=Tally)
    resting: list[tuple[int, int, str]] = field(default_factory=list)  # market, account, oid
    orders: int = 0

    def market(self, index: int) -> Any:
        return ray.get_actor(f"market:{self.symbols[index]}", namespace=self.world.config.namespace)

    async def submit(self, index: int, request: Any) -> list[Any]:
        return await submit_until_acked(lambda: self.market(index), [request])

    def oid(self) -> str:
        self.orders += 1
        return f"c{self.orders}"

    async def order(self, index: int, account: int, side: str, price: int, qty: int) -> None:
        oid = self.oid()
        await self.submit(index, limit(account, oid, side, price, qty))
        self.resting.append((index, account, oid))

    async def trade(self) -> None:
        """A maker rests an order; a taker crosses it for more or less (partial fills)."""
        index = self.rng.randrange(2)
        maker, taker = self.rng.sample(self.users, 2)
        side = self.rng.choice(("buy", "sell"))
        price = self.rng.randint(990, 1_010)
        await self.order(index, maker, side, price, self.rng.randint(2, 8))
        other = "sell" if side == "buy" else "buy"
        await self.order(index, taker, other, price, self.rng.randint(1, 10))

    async def cross(self) -> None:
        """The bridge sells the first market's base, then spends its quote in the second."""
        buyer, seller = self.rng.sample(self.users, 2)
        qty = self.rng.randint(2, 6)
        await self.order(0, buyer, "buy", 1_000, qty)
        await self.order(0, self.bridge, "sell", 1_000, qty)
        await self.order(1, seller, "sell", 1_000, qty - 1)
        await self.order(1, self.bridge, "buy", 1_000, qty - 1)

    async def cancel(self) -> None:
        if self.resting:
            index, account, oid = self.resting.pop(self.rng.randrange(len(self.resting)))
            await self.submit(index, cancel(account, oid))

    async def deposit(self, account: int | None = None, asset: str | None = None,
                      atoms: int | None = None) -> None:  # fmt: skip
        account = self.rng.choice(self.users) if account is None else account
        asset = self.rng.choice((*self.base, self.quote)) if asset is None else asset
        atoms = self.rng.randrange(500, 5_000) * LOT if atoms is None else atoms
        address = await self.world.chain_actor.deposit_address.remote(account, asset)
        vault = Pubkey.from_string(address)
        signature, resent = await land_deposit(self.client, self.whales[asset], vault, atoms)
        self.tally.deposits[signature] = (account, asset, atoms)
        self.tally.redeposits += resent

    async def withdraw(self) -> None:
        account = self.rng.choice([*self.users, self.bridge])
        asset = self.rng.choice((*self.base, self.quote))
        atoms = self.rng.randrange(100, 3_000)
        try:
            withdrawal = await withdraw_debited(self.conn, self.world.config.namespace, SHARDS,
                                                account, asset=asset, atoms=atoms)  # fmt: skip
        except InsufficientBalanceError:  # the request changed nothing: drop its row
            self.tally.short += 1
            refused = await self.conn.fetchval("SELECT max(withdrawal_id) FROM withdrawals "
                                               "WHERE account_id = $1 AND status = 'requested'",
                                               account)  # fmt: skip
            assert await custody_records.drop_refused(self.conn, refused)
            return
        self.tally.withdrawals.append(withdrawal)

    async def kill(self, what: str) -> None:
        if what == "market":
            index = self.rng.randrange(2)
            ray.kill(self.market(index), no_restart=False)
            self.tally.kills[f"market {self.symbols[index]}"] += 1
            return
        if what == "batcher:submitted":  # delayed confirmations keep a send in flight
            await rpc(self.world.rpc_url, "clob_delayConfirmations", self.rng.randint(3, 6))
            in_flight = partial(self.conn.fetchval, "SELECT count(*) FROM settlements "
                                "WHERE status = 'submitted'")  # fmt: skip
            if not await soon(in_flight):
                what = "batcher"  # nothing was sent meanwhile: an ordinary kill
        batcher = ray.get_actor(settlement_actor_name(0), namespace=self.world.config.namespace)
        await self.count_batcher(batcher)
        ray.kill(batcher, no_restart=False)
        self.tally.kills[what] += 1

    async def count_batcher(self, batcher: Any) -> None:
        """Add the incarnation's counts to the run's (a kill forgets them)."""
        with contextlib.suppress(RayActorError, ActorUnavailableError, asyncio.TimeoutError):
            health = await asyncio.wait_for(batcher.health.remote(), 5)
            self.tally.batcher.update({k: health[k] for k in BATCHER_COUNTS})

    async def fault(self, kind: str) -> None:
        url = self.world.rpc_url
        if kind == "drop":
            await rpc(url, "clob_dropTransactions", self.rng.randint(1, 3))
        elif kind == "expire":
            await rpc(url, "clob_expireBlockhashes")
        elif kind == "delay":
            await rpc(url, "clob_delayConfirmations", self.rng.randint(2, 8))
        elif kind == "rpc:submit" and await soon(self._submit_faults_safe, 15):
            method = self.rng.choice(SUBMIT_METHODS)
            await rpc(url, "clob_failRequests", self.rng.randint(1, 3), {"method": method})
            kind = f"rpc:{method}"
        else:  # other methods freely (also a submit fault that found no safe moment)
            method = self.rng.choice(FREE_METHODS)
            await rpc(url, "clob_failRequests", self.rng.randint(1, 6), {"method": method})
            kind = f"rpc:{method}"
        self.tally.faults[kind] += 1

    async def _submit_faults_safe(self) -> bool:
        switches = await rpc(self.world.rpc_url, "clob_switches")
        counted = await self.conn.fetchval("SELECT count(*) FROM settlements WHERE retries > 0 "
                                           "AND status IN ('pending', 'submitted')")  # fmt: skip
        return bool(switches["failNext"] == 0 and counted == 0)

    async def step(self, action: str) -> None:
        self.tally.actions[action] += 1
        if action in KILLS:
            await self.kill(action)
        elif action in FAULTS:
            await self.fault(action)
        else:
            await getattr(self, action)()
        if self.rng.random() < 0.2:  # an undelayed stretch now and then
            await rpc(self.world.rpc_url, "clob_delayConfirmations", 0)
        await asyncio.sleep(self.rng.uniform(0.0, 0.2))


def plan(rng: random.Random, steps: int) -> list[str]:
    """Return the run's actions: every fault and kill at least once, trading in between."""
    every = [*FAULTS, *KILLS]
    rest = max(0, steps - len(every))
    weights = [4] * len(TRADING) + [1] * len(every)
    extra = rng.choices([*TRADING, *every], weights=weights, k=rest)
    actions = every + extra
    rng.shuffle(actions)
    return ["trade", "cross", *actions]


async def _setup(world: CustodyExchange, conn: asyncpg.Connection, client: ChainClient,
                 rng: random.Random) -> Flow:  # fmt: skip
    """Make two markets sharing a quote asset, whales of their mints, and accounts funded
    by real deposits (the bridge: only the first market's base)."""
    tag = uuid.uuid4().hex[:5].upper()
    base, quote = (f"XA{tag}", f"XB{tag}"), f"XQ{tag}"
    symbols = (f"{base[0]}-{quote}", f"{base[1]}-{quote}")
    for symbol, asset in zip(symbols, base, strict=True):
        await world.controller.create_market.remote({
            "symbol": symbol, "base_asset": asset, "quote_asset": quote, "lot_size": LOT,
            "maker_fee_bps": -5, "taker_fee_bps": 20,
        })  # fmt: skip
    mints = {k: Pubkey.from_string(v) for k, v in (await world.chain_actor.sync.remote()).items()}
    whales = {a: await new_whale(client, world.keys, mints[a]) for a in (*base, quote)}
    *users, bridge = await new_accounts(world.config.database_url, USERS + 1)
    flow = Flow(world, conn, client, rng, symbols, base, quote, users, bridge, whales)
    for account in users:
        for asset in (*base, quote):
            await flow.deposit(account, asset, 200_000 if asset == quote else 20_000)
    await flow.deposit(bridge, base[0], 2_000)
    await until("the first deposits' credits", partial(_credited, conn, flow.tally),
                SETTLE_TIMEOUT_S)  # fmt: skip
    return flow


async def _credited(conn: asyncpg.Connection, tally: Tally) -> bool:
    found = await conn.fetchval("SELECT count(*) FROM deposits WHERE status = 'credited' "
                                "AND tx_signature = ANY($1)", list(tally.deposits))  # fmt: skip
    return bool(found == len(tally.deposits))


async def _settled_down(conn: asyncpg.Connection, flow: Flow) -> bool:
    """Tell whether every deposit is credited, every withdrawal done and every trade in a
    finalized settlement (a failed settlement fails the test at once)."""
    failed = await conn.fetch("SELECT settlement_id, last_error FROM settlements "
                              "WHERE status = 'failed'")  # fmt: skip
    assert not failed, [tuple(r) for r in failed]
    open_withdrawals = await conn.fetchval(
        "SELECT count(*) FROM withdrawals WHERE withdrawal_id = ANY($1) AND (status NOT IN "
        "('confirmed', 'failed') OR (status = 'failed' AND refunded_at IS NULL))",
        flow.tally.withdrawals,
    )  # fmt: skip
    unsettled = await conn.fetchval("SELECT count(*) FROM trades t LEFT JOIN settlements s "
                                    "USING (settlement_id) WHERE s.status IS DISTINCT FROM "
                                    "'finalized'")  # fmt: skip
    return bool(await _credited(conn, flow.tally) and open_withdrawals == 0 and unsettled == 0)


async def test_settlement_survives_kills_and_chain_faults(
    world: CustodyExchange, conn: asyncpg.Connection
) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    async with ChainClient(world.rpc_url) as client:
        flow = await _setup(world, conn, client, rng)
        settlement = SettlementConfig(custody=world.config, markets=flow.symbols, poll_s=0.05,
                                      batcher=BatcherConfig(interval_s=0.3, max_trades=6,
                                                            resend_s=0.5))  # fmt: skip
        (batcher,) = start_settlement(settlement)
        try:
            try:
                for action in plan(rng, STEPS):
                    await flow.step(action)
            finally:
                await calm(world.rpc_url)
            for index in range(2):  # every pass of the run applied and projected
                await until("the market back", partial(_market_settled, flow, index), 60)
            await until("settlement caught up", partial(_settled_down, conn, flow),
                        SETTLE_TIMEOUT_S)  # fmt: skip
            await flow.count_batcher(batcher)
        finally:
            ray.kill(batcher, no_restart=True)
        outcome = await _check(world, conn, client, flow)
    _print(flow.tally, outcome, time.monotonic() - started)


async def _market_settled(flow: Flow, index: int) -> bool:
    with contextlib.suppress(RayActorError, ActorUnavailableError):
        await flow.market(index).settled.remote()
        return True
    return False


async def _check(world: CustodyExchange, conn: asyncpg.Connection, client: ChainClient,
                 flow: Flow) -> Counter[str]:  # fmt: skip
    outcome = Counter[str]()
    for symbol in flow.symbols:
        market_id, chain_id = await market_ids(conn, symbol)
        rows = await conn.fetch(SETTLEMENTS_SQL, market_id)
        trades, batched = await conn.fetchrow("SELECT count(*), count(settlement_id) FROM "
                                              "trades WHERE market_id = $1", market_id)  # fmt: skip
        # Every trade in exactly one settlement, every settlement finalized.
        assert trades == batched == sum(r["trade_count"] for r in rows)
        assert all(r["trade_count"] == r["linked"] for r in rows)
        assert {r["status"] for r in rows} <= {"finalized"}
        assert all(r["batch_count"] == 1 for r in rows)  # netted: one settle per tx
        refused = await applied_once(world.rpc_url, client, chain_id,
                                     [r["batch_id"] for r in rows])  # fmt: skip
        outcome.update({f"landed refused: {error}": n for error, n in refused.items()})
        outcome["trades settled"] += trades
        outcome["settlements finalized"] += len(rows)
        outcome["failed submissions retried"] += sum(r["retries"] for r in rows)
        outcome["attempts signed (rebuilt, retried)"] += sum(r["attempts"] for r in rows)
    ours = await agreed_vaults(
        conn, client, world.config.namespace, SHARDS, (*flow.base, flow.quote)
    )
    assert len(ours) >= len(flow.users) * 3 + 3, ours  # the users' and the fee vaults at least
    for vault in ours:  # settled: each vault on chain IS its ledger balance
        assert vault.unsettled == 0 and vault.withdrawals_in_flight == 0, vault
        assert vault.on_chain == vault.ledger, vault
    fee_vault = next(v for v in ours if v.account_id is None and v.asset == flow.quote)
    fees = await conn.fetchval("SELECT sum(maker_fee_atoms + taker_fee_atoms) FROM trades")
    assert fee_vault.on_chain == fees > 0
    outcome["vaults equal to the ledger"] = len(ours)
    for status in await conn.fetch("SELECT status FROM withdrawals WHERE withdrawal_id = ANY($1)",
                                   flow.tally.withdrawals):  # fmt: skip
        outcome[f"withdrawals {status[0]}"] += 1
    return +outcome


def _print(tally: Tally, outcome: Counter[str], elapsed_s: float) -> None:
    print(f"\nsettlement chaos (seed {SEED}, {STEPS} steps, {elapsed_s:.1f} s):")
    print(f"  actions: {dict(tally.actions)}")
    print(f"  kills: {dict(tally.kills)}")
    print(f"  faults: {dict(tally.faults)}")
    print(f"  deposits: {len(tally.deposits)} (re-sent after a drop: {tally.redeposits})")
    print(f"  withdrawals: {len(tally.withdrawals)} (refused by the ledger: {tally.short})")
    refused = outcome.get("landed refused: BatchAlreadyApplied", 0)
    print(f"  batcher (every incarnation): {dict(tally.batcher)}")
    print(f"  duplicates the program refused (BatchAlreadyApplied): {refused}")
    injected = sum(tally.faults.values()) + sum(tally.kills.values())
    print(f"  survived all {injected} faults and kills (no failed settlement, no manual step):")
    for name, count in sorted(outcome.items()):
        print(f"    {name:<44} {count:>6}")
