"""Start the trading core on a connected Ray: the controller, which starts the rest."""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import RayTaskError

from actors.controller import Controller, controller_options

READY_TIMEOUT_S = 300.0


def start_core(
    database_url: str,
    shard_count: int | None,
    namespace: str = "clob",
    redis_url: str | None = None,
) -> Any:
    """Get or create the controller and wait until every shard and market actor is up.

    Call after `ray.init`. `shard_count` None: the number the ledger recorded (a new
    ledger: `actors.ledger.store.DEFAULT_SHARD_COUNT`). `redis_url`: where the markets and
    shards publish the real-time stream (`actors.stream`), None for no stream. Returns the
    controller's handle.

    Raises:
        Exception: What stopped the controller from starting (e.g. `LedgerLayoutError`),
            unwrapped from Ray's `RayTaskError` so that its message reaches the operator.
    """
    cls: Any = ray.remote(Controller)
    handle = cls.options(**controller_options(namespace)).remote(
        database_url, shard_count, namespace, redis_url
    )
    try:
        ray.get(handle.ready.remote(), timeout=READY_TIMEOUT_S)
    except RayTaskError as exc:
        if isinstance(exc.cause, Exception):
            raise exc.cause from exc
        raise
    return handle
