"""The environment a local Ray must start with for the exchange's workers, and how the
exchange's actors start in it."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

# Ray starts every worker process at niceness 15, so that batch jobs yield the CPU to its
# own daemons. Here the workers are the exchange (market actors, ledger shards, Serve
# replicas) and they share the machine with PostgreSQL at niceness 0: under load the
# kernel then gives the database ~30 times their share and every order waits for its own
# actors. Measured on the 2-core machine with other load: single-order passes of the
# market actor went from 8 to 29 orders/s with niceness 0.
WORKER_NICENESS = ("RAY_worker_niceness", "0")


def prefer_exchange_workers() -> None:
    """Start Ray workers at niceness 0 unless the environment says otherwise.

    Call before `ray.init` starts a local Ray (workers inherit the raylet's environment);
    on a cluster, export `RAY_worker_niceness=0` before `ray start` (see cluster.yaml).
    """
    os.environ.setdefault(*WORKER_NICENESS)


def start_in_constructor(
    start: Callable[[], Coroutine[Any, Any, _T]], log: logging.Logger
) -> asyncio.Task[_T] | None:
    """Start an actor's recovery from its constructor; return the task (None without a
    running event loop: the first call recovers then).

    Ray runs an async actor's constructor on the actor's event loop, so recovery can start
    at once rather than at the first call: after a restart, callers learn the new
    incarnation's address only a second or so later, and recovery overlaps that wait. A
    failure is logged; the next call retries and raises it to its caller.
    """
    try:
        task = asyncio.get_running_loop().create_task(start())
    except RuntimeError:
        return None

    def log_failure(done: asyncio.Task[_T]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.error("eager recovery failed: %r", done.exception())

    task.add_done_callback(log_failure)
    return task
