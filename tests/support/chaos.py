"""Chaos kit of `tests/integration/test_chaos.py`: its size from the environment, the order
flow and oracle of each market (a lane), and the killer of market actors and ledger shards.

The oracle of a market is a plain in-process `MatchingEngine` fed the same commands in the
same order as the market actor, after the actor's own pre-engine rule
(`actors.market.reservations.protect`, the protection budget of market buys by quantity),
so the two emit the same events as long as the exchange loses and repeats nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import ray

from actors.contracts import OrderRequest, OrderResult
from actors.engine import Event, MarketSpec, MatchingEngine, Millis, NewOrder
from actors.market import reservations as resv
from actors.market.intake import Item, engine_command
from tests.support.market_kit import request

JsonDict = dict[str, Any]
BATCH = 25  # commands per submit
KILL_JITTER_S = 0.15  # a kill lands at a random moment this long after it is due (~a pass)
RECOVERY_TIMEOUT_S = 120.0  # one incarnation's restart and recovery, on a loaded machine
DOWN = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, ValueError)


@dataclass(frozen=True, slots=True)
class ChaosSize:
    """How long a chaos run is. CI runs the defaults; `make soak` sets the environment.

    Attributes:
        batches: Batches of `BATCH` commands per market.
        kills: Kills of market actors and ledger shards, spread evenly over the batches.
        checkpoints: Pauses at which every invariant is checked (the last at the end).
        timeout_s: The whole test's limit, seconds.
    """

    batches: int = 60
    kills: int = 10
    checkpoints: int = 1
    timeout_s: int = 170

    @classmethod
    def from_env(cls) -> ChaosSize:
        """Read `CLOB_CHAOS_BATCHES`, `_KILLS`, `_CHECKPOINTS` and `_TIMEOUT_S` (defaults
        where unset).

        Raises:
            ValueError: A value is not a positive integer, or there are more checkpoints
                than batches.
        """
        size = cls(**{f.name: _env_int(f.name, f.default) for f in dataclasses.fields(cls)})
        if size.checkpoints > size.batches:
            raise ValueError("CLOB_CHAOS_CHECKPOINTS must not exceed CLOB_CHAOS_BATCHES")
        return size

    def batch_range(self, checkpoint: int) -> range:
        """Return the batch numbers that run before checkpoint `checkpoint` (0-based)."""
        return range(self._cut(self.batches, checkpoint), self._cut(self.batches, checkpoint + 1))

    def kill_range(self, checkpoint: int) -> range:
        """Return the kill numbers made before checkpoint `checkpoint` (0-based)."""
        return range(self._cut(self.kills, checkpoint), self._cut(self.kills, checkpoint + 1))

    def _cut(self, total: int, checkpoint: int) -> int:
        return total * checkpoint // self.checkpoints


def _env_int(name: str, default: object) -> int:
    key = f"CLOB_CHAOS_{name.upper()}"
    raw = os.environ.get(key)
    if raw is None:
        assert isinstance(default, int)
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{key} must be a positive integer, got {raw!r}")
    return int(raw)


class Pace:
    """Interleave the kills with the stream of commands of every market.

    Kill `k` waits until the markets together acknowledged `k / kills` of all their
    batches; a market starts a batch only once the kills due before that point are made.
    The count is over all markets, not per market: while one market recovers from a kill,
    the others go on and the next kill may come, so recoveries overlap and the run stays
    short. Neither side waits for the other forever: a kill is due only after batches
    that need no later kill, and within a checkpoint's share (`until`) neither waits for
    what only the next share brings.

    Args:
        size: The run's size.
        markets: Number of markets.
    """

    def __init__(self, size: ChaosSize, markets: int) -> None:
        self._size = size
        self._markets = markets
        self._total = size.batches * markets
        self._acked = 0  # batches acknowledged, over all markets
        self._made = 0  # kills made
        self._last_acked = self._last_made = 0  # at the coming checkpoint
        self._changed = asyncio.Condition()

    def until(self, checkpoint: int) -> None:
        """Run up to checkpoint `checkpoint` (0-based; see `ChaosSize`)."""
        self._last_acked = self._size.batch_range(checkpoint).stop * self._markets
        self._last_made = self._size.kill_range(checkpoint).stop

    async def before_kill(self, kill: int) -> None:
        """Wait until kill `kill` (0-based) is due."""
        due = min(kill * self._total // self._size.kills, self._last_acked)
        async with self._changed:
            await self._changed.wait_for(lambda: self._acked >= due)

    async def before_batch(self) -> None:
        """Wait until the kills due before the next batch are made."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._made >= self._kills_due())

    def _kills_due(self) -> int:
        return min(-(-self._acked * self._size.kills // self._total), self._last_made)

    async def killed(self) -> None:
        """Count a kill made."""
        async with self._changed:
            self._made += 1
            self._changed.notify_all()

    async def acked(self) -> None:
        """Count a batch acknowledged."""
        async with self._changed:
            self._acked += 1
            self._changed.notify_all()


class OrderFlow:
    """Random limit, market, cancel and amend commands of a few owners on one market.

    Args:
        prefix: Prefix of the order and request ids (ids are global, markets share them).
        owners: The trading accounts.
        rng: The seeded source of randomness.
    """

    def __init__(self, prefix: str, owners: list[int], rng: random.Random) -> None:
        self._prefix = prefix
        self.owners = owners
        self._rng = rng
        self._placed: list[tuple[int, str]] = []

    def batch(self, number: int) -> list[OrderRequest]:
        """Return batch `number` (call in order: later batches refer to earlier orders)."""
        return [self._request(f"{self._prefix}{number}.{i}") for i in range(BATCH)]

    def _request(self, rid: str) -> OrderRequest:
        rng = self._rng
        roll = rng.random()
        if roll < 0.15 and self._placed:
            who, oid = rng.choice(self._placed)
            return request(f"c{rid}", who, {"type": "cancel", "id": oid})
        if roll < 0.22 and self._placed:
            who, oid = rng.choice(self._placed)
            return request(f"m{rid}", who, {"type": "amend", "id": oid,
                                            "qty": rng.randint(1, 12)})  # fmt: skip
        owner = rng.choice(self.owners)
        kind = "market" if roll > 0.94 else "limit"
        cmd: JsonDict = {"type": "new", "id": f"o{rid}", "side": rng.choice(["buy", "sell"]),
                         "kind": kind, "qty": rng.randint(1, 10)}  # fmt: skip
        if kind == "limit":
            cmd["price"] = 100 + rng.randint(-6, 6)
        else:
            # Some sweep the book past 5 % above the best ask: their protection budget binds.
            cmd["qty"] = rng.randint(1, 60)
        self._placed.append((owner, cmd["id"]))
        return request(cmd["id"], owner, cmd)


@dataclass
class Lane:
    """One market of the run: its flow, its oracle and what it acknowledged.

    Attributes:
        spec: The market.
        flow: Its commands.
        oracle: The plain engine fed what the market actor acknowledged.
        acked: (request, answer) pairs acknowledged since the last checkpoint.
        commands: Commands acknowledged in all.
        checked_seq: The journal seq the last checkpoint covered.
        checked_event_seq: The engine event seq the last checkpoint covered.
    """

    spec: MarketSpec
    flow: OrderFlow
    oracle: MatchingEngine = field(init=False)
    acked: list[tuple[OrderRequest, OrderResult]] = field(default_factory=list)
    commands: int = 0
    checked_seq: int = 0
    checked_event_seq: int = 0

    def __post_init__(self) -> None:
        self.oracle = MatchingEngine(self.spec)

    def handle(self, namespace: str) -> Any:
        """Return a fresh handle of the market actor (the old one dies with a kill)."""
        return ray.get_actor(f"market:{self.spec.symbol}", namespace=namespace)

    def expect(self, request: OrderRequest) -> tuple[Event, ...]:
        """Feed a command to the oracle as the market actor feeds its engine; return the
        events it emits."""
        item = Item(request.request_id, request.account_id, None, request.command)
        command = engine_command(item, Millis(0))
        if isinstance(command, NewOrder):
            command, _ = resv.protect(
                command, self.oracle.best_ask(), resv.DEFAULT_MAX_SLIPPAGE_BPS
            )
        return tuple(self.oracle.submit(command))


class Killer:
    """Kill market actors and ledger shards at random moments, one incarnation at a time.

    Every target is killed once per round of kills, in a random order. A target is killed
    only once it answers again as a new incarnation (its epoch in
    PostgreSQL rose past the one killed), so every kill ends a live, recovered incarnation
    and no kill waits longer than its target's recovery; other targets may still be
    recovering, so recoveries overlap.

    Args:
        namespace: The Ray namespace of the actors.
        conn: A connection to read the epochs with (used by this killer alone).
        markets: Symbol -> market id of the markets to kill.
        shards: Number of ledger shards.
        rng: The seeded source of randomness.
    """

    def __init__(
        self,
        namespace: str,
        conn: asyncpg.Connection,
        markets: dict[str, int],
        shards: int,
        rng: random.Random,
    ) -> None:
        self._namespace = namespace
        self._conn = conn
        self._market_ids = {f"market:{s}": mid for s, mid in markets.items()}
        self.targets = [*self._market_ids, *(f"ledger:{i}" for i in range(shards))]
        self._rng = rng
        self._killed_epoch: dict[str, int] = {}
        self._round: list[str] = []
        self._round_last = ""
        self.kills: Counter[str] = Counter()

    async def run(self, kills: range, pace: Pace) -> None:
        """Make `kills`, each when `pace` says it is due."""
        for kill in kills:
            await pace.before_kill(kill)
            await self._kill(self._next_target())
            await pace.killed()

    async def recovered(self) -> None:
        """Wait until every target is up as an incarnation newer than the one killed."""
        for target in self.targets:
            await self._up(target)

    async def incarnations(self) -> dict[str, int]:
        """Return each target's epoch: its incarnations so far."""
        return {target: await self._epoch(target) for target in self.targets}

    def _next_target(self) -> str:
        """Return the next target: each target once per round, in a random order, never
        the one just killed (it would only wait for its recovery)."""
        if not self._round:
            last = self._round_last
            self._round = self._rng.sample(self.targets, len(self.targets))
            if self._round[-1] == last:
                self._round[0], self._round[-1] = self._round[-1], self._round[0]
        target = self._round_last = self._round.pop()
        return target

    async def _kill(self, target: str) -> None:
        handle = await self._up(target)
        await asyncio.sleep(self._rng.uniform(0, KILL_JITTER_S))
        self._killed_epoch[target] = await self._epoch(target)
        ray.kill(handle, no_restart=False)
        self.kills[target] += 1

    async def _up(self, target: str) -> Any:
        """Return a handle of `target` once it answers as a newer incarnation."""
        deadline = asyncio.get_running_loop().time() + RECOVERY_TIMEOUT_S
        while True:
            try:
                handle = ray.get_actor(target, namespace=self._namespace)
                # Both calls wait for the incarnation's recovery before they answer.
                call: Any = handle.status if target in self._market_ids else handle.ping
                await call.remote()
                if await self._epoch(target) > self._killed_epoch.get(target, 0):
                    return handle
            except DOWN:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{target} did not come back within {RECOVERY_TIMEOUT_S} s")
            await asyncio.sleep(0.05)

    async def _epoch(self, target: str) -> int:
        if target in self._market_ids:
            sql = "SELECT epoch FROM market_epochs WHERE market_id = $1"
            key = self._market_ids[target]
        else:
            sql = "SELECT epoch FROM ledger_shard_epochs WHERE shard_id = $1"
            key = int(target.removeprefix("ledger:"))
        return int(await self._conn.fetchval(sql, key) or 0)
