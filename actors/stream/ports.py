"""The port the stream's publishers write to: a `Sink` of (channel, bytes) messages.

`sink.RedisSink` is the real one (Redis pub/sub); the tests use an in-memory fake
(`tests/support/fakes.py`). Publishing must never block the caller: a market's pass or a
ledger shard's call publishes synchronously and goes on.
"""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    """Where published messages go."""

    def publish(self, channel: str, data: bytes) -> None:
        """Queue one message for a channel; return at once (never blocks, never raises)."""
        ...

    def counters(self) -> dict[str, int]:
        """Return the sink's counters (`published`, `dropped`, `errors`, `queued`)."""
        ...
