"""The custody actors: the deposit listener (`custody:deposits`) and the chain actor
(`custody:chain`: first-start setup, deposit addresses, withdrawals). Each is a short shell
around its pass (`listener.py`, `sender.py`) over the real adapters (`pg.py`, `rpc.py`, the
ledger shards), run in a loop started by the constructor, so that Ray's restart of a killed
actor (the constructor again) is also its recovery: the pass reads everything it needs from
PostgreSQL and the chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from solders.pubkey import Pubkey

from actors.accounts import AccountId
from actors.chain.client import ChainClient, ChainError
from actors.chain.keys import ROLE_ENV, ChainKeys, load_keys
from actors.chain.program import (
    REPLAY_WINDOW_IDS,
    decode_exchange,
    exchange_pda,
    program_id_from,
)
from actors.custody.flows import ShardLedger
from actors.custody.listener import DepositListener
from actors.custody.pg import PgDepositRecords, PgWithdrawalRecords
from actors.custody.reconcile import ReservesCache, ReservesReport, gather
from actors.custody.rpc import RpcChain
from actors.custody.sender import WithdrawalSender
from actors.custody.setup import AssetPlan, MarketPlan, ensure_exchange, ensure_vault
from actors.ledger import store
from actors.ledger.rules import Holdings, shard_of

log = logging.getLogger(__name__)

DEPOSITS_ACTOR = "custody:deposits"
CHAIN_ACTOR = "custody:chain"
SOL = 1_000_000_000


@dataclass(frozen=True)
class CustodyConfig:
    """What the custody actors need (no secrets: keys are read from files).

    Attributes:
        database_url: PostgreSQL.
        rpc_url: The Solana JSON-RPC URL.
        namespace: Ray namespace of the ledger shards and the controller.
        keys_dir: Directory of the keypair files.
        key_paths: Per role, a keypair file that overrides `keys_dir` (`ROLE_ENV` roles).
        program_id: The exchange program (base58); empty: the IDL's.
        depth: Slots below the tip a deposit or withdrawal needs to be final.
        poll_s: Pause between passes.
        cap_atoms: The program's rolling outflow cap per asset (assets not listed:
            `default_cap_whole` whole units).
        default_cap_whole: Whole units of the default cap.
        window_slots: The cap's window.
        embedded: An embedded chain: mints are made for assets without one, and the
            operator and payer are funded from the faucet.
        shard_count: The ledger's shards; None: the number the ledger recorded.
        withdrawal_wait_s: Seconds a withdrawal waits for its vault on chain to hold the
            amount (trades not yet settled) before it is sent anyway.
    """

    database_url: str
    rpc_url: str
    namespace: str = "clob"
    keys_dir: str = ".clob/keys"
    key_paths: dict[str, str] = field(default_factory=dict)
    program_id: str = ""
    depth: int = 32
    poll_s: float = 0.5
    cap_atoms: dict[str, int] = field(default_factory=dict)
    default_cap_whole: int = 1_000_000
    window_slots: int = 216_000  # a day of 400 ms slots
    embedded: bool = True
    shard_count: int | None = None
    withdrawal_wait_s: float = 120.0


def custody_actor_options(name: str, namespace: str) -> dict[str, Any]:
    """Return the `.options(...)` of a custody actor (named, detached, restarted forever)."""
    return {"name": name, "namespace": namespace, "lifetime": "detached", "max_restarts": -1,
            "max_task_retries": 0, "num_cpus": 0, "get_if_exists": True}  # fmt: skip


class _RayShards:
    """Calls to the ledger shards by name, retried while a shard restarts."""

    def __init__(
        self, namespace: str, count: Callable[[], Awaitable[int]], deadline_s: float = 60.0
    ) -> None:
        self._namespace, self._deadline_s = namespace, deadline_s
        self._count_of = count
        self._count: int | None = None

    async def shard_of(self, account_id: AccountId) -> str:
        if self._count is None:
            self._count = await self._count_of()
        return f"ledger:{shard_of(account_id, self._count)}"

    async def call(self, name: str, method: str, *args: Any) -> Any:
        give_up = time.monotonic() + self._deadline_s
        pause = 0.05
        while True:
            try:
                handle = ray.get_actor(name, namespace=self._namespace)
                return await getattr(handle, method).remote(*args)
            except RayTaskError:
                raise  # the method itself refused: ShardLedger unwraps it
            except (RayActorError, ActorUnavailableError, ValueError):
                if time.monotonic() > give_up:
                    raise
                await asyncio.sleep(pause)
                pause = min(1.0, pause * 2)


_EXPECTED = (ChainError, OSError, asyncpg.PostgresError, RayActorError, RayTaskError,
             ActorUnavailableError)  # fmt: skip


class _Base:
    """What both actors hold: the database, the chain, the keys, the ledger."""

    def __init__(self, config: CustodyConfig) -> None:
        self.config = config
        self.program_id: Pubkey = program_id_from(config.program_id or None)
        environ = {ROLE_ENV[role]: path for role, path in config.key_paths.items()}
        self.keys: ChainKeys = load_keys(Path(config.keys_dir), environ)
        self.shards = _RayShards(config.namespace, self._shard_count)
        self.ledger = ShardLedger(self.shards.call, self.shards.shard_of)
        self.client = ChainClient(config.rpc_url)
        self.passes = 0
        self.errors = 0
        self.last_error: str | None = None
        self._conn: asyncpg.Connection | None = None
        self.lock = asyncio.Lock()  # one pass (or sync) at a time on the connection
        self._task = asyncio.get_event_loop().create_task(self._loop())

    async def conn(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await store.connect(self.config.database_url)
        return self._conn

    async def _shard_count(self) -> int:
        if self.config.shard_count is not None:
            return self.config.shard_count
        conn = await store.connect(self.config.database_url)  # not the pass's connection
        try:
            recorded = await conn.fetchval("SELECT shard_count FROM ledger_layout")
            if recorded is None:
                raise RuntimeError("the ledger has not recorded its shard count yet")
            return int(recorded)
        finally:
            await conn.close()

    async def mints(self) -> dict[str, Pubkey]:
        rows = await (await self.conn()).fetch("SELECT symbol, mint FROM assets "
                                               "WHERE mint IS NOT NULL")  # fmt: skip
        return {r[0]: Pubkey.from_string(r[1]) for r in rows}

    async def _loop(self) -> None:
        while True:
            try:
                async with self.lock:
                    await self.run_pass()
                self.passes += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a pass must not end the loop
                # Every pass starts again from what PostgreSQL and the chain hold; an
                # unexpected error is logged with its trace and counted in `health`.
                if not isinstance(exc, _EXPECTED):
                    log.exception("%s: pass failed", type(self).__name__)
                self.errors += 1
                self.last_error = repr(exc)[:500]
                log.warning("%s: pass failed: %r", type(self).__name__, exc)
                if self._conn is not None and not self._conn.is_closed():
                    with contextlib.suppress(Exception):
                        await self._conn.close()
                self._conn = None
            await asyncio.sleep(self.config.poll_s)

    async def run_pass(self) -> None:
        raise NotImplementedError

    async def health(self) -> dict[str, Any]:
        """Return the actor's passes, errors and last error."""
        return {"name": type(self).__name__, "passes": self.passes, "errors": self.errors,
                "last_error": self.last_error}  # fmt: skip


class DepositListenerActor(_Base):
    """`custody:deposits`: credits confirmed deposits, exactly once (`listener.py`)."""

    async def run_pass(self) -> None:
        conn = await self.conn()
        chain = RpcChain(self.client, self.program_id, self.keys.operator, await self.mints())
        listener = DepositListener(chain, PgDepositRecords(conn), self.ledger,
                                   str(self.program_id), self.config.depth)  # fmt: skip
        await listener.run_pass()


class ChainActor(_Base):
    """`custody:chain`: the exchange's accounts on chain, the deposit addresses, and the
    withdrawals (`sender.py`)."""

    def __init__(self, config: CustodyConfig) -> None:
        self._set_up = False
        self._reserves = ReservesCache(self._gather_reserves)
        super().__init__(config)

    async def run_pass(self) -> None:
        if not self._set_up:
            await self._sync()
        conn = await self.conn()
        chain = RpcChain(self.client, self.program_id, self.keys.operator, await self.mints())
        sender = WithdrawalSender(chain, PgWithdrawalRecords(conn), self.ledger, self.config.depth,
                                  wait_s=self.config.withdrawal_wait_s)  # fmt: skip
        await sender.run_pass()

    async def sync(self) -> dict[str, str]:
        """Make the exchange's missing accounts on chain (new assets and markets too);
        return every asset's mint."""
        async with self.lock:
            return await self._sync()

    async def _sync(self) -> dict[str, str]:
        conn = await self.conn()
        if self.config.embedded:
            for key in (self.keys.payer, self.keys.operator):
                if await self.client.balance(key.pubkey()) < 10 * SOL:
                    await self.client.request_airdrop(key.pubkey(), 1_000 * SOL)
        assets = await conn.fetch("SELECT symbol, decimals, mint FROM assets ORDER BY asset_id")
        plans = []
        for symbol, decimals, mint in assets:
            if mint is None and not self.config.embedded:
                continue  # a real chain's mints are configured, never made here
            default_cap = self.config.default_cap_whole * 10**decimals
            cap = self.config.cap_atoms.get(symbol, default_cap)
            known_mint = None if mint is None else Pubkey.from_string(mint)
            plans.append(AssetPlan(symbol, decimals, known_mint, cap, self.config.window_slots))
        markets = await conn.fetch(
            "SELECT m.symbol, b.symbol, q.symbol FROM markets m "
            "JOIN assets b ON b.asset_id = m.base_asset_id "
            "JOIN assets q ON q.asset_id = m.quote_asset_id ORDER BY m.market_id"
        )
        known = {p.symbol for p in plans}
        market_plans = [MarketPlan(r[0], r[1], r[2]) for r in markets
                        if r[1] in known and r[2] in known]  # fmt: skip
        mints = await ensure_exchange(self.client, self.program_id, self.keys, plans,
                                      market_plans)  # fmt: skip
        for symbol, mint in mints.items():
            await conn.execute("UPDATE assets SET mint = $2 WHERE symbol = $1 AND mint IS NULL",
                               symbol, str(mint))  # fmt: skip
        await self._align_withdrawal_ids(conn)
        self._set_up = True
        return {symbol: str(mint) for symbol, mint in mints.items()}

    async def _align_withdrawal_ids(self, conn: asyncpg.Connection) -> None:
        """Move the withdrawal id sequence past every id the program may have applied
        (migration 0020 says why): new ids then start beyond its replay window."""
        data = await self.client.account_data(exchange_pda(self.program_id), "confirmed")
        if data is None:
            return
        floor = decode_exchange(data).withdrawals.base + REPLAY_WINDOW_IDS
        await conn.execute(
            "SELECT setval('withdrawals_withdrawal_id_seq', $1) "
            "WHERE $1 > (SELECT last_value FROM withdrawals_withdrawal_id_seq)", floor,
        )  # fmt: skip

    async def deposit_address(self, account_id: int, asset: str) -> str:
        """Return an account's deposit address for an asset, registering its vault on
        chain and recording it the first time.

        An asset added since the last sync is set up on chain first (embedded chain: its
        mint is made then).

        Raises:
            KeyError: No such asset, or it has no mint (a real chain's mints are
                configured in `assets.mint`).
        """
        # Its own connection: the pass may be using the actor's at the same moment.
        conn = await store.connect(self.config.database_url)
        try:
            query = "SELECT asset_id, mint FROM assets WHERE symbol = $1"
            row = await conn.fetchrow(query, asset)
            if row is not None and row[1] is None and self.config.embedded:
                await self.sync()
                row = await conn.fetchrow(query, asset)
            if row is None or row[1] is None:
                raise KeyError(asset)
            mint = Pubkey.from_string(row[1])
            vault = await ensure_vault(
                self.client, self.program_id, self.keys.operator, mint, AccountId(account_id)
            )
            await conn.execute(
                "INSERT INTO deposit_addresses (account_id, asset_id, address) "
                "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", account_id, int(row[0]), str(vault),
            )  # fmt: skip
        finally:
            await conn.close()
        return str(vault)

    async def reserves(self, max_age_s: float = 0.0) -> ReservesReport:
        """Return the reconciliation of the vaults with the ledger (`reconcile.py`): one
        at most `max_age_s` old, one gathering at a time however many ask."""
        return await self._reserves.get(max_age_s)

    async def _gather_reserves(self) -> ReservesReport:
        # Its own connection: the pass may be using the actor's at the same moment.
        conn = await store.connect(self.config.database_url)
        try:
            return await gather(conn, self.client, self.program_id, self._shard_holdings)
        finally:
            await conn.close()

    async def _shard_holdings(self) -> list[Holdings]:
        count = await self._shard_count()
        calls = (self.shards.call(f"ledger:{i}", "holdings") for i in range(count))
        return list(await asyncio.gather(*calls))

    async def status(self) -> dict[str, Any]:
        """Return the program id and the authorities' public keys."""
        return {"program_id": str(self.program_id), "admin": str(self.keys.admin.pubkey()),
                "operator": str(self.keys.operator.pubkey())}  # fmt: skip


def start_custody(config: CustodyConfig) -> tuple[Any, Any]:
    """Get or create both custody actors (call after `ray.init`); return their handles."""
    chain: Any = ray.remote(ChainActor).options(
        **custody_actor_options(CHAIN_ACTOR, config.namespace)).remote(config)  # fmt: skip
    deposits: Any = ray.remote(DepositListenerActor).options(
        **custody_actor_options(DEPOSITS_ACTOR, config.namespace)).remote(config)  # fmt: skip
    return chain, deposits
