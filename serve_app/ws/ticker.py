"""The `ticker` channel of one market on one replica: best bid and ask with their
quantities (from the book mirror), the last trade price (from the stream) and the 24 h
stats (REST's market stats, from the gateway's stats cache), sent when the top of the book
or the last price changes, at most once per `INTERVAL_MS` (leading edge)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from serve_app.ws.book import BookMirror, Conflator, Formatter
from serve_app.ws.connection import Connection
from serve_app.ws.protocol import encode

log = logging.getLogger(__name__)
INTERVAL_MS = 100

StatsOf = Callable[[str], Awaitable[dict[str, Any]]]


class Ticker:
    """See the module docstring."""

    def __init__(self, fmt: Formatter, mirror: BookMirror, stats_of: StatsOf) -> None:
        self.members: set[Connection] = set()
        self.last_price: int | None = None  # ticks
        self._fmt = fmt
        self._mirror = mirror
        self._stats_of = stats_of
        self._conflator = Conflator(INTERVAL_MS)
        self._sent: tuple[Any, ...] | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def join(self, conn: Connection, mirror: BookMirror) -> None:
        """Add a member; it gets the current ticker at once."""
        self._mirror = mirror
        self.members.add(conn)
        self._sent = None  # send even if unchanged, so the newcomer has one
        self.changed(mirror)

    def changed(self, mirror: BookMirror) -> None:
        """Note a new book or trade; send when the interval allows."""
        self._mirror = mirror
        if not self.members:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        delay = self._conflator.delay_ms(time.monotonic() * 1000)
        self._task = asyncio.get_running_loop().create_task(self._send_after(delay / 1000))

    async def _send_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self._again = False
        bid, ask = self._mirror.best()
        state = (bid, ask, self.last_price)
        if state == self._sent:
            return
        try:
            stats = await self._stats_of(self._fmt.spec.symbol)
        except Exception as exc:  # stats are a nicety: the book and price go out anyway
            log.warning("ticker stats of %s: %s", self._fmt.spec.symbol, exc)
            stats = None
        self._sent = state
        self._conflator.sent(time.monotonic() * 1000)
        body = encode(self._message(bid, ask, stats))
        for conn in list(self.members):
            conn.send(body)
        if self._again:
            self._task = None
            self.changed(self._mirror)

    def _message(self, bid: Any, ask: Any, stats: dict[str, Any] | None) -> dict[str, Any]:
        fmt = self._fmt
        last = None if self.last_price is None else fmt.price(self.last_price)
        return {
            "channel": "ticker", "market": fmt.spec.symbol,
            "bid": None if bid is None else fmt.price(bid[0]),
            "bid_qty": None if bid is None else fmt.qty(bid[1]),
            "ask": None if ask is None else fmt.price(ask[0]),
            "ask_qty": None if ask is None else fmt.qty(ask[1]),
            "last_price": last if last is not None else (stats or {}).get("last_price"),
            "stats": stats, "u": self._mirror.u, "E": int(time.time() * 1000),
        }  # fmt: skip
