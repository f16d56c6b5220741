"""A market's feed over fakes: the book read while messages buffer, chained updates, a gap
resyncs with fresh snapshots, trades once each."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from actors.engine import MarketSpec
from actors.stream.messages import Level, MarketBatch, Trade, encode
from serve_app.ws.book import Formatter, checksum
from serve_app.ws.connection import Connection, Limits
from serve_app.ws.market_feed import GroupKey, MarketFeed

SPEC = MarketSpec("SOL-USDC", base_decimals=9, quote_decimals=6, tick_size=10_000,
                  lot_size=1_000_000)  # fmt: skip
EVERY_BATCH = GroupKey(depth=5, interval_ms=0, snapshot_every_ms=None, format="native")


class Market:
    """The market actor's `l2`: a book at a seq, answered when released."""

    def __init__(self) -> None:
        self.book: dict[str, Any] = {"bids": [], "asks": [], "seq": 0}
        self.reads = 0
        self.release = asyncio.Event()
        self.release.set()

    async def l2(self) -> dict[str, Any]:
        self.reads += 1
        await self.release.wait()
        return self.book


class Client:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.conn = Connection(self.send, Limits(), "t")
        self.conn.start()

    async def send(self, message: dict[str, Any]) -> None:
        self.frames.append(json.loads(message["text"]))


async def _no_stats(symbol: str) -> dict[str, Any]:
    return {}


async def _no_trades() -> list[dict[str, Any]]:
    return []


def _tape(*seqs: int) -> Any:
    async def recent_trades() -> list[dict[str, Any]]:
        return [{"seq": s, "price": 100, "qty": 1, "taker_side": "sell", "ts": 0}
                for s in reversed(seqs)]  # fmt: skip

    return recent_trades


async def _tape_away() -> list[dict[str, Any]]:
    raise ConnectionError("the market is away")


def _span(tens: int, trades: int) -> bytes:
    """A batch of ids tens*10 .. tens*10+9 whose trades are tens*10, tens*10+1, ..."""
    first = tens * 10
    return encode(MarketBatch(
        "SOL-USDC", U=first, u=first + 9, E=1,
        trades=[Trade(first + i, 100, 1, "buy", 0, "m", "t") for i in range(trades)],
    ))  # fmt: skip


def _batch(
    u: int, bids: list[tuple[int, int]] = (), trades: int = 0, first: int | None = None
) -> bytes:
    return encode(MarketBatch(
        "SOL-USDC", U=u if first is None else first, u=u, E=1,
        bids=[Level(p, q, 1) for p, q in bids],
        trades=[Trade(u * 10 + i, 100, 1, "buy", 0, "m", "t") for i in range(trades)],
    ))  # fmt: skip


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_messages_during_the_book_read_are_kept_and_chained() -> None:
    market, client = Market(), Client()
    market.book = {"bids": [{"price": 100, "qty": 5, "count": 1}], "asks": [], "seq": 2}
    market.release.clear()
    feed = MarketFeed(SPEC, market.l2, _no_trades, _no_stats)
    feed.join_book(client.conn, EVERY_BATCH)
    feed.on_subscribed()
    feed.on_message(_batch(2, [(100, 5)]))  # already in the book read: dropped
    feed.on_message(_batch(3, [(101, 1)]))
    market.release.set()
    await _settle()
    feed.on_message(_batch(4, [(100, 0)]))
    await _settle()
    kinds = [(f["type"], f.get("U"), f["u"], f.get("pu")) for f in client.frames]
    assert kinds == [("snapshot", None, 3, None), ("update", 4, 4, 3)]
    assert client.frames[0]["bids"] == [
        ["1.010000", "0.001000000"],
        ["1.000000", "0.005000000"],
    ]
    assert client.frames[1]["bids"] == [["1.000000", "0"]]
    fmt = Formatter(SPEC)
    assert client.frames[1]["checksum"] == checksum(fmt.levels([(101, 1)]), [])


async def test_a_gap_reads_the_book_again_and_snapshots_every_member() -> None:
    market, client = Market(), Client()
    feed = MarketFeed(SPEC, market.l2, _no_trades, _no_stats)
    feed.join_book(client.conn, EVERY_BATCH)
    feed.on_subscribed()
    await _settle()
    feed.on_message(_batch(1, [(100, 1)]))
    market.book = {"bids": [{"price": 100, "qty": 7, "count": 2}], "asks": [], "seq": 6}
    feed.on_message(_batch(6, [(100, 7)], first=5))  # 2..4 lost
    await _settle()
    assert market.reads == 2
    assert [(f["type"], f["u"]) for f in client.frames] == [
        ("snapshot", 0), ("update", 1), ("snapshot", 6),
    ]  # fmt: skip
    assert client.frames[-1]["bids"] == [["1.000000", "0.007000000"]]


async def test_trades_go_out_once_each_and_a_gap_is_filled_from_the_tape() -> None:
    market, client = Market(), Client()
    market.book = {"bids": [], "asks": [], "seq": 9}
    feed = MarketFeed(SPEC, market.l2, _tape(10, 11, 20, 21, 30), _no_stats)
    feed.join_trades(client.conn, "native")
    feed.on_subscribed()
    await _settle()
    feed.on_message(_span(1, trades=2))
    feed.on_message(_span(1, trades=2))  # a replay: not again
    feed.on_message(_span(3, trades=1))  # ids 20..29 (trades 20 and 21) lost
    feed.on_message(_span(4, trades=1))  # waits for the fill
    await _settle()
    seqs = [[t["seq"] for t in f["trades"]] for f in client.frames if "trades" in f]
    assert seqs == [[10, 11], [20, 21], [30], [40]]
    assert all(f.get("op") != "resync" for f in client.frames)


async def test_a_gap_the_tape_cannot_fill_is_announced() -> None:
    market, client = Market(), Client()
    feed = MarketFeed(SPEC, market.l2, _tape_away, _no_stats)
    feed.join_trades(client.conn, "native")
    feed.on_subscribed()
    await _settle()
    feed.on_message(_batch(1, trades=1))
    market.book = {"bids": [], "asks": [], "seq": 3}
    feed.on_message(_batch(3, trades=1))
    await _settle()
    assert [f.get("op") or [t["seq"] for t in f["trades"]] for f in client.frames] == [
        [10], "resync", [30],
    ]  # fmt: skip
    assert client.frames[1]["reason"] == "gap"


async def test_after_an_outage_its_trades_come_from_the_tape_once() -> None:
    market, client = Market(), Client()
    market.book = {"bids": [], "asks": [], "seq": 9}
    feed = MarketFeed(SPEC, market.l2, _tape(10, 11, 20, 21), _no_stats)
    feed.join_trades(client.conn, "native")
    feed.on_subscribed()
    await _settle()
    feed.on_message(_span(1, trades=2))
    feed.on_lost()
    market.book = {"bids": [], "asks": [], "seq": 29}
    feed.on_subscribed(restored=True)
    feed.on_message(_span(2, trades=2))  # published again after the outage: not twice
    feed.on_message(_span(3, trades=1))
    await _settle()
    seqs = [[t["seq"] for t in f["trades"]] for f in client.frames if "trades" in f]
    assert seqs == [[10, 11], [20, 21], [30]]
