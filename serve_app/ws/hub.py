"""A gateway replica's Redis subscriptions: one pub/sub connection, each channel
subscribed once however many clients watch it, each message handed to its feed.

`stream:md:{market}` goes to the market's `MarketFeed`, `stream:acct:{id}` to the
account's `AccountFeed`. Feeds exist while someone listens. Every subscribe confirmation
from Redis (the first, or one after a reconnect) makes the feed read its state again: a
book resyncs from the market actor, a private stream tells its clients `resync`
(`stream_restored`). When the connection fails, every client of a feed gets one
`stream_unavailable` error, and the hub reconnects with a growing pause (at most
`MAX_PAUSE_S`); REST trading does not depend on any of this.

The connection stays subscribed to `HUB_CHANNEL` (nobody publishes there) while it is
open. With no subscription left, redis-py's next SUBSCRIBE would first PING and read the
answer itself, while the reader waits on the same socket ("readuntil() called while
another coroutine is already waiting"): the connection broke and every client was told
`stream_unavailable` for nothing. Subscribed, the reader alone reads, health checks
included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from actors.engine import MarketSpec
from actors.stream.messages import account_channel, md_channel
from serve_app.ws.account_feed import AccountFeed
from serve_app.ws.connection import Connection
from serve_app.ws.market_feed import MarketFeed
from serve_app.ws.protocol import encode, error

log = logging.getLogger(__name__)
FIRST_PAUSE_S = 0.1
MAX_PAUSE_S = 2.0
HEALTH_CHECK_S = 2  # a silent connection is pinged this often, so a dead Redis shows
HUB_CHANNEL = "stream:hub"  # always subscribed (see the module docstring)
STREAM_UNAVAILABLE = error(
    "stream_unavailable",
    "the real-time stream is interrupted; it resumes by itself (books with a fresh snapshot)",
)
_MD_PREFIX = md_channel("")
_ACCT_PREFIX = account_channel(0)[:-1]


class Sources:
    """What the feeds read besides Redis (the replica's `GatewayCore` behind it)."""

    def __init__(
        self,
        fetch_book: Callable[[str], Awaitable[dict[str, Any]]],
        fetch_trades: Callable[[str], Awaitable[list[dict[str, Any]]]],
        spec_of: Callable[[str], Awaitable[MarketSpec]],
        decimals_of: Callable[[str], Awaitable[int]],
        stats_of: Callable[[str], Awaitable[dict[str, Any]]],
    ) -> None:
        self.fetch_book = fetch_book
        self.fetch_trades = fetch_trades
        self.stats_of = stats_of
        self.spec_of = spec_of
        self.decimals_of = decimals_of


class Hub:
    """See the module docstring."""

    def __init__(self, redis_url: str, sources: Sources) -> None:
        self.markets: dict[str, MarketFeed] = {}
        self.accounts: dict[int, AccountFeed] = {}
        self.up = False
        self.failing = False  # the last connection attempt failed (Redis is away)
        self.counters = {"messages": 0, "reconnects": 0, "subscribed_channels": 0}
        self._url = redis_url
        self._sources = sources
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._restoring: set[str] = set()
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Start the Redis reader (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the reader and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    # -- feeds -------------------------------------------------------------------------------

    async def market(self, symbol: str) -> MarketFeed:
        """Return a market's feed, subscribing its channel when it is new.

        Raises:
            ApiError: `unknown_market`.
        """
        feed = self.markets.get(symbol)
        if feed is None:
            spec = await self._sources.spec_of(symbol)
            feed = self.markets.get(symbol)
            if feed is None:
                src = self._sources
                feed = MarketFeed(spec, lambda: src.fetch_book(symbol),
                                  lambda: src.fetch_trades(symbol), src.stats_of)  # fmt: skip
                self.markets[symbol] = feed
                await self._subscribe(md_channel(symbol))
        return feed

    def release_market(self, symbol: str) -> None:
        """Drop a market's feed when nobody listens any more."""
        feed = self.markets.get(symbol)
        if feed is not None and feed.empty():
            feed.close()
            del self.markets[symbol]
            self._unsubscribe(md_channel(symbol))

    async def account(self, account_id: int) -> AccountFeed:
        """Return an account's feed, subscribing its channel when it is new."""
        feed = self.accounts.get(account_id)
        if feed is None:
            src = self._sources
            feed = self.accounts[account_id] = AccountFeed(account_id, src.spec_of, src.decimals_of)
            await self._subscribe(account_channel(account_id))
        return feed

    def release_account(self, account_id: int) -> None:
        """Drop an account's feed when nobody listens any more."""
        feed = self.accounts.get(account_id)
        if feed is not None and feed.empty():
            del self.accounts[account_id]
            self._unsubscribe(account_channel(account_id))

    def _channels(self) -> list[str]:
        return [md_channel(m) for m in self.markets] + [account_channel(a) for a in self.accounts]

    async def _subscribe(self, channel: str) -> None:
        self.start()
        async with self._lock:  # one subscribe at a time: the first one opens the connection
            if self._pubsub is not None:
                try:
                    await self._pubsub.subscribe(channel)
                except Exception as exc:  # the reader notices too, and subscribes it again
                    log.warning("subscribe %s failed: %s", channel, exc)

    def _unsubscribe(self, channel: str) -> None:
        asyncio.get_running_loop().create_task(self._unsubscribe_unwanted(channel))

    async def _unsubscribe_unwanted(self, channel: str) -> None:
        async with self._lock:
            # A client may have asked for it again meanwhile (a subscription replaced by
            # one with other options): then it stays.
            if self._pubsub is not None and channel not in self._channels():
                await _quietly(self._pubsub.unsubscribe(channel))

    # -- the reader --------------------------------------------------------------------------

    async def _run(self) -> None:
        pause = FIRST_PAUSE_S
        while True:
            client = aioredis.from_url(
                self._url, retry=Retry(NoBackoff(), 0), health_check_interval=HEALTH_CHECK_S
            )
            pubsub = client.pubsub()
            try:
                async with self._lock:  # a feed added meanwhile subscribes after this
                    self._pubsub = pubsub
                    await pubsub.subscribe(HUB_CHANNEL, *self._channels())
                self.up, self.failing = True, False
                pause = FIRST_PAUSE_S
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._on_lost(exc)
            finally:
                self._pubsub = None
                await _quietly(pubsub.aclose())
                await _quietly(client.aclose())
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE_S)
            self.counters["reconnects"] += 1

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "message":
            self.counters["messages"] += 1
            data: bytes = message["data"]
            if channel.startswith(_MD_PREFIX):
                market = self.markets.get(channel[len(_MD_PREFIX) :])
                if market is not None:
                    market.on_message(data)
            elif channel.startswith(_ACCT_PREFIX):
                account = self.accounts.get(int(channel[len(_ACCT_PREFIX) :]))
                if account is not None:
                    await account.on_message(data)
        elif kind == "subscribe":
            self._on_subscribed(channel)
        if kind in ("subscribe", "unsubscribe"):
            self.counters["subscribed_channels"] = int(message["data"]) - 1  # not HUB_CHANNEL

    def _on_subscribed(self, channel: str) -> None:
        restored = channel in self._restoring
        self._restoring.discard(channel)
        if channel.startswith(_MD_PREFIX):
            market = self.markets.get(channel[len(_MD_PREFIX) :])
            if market is not None:
                market.on_subscribed(restored)
        elif channel.startswith(_ACCT_PREFIX):
            account = self.accounts.get(int(channel[len(_ACCT_PREFIX) :]))
            if account is not None and restored:
                notice = encode({"op": "resync", "channel": "account", "reason": "stream_restored"})
                for conn in list(account.members):
                    conn.send(notice)

    def _on_lost(self, exc: Exception) -> None:
        self.failing = True
        if not self.up:  # a failed reconnect: the clients were told already
            return
        log.warning("Redis stream lost: %s", exc)
        self.up = False
        self._restoring = set(self._channels())
        notice = STREAM_UNAVAILABLE
        told: set[Connection] = set()
        for market in self.markets.values():
            market.on_lost()
            told.update(market.members())
        for account in self.accounts.values():
            told.update(account.members)
        for conn in told:
            conn.send(notice)


async def _quietly(awaitable: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await awaitable
