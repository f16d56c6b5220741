"""The exchange for the API end-to-end tests: one local Ray, the trading core and the Serve
app on a free port, talked to over HTTP like any client.

Package-scoped rather than session-scoped on purpose: the e2e API tests share ONE Ray and
ONE deployment, and the cluster is shut down when the e2e package is done, so the
integration tests (which start their own local Ray per module) never meet it.
`test_clob_up.py` runs `clob up` in a subprocess with a Ray of its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from actors.chain.keys import ChainKeys
from actors.infra.embedded import free_port
from actors.infra.migrate import apply_migrations
from actors.infra.settings import CustodySettings
from serve_app import keys
from serve_app.launcher import LaunchError, wait_for_http
from tests.support.program_kit import program_elf

if TYPE_CHECKING:
    from actors.custody.actor import CustodyConfig

SHARD_COUNT = 2
# Embedded mode's withdrawal policy (no cooling-off), with a daily limit of 5 WDR and the
# second step above 2 WDR (9 decimals): the custody tests' asset, so no other test meets them.
CUSTODY = CustodySettings(
    cooling_off_s=0, daily_limit_atoms={"WDR": 5 * 10**9},
    two_step_threshold_atoms={"WDR": 2 * 10**9},
)  # fmt: skip
CUSTODY_DEPTH = 8
"""Confirmations the e2e custody actors wait for (slots of 25 ms: 0.2 s)."""
ADMIN_TOKEN = secrets.token_urlsafe(16)
READY_TIMEOUT_S = 120.0

# Market used by most tests: SOL-like base (9 decimals), USDC-like quote (6 decimals),
# tick 0.01 USDC, lot 0.001 SOL: one tick-lot = 10 quote atoms. Taker 20 bps, maker 10 bps.
MARKET_SPEC = {
    "base_decimals": 9, "quote_decimals": 6, "tick_size": "0.01", "lot_size": "0.001",
    "min_qty": "0.01", "max_qty": "1000", "min_notional": "1", "maker_fee_bps": 10,
    "taker_fee_bps": 20,
}  # fmt: skip


@dataclass
class Exchange:
    """The running exchange: its base URL and a way to make traders and markets."""

    url: str
    database_url: str
    admin: httpx.Client
    request_log: Path
    markets: list[str] = field(default_factory=list)

    def create_market(self, base: str, quote: str = "USDC", **overrides: Any) -> str:
        """Create a market `BASE-QUOTE` through the admin API; return its symbol."""
        symbol = f"{base}-{quote}"
        body = {"symbol": symbol, "base_asset": base, "quote_asset": quote, **MARKET_SPEC}
        body.update(overrides)
        response = self.admin.post("/api/v1/admin/markets", json=body)
        assert response.status_code == 201, response.text
        self.markets.append(symbol)
        return symbol

    def trader(self, **credits: str) -> Trader:
        """Create an account with an API key, credit it, and return its client."""
        created = asyncio.run(_create_key(self.database_url))
        client = httpx.Client(base_url=self.url, headers={"X-API-Key": created.key}, timeout=30.0)
        for asset, amount in credits.items():
            body = {"account_id": created.account_id, "asset": asset, "amount": amount}
            response = self.admin.post("/api/v1/admin/credits", json=body)
            assert response.status_code == 200, response.text
        return Trader(created.account_id, created.key, client)


@dataclass
class Trader:
    """One account's HTTP client."""

    account_id: int
    key: str
    http: httpx.Client

    def place(self, expect: int = 201, **order: Any) -> dict[str, Any]:
        """Place an order and check the status; return the JSON body."""
        response = self.http.post("/api/v1/orders", json=order)
        assert response.status_code == expect, response.text
        body: dict[str, Any] = response.json()
        return body

    def balances(self) -> dict[str, tuple[str, str]]:
        """Return `{asset: (available, locked)}`."""
        response = self.http.get("/api/v1/balances")
        assert response.status_code == 200, response.text
        return {b["asset"]: (b["available"], b["locked"]) for b in response.json()["balances"]}

    def book(self, market: str) -> dict[str, Any]:
        """Return the market's L2 book, bypassing the 100 ms cache by waiting it out."""
        time.sleep(0.11)
        response = self.http.get(f"/api/v1/orderbook/{market}", params={"depth": 50})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return {"bids": body["bids"], "asks": body["asks"]}


async def _create_key(database_url: str) -> keys.CreatedKey:
    conn = await asyncpg.connect(database_url)
    try:
        return await keys.create_key(conn, label=f"e2e-{uuid.uuid4().hex[:6]}")
    finally:
        await conn.close()


async def withdrawing_account_keys(
    database_url: str, second_scopes: tuple[str, ...]
) -> tuple[keys.CreatedKey, str]:
    """Create an account with a key of every scope (`read`, `trade`, `withdraw`); return it
    and a second key of the same account with only `second_scopes`."""
    conn = await asyncpg.connect(database_url)
    try:
        full = await keys.create_key(conn, scopes=("read", "trade", "withdraw"))
        second = await keys.create_key(conn, full.account_id, scopes=second_scopes)
        return full, second.key
    finally:
        await conn.close()


async def deposit_address_count(database_url: str, account_id: int) -> int:
    """Return how many deposit addresses an account has on record."""
    conn = await asyncpg.connect(database_url)
    try:
        query = "SELECT count(*) FROM deposit_addresses WHERE account_id = $1"
        return int(await conn.fetchval(query, account_id))
    finally:
        await conn.close()


async def _migrate(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


def _wait_ready(url: str) -> None:
    try:
        wait_for_http(f"{url}/health", READY_TIMEOUT_S)
    except LaunchError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="package")
def exchange(
    pg_dsn: str, redis_url: str, solana_rpc_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Exchange]:
    """Start Ray, the trading core and the Serve app; yield the exchange."""
    import ray
    from ray import serve

    from actors.bootstrap import start_core
    from serve_app.app import deploy
    from serve_app.gateway.args import AppArgs

    asyncio.run(_migrate(pg_dsn))
    ray.init(
        address="local", num_cpus=4, include_dashboard=False, namespace="clob",
        logging_level=logging.WARNING, log_to_driver=False,
    )  # fmt: skip
    try:
        start_core(pg_dsn, SHARD_COUNT, "clob", redis_url)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        log_dir = tmp_path_factory.mktemp("request-log")
        # No rate limit: the tests send far more than 100 requests a minute from one
        # address and a few accounts; `test_api_rate_limit.py` deploys a limited app. The
        # chain's URL, as `clob up` gives it: the system status probes the custody actors
        # and the settlement batchers (down in the modules that do not start them).
        args = AppArgs(
            database_url=pg_dsn, redis_url=redis_url, solana_rpc_url=solana_rpc_url,
            admin_token=ADMIN_TOKEN, test_credits=True, rate_limit_per_minute=0,
            request_log_dir=str(log_dir), custody=CUSTODY, ws_replicas=1,
        )  # fmt: skip
        deploy(args, "clob")  # REST at /, the WebSocket application at /ws, as `clob up`
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        admin = httpx.Client(base_url=url, headers={"X-Admin-Token": ADMIN_TOKEN}, timeout=60)
        yield Exchange(url, pg_dsn, admin, log_dir / "requests-0.log")
        admin.close()
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def custody_settings(
    exchange: Exchange, solana_rpc_url: str, chain_keys: ChainKeys,
    tmp_path_factory: pytest.TempPathFactory,
) -> CustodyConfig:  # fmt: skip
    """The custody actors' configuration on the session's chain (keys written for the
    module)."""
    from tests.support.custody_kit import custody_config

    return custody_config(exchange.database_url, solana_rpc_url, "clob", chain_keys,
                          tmp_path_factory, depth=CUSTODY_DEPTH, poll_s=0.1,
                          shard_count=SHARD_COUNT)  # fmt: skip


@pytest.fixture(scope="module")
def custody(custody_settings: CustodyConfig) -> Iterator[Any]:
    """Start the custody actors (`clob up` starts them after the core) on the session's
    chain for one module; yield the chain actor; stop them after the module.

    Per module, not for the package: they act on every account's withdrawals and
    deposits, and the other modules' rows (debited withdrawals, made-up deposits) are
    theirs to check as they left them.
    """
    import ray

    from actors.custody.actor import start_custody

    program_elf()
    actors = start_custody(custody_settings)
    try:
        ray.get(actors[0].sync.remote(), timeout=120)
        yield actors[0]
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)


@pytest.fixture(scope="module")
def settlement(
    custody: Any, custody_settings: CustodyConfig, redis_url: str
) -> Iterator[Callable[[str], Any]]:
    """Yield `start(market)`: start a settlement batcher (`settlement:0`, as `clob up`
    starts it) settling only that market, publishing to the accounts' streams, quick to
    close its batches; return its handle. It is killed after the module.

    Only the module's market: the other modules' trades were funded by credits, not
    deposits, and their vaults on chain cannot pay them.
    """
    import ray

    from actors.settlement.actor import SettlementConfig, start_settlement
    from actors.settlement.config import BatcherConfig

    started: list[Any] = []

    def start(market: str) -> Any:
        config = SettlementConfig(custody=custody_settings, redis_url=redis_url, markets=(market,),
                                  poll_s=0.05, batcher=BatcherConfig(interval_s=0.2))  # fmt: skip
        (batcher,) = start_settlement(config)
        started.append(batcher)
        return batcher

    try:
        yield start
    finally:
        for batcher in started:
            ray.kill(batcher, no_restart=True)
