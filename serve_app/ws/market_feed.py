"""One market's public stream on one gateway replica: the book mirror, its subscription
groups, the trades and the ticker.

The hub (`serve_app.ws.hub`) subscribes the market's Redis channel first and calls
`on_subscribed` once Redis confirmed it; the feed then reads the whole book from the
market actor (`l2(None)`, whose `seq` is in the stream's id space), keeps the messages that
arrive meanwhile, drops those with `u <= seq` and applies the rest. A gap (`U` != `u` + 1)
or a lost Redis connection resyncs the mirror the same way, and every group then sends its
members a fresh snapshot.

A group holds the members sharing (depth, interval, snapshot period, format): each of its
messages is encoded once and queued on every member.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from actors.engine import MarketSpec
from actors.stream.messages import MarketBatch, decode_market
from serve_app.ws import svm
from serve_app.ws.book import BookMirror, BookView, Conflator, Formatter, checksum
from serve_app.ws.connection import Connection
from serve_app.ws.protocol import encode
from serve_app.ws.ticker import StatsOf, Ticker
from serve_app.ws.trades import FetchTrades, TradeStream

log = logging.getLogger(__name__)
RESYNC_PAUSE_S = (0.2, 5.0)  # the first and the longest pause between failed book reads

FetchBook = Callable[[], Awaitable[dict[str, Any]]]


class GroupKey(NamedTuple):
    """What the members of a book group share."""

    depth: int
    interval_ms: int
    snapshot_every_ms: int | None
    format: str


def _now_ms() -> float:
    return time.monotonic() * 1000


@dataclass(eq=False)
class Group:
    """The subscribers of one market's book with the same options (see `GroupKey`)."""

    key: GroupKey
    view: BookView
    conflator: Conflator
    members: set[Connection] = field(default_factory=set)
    first_u: int | None = None  # the first batch id not sent yet
    last_e: int = 0
    timer: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        """Forget a scheduled flush."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class MarketFeed:
    """See the module docstring."""

    def __init__(
        self, spec: MarketSpec, fetch_book: FetchBook, fetch_trades: FetchTrades, stats_of: StatsOf
    ) -> None:
        self.symbol = spec.symbol
        self.fmt = Formatter(spec)
        self.mirror = BookMirror()
        self.synced = False
        self.groups: dict[GroupKey, Group] = {}
        self.trades = TradeStream(self.fmt, fetch_trades)
        self._fetch_book = fetch_book
        self._buffer: list[MarketBatch] = []
        self._sync_task: asyncio.Task[None] | None = None
        self.ticker = Ticker(self.fmt, self.mirror, stats_of)

    def empty(self) -> bool:
        """Return whether nobody listens any more."""
        return not self.groups and not self.trades.members and not self.ticker.members

    # -- the hub's side ---------------------------------------------------------------------

    def on_subscribed(self, restored: bool = False) -> None:
        """The Redis channel is subscribed: (re)read the book; after an outage
        (`restored`), send the outage's trades from the market's tape."""
        if restored:
            self.trades.on_restored()
        self._resync()

    def members(self) -> set[Connection]:
        """Return every connection that listens to this market."""
        out = set(self.trades.members) | self.ticker.members
        for group in self.groups.values():
            out.update(group.members)
        return out

    def on_lost(self) -> None:
        """The Redis connection is gone: the mirror is stale until `on_subscribed`."""
        self.synced = False
        for group in self.groups.values():
            group.cancel_timer()

    def on_message(self, data: bytes) -> None:
        """Take one `MarketBatch` from Redis."""
        try:
            batch = decode_market(data)
        except msgspec.DecodeError:
            log.error("%s: undecodable stream message dropped", self.symbol)
            return
        self.trades.on_batch(batch)
        if batch.trades:
            self.ticker.last_price = batch.trades[-1].price
        if not self.synced:
            self._buffer.append(batch)
        elif self.mirror.chains(batch):
            self._apply(batch)
        elif batch.u > self.mirror.u:
            log.warning("%s: gap after %d (next U %d): resync", self.symbol, self.mirror.u, batch.U)
            self._buffer.append(batch)
            self._resync()

    def close(self) -> None:
        """Stop reading the book (nobody listens)."""
        if self._sync_task is not None:
            self._sync_task.cancel()
        for group in self.groups.values():
            group.cancel_timer()

    # -- the mirror --------------------------------------------------------------------------

    def _resync(self) -> None:
        self.synced = False
        for group in self.groups.values():
            group.cancel_timer()
            group.first_u = None
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        pause = RESYNC_PAUSE_S[0]
        while not self.synced:
            try:
                raw = await self._fetch_book()
            except Exception as exc:  # the market is away: retry, growing the pause
                log.warning("%s: book read failed (%s); retrying", self.symbol, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RESYNC_PAUSE_S[1])
                continue
            self._load(raw)
            if not self.synced:  # the read is older than what Redis delivered: again, later
                await asyncio.sleep(pause)
                pause = min(pause * 2, RESYNC_PAUSE_S[1])
        for group in self.groups.values():
            self._snapshot(group, group.members)
        self.ticker.changed(self.mirror)

    def _load(self, raw: dict[str, Any]) -> None:
        bids = [(int(lv["price"]), int(lv["qty"])) for lv in raw["bids"]]
        asks = [(int(lv["price"]), int(lv["qty"])) for lv in raw["asks"]]
        self.mirror.reset(bids, asks, int(raw["seq"]))
        pending, self._buffer = self._buffer, []
        for batch in pending:
            if batch.u <= self.mirror.u:
                continue
            if not self.mirror.chains(batch):  # lost meanwhile: read again
                self._buffer = [b for b in pending if b.u > self.mirror.u]
                return
            self.mirror.apply(batch)
        self.synced = True

    def _apply(self, batch: MarketBatch) -> None:
        self.mirror.apply(batch)
        now = _now_ms()
        for group in self.groups.values():
            if group.first_u is None:
                group.first_u = batch.U
            group.last_e = batch.E
            delay = group.conflator.delay_ms(now)
            if delay == 0:
                self._flush(group)
            elif group.timer is None:
                group.timer = asyncio.get_running_loop().call_later(
                    delay / 1000, self._flush, group
                )
        self.ticker.changed(self.mirror)

    # -- groups ------------------------------------------------------------------------------

    def join_book(self, conn: Connection, key: GroupKey) -> None:
        """Add a member to its group; it gets a snapshot (now, or once the book is read)."""
        group = self.groups.get(key)
        if group is None:
            interval = key.snapshot_every_ms or key.interval_ms
            group = Group(key, BookView(key.depth), Conflator(interval))
            self.groups[key] = group
            if self.synced:
                group.view.load(self.mirror)
        group.members.add(conn)
        if self.synced:
            self._snapshot(group, (conn,))

    def leave_book(self, conn: Connection, key: GroupKey) -> None:
        """Remove a member; drop its group when it was the last."""
        group = self.groups.get(key)
        if group is None:
            return
        group.members.discard(conn)
        if not group.members:
            group.cancel_timer()
            del self.groups[key]

    def _snapshot(self, group: Group, members: Any) -> None:
        if group.view.u != self.mirror.u and group.first_u is None:
            group.view.load(self.mirror)
        body = self._book_message(group, "snapshot", *group.view.top(group.key.depth))
        for conn in list(members):
            conn.send(body, book=True)

    def _flush(self, group: Group) -> None:
        group.timer = None
        if group.first_u is None or not self.synced or group not in self.groups.values():
            return
        if group.key.snapshot_every_ms is not None:
            group.view.load(self.mirror)
            body = self._book_message(group, "snapshot", *group.view.top(group.key.depth))
        else:
            pu = group.view.u
            bids, asks = group.view.advance(self.mirror)
            body = self._book_message(group, "update", bids, asks, pu)
        group.first_u = None
        group.conflator.sent(_now_ms())
        for conn in list(group.members):
            conn.send(body, book=True)

    def _book_message(
        self, group: Group, kind: str, bids: Any, asks: Any, pu: int | None = None
    ) -> bytes:
        view = group.view
        top_bids, top_asks = view.top(10)
        check = checksum(self.fmt.levels(top_bids), self.fmt.levels(top_asks))
        if group.key.format == "svm":
            return svm.book_message(
                self.fmt, self.symbol, kind, view.u, group.last_e, bids, asks, check
            )
        message: dict[str, Any] = {"channel": "orderbook", "market": self.symbol, "type": kind}
        if kind == "update":
            message.update(U=group.first_u, u=view.u, pu=pu)
        else:
            message["u"] = view.u
        message.update(
            bids=self.fmt.levels(bids), asks=self.fmt.levels(asks), checksum=check,
            E=group.last_e or int(time.time() * 1000),
        )  # fmt: skip
        return encode(message)

    # -- ticker ------------------------------------------------------------------------------

    def join_ticker(self, conn: Connection) -> None:
        """Add a ticker subscriber (it gets the current ticker once the book is read)."""
        if self.synced:
            self.ticker.join(conn, self.mirror)
        else:
            self.ticker.members.add(conn)

    def leave_ticker(self, conn: Connection) -> None:
        """Remove a ticker subscriber."""
        self.ticker.members.discard(conn)

    # -- trades ------------------------------------------------------------------------------

    def join_trades(self, conn: Connection, fmt: str) -> None:
        """Add a trades subscriber (trades from the next batch on)."""
        self.trades.members[conn] = fmt

    def leave_trades(self, conn: Connection) -> None:
        """Remove a trades subscriber."""
        self.trades.members.pop(conn, None)
