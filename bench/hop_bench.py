"""One hop between two actors: a Ray actor call against a direct channel (`actors.direct`).

Run: ``.venv/bin/python bench/hop_bench.py``. Starts a local Ray, a server actor and a
client actor (both async, as the exchange's are), then times `--calls` sequential calls
each way, alternating, `--rounds` times: round trip per call and the CPU per call of the
caller and the callee (their whole processes, threads included). The payload is a small
list like a reservation batch. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import ray

from actors.direct import DirectServer, Endpoint, client_of
from actors.infra.ray_env import prefer_exchange_workers

PAYLOAD = [[i, 123_456, "USD", "SOL-USD", 10_000_000] for i in range(5)]


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class Server:
    """Answers `echo` both through Ray and on its direct channel."""

    def __init__(self) -> None:
        self._direct = DirectServer(self, ("echo",))

    async def direct_endpoint(self) -> Endpoint:
        return await self._direct.endpoint()

    async def echo(self, value: Any) -> Any:
        return value

    def cpu_s(self) -> float:
        return _cpu_s()


class Client:
    """Times sequential calls to the server, by Ray or by the direct channel."""

    def __init__(self, server: Any) -> None:
        self._server = server

    async def run(self, how: str, calls: int) -> tuple[float, float]:
        """Return (seconds per call, this process's CPU seconds per call)."""
        client = None
        if how == "direct":
            client = client_of(self._server)
            await client.call("echo", PAYLOAD)  # connect outside the timing
        cpu, began = _cpu_s(), time.perf_counter()
        for _ in range(calls):
            if client is not None:
                await client.call("echo", PAYLOAD)
            else:
                await self._server.echo.remote(PAYLOAD)
        elapsed, used = time.perf_counter() - began, _cpu_s() - cpu
        if client is not None:
            client.close()
        return elapsed / calls, used / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    prefer_exchange_workers()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    server = ray.remote(num_cpus=0)(Server).remote()
    client = ray.remote(num_cpus=0)(Client).remote(server)
    print(f"{'hop':8} {'round trip µs':>14} {'caller CPU µs':>14} {'callee CPU µs':>14}")
    for _ in range(args.rounds):
        for how in ("ray", "direct"):
            before = ray.get(server.cpu_s.remote())
            per_call, caller_cpu = ray.get(client.run.remote(how, args.calls))
            callee_cpu = (ray.get(server.cpu_s.remote()) - before) / args.calls
            print(
                f"{how:8} {per_call * 1e6:14.0f} {caller_cpu * 1e6:14.0f} {callee_cpu * 1e6:14.0f}"
            )
    ray.shutdown()


if __name__ == "__main__":
    main()
