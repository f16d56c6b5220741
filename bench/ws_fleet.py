"""The parent side of the fan-out bench's clients (`bench/ws_clients.py`): a `Fleet` of
client processes, and their figures merged."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ws_clients import BUCKETS_PER_MS, Figures

CLIENTS = str(Path(__file__).resolve().with_name("ws_clients.py"))


@dataclass
class Merged(Figures):
    """The figures of one replica (or of all), merged over the processes (`as_dict` of
    each process's `Figures`)."""

    def merge(self, other: dict[str, Any]) -> None:
        self.hist.update({int(k): v for k, v in other["hist"].items()})
        self.count += other["count"]
        self.max_ms = max(self.max_ms, other["max_ms"])
        self.connections += other["connections"]

    def percentile_ms(self, p: float) -> float:
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for bucket in sorted(self.hist):
            seen += self.hist[bucket]
            if seen >= rank:
                return (bucket + 1) / BUCKETS_PER_MS  # the bucket's upper edge
        return self.max_ms


@dataclass
class FleetResult:
    """What the whole fleet saw in the window."""

    setup: Counter[str]
    total: Merged
    replicas: dict[str, Merged]
    channels: dict[str, Merged]  # book updates and trades apart
    kinds: Counter[str]
    cpu_s: float
    samples: list[str]


class Fleet:
    """N WebSocket clients over as many processes as they need."""

    def __init__(
        self, urls: Sequence[str], connections: int, per_process: int, *,
        subscribe: Sequence[dict[str, Any]] = (), headers: dict[str, str] | None = None,
        welcome: bool = False,
    ) -> None:  # fmt: skip
        processes = max(1, math.ceil(connections / per_process))
        base, extra = divmod(connections, processes)
        shares = [base + (i < extra) for i in range(processes)]
        self.procs: list[subprocess.Popen[str]] = []
        for share in shares:
            proc = subprocess.Popen(
                [sys.executable, CLIENTS], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            config = {
                "urls": list(urls), "connections": share, "subscribe": list(subscribe),
                "headers": headers or {}, "welcome": welcome,
            }  # fmt: skip
            self._send(proc, config)
            self.procs.append(proc)
        self.pool = ThreadPoolExecutor(max_workers=len(self.procs))

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _send(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()

    def _gather(self, timeout_s: float) -> list[dict[str, Any]]:
        def one(proc: subprocess.Popen[str]) -> dict[str, Any]:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"client process {proc.pid} exited ({proc.poll()})")
            answer: dict[str, Any] = json.loads(line)
            return answer

        futures = [self.pool.submit(one, proc) for proc in self.procs]
        return [f.result(timeout=timeout_s) for f in futures]

    def ready(self, timeout_s: float = 600.0) -> tuple[Counter[str], list[str]]:
        """Wait until every process has set its connections up; return the outcomes."""
        setup: Counter[str] = Counter()
        samples: list[str] = []
        for answer in self._gather(timeout_s):
            setup.update(answer["ready"])
            samples += answer["samples"]
        return setup, samples

    def window(self, t0: float, t1: float) -> None:
        """Tell every process the measurement window (wall-clock seconds)."""
        for proc in self.procs:
            self._send(proc, {"t0": t0, "t1": t1})

    def results(self, setup: Counter[str], timeout_s: float = 120.0) -> FleetResult:
        """Collect and merge the window's figures, then reap the processes."""
        total, replicas, channels = Merged(), dict[str, Merged](), dict[str, Merged]()
        kinds: Counter[str] = Counter()
        cpu_s, samples = 0.0, []
        for answer in self._gather(timeout_s):
            cpu_s += answer["cpu_s"]
            kinds.update(answer["kinds"])
            samples += answer["samples"]
            for name, figures in answer["replicas"].items():
                replicas.setdefault(name, Merged()).merge(figures)
                total.merge(figures)
            for name, figures in answer["channels"].items():
                channels.setdefault(name, Merged()).merge(figures)
        self.close()
        return FleetResult(setup, total, replicas, channels, kinds, cpu_s, samples)

    def close(self) -> None:
        """End the client processes (the ones still running are killed)."""
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.pool.shutdown(wait=False, cancel_futures=True)
