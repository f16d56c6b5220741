"""Group commit in the market actor: queued `submit` calls become one pipeline pass.

Calls that arrive while a pass is in flight queue up (`GroupCommit`) and run together in
the next pass, up to `MAX_PASS_REQUESTS` requests: one reserve per shard, one journal
transaction and one ledger apply for all of them, and each call gets exactly its own
answers, in order. `SizeCounts` counts the pass sizes that `status()` reports.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable
from typing import Any

from actors.contracts import OrderRequest, OrderResult

# Largest pipeline pass built from queued submit calls (a single larger call runs whole).
MAX_PASS_REQUESTS = 4096
# Bounds of the pass-size buckets `status()` reports (commands per pass, `le`).
PASS_SIZE_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

Queued = tuple[list[OrderRequest], asyncio.Future[list[OrderResult]]]
"""A waiting `submit` call: its requests and the future of its answers."""


class SizeCounts:
    """How many sizes fell in each bucket (`le` bounds; the last count is past every bound)
    and their sum: a histogram that `status()` can return and a scrape can export."""

    def __init__(self, bounds: tuple[int, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0

    def observe(self, size: int) -> None:
        """Count one size."""
        self.counts[bisect.bisect_left(self.bounds, size)] += 1
        self.total += size

    def to_dict(self) -> dict[str, Any]:
        """Return `{"le": bounds, "counts": per bucket, "sum": total}`."""
        return {"le": list(self.bounds), "counts": list(self.counts), "sum": self.total}


def take_group(queued: list[Queued], limit: int = MAX_PASS_REQUESTS) -> list[Queued]:
    """Pop queued calls from the front while they fit in `limit` requests (at least one)."""
    taken, size = 0, 0
    while taken < len(queued) and (taken == 0 or size + len(queued[taken][0]) <= limit):
        size += len(queued[taken][0])
        taken += 1
    group = queued[:taken]
    del queued[:taken]
    return group


def fail(group: list[Queued], exc: BaseException) -> None:
    """Fail every call of a pass that failed."""
    for _, future in group:
        if not future.done():
            future.set_exception(exc)


class GroupCommit:
    """Queues `submit` calls and runs them as passes, one at a time.

    Args:
        run: Runs one pass of requests (the market's pipeline) and returns their answers;
            an exception fails every call of the pass.
        sizes: Where pass sizes are counted.
    """

    def __init__(
        self,
        run: Callable[[list[OrderRequest]], Awaitable[list[OrderResult]]],
        sizes: SizeCounts,
    ) -> None:
        self._run = run
        self._sizes = sizes
        self._queued: list[Queued] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, requests: list[OrderRequest]) -> list[OrderResult]:
        """Queue a call; return its answers once its pass ran."""
        future: asyncio.Future[list[OrderResult]] = asyncio.get_running_loop().create_future()
        self._queued.append((requests, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queued:
            group = take_group(self._queued)
            merged = [request for requests, _ in group for request in requests]
            self._sizes.observe(len(merged))
            try:
                answers = await self._run(merged)
            except BaseException as exc:  # every caller of the pass gets the failure
                fail(group, exc)
                continue
            start = 0
            for requests, future in group:
                if not future.done():
                    future.set_result(answers[start : start + len(requests)])
                start += len(requests)
