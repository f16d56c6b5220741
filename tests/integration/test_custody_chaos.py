"""Custody under faults, on real servers (PostgreSQL, two ledger shards on Ray, the embedded
chain with the exchange program): deposits and withdrawals flow while the deposit listener
and the chain actor are killed at random moments and the chain drops transactions, fails
RPC requests, delays confirmations and expires blockhashes. Afterwards every deposit that
landed was credited once, every withdrawal reached the chain once or was re-credited once
(never both), and the reserves check shows zero difference.

Seeded (`CLOB_CUSTODY_CHAOS_SEED`, printed); `CLOB_CUSTODY_CHAOS_STEPS` sets the size (the
default runs in well under a minute), `CLOB_CUSTODY_CHAOS_TIMEOUT_S` how long the end may
take to settle. `-s` prints what was injected and what survived it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import ray
import spl.token.instructions as spl
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from actors.chain.client import (
    AlreadyProcessedError,
    ChainClient,
    TransactionExpiredError,
)
from actors.chain.keys import ChainKeys
from actors.chain.program import TOKEN_PROGRAM_ID
from actors.custody import flows, records
from actors.custody.actor import CHAIN_ACTOR, DEPOSITS_ACTOR, CustodyConfig, start_custody
from actors.custody.reconcile import ReservesReport
from actors.custody.setup import send_and_confirm
from actors.ledger.rules import InsufficientBalanceError
from serve_app.reconciliation import table
from tests.support.chain import rpc
from tests.support.custody_kit import custody_config, start_shards, system_conn_with_asset
from tests.support.market_kit import new_accounts
from tests.support.program_kit import program_elf
from tests.support.settle_chaos_kit import retry_chain

SEED = int(os.environ.get("CLOB_CUSTODY_CHAOS_SEED", "15"))
STEPS = int(os.environ.get("CLOB_CUSTODY_CHAOS_STEPS", "24"))
SETTLE_TIMEOUT_S = float(os.environ.get("CLOB_CUSTODY_CHAOS_TIMEOUT_S", "60"))
pytestmark = pytest.mark.timeout(max(240, int(SETTLE_TIMEOUT_S) + 10 * STEPS))

ASSET = "CHAOS"
SHARDS = 2
ACCOUNTS = 3
DEPTH = 4
WHALE_ATOMS = 10**12
CAP_ATOMS = 25_000  # the program's outflow cap: the later withdrawals are refused by it
FAULTS = ("drop", "rpc", "delay", "expire")
RPC_FAULT_METHODS = ("getSignatureStatuses", "getSignaturesForAddress", "getTransaction",
                     "getMultipleAccounts", "sendTransaction", "getLatestBlockhash")  # fmt: skip


@pytest_asyncio.fixture(scope="module")
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await system_conn_with_asset(db_url, ASSET)
    yield c
    await c.close()


@pytest.fixture(scope="module")
def shards(namespace: str, db_url: str, conn: asyncpg.Connection) -> list[Any]:
    return start_shards(namespace, db_url, SHARDS)


@dataclass
class Tally:
    """What was injected and what came of the flow."""

    kills: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    deposits: dict[str, tuple[int, int]] = field(default_factory=dict)  # sig: (account, atoms)
    redeposits: int = 0  # test deposits dropped or refused and sent anew
    withdrawals: dict[int, tuple[int, int, Pubkey]] = field(default_factory=dict)
    short: int = 0  # withdrawals the ledger refused (funds not credited yet)
    accounts: set[int] = field(default_factory=set)


@dataclass
class World:
    namespace: str
    db_url: str
    conn: asyncpg.Connection
    shards: list[Any]
    rpc_url: str
    keys: ChainKeys
    config: CustodyConfig


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    program_elf()
    values = {n: request.getfixturevalue(n) for n in (
        "namespace", "db_url", "conn", "shards", "solana_rpc_url", "chain_keys")}  # fmt: skip
    config = custody_config(values["db_url"], values["solana_rpc_url"], values["namespace"],
                            values["chain_keys"], tmp_path_factory, depth=DEPTH, poll_s=0.05,
                            cap_atoms={ASSET: CAP_ATOMS}, shard_count=SHARDS)  # fmt: skip
    start_custody(config)
    return World(values["namespace"], values["db_url"], values["conn"], values["shards"],
                 values["solana_rpc_url"], values["chain_keys"], config)  # fmt: skip


def _actor(world: World, name: str) -> Any:
    return ray.get_actor(name, namespace=world.namespace)


async def _land(client: ChainClient, payer: Keypair, ixs: list[Instruction], tally: Tally) -> str:
    """Send a transaction until one copy lands (a dropped one expires; then sign anew)."""
    while True:
        blockhash = await retry_chain(lambda: client.latest_blockhash("confirmed"))
        message = MessageV0.try_compile(payer.pubkey(), ixs, [], blockhash.blockhash)
        tx = VersionedTransaction(message, [payer])
        with contextlib.suppress(AlreadyProcessedError):
            await retry_chain(partial(client.send_transaction, tx, skip_preflight=True))
        wait = partial(client.wait_for, tx.signatures[0], blockhash.last_valid_block_height)
        try:
            status = await retry_chain(partial(wait, "confirmed"))
        except TransactionExpiredError:
            tally.redeposits += 1
            continue
        assert status.err is None, status
        return str(tx.signatures[0])


async def _whale(client: ChainClient, keys: ChainKeys, mint: Pubkey) -> Keypair:
    whale = Keypair()
    await client.request_airdrop(whale.pubkey(), 10 * 10**9)
    source = spl.get_associated_token_address(whale.pubkey(), mint)
    create = spl.create_associated_token_account(keys.payer.pubkey(), whale.pubkey(), mint)
    mint_to = spl.mint_to(spl.MintToParams(program_id=TOKEN_PROGRAM_ID, mint=mint, dest=source,
                                           mint_authority=keys.mint_authority.pubkey(),
                                           amount=WHALE_ATOMS))  # fmt: skip
    await send_and_confirm(client, keys.payer, [create, mint_to], [keys.mint_authority])
    return whale


@dataclass
class Flow:
    world: World
    client: ChainClient
    rng: random.Random
    whale: Keypair
    mint: Pubkey
    vaults: dict[int, Pubkey]
    tally: Tally = field(default_factory=Tally)

    async def deposit(self) -> None:
        account = self.rng.choice(list(self.vaults))
        atoms = self.rng.randrange(1_000, 20_000)
        source = spl.get_associated_token_address(self.whale.pubkey(), self.mint)
        params = spl.TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID, source=source, mint=self.mint,
            dest=self.vaults[account], owner=self.whale.pubkey(), amount=atoms, decimals=6,
        )  # fmt: skip
        move = spl.transfer_checked(params)
        signature = await _land(self.client, self.whale, [move], self.tally)
        self.tally.deposits[signature] = (account, atoms)

    async def withdraw(self, account: int | None = None, atoms: int | None = None) -> None:
        conn, world = self.world.conn, self.world
        account = self.rng.choice(list(self.vaults)) if account is None else account
        atoms = self.rng.randrange(500, 8_000) if atoms is None else atoms
        destination = Keypair().pubkey()
        asset_id = await conn.fetchval("SELECT asset_id FROM assets WHERE symbol = $1", ASSET)
        w, _ = await records.insert_request(conn, account, asset_id, atoms, str(destination),
                                            None)  # fmt: skip
        ledger = flows.ShardLedger(
            lambda name, method, *args: getattr(ray.get_actor(name, namespace=world.namespace),
                                                method).remote(*args),
            _shard_name,
        )  # fmt: skip
        try:
            await flows.debit_withdrawal(conn, ledger, w)
        except InsufficientBalanceError:
            await records.drop_refused(conn, w.withdrawal_id)
            self.tally.short += 1
            return
        self.tally.withdrawals[w.withdrawal_id] = (account, atoms, destination)

    def kill(self, name: str) -> None:
        ray.kill(_actor(self.world, name), no_restart=False)
        self.tally.kills[name] += 1

    async def fault(self, kind: str) -> None:
        url = self.world.rpc_url
        if kind == "drop":
            await rpc(url, "clob_dropTransactions", self.rng.randint(1, 2))
        elif kind == "rpc":
            method = self.rng.choice(RPC_FAULT_METHODS)
            await rpc(url, "clob_failRequests", self.rng.randint(1, 4), {"method": method})
            kind = f"rpc:{method}"
        elif kind == "delay":
            await rpc(url, "clob_delayConfirmations", self.rng.randint(2, 8))
        else:
            await rpc(url, "clob_expireBlockhashes")
        self.tally.faults[kind] += 1

    async def step(self, action: str) -> None:
        if action == "deposit":
            await self.deposit()
        elif action == "withdraw":
            await self.withdraw()
        elif action in (CHAIN_ACTOR, DEPOSITS_ACTOR):
            self.kill(action)
        else:
            await self.fault(action)
        if self.rng.random() < 0.2:  # an undelayed stretch now and then
            await rpc(self.world.rpc_url, "clob_delayConfirmations", 0)
        await asyncio.sleep(self.rng.uniform(0.0, 0.3))


def plan(rng: random.Random, steps: int) -> list[str]:
    """Return the run's actions, shuffled: a third deposits, a quarter withdrawals, each
    actor killed and each fault injected at least once (so every run covers them all),
    the rest drawn at random; the first two are deposits, so withdrawals find funds."""
    deposits, withdrawals = max(2, steps // 3), max(1, steps // 4)
    every = [CHAIN_ACTOR, DEPOSITS_ACTOR, *FAULTS]
    rest = max(0, steps - deposits - withdrawals - len(every))
    extra = rng.choices([CHAIN_ACTOR, DEPOSITS_ACTOR, *FAULTS, "deposit", "withdraw"], k=rest)
    actions = ["deposit"] * (deposits - 2) + ["withdraw"] * withdrawals + every + extra
    rng.shuffle(actions)
    return ["deposit", "deposit", *actions]


async def _available(world: World, account: int) -> int:
    views = await world.shards[account % SHARDS].balances.remote(account)
    return sum(v.available_atoms for v in views if v.asset == ASSET)


async def _richest(world: World, accounts: list[int]) -> int:
    available = {a: await _available(world, a) for a in accounts}
    return max(available, key=lambda a: available[a])


async def _shard_name(account_id: int) -> str:
    return f"ledger:{account_id % SHARDS}"


async def _settled(conn: asyncpg.Connection, tally: Tally) -> bool:
    """Tell whether every deposit of the run is credited and every withdrawal done."""
    accounts = list(tally.accounts)
    deposits = await conn.fetch("SELECT tx_signature, status FROM deposits "
                                "WHERE account_id = ANY($1)", accounts)  # fmt: skip
    open_ = await conn.fetchval(
        "SELECT count(*) FROM withdrawals WHERE account_id = ANY($1) AND ("
        "status NOT IN ('confirmed', 'failed') OR (status = 'failed' AND refunded_at IS NULL))",
        accounts,
    )  # fmt: skip
    credited = {r[0] for r in deposits if r[1] == "credited"}
    return bool(len(deposits) == len(credited) == len(tally.deposits) and open_ == 0)


async def _wait_settled(world: World, tally: Tally) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not await _settled(world.conn, tally):
        if time.monotonic() > deadline:
            health = [await _actor(world, n).health.remote() for n in (CHAIN_ACTOR, DEPOSITS_ACTOR)]
            rows = await world.conn.fetch("SELECT withdrawal_id, status, last_error, refunded_at "
                                          "FROM withdrawals ORDER BY 1")  # fmt: skip
            raise AssertionError(f"custody did not settle: {health}; {[tuple(r) for r in rows]}")
        await asyncio.sleep(0.2)


async def _calm(url: str) -> None:
    await rpc(url, "clob_dropTransactions", 0)
    await rpc(url, "clob_failRequests", 0)
    await rpc(url, "clob_delayConfirmations", 0)


async def test_custody_survives_kills_and_chain_faults(world: World) -> None:
    rng = random.Random(SEED)
    chain_actor = _actor(world, CHAIN_ACTOR)
    mint = Pubkey.from_string((await chain_actor.sync.remote())[ASSET])
    accounts = await new_accounts(world.db_url, ACCOUNTS)
    vaults = {a: Pubkey.from_string(await chain_actor.deposit_address.remote(a, ASSET))
              for a in accounts}  # fmt: skip
    async with ChainClient(world.rpc_url) as client:
        flow = Flow(world, client, rng, await _whale(client, world.keys, mint), mint, vaults)
        flow.tally.accounts.update(vaults)
        started = time.monotonic()
        try:
            for action in plan(rng, STEPS):
                await flow.step(action)
        finally:
            await _calm(world.rpc_url)
        await _wait_settled(world, flow.tally)
        # Withdrawals of half the program's cap each from the richest accounts, a killed
        # chain actor among them: the cap refuses at least one, which is re-credited.
        for _ in range(3):
            await flow.withdraw(await _richest(world, list(vaults)), CAP_ATOMS // 2)
            if rng.random() < 0.5:
                flow.kill(CHAIN_ACTOR)
        await _wait_settled(world, flow.tally)
        report: ReservesReport = await _actor(world, CHAIN_ACTOR).reserves.remote(0)
        outcome = await _check(world, client, flow.tally, vaults, report)
    _print(flow.tally, outcome, report, time.monotonic() - started)


async def _check(world: World, client: ChainClient, tally: Tally, vaults: dict[int, Pubkey],
                 report: ReservesReport) -> Counter[str]:  # fmt: skip
    conn, outcome = world.conn, Counter[str]()
    # Every deposit that landed: one deposit row, credited, one ledger credit.
    rows = await conn.fetch("SELECT tx_signature, account_id, amount_atoms::text, status "
                            "FROM deposits WHERE account_id = ANY($1)", list(vaults))  # fmt: skip
    assert {r[0]: (int(r[1]), int(r[2])) for r in rows} == tally.deposits
    assert {r[3] for r in rows} <= {"credited"}
    references = {r[0] for r in await conn.fetch("SELECT reference FROM ledger_credits")}
    for signature, (account, _) in tally.deposits.items():
        assert f"deposit:{signature}:{vaults[account]}" in references
    # Every withdrawal: reached its wallet once (confirmed), or never and re-credited once.
    owed: Counter[int] = Counter()
    for account, atoms in tally.deposits.values():
        owed[account] += atoms
    for withdrawal_id, (account, atoms, destination) in tally.withdrawals.items():
        row = await records.get(conn, withdrawal_id)
        assert row is not None
        ata = spl.get_associated_token_address(destination, Pubkey.from_string(
            await conn.fetchval("SELECT mint FROM assets WHERE symbol = $1", ASSET)))  # fmt: skip
        paid = await client.token_balance(ata, "confirmed") or 0
        refunded = f"withdrawal-refund:{withdrawal_id}" in references
        if row.status == "confirmed":
            assert (paid, refunded) == (atoms, False), (withdrawal_id, paid, refunded)
            owed[account] -= atoms
        else:
            assert row.status == "failed" and row.refunded_at is not None
            assert (paid, refunded) == (0, True), (withdrawal_id, paid, refunded)
        outcome[f"withdrawal {row.status}"] += 1
    # The ledger holds what was deposited minus what was paid out, per account.
    for account, atoms in owed.items():
        assert await _available(world, account) == atoms
    # The vaults hold the same, and the reserves check shows no difference.
    balances = await client.token_balances(list(vaults.values()), "confirmed")
    assert sum(b or 0 for b in balances.values()) == sum(owed.values())
    assert report.consistent and report.balanced, [r.as_dict() for r in report.assets]
    (mine,) = [r for r in report.assets if r.asset == ASSET]
    assert mine.on_chain == mine.ledger == sum(owed.values())
    outcome["deposits credited"] = len(tally.deposits)
    return outcome


def _print(tally: Tally, outcome: Counter[str], report: ReservesReport, elapsed_s: float) -> None:
    print(f"\ncustody chaos (seed {SEED}, {STEPS} steps, {elapsed_s:.1f} s):")
    print(f"  kills: {dict(tally.kills)}")
    print(f"  faults: {dict(tally.faults)}")
    print(f"  test deposits re-sent after a drop: {tally.redeposits}; "
          f"withdrawals refused by the ledger (funds not credited yet): {tally.short}")  # fmt: skip
    print(f"  survived: {dict(outcome)}")
    print("  reserves (as `clob reconcile` prints them):")
    for line in table(report):
        print(f"    {line}")


def _row(report: ReservesReport) -> Any:
    (row,) = [r for r in report.assets if r.asset == ASSET]
    return row


async def test_reserves_balance_with_a_deposit_pending_and_a_withdrawal_in_flight(
    world: World,
) -> None:
    # Frozen slots keep the confirmed frontier still: a deposit confirmed just before stays
    # below its crediting depth (pending), and a withdrawal sent stays unconfirmed (in
    # flight, its tokens still in the vault): each term must make up the ledger's gap.
    url, chain_actor = world.rpc_url, _actor(world, CHAIN_ACTOR)
    mint = Pubkey.from_string((await chain_actor.sync.remote())[ASSET])
    [account] = await new_accounts(world.db_url, 1)
    vault = Pubkey.from_string(await chain_actor.deposit_address.remote(account, ASSET))
    async with ChainClient(url) as client:
        flow = Flow(world, client, random.Random(SEED), await _whale(client, world.keys, mint),
                    mint, {account: vault})  # fmt: skip
        flow.tally.accounts.add(account)
        try:
            await rpc(url, "clob_pauseSlots", True)
            await _deposit_one_slot_deep(flow, 1_234)
            pending = await _until_report(chain_actor, lambda r: _row(r).deposits_pending > 0)
            assert _row(pending).difference == 0 and pending.consistent
            assert _row(pending).deposits_pending == sum(a for _, a in flow.tally.deposits.values())
        finally:
            await rpc(url, "clob_pauseSlots", False)
        await _wait_settled(world, flow.tally)
        try:
            await rpc(url, "clob_pauseSlots", True)
            await flow.withdraw(account, 700)
            sent = await _until_report(chain_actor, lambda r: _row(r).withdrawals_in_flight > 0)
            assert _row(sent).withdrawals_in_flight == 700
            assert _row(sent).difference == 0 and sent.consistent
        finally:
            await rpc(url, "clob_pauseSlots", False)
        await _wait_settled(world, flow.tally)
        after = await chain_actor.reserves.remote(0)
        assert _row(after).withdrawals_in_flight == 0 and after.balanced


async def _deposit_one_slot_deep(flow: Flow, atoms: int) -> None:
    """Send a deposit and make one slot by hand: confirmed, below the crediting depth."""
    account, vault = next(iter(flow.vaults.items()))
    source = spl.get_associated_token_address(flow.whale.pubkey(), flow.mint)
    params = spl.TransferCheckedParams(
        program_id=TOKEN_PROGRAM_ID, source=source, mint=flow.mint, dest=vault,
        owner=flow.whale.pubkey(), amount=atoms, decimals=6,
    )  # fmt: skip
    blockhash = await flow.client.latest_blockhash("processed")
    message = MessageV0.try_compile(
        flow.whale.pubkey(), [spl.transfer_checked(params)], [], blockhash.blockhash
    )
    tx = VersionedTransaction(message, [flow.whale])
    await flow.client.send_transaction(tx)
    await rpc(flow.world.rpc_url, "clob_advanceSlots", 1)
    (status,) = await flow.client.signature_statuses([tx.signatures[0]])
    assert status is not None and status.err is None and status.reached("confirmed")
    flow.tally.deposits[str(tx.signatures[0])] = (account, atoms)


async def _until_report(
    chain_actor: Any, check: Callable[[ReservesReport], bool], timeout_s: float = 20
) -> ReservesReport:
    deadline = time.monotonic() + timeout_s
    while True:
        report: ReservesReport = await chain_actor.reserves.remote(0)
        if check(report) or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.1)


def test_clob_reconcile_joins_the_cluster_and_exits_zero_when_balanced(
    world: World, tmp_path: Path
) -> None:
    # `clob reconcile` as an operator runs it: a run-state file names this module's Ray,
    # the command joins it as a driver, asks the chain actor, prints the table.
    state = {"pid": os.getpid(), "http_url": "", "database_url": world.db_url, "redis_url": "",
             "ray_address": ray.get_runtime_context().gcs_address, "started": []}  # fmt: skip
    (tmp_path / "state.json").write_text(json.dumps(state))
    env = {**os.environ, "CLOB_DATA_DIR": str(tmp_path), "CLOB_RAY__NAMESPACE": world.namespace}
    done = subprocess.run([sys.executable, "-m", "serve_app.cli", "reconcile"], env=env,
                          capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["asset", "on", "chain"], done.stdout
    assert [line.split()[0] for line in lines[1:-1]] == [ASSET]
    assert lines[-1].startswith("balanced: 1 assets"), done.stdout
