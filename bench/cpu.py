"""CPU accounting for the benchmarks: CPU seconds per server component between two points.

Processes are grouped by role: Ray workers by their actor class (`ray::MarketActor`),
then PostgreSQL, Redis, HAProxy, the raylet and the GCS; anything else by process name.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterable

import psutil

Snapshot = dict[int, tuple[str, float]]


def group_of(proc: psutil.Process) -> str:
    """Return the component a process belongs to."""
    try:
        cmdline = proc.cmdline()
        name = proc.name()
    except psutil.Error:
        return "?"
    title = " ".join(cmdline) if cmdline else name
    if title.startswith("ray::"):
        head = re.split(r"[.:\s]", title[5:], maxsplit=1)[0]
        return f"ray::{head}"
    for known in ("haproxy", "postgres", "redis", "raylet", "gcs_server"):
        if known in title.split(" ")[0] or name.startswith(known):
            return known
    if "clob" in title and " up" in title:
        return "clob up (driver)"
    return name


def cpu_snapshot(procs: Iterable[psutil.Process] | None = None) -> Snapshot:
    """Return each process's group and CPU seconds so far (every process if `procs` is
    None)."""
    out: Snapshot = {}
    for proc in psutil.process_iter() if procs is None else procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            out[proc.pid] = (group_of(proc), times.user + times.system)
    return out


def cpu_delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """Return the CPU seconds each group used between two snapshots."""
    groups: Counter[str] = Counter()
    for pid, (group, seconds) in after.items():
        groups[group] += seconds - before.get(pid, (group, 0.0))[1]
    return dict(groups)


def cpu_report(cpu: dict[str, float], wall_s: float, per: int, unit: str) -> list[str]:
    """Return report lines: per group, % of one core and µs of CPU per `unit`."""
    total = sum(cpu.values())
    rows = sorted(((s, g) for g, s in cpu.items() if s >= 0.005 * total), reverse=True)
    return [
        f"  {group:<28} {100 * seconds / wall_s:6.0f}%  {1e6 * seconds / per:8.0f} µs/{unit}"
        for seconds, group in [*rows, (total, "total")]
    ]
