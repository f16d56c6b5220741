"""A small WebSocket client for the e2e tests of `/ws`: JSON in and out, `seq` checked."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from websockets.sync.client import ClientConnection, connect

TIMEOUT_S = 10.0


class WsClient:
    """One connection to `/ws` that checks every message's `seq` (+1 each)."""

    def __init__(
        self, url: str, api_key: str | None = None, compression: str | None = None
    ) -> None:
        """Connect; without `compression` ("deflate": permessage-deflate) the replica
        writes the frames straight to the socket (`serve_app/ws/wire.py`)."""
        ws_url = url.replace("http://", "ws://") + "/ws"
        headers = {"X-API-Key": api_key} if api_key else None
        self.ws: ClientConnection = connect(
            ws_url, additional_headers=headers, max_size=None, compression=compression
        )
        self.seq = 0
        self.welcome = self.recv()
        assert self.welcome["op"] == "welcome", self.welcome

    def send(self, **message: Any) -> None:
        """Send one JSON message."""
        self.ws.send(json.dumps(message))

    def recv(self, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """Return the next message (its `seq` must follow the last one)."""
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        assert message["seq"] == self.seq + 1, (message, self.seq)
        self.seq = message["seq"]
        return message

    def until(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT_S
    ) -> dict[str, Any]:
        """Return the first message for which `match(message)` holds (others skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.01, deadline - time.monotonic()))
            if match(message):
                return message

    def call(self, **message: Any) -> dict[str, Any]:
        """Send an op with an `id`; return the first answer carrying that `id`."""
        op_id = message.setdefault("id", f"c{time.monotonic_ns()}")
        self.send(**message)
        return self.until(lambda m: m.get("id") == op_id)

    def drain(self, quiet_s: float = 0.3) -> list[dict[str, Any]]:
        """Return every message that arrives until none comes for `quiet_s`."""
        out = []
        while True:
            try:
                out.append(self.recv(quiet_s))
            except TimeoutError:
                return out

    def close(self) -> None:
        """Close the connection."""
        self.ws.close()
