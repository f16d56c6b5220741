"""A ledger shard's background writes: the first after a quiet spell starts at once, later
ones at most once per `WRITE_BEHIND_INTERVAL_S`, each carrying every change made so far.

The real `_write_behind` / `_flush_behind` run on a shard built without its constructor
(no Ray, no database); only `_write` is replaced by a recorder.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from actors.ledger import shard as shard_module
from actors.ledger.shard import LedgerShard

INTERVAL_S = 0.05


class _Recorder:
    """Stands in for `LedgerShard._write`: records when each write starts and what it took."""

    def __init__(self, shard: LedgerShard) -> None:
        self.shard = shard
        self.changes = 0  # changes made and not yet taken by a write
        self.writes: list[tuple[float, int]] = []  # (start, changes taken)

    async def __call__(self) -> None:
        self.shard._dirty = False  # as `_write` does, before it takes the changes
        self.writes.append((time.monotonic(), self.changes))
        self.changes = 0
        await asyncio.sleep(0.002)  # the statement

    def change(self) -> None:
        """Make one change and start writing it behind, as a mutating call does."""
        self.changes += 1
        self.shard._write_behind()


def _shard(monkeypatch: pytest.MonkeyPatch) -> tuple[LedgerShard, _Recorder]:
    monkeypatch.setattr(shard_module, "WRITE_BEHIND_INTERVAL_S", INTERVAL_S)
    shard = LedgerShard.__new__(LedgerShard)
    shard._flusher = None
    shard._dirty = False
    shard._last_write = 0.0
    recorder = _Recorder(shard)
    monkeypatch.setattr(shard, "_write", recorder)
    return shard, recorder


async def test_a_change_after_a_quiet_spell_is_written_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shard, recorder = _shard(monkeypatch)
    recorder.change()
    for _ in range(3):
        await asyncio.sleep(0)
    assert [taken for _, taken in recorder.writes] == [1]
    assert shard._flusher is not None
    await shard._flusher


async def test_a_stream_of_changes_is_written_at_most_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shard, recorder = _shard(monkeypatch)
    last_change = 0.0
    for _ in range(40):  # 40 passes 5 ms apart: 200 ms of changes
        recorder.change()
        last_change = time.monotonic()  # before the pause: a loaded host stretches it
        await asyncio.sleep(0.005)
    assert shard._flusher is not None
    await shard._flusher
    starts = [start for start, _ in recorder.writes]
    assert all(b - a >= INTERVAL_S - 0.001 for a, b in itertools.pairwise(starts))
    assert len(starts) <= 1 + (last_change - starts[0]) / INTERVAL_S + 1
    # Nothing is lost: every change was taken by some write, the last one after the last
    # change.
    assert sum(taken for _, taken in recorder.writes) == 40
    assert starts[-1] >= last_change - 0.001
    assert recorder.changes == 0
