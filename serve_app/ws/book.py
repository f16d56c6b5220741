"""The order book of the WebSocket stream, without I/O: a replica's mirror of a market's
book, the top-`depth` view a subscription group last sent, the diff between two views,
the Kraken checksum and the conflation clock.

Everything here is in the market's integer units (ticks, lots) until `Formatter` turns a
level into the decimal strings the protocol sends; the checksum is computed over exactly
those strings.
"""

from __future__ import annotations

import operator
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

from sortedcontainers import SortedDict

from actors.engine import MarketSpec
from actors.stream.messages import Level, MarketBatch
from serve_app import units

CHECKSUM_LEVELS = 10
"""Levels per side the checksum covers (Kraken's definition)."""

PriceQty = tuple[int, int]  # (ticks, lots)
TextLevel = tuple[str, str]  # (price, qty) as sent


class BookMirror:
    """A market's whole aggregated book (price -> visible lots) at update id `u`.

    `reset` loads it from the market actor's `l2`; `apply` takes each `MarketBatch` whose
    `U` chains onto `u` and refuses any other (a gap: the caller resyncs).
    """

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict(operator.neg)  # best (highest) first
        self.asks: SortedDict = SortedDict()  # best (lowest) first
        self.u = -1

    def reset(self, bids: Iterable[PriceQty], asks: Iterable[PriceQty], u: int) -> None:
        """Replace the book by levels read at update id `u`."""
        self.bids = SortedDict(operator.neg, ((p, q) for p, q in bids if q > 0))
        self.asks = SortedDict((p, q) for p, q in asks if q > 0)
        self.u = u

    def chains(self, batch: MarketBatch) -> bool:
        """Return whether `batch` is the next one (`U` = `u` + 1)."""
        return self.u + 1 == batch.U

    def apply(self, batch: MarketBatch) -> None:
        """Apply a chained batch's absolute levels (qty 0 removes) and advance `u`."""
        _set_levels(self.bids, batch.bids)
        _set_levels(self.asks, batch.asks)
        self.u = batch.u

    def top(self, depth: int) -> tuple[list[PriceQty], list[PriceQty]]:
        """Return the best `depth` bids and asks, best first."""
        return list(islice(self.bids.items(), depth)), list(islice(self.asks.items(), depth))

    def best(self) -> tuple[PriceQty | None, PriceQty | None]:
        """Return the best bid and ask, or None for an empty side."""
        bid = self.bids.peekitem(0) if self.bids else None
        ask = self.asks.peekitem(0) if self.asks else None
        return bid, ask


def _set_levels(side: SortedDict, levels: Sequence[Level]) -> None:
    for level in levels:
        if level.qty > 0:
            side[level.price] = level.qty
        else:
            side.pop(level.price, None)


class Formatter:
    """Decimal strings of a market's prices and quantities, with a bounded memo (a book
    sends the same few prices over and over)."""

    MAX_MEMO = 50_000

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self._prices: dict[int, str] = {}
        self._qtys: dict[int, str] = {}

    def price(self, ticks: int) -> str:
        """Return a price in ticks as quote units per base unit."""
        text = self._prices.get(ticks)
        if text is None:
            if len(self._prices) >= self.MAX_MEMO:
                self._prices.clear()
            text = self._prices[ticks] = units.ticks_to_price(self.spec, ticks)
        return text

    def qty(self, lots: int) -> str:
        """Return a quantity in lots as base units ("0" for a removed level)."""
        if lots == 0:
            return "0"
        text = self._qtys.get(lots)
        if text is None:
            if len(self._qtys) >= self.MAX_MEMO:
                self._qtys.clear()
            text = self._qtys[lots] = units.lots_to_qty(self.spec, lots)
        return text

    def levels(self, levels: Iterable[PriceQty]) -> list[TextLevel]:
        """Return levels as `[price, qty]` string pairs."""
        return [(self.price(p), self.qty(q)) for p, q in levels]


def _checksum_part(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def checksum(bids: Sequence[TextLevel], asks: Sequence[TextLevel]) -> int:
    """Return Kraken's book checksum: CRC32 (unsigned) of the top 10 asks (low to high)
    then the top 10 bids (high to low), each level's price then quantity as sent, with
    `.` removed and leading zeros stripped, concatenated.

    Args:
        bids: The bids, best (highest) first.
        asks: The asks, best (lowest) first.
    """
    parts = [
        _checksum_part(text)
        for side in (asks, bids)
        for level in side[:CHECKSUM_LEVELS]
        for text in level
    ]
    return zlib.crc32("".join(parts).encode()) & 0xFFFFFFFF


@dataclass
class BookView:
    """The top-`depth` book a group last sent its members (ticks -> lots per side) and
    the update id it was at."""

    depth: int
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    u: int = -1

    def load(self, mirror: BookMirror) -> tuple[list[PriceQty], list[PriceQty]]:
        """Take the mirror's top as the view; return it (best first per side)."""
        bids, asks = mirror.top(self.depth)
        self.bids, self.asks, self.u = dict(bids), dict(asks), mirror.u
        return bids, asks

    def advance(self, mirror: BookMirror) -> tuple[list[PriceQty], list[PriceQty]]:
        """Move the view to the mirror's top; return the changed levels per side: levels
        that left the top with qty 0, new or changed ones with their qty."""
        bids, asks = mirror.top(self.depth)
        new_bids, new_asks = dict(bids), dict(asks)
        changes = _diff(self.bids, new_bids), _diff(self.asks, new_asks)
        self.bids, self.asks, self.u = new_bids, new_asks, mirror.u
        return changes

    def top(self, levels: int) -> tuple[list[PriceQty], list[PriceQty]]:
        """Return the view's best `levels` per side, best first."""
        bids = sorted(self.bids.items(), key=lambda lv: -lv[0])[:levels]
        return bids, sorted(self.asks.items())[:levels]


def _diff(old: dict[int, int], new: dict[int, int]) -> list[PriceQty]:
    out = [(p, 0) for p in old if p not in new]
    out += [(p, q) for p, q in new.items() if old.get(p) != q]
    return out


@dataclass
class Conflator:
    """When a group sends: at most one message per `interval_ms`, on the leading edge (the
    first change after a quiet interval goes out at once).

    Attributes:
        interval_ms: The least time between two messages; 0 sends every change.
        last_sent_ms: When the group last sent (monotonic ms); None: never.
    """

    interval_ms: int
    last_sent_ms: float | None = None

    def delay_ms(self, now_ms: float) -> float:
        """Return how long a change seen at `now_ms` waits before it is sent (0: now)."""
        if self.last_sent_ms is None or self.interval_ms == 0:
            return 0.0
        return max(0.0, self.last_sent_ms + self.interval_ms - now_ms)

    def sent(self, now_ms: float) -> None:
        """Note that the group sent at `now_ms`."""
        self.last_sent_ms = now_ms
