"""Calls from a market actor to the ledger shards: one call per shard, in parallel, over
each shard's direct channel (`actors.direct`; its endpoint comes through Ray). The Ray
adapter of the pipeline's `Ledger` port (`ports.py`).

A shard that is restarting breaks its channel (`ChannelClosedError`) and answers the
endpoint's Ray call with `RayActorError` (or `ActorUnavailableError`); the calls here retry
with backoff. `apply`, `sync` and `release_orphans` are idempotent; so is
`reserve` within one shard incarnation (a hold is keyed by its order and terms), and a
retry that reaches a new incarnation gets that incarnation's epoch, which the journal
checks (see docs/ARCHITECTURE.md, "Reservations in memory").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.accounts import AccountId
from actors.contracts import LedgerEntry, Reservation
from actors.direct import ChannelClosedError, DirectClient, client_of
from actors.ledger.rules import shard_of

_T = TypeVar("_T")
log = logging.getLogger(__name__)
MAX_BACKOFF_S = 1.0
MARK_LAG_ENTRIES = 4_096  # a shard's mark of the market moves at least this often


class _NotFoundError(Exception):
    """The named shard actor is not registered (yet)."""


_Sent = tuple[DirectClient, Awaitable[_T]] | None  # a call sent now, and its client

RETRYABLE = (RayActorError, ActorUnavailableError, _NotFoundError, ChannelClosedError)


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
        self._handles: dict[int, DirectClient] = {}
        # Per shard, the journal seq through which it was sent (or has read) every entry
        # of this client's market that concerns it: the next routed apply's `since`.
        self._complete: dict[int, int] = {}

    def _handle(self, shard: int) -> DirectClient:
        handle = self._handles.get(shard)
        if handle is None:
            try:
                actor = ray.get_actor(f"ledger:{shard}", namespace=self._namespace)
            except ValueError as exc:
                raise _NotFoundError(str(exc)) from exc
            handle = self._handles[shard] = client_of(actor)
        return handle

    def _forget(self, shard: int, handle: DirectClient | None) -> None:
        """Drop a shard's client after a call on it failed (unless it was replaced)."""
        if handle is not None and self._handles.get(shard) is handle:
            del self._handles[shard]
            handle.close()

    def _submit(self, shard: int, call: Callable[[DirectClient], Awaitable[_T]]) -> _Sent[_T]:
        """Send a call to a shard now (None if its handle is not found: `_call` retries)."""
        try:
            handle = self._handle(shard)
        except _NotFoundError:
            return None
        return handle, call(handle)

    async def _call(
        self,
        shard: int,
        call: Callable[[DirectClient], Awaitable[_T]],
        first: _Sent[_T] = None,
    ) -> _T:
        """Call one shard, retrying while it restarts (or is not registered yet).

        `first`: the first attempt and its client, when it was already sent (see
        `start_apply`).
        """
        delay = 0.02
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._deadline_s
        while True:
            used: DirectClient | None = None
            try:
                if first is not None:
                    (used, attempt), first = first, None
                else:
                    used = self._handle(shard)
                    attempt = call(used)
                return await attempt
            except RETRYABLE as exc:
                if loop.time() > give_up:
                    raise
                log.info("ledger shard %d unavailable (%s); retrying", shard, type(exc).__name__)
                self._forget(shard, used)
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
                shard, lambda h: h.call("reserve", batch, market_epoch)
            )
            return answer

        shards = list(by_shard)
        answers = await asyncio.gather(*(one(s, by_shard[s]) for s in shards))
        out: list[tuple[int, int] | None] = [None] * len(reservations)
        for shard, (epoch, flags) in zip(shards, answers, strict=True):
            for i, ok in zip(by_shard[shard], flags, strict=True):
                out[i] = (shard, epoch) if ok else None
        return out

    def start_apply(
        self,
        market: str,
        entries: list[LedgerEntry],
        accounts: Sequence[set[AccountId] | None],
    ) -> asyncio.Task[None]:
        """Send a batch's (non-empty) journal entries now, each to the shards of the
        accounts it concerns (`accounts[i]`, None: every shard; see `plan_apply` and
        `actors.market.routing`); return the wait for them.

        The calls leave before this returns, so a shard receives them ahead of anything
        this market sends it later (the next batch's reservations), while the caller goes
        on without waiting. Awaiting the result retries a shard that was restarting.
        """
        plan = plan_apply(entries, accounts, self.shard_count, self._complete)
        sent: list[tuple[int, Callable[[DirectClient], Awaitable[None]], _Sent[None]]] = []
        for shard, batch, since, through in plan:

            def call(
                h: DirectClient,
                batch: list[LedgerEntry] = batch,
                since: int = since,
                through: int = through,
            ) -> Awaitable[None]:
                return h.call("apply", market, batch, since, through)

            sent.append((shard, call, self._submit(shard, call)))

        async def wait() -> None:
            await asyncio.gather(*(self._call(s, call, first) for s, call, first in sent))

        return asyncio.ensure_future(wait())

    async def sync_all(self, market: str) -> list[int]:
        """Make every shard catch up with the market's journal; return their high-water
        marks (from which routed applies go on: this client serves one market)."""
        marks = list(
            await asyncio.gather(
                *(self._call(s, lambda h: h.call("sync", market)) for s in range(self.shard_count))
            )
        )
        self._complete = dict(enumerate(marks))
        return marks

    async def release_orphans(
        self, market: str, live_order_ids: Sequence[str], market_epoch: int
    ) -> int:
        """Release, on every shard, reservations of the market's orders that are not live
        and holds of its incarnations before `market_epoch`."""
        live = list(live_order_ids)
        counts = await asyncio.gather(
            *(
                self._call(s, lambda h: h.call("release_orphans", market, live, market_epoch))
                for s in range(self.shard_count)
            )
        )
        return int(sum(counts))


def plan_apply(
    entries: Sequence[LedgerEntry],
    accounts: Sequence[set[AccountId] | None],
    shard_count: int,
    complete: dict[int, int],
) -> list[tuple[int, list[LedgerEntry], int, int]]:
    """Plan the routed apply of a batch's journal entries: `(shard, entries, since,
    through)` per shard to call, and move `complete` (per shard, the seq through which it
    was sent every entry that concerns it) on to the batch's last seq for each.

    An entry goes to the shards of the accounts it concerns (`accounts[i]`, None: every
    shard). Each call holds every entry in `(since, through]` that concerns its shard,
    `since` being the `through` of the call before (before the first, unknown: `since =
    through`, and the shard reads the journal itself). A shard concerned by no entry is not
    called, unless its mark would lag `MARK_LAG_ENTRIES` behind: then an empty call moves
    it, so that a restarting shard never re-reads a long stretch of journal that is not its.
    """
    through = entries[-1].seq
    routed: list[list[LedgerEntry]] = [[] for _ in range(shard_count)]
    everyone = range(shard_count)
    for entry, concerned in zip(entries, accounts, strict=True):
        shards = everyone if concerned is None else {shard_of(a, shard_count) for a in concerned}
        for shard in shards:
            routed[shard].append(entry)
    plan: list[tuple[int, list[LedgerEntry], int, int]] = []
    for shard, batch in enumerate(routed):
        since = complete.get(shard, through)
        if not batch and through - since < MARK_LAG_ENTRIES:
            continue
        complete[shard] = through
        plan.append((shard, batch, since, through))
    return plan
