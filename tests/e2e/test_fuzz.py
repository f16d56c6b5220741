"""Schemathesis against the live exchange: every operation of the OpenAPI document, every
check (`--checks all`), on a bounded budget; and the oracle that no refused request
changed anything (`fuzz_state`, checked by the hooks on every 4xx answer).

The run is `st run` in a subprocess against the e2e exchange (the real Serve app over
HTTP), acting as one funded account (`ApiKey`) with the admin token (`AdminToken`),
with the hooks of `fuzz_hooks.py`. The budget comes from the environment, so `make fuzz`
runs this same test longer:

* `CLOB_FUZZ_MAX_EXAMPLES` cases per operation and phase (default 10: `make test` must
  stay under 15 minutes; `make fuzz` runs 500),
* `CLOB_FUZZ_MAX_TIME` seconds for the whole run (default none: the run is bounded by
  its cases; with a budget, fuzzing and stateful testing repeat until it is spent, and
  each operation gets an equal share of it),
* `CLOB_FUZZ_SEED` (default 17: CI runs the same cases each time, up to timing),
* `CLOB_FUZZ_ARGS`: more `st run` options, e.g. `--include-path /api/v1/orders`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

# The repo root is not on sys.path under pytest (see tests/unit/engine/test_properties.py).
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.e2e.conftest import Exchange, Trader  # noqa: E402
from tests.e2e.fuzz_state import StateProbe, differences  # noqa: E402
from tests.e2e.fuzz_world import (  # noqa: E402
    MID_TICKS,
    WORLD_ENV,
    FuzzAccount,
    FuzzMarket,
    World,
)

MAX_TIME_S = int(os.environ.get("CLOB_FUZZ_MAX_TIME", "0"))
MAX_EXAMPLES = int(os.environ.get("CLOB_FUZZ_MAX_EXAMPLES", "10"))
SEED = int(os.environ.get("CLOB_FUZZ_SEED", "17"))
EXTRA_ARGS = os.environ.get("CLOB_FUZZ_ARGS", "")
# The run's bound when it has no time budget; loading the schema, probing and writing
# reports come on top of a time budget.
RUN_TIMEOUT_S = MAX_TIME_S + 180 if MAX_TIME_S else 600

FUNDS = {"FZA": "1000000", "FZB": "1000000", "FZQ": "10000000000"}
# At the mid (10,000 ticks), every quantity of the lot grid within bounds clears the
# minimum notional, so the hook's orders are refused by state only (funds, post-only).
SECOND_GRID = {"tick_size": "0.05", "lot_size": "0.01", "min_qty": "0.1", "max_qty": "500",
               "min_notional": "5"}  # fmt: skip


def _fuzz_market(exchange: Exchange, base: str, **grid: str) -> FuzzMarket:
    symbol = exchange.create_market(base, "FZQ", **grid)
    market = exchange.admin.get(f"/api/v1/markets/{symbol}").json()
    return FuzzMarket(
        symbol=symbol, base=base, quote="FZQ", tick_size=market["tick_size"],
        lot_size=market["lot_size"], min_qty=market["min_qty"], max_qty=market["max_qty"],
    )  # fmt: skip


def _rest_liquidity(maker: Trader, markets: list[FuzzMarket]) -> list[str]:
    """Rest a few bids and asks around the mid for the fuzzer's orders to fill."""
    ids = []
    for market in markets:
        qty = market.qty(market.min_lots() * 10)
        for step in range(1, 4):
            for side, ticks in (("buy", MID_TICKS - 3 * step), ("sell", MID_TICKS + 3 * step)):
                price = market.price(ticks)
                order = maker.place(market=market.symbol, side=side, price=price, qty=qty)
                ids.append(order["order_id"])
    return ids


async def _account_ids(database_url: str) -> list[int]:
    conn = await asyncpg.connect(database_url)
    try:
        return [r["account_id"] for r in await conn.fetch("SELECT account_id FROM accounts")]
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def world(
    exchange: Exchange, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """Create the fuzz markets and accounts; yield the world the hooks see."""
    markets = [
        _fuzz_market(exchange, "FZA", min_notional="0.5"),
        _fuzz_market(exchange, "FZB", **SECOND_GRID),
    ]
    fuzzer, maker = exchange.trader(**FUNDS), exchange.trader(**FUNDS)
    maker_orders = _rest_liquidity(maker, markets)
    ours = {fuzzer.account_id, maker.account_id}
    listed = exchange.admin.get("/api/v1/markets").json()
    symbols = {m.symbol for m in markets}
    directory = tmp_path_factory.mktemp("fuzz")
    yield World(
        url=exchange.url, database_url=exchange.database_url, redis_url=redis_url,
        # The fixture's token: this module's import of the conftest made a token of its own.
        admin_token=exchange.admin.headers["X-Admin-Token"], seed=SEED,
        fuzzer=FuzzAccount(fuzzer.account_id, fuzzer.key),
        maker=FuzzAccount(maker.account_id, maker.key), markets=markets,
        maker_order_ids=maker_orders,
        foreign_accounts=[a for a in asyncio.run(_account_ids(exchange.database_url))
                          if a not in ours],
        foreign_markets=[m["symbol"] for m in listed if m["symbol"] not in symbols],
        max_new_markets=1, report_path=str(directory / "figures.json"),
    )  # fmt: skip
    fuzzer.http.close()
    maker.http.close()


def test_state_probe_sees_what_an_accepted_order_changes(world: World) -> None:
    """The oracle can fail: two snapshots around nothing are equal, around an order not."""
    probe = StateProbe(world)
    try:
        before, again = probe.snapshot(), probe.snapshot()
        assert differences(before, again) == []
        market = world.markets[0]
        response = httpx.post(
            f"{world.url}/api/v1/orders", headers={"X-API-Key": world.fuzzer.key},
            json={"market": market.symbol, "side": "buy", "qty": market.qty(10 * market.min_lots()),
                  "price": market.price(MID_TICKS - 100)},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        changed = {line.split(":", 1)[0] for line in differences(before, probe.snapshot())}
        assert {"balances", "books", "journal", "orders"} <= changed
    finally:
        probe.close()


def _config(world: World, directory: Path) -> Path:
    path = directory / "schemathesis.toml"
    path.write_text(
        'hooks = "tests.e2e.fuzz_hooks"\n'
        "[cache]\nenabled = false\n"
        f'[auth.openapi.ApiKey]\napi_key = "{world.fuzzer.key}"\n'
        f'[auth.openapi.AdminToken]\napi_key = "{world.admin_token}"\n'
    )
    return path


def _run_schemathesis(world: World, directory: Path) -> subprocess.CompletedProcess[str]:
    world_path = directory / "world.json"
    world.save(world_path)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(_config(world, directory)),
        "run", f"{world.url}/openapi.json", "--checks", "all", "--workers", "1",
        "--seed", str(world.seed), "--max-examples", str(MAX_EXAMPLES),
        *(["--max-time", str(MAX_TIME_S)] if MAX_TIME_S else []),
        "--generation-database", "none", "--no-color",
        "--report", "junit", "--report-dir", str(directory / "report"),
        # The deposit address and the reserves ask the custody actors, which this module
        # does not run (in the background they would settle withdrawals between the
        # oracle's snapshots): without them they answer 503. test_custody_flow.py and
        # test_api_reserves.py cover them, bad input included.
        "--exclude-path", "/api/v1/deposit-address", "--exclude-path", "/api/v1/reserves",
        *shlex.split(EXTRA_ARGS),
    ]  # fmt: skip
    env = {**os.environ, WORLD_ENV: str(world_path), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip


def test_schemathesis_finds_nothing_and_no_refusal_changes_state(world: World) -> None:
    """`st run --checks all` passes, with state compared across every 4xx answer."""
    directory = Path(world.report_path).parent
    run = _run_schemathesis(world, directory)
    output = run.stdout + run.stderr
    figures: dict[str, Any] = json.loads(Path(world.report_path).read_text())
    print(_summary(figures), output[-3000:], sep="\n")  # shown with -s / on failure
    assert run.returncode == 0, output[-20000:]
    assert figures["violations"] == []
    # Not vacuous: the run reached the engine and compared state across many refusals.
    assert figures["orders_accepted"] >= 20, _summary(figures)
    assert figures["refused_compared"] >= 200, _summary(figures)


def _summary(figures: dict[str, Any]) -> str:
    return (
        f"fuzz: {figures['calls']} calls, statuses {figures['statuses']}, "
        f"{figures['orders_accepted']} orders accepted (201/200), "
        f"order commands answered 200/201 {figures['engine_commands']}, "
        f"{figures['refused_compared']} refusals compared, "
        f"context 422s accepted {figures['accepted_context_422']}, "
        f"{len(figures['violations'])} state violations"
    )
