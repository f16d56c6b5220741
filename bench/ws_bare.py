"""The bare baseline of the fan-out bench: a minimal `websockets` broadcast server.

Run by `bench/ws_bench.py` as its own process: ``ws_bare.py --port P --rate R``. It
accepts any number of connections on ``ws://127.0.0.1:P/``, reads nothing from them, and
`rate` times a second renders one message shaped and sized like the gateway's order-book
update (about 300 bytes of JSON, ``E`` = the wall-clock ms at publication) and hands it to
`websockets.asyncio.server.broadcast` (one write per connection, no backpressure, no
per-connection work beyond the socket layer). It prints one JSON line when it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import zlib
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve

HOST = "127.0.0.1"
MARKET = "BENCH-USD"
LEVELS = 4  # levels per side in an update: ~300 bytes, like a conflated 100 ms book diff


def render(u: int, e_ms: int) -> str:
    """Return the `u`-th update: a book diff with `LEVELS` levels a side and a checksum."""
    mid = 10_000 + u % 7 - 3
    bids = [[f"{(mid - 1 - k) / 100:.2f}", f"{1 + (u + k) % 9}.{k}"] for k in range(LEVELS)]
    asks = [[f"{(mid + 1 + k) / 100:.2f}", f"{1 + (u + 2 * k) % 9}.{k}"] for k in range(LEVELS)]
    flat = "".join(p.replace(".", "").lstrip("0") + q.replace(".", "") for p, q in asks + bids)
    message: dict[str, Any] = {
        "seq": u, "channel": "orderbook", "market": MARKET, "type": "update",
        "U": 3 * u - 2, "u": 3 * u, "pu": 3 * u - 3, "bids": bids, "asks": asks,
        "checksum": zlib.crc32(flat.encode()), "E": e_ms,
    }  # fmt: skip
    return json.dumps(message, separators=(",", ":"))


async def run(port: int, rate: float) -> None:
    """Serve until killed, broadcasting `rate` updates a second to every connection."""
    connections: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        connections.add(ws)
        try:
            await ws.wait_closed()
        finally:
            connections.discard(ws)

    async with serve(
        handler, HOST, port, compression=None, ping_interval=None, max_size=2**16, backlog=4096
    ):
        print(json.dumps({"listening": port, "bytes": len(render(1, int(time.time() * 1000)))}))
        print("", end="", flush=True)
        began, sent = time.perf_counter(), 0
        while True:
            sent += 1
            delay = began + sent / rate - time.perf_counter()
            if delay > 0:  # a late tick goes out at once: the schedule never slips
                await asyncio.sleep(delay)
            broadcast(connections, render(sent, int(time.time() * 1000)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="updates per second")
    args = parser.parse_args()
    asyncio.run(run(args.port, args.rate))


if __name__ == "__main__":
    main()
