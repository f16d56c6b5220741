"""`clob status` and `clob recover`: what an operator asks a running `clob up`.

The embedded services are probed where they run; the rest (Ray, Serve, every market actor
and ledger shard) comes from the exchange's admin status, over HTTP with the admin token of
the data directory.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import asyncpg
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient
from actors.chain.embedded import EmbeddedChain
from actors.chain.keys import load_configured_keys
from actors.infra.embedded import EmbeddedPostgres, EmbeddedRedis
from actors.infra.services import embedded_chain, embedded_postgres, embedded_redis
from actors.infra.settings import Settings
from serve_app import demo_deposit, units
from serve_app.launcher import LaunchError, RunState, admin_token, read_state


def status(settings: Settings) -> list[dict[str, Any]]:
    """Return each component's state: name, status, version, address."""
    state = read_state(settings)
    rows = [
        _store_row("postgresql", settings.database_url, embedded_postgres(settings)),
        _store_row("redis", settings.redis_url, embedded_redis(settings)),
        _store_row("solana", settings.solana_rpc_url, embedded_chain(settings)),
    ]
    if state is None:
        rows.append({"name": "ray", "status": "down", "version": None, "address": None})
        rows.append({"name": "serve", "status": "down", "version": None, "address": None})
        return rows
    rows.extend(_api_rows(state, admin_token(settings)))
    return rows


def _store_row(
    name: str,
    configured_url: str | None,
    server: EmbeddedPostgres | EmbeddedRedis | EmbeddedChain,
) -> dict[str, Any]:
    if configured_url:
        return {"name": name, "status": "configured", "version": None, "address": configured_url}
    running = server.running_pid_port()
    return {
        "name": name,
        "status": "up" if running else "down",
        "version": server.version(),
        "address": server.url(running[1]) if running else None,
    }


def _api_rows(state: RunState, token: str) -> list[dict[str, Any]]:
    """Return Ray's, Serve's, and every market actor's and ledger shard's rows, from the
    running exchange's admin status."""
    try:
        body = admin_request(state.http_url, token, "GET", "/api/v1/system/status")
    except OSError as exc:
        return [{"name": "serve", "status": "down", "version": None, "address": str(exc)}]
    return [c for c in body["components"] if c["name"] not in ("postgresql", "redis", "solana")]


def admin_request(http_url: str, token: str, method: str, path: str) -> Any:
    """Call an admin endpoint of the running exchange; return its JSON answer.

    Raises:
        OSError: It did not answer 2xx (`urllib.error.HTTPError` carries the status).
    """
    request = urllib.request.Request(
        f"{http_url}{path}", method=method, headers={"X-Admin-Token": token}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def recover_market(settings: Settings, symbol: str) -> list[dict[str, Any]]:
    """Ask the running exchange to recover a failed market now (`clob recover`).

    Raises:
        LaunchError: Nothing runs, or the exchange refused (e.g. no such market).
    """
    state = read_state(settings)
    if state is None:
        raise LaunchError("the exchange is not running (no `clob up` in this data directory)")
    path = f"/api/v1/admin/markets/{urllib.parse.quote(symbol, safe='')}/recover"
    try:
        rows: list[dict[str, Any]] = admin_request(
            state.http_url, admin_token(settings), "POST", path
        )
    except urllib.error.HTTPError as exc:
        raise LaunchError(f"recover {symbol}: {exc.code} {exc.read().decode()[:300]}") from None
    return rows


def deposit_from_demo_wallet(
    settings: Settings, api_key: str, asset: str, amount: str
) -> tuple[str, str]:
    """Mint demo tokens to the demo wallet and transfer them into the deposit address of
    the key's account (`clob deposit`; the embedded chain only); return the address and
    the transfer's signature.

    Raises:
        LaunchError: Nothing runs, a real chain is configured, or the API refused.
    """
    state = read_state(settings)
    if state is None:
        raise LaunchError("the exchange is not running (no `clob up` in this data directory)")
    if settings.solana_rpc_url is not None:
        raise LaunchError("a real chain (SOLANA_RPC_URL) has no demo wallet: send real tokens")
    query = urllib.parse.urlencode({"asset": asset})
    request = urllib.request.Request(f"{state.http_url}/api/v1/deposit-address?{query}",
                                     headers={"X-API-Key": api_key})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            target = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise LaunchError(f"deposit-address: {exc.code} {exc.read().decode()[:300]}") from None
    signature = asyncio.run(_deposit(settings, state, target, amount))
    return str(target["address"]), signature


async def _deposit(settings: Settings, state: RunState, target: dict[str, Any],
                   amount: str) -> str:  # fmt: skip
    conn = await asyncpg.connect(state.database_url)
    try:
        query = "SELECT decimals FROM assets WHERE symbol = $1"
        decimals = int(await conn.fetchval(query, target["asset"]))
    finally:
        await conn.close()
    try:
        atoms = units.amount_to_atoms(amount, decimals, "amount")
    except units.UnitError as exc:
        raise LaunchError(f"amount: {exc}") from None
    wallet = demo_deposit.load_wallet(settings.data_dir)
    mint, address = Pubkey.from_string(target["mint"]), Pubkey.from_string(target["address"])
    async with ChainClient(state.solana_rpc_url) as client:
        return await demo_deposit.mint_and_deposit(
            client, load_configured_keys(settings), wallet, mint, address, atoms, decimals
        )
