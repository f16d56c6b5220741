"""The `trades` channel of one market on one replica: one message per batch with trades,
each trade with the fields of REST's public trades (`GET /trades/{market}`), or seed 002's
`TradeExecution` per trade in the `svm` format.

Each trade goes out once, in order. When the market's stream skips ids (a message lost
between the market and this replica), the missing trades are read from the market actor's
tape of recent trades (`recent_trades`, the last 1,000) and sent before anything newer;
batches that arrive meanwhile wait. Only when the tape cannot fill the gap (the market is
away) do the subscribers get a `resync` notice (`reason` `gap`) to read REST instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.stream.messages import MarketBatch, Trade
from serve_app.gateway import views
from serve_app.ws import svm
from serve_app.ws.book import Formatter
from serve_app.ws.connection import Connection
from serve_app.ws.protocol import encode

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TAPE_SIZE = 1000  # the market actor keeps this many recent trades

FetchTrades = Callable[[], Awaitable[list[dict[str, Any]]]]


def trades_messages(fmt: Formatter, batch: MarketBatch, format_: str) -> list[bytes]:
    """Return the encoded messages of a batch's trades in a format (`native`, `svm`)."""
    if format_ == "svm":
        return [svm.trade_message(fmt, batch.market, t) for t in batch.trades]
    trades: list[dict[str, Any]] = [
        views.public_trade(
            fmt.spec, t.id, t.taker_side, t.price, t.qty, _EPOCH + timedelta(milliseconds=t.ts)
        ).model_dump(mode="json", exclude=set(views.SETTLEMENT_FIELDS))
        for t in batch.trades
    ]
    return [encode({"channel": "trades", "market": batch.market, "trades": trades, "E": batch.E})]


def _trade(raw: dict[str, Any]) -> Trade:
    return Trade(
        int(raw["seq"]), int(raw["price"]), int(raw["qty"]), raw["taker_side"], int(raw["ts"]),
        str(raw.get("maker_order_id", "")), str(raw.get("taker_order_id", "")),
    )  # fmt: skip


class TradeStream:
    """See the module docstring."""

    def __init__(self, fmt: Formatter, fetch_trades: FetchTrades) -> None:
        self.members: dict[Connection, str] = {}  # member -> format
        self._fmt = fmt
        self._fetch = fetch_trades
        self._u: int | None = None  # the last batch id seen
        self._last_id = -1  # the last trade id sent
        self._waiting: list[MarketBatch] | None = None  # while a gap is being filled

    def on_restored(self) -> None:
        """The stream is back: send the trades of the outage from the market's tape."""
        if self._u is not None and self._waiting is None:
            self._waiting = []
            asyncio.get_running_loop().create_task(self._fill(self._u, None))

    def on_batch(self, batch: MarketBatch) -> None:
        """Forward a batch's trades, filling a gap before it first."""
        if self._u is not None and batch.u <= self._u:
            return  # seen already
        if self._waiting is not None:
            self._waiting.append(batch)
        elif self._u is not None and self._u + 1 < batch.U:
            self._waiting = [batch]
            asyncio.get_running_loop().create_task(self._fill(self._u, batch.U))
        else:
            self._send(batch)
        self._u = batch.u

    async def _fill(self, after: int, before: int | None) -> None:
        """Send the tape's trades with ids after `after` (and before `before`)."""
        try:
            raw = await self._fetch()
            end = before if before is not None else float("inf")
            missing = sorted((_trade(t) for t in raw if after < int(t["seq"]) < end),
                             key=lambda t: t.id)  # fmt: skip
            oldest = min((int(t["seq"]) for t in raw), default=after + 1)
            if oldest > after + 1 and len(raw) >= TAPE_SIZE:  # older than the tape holds
                self._notice("gap")
            if missing:
                self._send(MarketBatch(self._fmt.spec.symbol, after + 1, missing[-1].id, 0,
                                       trades=missing))  # fmt: skip
        except Exception as exc:  # the market is away: the members read REST instead
            log.warning("%s: trades gap not filled: %s", self._fmt.spec.symbol, exc)
            self._notice("gap")
        waiting, self._waiting = self._waiting or [], None
        for batch in waiting:
            self._send(batch)

    def _notice(self, reason: str) -> None:
        notice = encode({"op": "resync", "channel": "trades", "market": self._fmt.spec.symbol,
                         "reason": reason})  # fmt: skip
        for conn in list(self.members):
            conn.send(notice)

    def _send(self, batch: MarketBatch) -> None:
        # Each trade once: a fill from the tape and a batch may both hold a trade.
        fresh = [t for t in batch.trades if t.id > self._last_id]
        if not fresh:
            return
        self._last_id = fresh[-1].id
        if not self.members:
            return
        if len(fresh) < len(batch.trades):
            batch = MarketBatch(batch.market, batch.U, batch.u, batch.E, trades=fresh)
        bodies: dict[str, list[bytes]] = {}  # encoded once, not per connection
        for conn, format_ in list(self.members.items()):
            messages = bodies.get(format_)
            if messages is None:
                messages = bodies[format_] = trades_messages(self._fmt, batch, format_)
            for body in messages:
                conn.send(body)
