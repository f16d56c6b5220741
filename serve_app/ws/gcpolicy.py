"""Garbage collection in a WebSocket replica: pauses that follow what changed, not what
is held.

CPython's full (generation 2) collection scans every tracked object, with the event loop
stopped. A replica holds about 180 per open socket (ours, Serve's, uvicorn's and the
`websockets` library's), so at 10,000 sockets one full collection held every socket's
messages for 1.5-2 s (bench/README.md); and full collections come whenever the objects
promoted since the last one pass a quarter of those it left, i.e. each time the sockets
grow by a quarter.

`GcPolicy` freezes (`gc.freeze`) what survives each full collection: later collections,
full ones included, scan only what is newer. Frozen objects are still freed by reference
counting; only garbage in reference cycles among them waits. To bound it, once the
sockets closed since the freeze reach a quarter of those open (at least `MIN_CHURN`),
the policy unfreezes: the next full collection scans everything once, frees those
cycles, and the policy freezes again after it. The counts and the seconds of full
collections are in `/ws/metrics` (counted with `ws.gc_freeze` off too).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

MIN_CHURN = 1_000
"""Sockets closed since the freeze before a thaw, at least."""


class GcModule(Protocol):
    """What the policy uses of `gc` (a fake in the unit tests)."""

    callbacks: list[Callable[[str, dict[str, Any]], None]]

    def freeze(self) -> None:
        """Move every tracked object to the permanent generation."""

    def unfreeze(self) -> None:
        """Move the permanent generation back to the oldest one."""


class GcPolicy:
    """See the module docstring.

    Args:
        open_sockets: The replica's open sockets now.
        freeze: Whether to freeze (`ws.gc_freeze`); without, it only counts.
        module: The `gc` module (or a fake).
    """

    def __init__(
        self, open_sockets: Callable[[], int], freeze: bool = True,
        module: GcModule | None = None,
    ) -> None:  # fmt: skip
        self._open = open_sockets
        self._freezes = freeze
        self._gc: GcModule = module if module is not None else cast(GcModule, gc)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = 0.0
        self.frozen = False
        self.closed_since_freeze = 0
        self.full_collections = 0
        self.full_seconds = 0.0
        self.thaws = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch the collections from now on (the freezes run on `loop`); a second call
        does nothing."""
        if self._loop is not None:
            return
        self._loop = loop
        self._gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        """Stop watching (a test's cleanup); what is frozen stays frozen."""
        if self._on_gc in self._gc.callbacks:
            self._gc.callbacks.remove(self._on_gc)

    def closed(self) -> None:
        """Note a closed socket; unfreeze once enough have closed since the freeze."""
        self.closed_since_freeze += 1
        if self.frozen and self.closed_since_freeze >= max(MIN_CHURN, self._open() // 4):
            self._gc.unfreeze()
            self.frozen = False
            self.thaws += 1

    def freeze(self) -> None:
        """Freeze what is tracked now (after a full collection)."""
        self._gc.freeze()
        self.frozen = True
        self.closed_since_freeze = 0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Called by the collector, in whichever thread allocated: only note and schedule.
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.full_collections += 1
        self.full_seconds += time.perf_counter() - self._started
        if self._freezes and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.freeze)
