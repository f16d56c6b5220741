"""Test kit of the market actor tests (nautilus `test_kit` style): databases, accounts,
credits, order requests, retrying submits, journal and projection rows. Used by
tests/integration and bench/market_bench.py."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import ray

from actors.accounts import AccountId
from actors.contracts import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    OrderCommand,
    OrderRequest,
    OrderResult,
    PlaceOrder,
)
from actors.engine import OrderKind, PostOnly, Side, StpMode, TimeInForce
from actors.engine.events import EVENT_TYPE_NAMES
from actors.infra.migrate import apply_migrations
from actors.market.journal import JournalRow, NewOrderRow


async def create_database(pg_dsn: str, prefix: str, *, migrate: bool = True) -> str:
    """Create a database of its own (migrated unless `migrate` is False); return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = pg_dsn.rpartition("/")[0] + "/" + name
    if not migrate:
        return url
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return url


async def drop_database(pg_dsn: str, url: str) -> None:
    """Drop a database made by `create_database`."""
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await admin.close()


async def new_accounts(url: str, n: int) -> list[int]:
    """Insert `n` accounts; return their ids."""
    conn = await asyncpg.connect(url)
    try:
        return [
            int(await conn.fetchval("INSERT INTO accounts DEFAULT VALUES RETURNING account_id"))
            for _ in range(n)
        ]
    finally:
        await conn.close()


def shard(namespace: str, account_id: int, shard_count: int) -> Any:
    """Return the ledger shard handle of an account."""
    return ray.get_actor(f"ledger:{account_id % shard_count}", namespace=namespace)


async def credit(namespace: str, shard_count: int, account_id: int, asset: str, atoms: int) -> None:
    """Credit an account through its ledger shard (a unique reference per call)."""
    handle = shard(namespace, account_id, shard_count)
    await handle.credit.remote(account_id, asset, atoms, f"test:{uuid.uuid4().hex}")


async def balances(namespace: str, shard_count: int, account_id: int) -> dict[str, tuple[int, int]]:
    """Return asset -> (available, locked) of an account."""
    views = await shard(namespace, account_id, shard_count).balances.remote(account_id)
    return {v.asset: (v.available_atoms, v.locked_atoms) for v in views}


def command(cmd: dict[str, Any]) -> OrderCommand:
    """Return the typed command of a replay-format command dict (without owner and ts),
    the shorthand the tests write commands in."""
    kind = cmd["type"]
    if kind == "cancel":
        return CancelOrder(cmd["id"])
    if kind == "amend":
        return AmendOrder(cmd["id"], cmd.get("qty"), cmd.get("price"))
    if kind == "cancel_all":
        return CancelAllOrders()
    assert kind == "new", cmd
    post_only = cmd.get("post_only")
    return PlaceOrder(
        id=cmd["id"], side=Side(cmd["side"]), kind=OrderKind(cmd.get("kind", "limit")),
        qty=cmd.get("qty"), price=cmd.get("price"), stop_price=cmd.get("stop_price"),
        tif=TimeInForce(cmd.get("tif", "gtc")), expire_at=cmd.get("expire_at"),
        post_only=None if post_only is None else PostOnly(post_only),
        display_qty=cmd.get("display_qty"), quote_qty=cmd.get("quote_qty"),
        stp=StpMode(cmd.get("stp", "none")),
    )  # fmt: skip


def request(request_id: str, account: int, cmd: dict[str, Any], **extra: Any) -> OrderRequest:
    """Return an order request of a command written as a dict (see `command`)."""
    return OrderRequest(request_id, AccountId(account), command(cmd), **extra)


def limit(account: int, oid: str, side: str, price: int, qty: int, **extra: Any) -> OrderRequest:
    """Return a limit order request (request id = order id)."""
    cmd = {"type": "new", "id": oid, "side": side, "kind": "limit", "price": price, "qty": qty}
    return request(oid, account, {**cmd, **extra})


def cancel(account: int, oid: str) -> OrderRequest:
    """Return a cancel request."""
    return request(f"cx-{oid}", account, {"type": "cancel", "id": oid})


def kinds(result: OrderResult) -> list[str]:
    """Return the replay-format type names of a result's events."""
    return [EVENT_TYPE_NAMES[type(e)] for e in result.events]


async def submit_until_acked(
    get_handle: Any, requests: list[OrderRequest], timeout_s: float = 60.0, pause_s: float = 0.2
) -> list[OrderResult]:
    """Submit, retrying with the same request ids (every `pause_s`) while the actor is down."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            results: list[OrderResult] = await get_handle().submit.remote(requests)
            return results
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(pause_s)


async def eventually(call: Any, timeout_s: float = 60.0) -> Any:
    """Await `call()`, retrying while the actor behind it restarts."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await call()
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, ValueError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def kill_and_wait(handle: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    """Kill a market actor (Ray restarts it); return the new incarnation's status."""
    old = await handle.status.remote()
    ray.kill(handle, no_restart=False)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        status: dict[str, Any] = await eventually(handle.status.remote, timeout_s)
        if status["pid"] != old["pid"]:
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the actor did not restart")
        await asyncio.sleep(0.1)


def tick_row(seq: int) -> JournalRow:
    """A journal row of a `tick` that did nothing."""
    cmd = {"type": "tick", "ts": seq}
    return JournalRow(seq, "tick", {"request_id": f"r{seq}", "account_id": None,
                                    "command": cmd, "events": []})  # fmt: skip


def resting_sell_row(oid: str, account: int, seq: int) -> NewOrderRow:
    """The projection row of a new limit sell of 5 lots at 10, resting."""
    return NewOrderRow(
        order_id=oid, account_id=account, client_order_id=None, side="sell", kind="limit",
        tif="gtc", post_only=None, stp="none", price_ticks=10, stop_price_ticks=None,
        qty_lots=5, quote_qty_tick_lots=None, display_qty_lots=None, expire_at_ms=None,
        open_qty_lots=5, status="open", event_seq=seq,
    )  # fmt: skip
