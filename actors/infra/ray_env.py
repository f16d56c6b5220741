"""The environment a local Ray must start with for the exchange's workers."""

from __future__ import annotations

import os

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
