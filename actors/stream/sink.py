"""`RedisSink`: publishes the stream's messages to Redis pub/sub, never blocking the caller.

`publish` appends to a bounded queue and returns; when the queue is full the oldest
message is dropped (and counted): the stream's ids then show the gap and the gateway
resyncs, while the newest state goes out. A background task sends what is queued in
pipelined `PUBLISH` batches (one round trip per batch). When Redis fails or is away, the
task drops what it holds (counted), and connects again after a pause that grows to
`MAX_PAUSE_S`. Redis holds nothing of record: a dropped message costs a client a resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000  # messages; a few seconds of a busy market
BATCH = 500  # messages per pipelined round trip
FIRST_PAUSE_S = 0.05
MAX_PAUSE_S = 2.0
TIMEOUT_S = 2.0  # connect and socket timeout: a stuck Redis counts as an error


class RedisSink:
    """A `Sink` (`ports.py`) over Redis pub/sub.

    Args:
        url: The Redis URL.
        max_queue: Messages queued at most (the oldest is dropped beyond).
    """

    def __init__(self, url: str, max_queue: int = MAX_QUEUE) -> None:
        self._url = url
        self._queue: deque[tuple[str, bytes]] = deque()
        self._max = max_queue
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle = True
        self.connected = False
        self.published = 0
        self.dropped = 0
        self.errors = 0

    def publish(self, channel: str, data: bytes) -> None:
        """Queue a message (dropping the oldest when full); start the sender if needed.

        Call from the event loop's thread (an actor's coroutine or callback).
        """
        queue = self._queue
        if len(queue) >= self._max:
            queue.popleft()
            self.dropped += 1
        queue.append((channel, data))
        if self._idle:
            self._idle = False
            if self._task is None:
                self._wake = asyncio.Event()
                self._task = asyncio.get_running_loop().create_task(self._run())
            assert self._wake is not None
            self._wake.set()

    def counters(self) -> dict[str, int]:
        """Return `published`, `dropped` (queue full or Redis failed), `errors` (failed
        sends or connects), `queued` and `connected` (0 or 1)."""
        return {
            "published": self.published,
            "dropped": self.dropped,
            "errors": self.errors,
            "queued": len(self._queue),
            "connected": int(self.connected),
        }

    async def aclose(self) -> None:
        """Stop the sender (what is still queued is dropped)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        client: aioredis.Redis | None = None
        pause = FIRST_PAUSE_S
        try:
            while True:
                if not self._queue:
                    self._idle = True
                    self._wake.clear()
                    await self._wake.wait()
                try:
                    client = client or await self._connect()
                    await self._send(client)
                    pause = FIRST_PAUSE_S
                except (RedisError, OSError) as exc:
                    await self._failed(client, exc)
                    client = None
                    await asyncio.sleep(pause)
                    pause = min(MAX_PAUSE_S, pause * 2)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _connect(self) -> aioredis.Redis:
        client = aioredis.Redis.from_url(
            self._url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # this loop retries, with its own pause
        )  # fmt: skip
        await client.ping()
        self.connected = True
        return client

    async def _send(self, client: aioredis.Redis) -> None:
        queue = self._queue
        while queue:
            n = min(len(queue), BATCH)
            pipe = client.pipeline(transaction=False)
            for _ in range(n):
                channel, data = queue.popleft()
                pipe.publish(channel, data)
            try:
                await pipe.execute()
            except BaseException:
                self.dropped += n  # in flight: perhaps sent, perhaps not
                raise
            self.published += n

    async def _failed(self, client: aioredis.Redis | None, exc: BaseException) -> None:
        if self.connected or self.errors == 0:
            log.warning("stream sink: Redis failed (%r); dropping and reconnecting", exc)
        self.errors += 1
        self.connected = False
        self.dropped += len(self._queue)
        self._queue.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
