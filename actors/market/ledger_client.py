"""Calls from a market actor to the ledger shards: one call per shard, in parallel.

A shard that is restarting answers `RayActorError` (or `ActorUnavailableError`); the calls
here retry with backoff. `apply`, `sync` and `release_orphans` are idempotent; so is
`reserve` within one shard incarnation (a hold is keyed by its order and terms), and a
retry that reaches a new incarnation gets that incarnation's epoch, which the journal
checks (see docs/ARCHITECTURE.md, "Reservations in memory").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.contracts import LedgerEntry, Reservation
from actors.ledger.rules import shard_of

_T = TypeVar("_T")
log = logging.getLogger(__name__)
MAX_BACKOFF_S = 1.0
INLINE_APPLY_ENTRIES = 64  # larger apply batches go through the object store once


class _NotFoundError(Exception):
    """The named shard actor is not registered (yet)."""


RETRYABLE = (RayActorError, ActorUnavailableError, _NotFoundError)


class LedgerClient:
    """Handles of the ledger shards `ledger:{i}` in `namespace`.

    Args:
        namespace: Ray namespace of the shards.
        shard_count: Number of shards.
        deadline_s: How long a call keeps retrying a shard that does not answer.
    """

    def __init__(self, namespace: str, shard_count: int, deadline_s: float = 120.0) -> None:
        self._namespace = namespace
        self.shard_count = shard_count
        self._deadline_s = deadline_s
        self._handles: dict[int, Any] = {}

    def _handle(self, shard: int) -> Any:
        handle = self._handles.get(shard)
        if handle is None:
            try:
                handle = ray.get_actor(f"ledger:{shard}", namespace=self._namespace)
            except ValueError as exc:
                raise _NotFoundError(str(exc)) from exc
            self._handles[shard] = handle
        return handle

    def _submit(self, shard: int, call: Callable[[Any], Awaitable[_T]]) -> Awaitable[_T] | None:
        """Send a call to a shard now (None if its handle is not found: `_call` retries)."""
        try:
            return call(self._handle(shard))
        except _NotFoundError:
            return None

    async def _call(
        self,
        shard: int,
        call: Callable[[Any], Awaitable[_T]],
        first: Awaitable[_T] | None = None,
    ) -> _T:
        """Call one shard, retrying while it restarts (or is not registered yet).

        `first`: the first attempt, when it was already sent (see `start_apply`).
        """
        delay = 0.02
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._deadline_s
        while True:
            try:
                attempt, first = first, None
                return await (attempt if attempt is not None else call(self._handle(shard)))
            except RETRYABLE as exc:
                if loop.time() > give_up:
                    raise
                log.info("ledger shard %d unavailable (%s); retrying", shard, type(exc).__name__)
                self._handles.pop(shard, None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def reserve(
        self, reservations: list[Reservation], market_epoch: int
    ) -> list[tuple[int, int] | None]:
        """Hold funds on every shard concerned, in parallel.

        Returns:
            Per reservation, its hold: (the shard holding it, that shard's epoch), or None
            if it was refused (short of funds).
        """
        by_shard: dict[int, list[int]] = {}
        for i, r in enumerate(reservations):
            by_shard.setdefault(shard_of(r.account_id, self.shard_count), []).append(i)

        async def one(shard: int, idx: list[int]) -> tuple[int, list[bool]]:
            batch = [reservations[i] for i in idx]
            answer: tuple[int, list[bool]] = await self._call(
                shard, lambda h: h.reserve.remote(batch, market_epoch)
            )
            return answer

        shards = list(by_shard)
        answers = await asyncio.gather(*(one(s, by_shard[s]) for s in shards))
        out: list[tuple[int, int] | None] = [None] * len(reservations)
        for shard, (epoch, flags) in zip(shards, answers, strict=True):
            for i, ok in zip(by_shard[shard], flags, strict=True):
                out[i] = (shard, epoch) if ok else None
        return out

    def start_apply(self, market: str, entries: list[LedgerEntry]) -> asyncio.Task[None]:
        """Send a batch's (non-empty) journal entries to every shard now (each keeps its own
        accounts); return the wait for them.

        The calls leave before this returns, so a shard receives them ahead of anything
        this market sends it later (the next batch's reservations), while the caller goes
        on without waiting. Awaiting the result retries a shard that was restarting.
        """
        # A large batch is serialised once into the object store and fetched by every
        # shard; a small one rides inline in each call (a `ray.put` costs more than it saves).
        ref: Any = ray.put(entries) if len(entries) > INLINE_APPLY_ENTRIES else entries

        def call(h: Any) -> Awaitable[None]:
            return h.apply.remote(market, ref)  # type: ignore[no-any-return]

        sent = [(s, self._submit(s, call)) for s in range(self.shard_count)]

        async def wait() -> None:
            await asyncio.gather(*(self._call(s, call, first) for s, first in sent))

        return asyncio.ensure_future(wait())

    async def sync_all(self, market: str) -> list[int]:
        """Make every shard catch up with the market's journal; return their high-water marks."""
        return list(
            await asyncio.gather(
                *(self._call(s, lambda h: h.sync.remote(market)) for s in range(self.shard_count))
            )
        )

    async def release_orphans(
        self, market: str, live_order_ids: Sequence[str], market_epoch: int
    ) -> int:
        """Release, on every shard, reservations of the market's orders that are not live
        and holds of its incarnations before `market_epoch`."""
        ref = ray.put(live_order_ids)
        counts = await asyncio.gather(
            *(
                self._call(s, lambda h: h.release_orphans.remote(market, ref, market_epoch))
                for s in range(self.shard_count)
            )
        )
        return int(sum(counts))
