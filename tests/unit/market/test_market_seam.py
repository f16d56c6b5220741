"""The seam for committed batches (`actors/market/seam.py`): order, seq ranges, typed
events, durable chaining, ephemeral failures, and catch-up after a restart."""

from __future__ import annotations

import asyncio

import pytest
from market_harness import BUYER, SELLER, Market, limit

from actors.engine import Accepted, Fill
from actors.market.ports import FencedError, JournalWriteError
from actors.market.seam import Book, CommittedBatch, CommittedEntry, Consumer, Finish
from tests.support.fakes import Gate

pytestmark = pytest.mark.timeout(30)


class Recorder(Consumer):
    """Records every batch in a log shared with other recorders; durable ones keep a mark
    (`stored`, moved by their finish) and can be held by a gate per batch."""

    def __init__(self, name: str, log: list[tuple[str, int, int]], durable: bool = False) -> None:
        self.name = name
        self.stage = f"tail_{name}"
        self.durable = durable
        self.log = log
        self.batches: list[CommittedBatch] = []
        self.finished: list[int] = []
        self.gates: dict[int, Gate] = {}  # last seq -> the gate its finish waits for
        self.stored = 0

    def committed(self, batch: CommittedBatch, book: Book) -> Finish | None:
        self.log.append((self.name, batch.first_seq, batch.last_seq))
        self.batches.append(batch)

        async def finish() -> None:
            gate = self.gates.get(batch.last_seq)
            if gate is not None:
                await gate.wait()
            self.finished.append(batch.last_seq)
            self.stored = batch.last_seq

        return finish if self.durable else None

    async def high_water(self) -> int:
        return self.stored


class Failing(Consumer):
    """An ephemeral consumer that fails in `committed` (`at="committed"`) or in its finish."""

    name = "failing"

    def __init__(self, at: str) -> None:
        self.at = at

    def committed(self, batch: CommittedBatch, book: Book) -> Finish | None:
        if self.at == "committed":
            raise RuntimeError("publisher bug")

        async def finish() -> None:
            raise RuntimeError("publisher's peer went away")

        return finish


async def test_each_batch_goes_once_to_every_consumer_in_order_with_its_seq_range() -> None:
    log: list[tuple[str, int, int]] = []
    first, second = Recorder("first", log), Recorder("second", log, durable=True)
    m = Market(extra=[first, second])
    await m.start()
    await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    await m.submit(limit(BUYER, "b1", "buy", 100, 2), limit(BUYER, "b2", "buy", 90, 1))
    await m.settled()
    assert log == [("first", 1, 1), ("second", 1, 1), ("first", 2, 3), ("second", 2, 3)]
    batch = first.batches[1]
    assert (batch.market, batch.epoch) == ("T-Q", m.core.epoch)
    assert [e.seq for e in batch.entries] == [2, 3]
    b1: CommittedEntry = batch.entries[0]
    assert [type(e) for e in b1.events] == [Accepted, Fill] and b1.account_id == BUYER
    # Fees come with the entry: 200 Q of notional, maker 10 bps, taker 20 bps, rounded up.
    assert [tuple(f) for f in b1.fees] == [(200, 1, 1)]


async def test_durable_finishes_complete_in_journal_order() -> None:
    log: list[tuple[str, int, int]] = []
    slow = Recorder("slow", log, durable=True)
    slow.gates[1] = Gate(closed=True)
    m = Market(extra=[slow])
    await m.start()
    await m.submit(limit(SELLER, "s1", "sell", 100, 5))  # answered while its finish waits
    await m.submit(limit(SELLER, "s2", "sell", 101, 5))
    await asyncio.sleep(0.02)
    assert slow.finished == [] and m.core.seam.lag(m.core.seq)["slow"] == 2
    slow.gates[1].open()
    await m.settled()
    assert slow.finished == [1, 2] and m.core.seam.lag(m.core.seq)["slow"] == 0


@pytest.mark.parametrize("at", ["committed", "finish"])
async def test_an_ephemeral_consumer_failure_is_counted_and_fails_no_batch(at: str) -> None:
    m = Market(extra=[Failing(at)])
    await m.start()
    [sell] = await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    [buy] = await m.submit(limit(BUYER, "b1", "buy", 100, 5))
    await m.settled()
    await asyncio.sleep(0.01)  # the failed finishes are reported in the background
    assert sell.ok and buy.ok and m.store.mark == 2
    assert m.core.seam.failures["failing"] == 2
    assert m.balance(BUYER, "T") == (1_005, 0)  # the ledger consumer went on


async def test_a_failed_durable_consumer_fails_the_tail_and_stops_the_next_pass() -> None:
    m = Market()
    await m.start()
    m.ledger.fail_apply = RuntimeError("shard lost the entry")
    [sell] = await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    assert sell.ok and sell.seq == 1  # journaled: answered
    with pytest.raises(JournalWriteError, match="ledger failed"):
        await m.settled()
    with pytest.raises(JournalWriteError):
        await m.submit(limit(SELLER, "s2", "sell", 100, 5))
    assert len(m.store.rows) == 1


async def test_a_restart_hands_a_durable_consumer_what_is_after_its_mark() -> None:
    log: list[tuple[str, int, int]] = []
    durable = Recorder("durable", log, durable=True)
    m = Market(extra=[durable])
    await m.start()
    await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    await m.submit(limit(BUYER, "b1", "buy", 100, 2))
    await m.submit(limit(BUYER, "b2", "buy", 100, 1))
    await m.settled()
    live = [b.entries for b in durable.batches[1:]]
    durable.stored = 1  # its output after seq 1 was lost in a crash
    await m.start()
    assert log[-1] == ("durable", 2, 3)
    replayed = durable.batches[-1].entries
    assert [(e.seq, e.events, e.fees) for e in replayed] == [
        (e.seq, e.events, e.fees) for entries in live for e in entries
    ]
    assert durable.stored == 3


async def test_the_projection_lost_in_a_crash_is_written_by_the_next_incarnation() -> None:
    m = Market()
    old = await m.start()
    m.store.project_gate.close()
    [sell] = await m.submit(limit(SELLER, "s1", "sell", 100, 5))
    assert sell.ok and m.store.mark == 0
    new = asyncio.ensure_future(m.start())  # takes the epoch, replays, waits to project
    await asyncio.sleep(0.05)
    assert not new.done() and m.store.epoch == old.epoch + 1
    m.store.project_gate.open()  # the old write runs into the new epoch first
    await asyncio.wait_for(new, 5)
    assert m.store.mark == 1 and m.store.orders["s1"]["status"] == "open"
    with pytest.raises(FencedError):
        await old.settled()
    assert old.fenced
