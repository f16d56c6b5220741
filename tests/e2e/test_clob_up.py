"""`clob up` as a user runs it: a subprocess on a fresh data directory and free ports.

One `clob up` serves every test here, the README's walk-through included.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from actors.infra.embedded import free_port
from actors.infra.settings import Settings
from serve_app import demo
from serve_app.launcher import haproxy_home
from tests.conftest import REPO_ROOT
from tests.e2e.ws_client import WsClient

CLOB = str(Path(sys.executable).parent / "clob")
STARTUP_TIMEOUT_S = 240.0
OUTPUT = "up.log"  # what `clob up` prints, in its data directory


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "SOLANA_RPC_URL")
    }
    env.update(
        CLOB_DATA_DIR=str(data_dir),
        CLOB_SERVE__PORT=str(port),
        CLOB_CONFIG=str(data_dir / "none.toml"),
    )
    return env


def _wait_ready(url: str, proc: subprocess.Popen[str], data_dir: Path) -> None:
    """Wait until `clob up` is ready: the API answers and its state file is written (the
    API answers a moment before `clob up` records it, and `clob status` reads the file)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = (data_dir / OUTPUT).read_text()
            pytest.fail(f"clob up exited early with {proc.returncode}:\n{output[-3000:]}")
        try:
            healthy = httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            healthy = False
        if healthy and (data_dir / "state.json").exists():
            return
        time.sleep(0.5)
    pytest.fail(f"clob up was not ready within {STARTUP_TIMEOUT_S:.0f} s")


@pytest.fixture(scope="module")
def running(
    server_dir: Callable[[str], Path],
) -> Iterator[tuple[subprocess.Popen[str], str, dict[str, str]]]:
    data_dir = server_dir("up")
    port = free_port()
    env = _env(data_dir, port)
    # A file rather than a pipe: nothing reads a pipe while the tests run, and a full one
    # would block `clob up`.
    with open(data_dir / OUTPUT, "w") as output:
        proc = subprocess.Popen(
            [CLOB, "up"], env=env, cwd=data_dir, stdout=output, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, data_dir)
        yield proc, url, env
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(
            [CLOB, "down"], env=env, cwd=data_dir, capture_output=True, timeout=120, check=False
        )


def test_health_is_up_and_says_nothing_more(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, url, _ = running
    response = httpx.get(f"{url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "up"}


def test_system_status_is_for_admins_and_shows_every_component_up(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, url, env = running
    refused = httpx.get(f"{url}/api/v1/system/status", timeout=10)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert "postgres" not in refused.text
    token = (Path(env["CLOB_DATA_DIR"]) / "admin_token").read_text().strip()
    body = httpx.get(
        f"{url}/api/v1/system/status", headers={"X-Admin-Token": token}, timeout=10
    ).json()
    components = {c["name"]: c for c in body["components"]}
    assert {"postgresql", "redis", "ray", "serve", "ledger:0", "ledger:1", "custody:chain",
            "custody:deposits", "settlement:0", "settlements"} <= set(components)  # fmt: skip
    for name, component in components.items():
        assert component["status"] == "up", (name, component)
    for name in ("postgresql", "redis", "ray", "serve"):
        assert components[name]["version"], name
    assert body["status"] == "up"
    assert components["ray"]["version"] == "2.60.0"


def test_unknown_route_answers_the_error_shape(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, url, _ = running
    response = httpx.get(f"{url}/api/v1/no-such-thing", timeout=5)
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Not Found", "details": {}}


def test_openapi_document_is_served(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, url, _ = running
    spec = httpx.get(f"{url}/openapi.json", timeout=5).json()
    assert "/api/v1/system/status" in spec["paths"]


def test_cli_status_reports_every_component_up(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, _, env = running
    result = subprocess.run(
        [CLOB, "status", "--json"],
        env=env,
        cwd=env["CLOB_DATA_DIR"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    services = ("postgresql", "redis", "solana", "ray", "serve")
    assert {*services, "ledger:0", "ledger:1", "market:SOL-USDC"} <= set(rows)
    assert all(row["status"] == "up" for row in rows.values()), rows
    assert all(rows[name]["version"] for name in services)


def test_cli_recover_answers_for_a_market_and_refuses_an_unknown_one(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, _, env = running

    def recover(symbol: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLOB, "recover", symbol], env=env, cwd=env["CLOB_DATA_DIR"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    healthy = recover("SOL-USDC")  # nothing to recover: it answers every component up
    assert healthy.returncode == 0, healthy.stderr
    lines = healthy.stdout.splitlines()
    assert {line.split()[0] for line in lines} == {"market:SOL-USDC", "ledger:0", "ledger:1"}
    assert all(line.split()[1] == "up" for line in lines)
    unknown = recover("NOPE-USDC")
    assert unknown.returncode == 1
    assert "recover NOPE-USDC: 404" in unknown.stderr and "unknown_market" in unknown.stderr


def test_second_up_on_the_same_data_dir_is_refused(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, _, env = running
    result = subprocess.run(
        [CLOB, "up"],
        env=env,
        cwd=env["CLOB_DATA_DIR"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("clob: error: already running"), result.stderr
    assert "Traceback" not in result.stderr


def _key(env: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(
        [CLOB, "keys", "create", "--label", "e2e"],
        env=env, cwd=env["CLOB_DATA_DIR"], capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    return int(fields["account_id"]), fields["api_key"].strip()


def _funded_market(url: str, env: dict[str, str], base: str, quote: str) -> tuple[str, str]:
    """Create the market `base`-`quote` and fund a seller of 10 base and a buyer of 1,000
    quote by admin credits; return their API keys."""
    admin = {"X-Admin-Token": (Path(env["CLOB_DATA_DIR"]) / "admin_token").read_text().strip()}
    api = f"{url}/api/v1"
    market = {
        "symbol": f"{base}-{quote}", "base_asset": base, "quote_asset": quote,
        "base_decimals": 6, "quote_decimals": 6, "tick_size": "0.01", "lot_size": "0.1",
        "maker_fee_bps": 10, "taker_fee_bps": 20,
    }  # fmt: skip
    created = httpx.post(f"{api}/admin/markets", json=market, headers=admin, timeout=60)
    assert created.status_code == 201, created.text
    (seller, seller_key), (buyer, buyer_key) = _key(env), _key(env)
    for account, asset, amount in ((seller, base, "10"), (buyer, quote, "1000")):
        credit = {"account_id": account, "asset": asset, "amount": amount}
        answer = httpx.post(f"{api}/admin/credits", json=credit, headers=admin, timeout=30)
        assert answer.status_code == 200, answer.text
    return seller_key, buyer_key


def _cross(url: str, symbol: str, seller_key: str, buyer_key: str) -> None:
    """Trade 2 at 100: a sell, then a buy at 101."""
    api = f"{url}/api/v1"
    sell = {"market": symbol, "side": "sell", "price": "100", "qty": "2"}
    placed = httpx.post(f"{api}/orders", json=sell, headers={"X-API-Key": seller_key}, timeout=30)
    assert placed.status_code == 201, placed.text
    buy = {"market": symbol, "side": "buy", "price": "101", "qty": "2"}
    taken = httpx.post(f"{api}/orders", json=buy, headers={"X-API-Key": buyer_key}, timeout=30)
    assert taken.status_code == 201, taken.text


def test_a_trade_through_clob_up_settles_to_the_atom(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, url, env = running
    api = f"{url}/api/v1"
    seller_key, buyer_key = _funded_market(url, env, "E2E", "USDE")
    _cross(url, "E2E-USDE", seller_key, buyer_key)

    def balances(key: str) -> dict[str, tuple[str, str]]:
        body = httpx.get(f"{api}/balances", headers={"X-API-Key": key}, timeout=30).json()
        return {b["asset"]: (b["available"], b["locked"]) for b in body["balances"]}

    # 2 E2E at the maker's 100: notional 200 USDE; taker fee 20 bps = 0.4, maker 10 bps = 0.2.
    zero = "0.000000"
    assert balances(buyer_key) == {"USDE": ("799.600000", zero), "E2E": ("2.000000", zero)}
    assert balances(seller_key) == {"E2E": ("8.000000", zero), "USDE": ("199.800000", zero)}


def test_websocket_frames_go_straight_to_the_socket_unless_compressed(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    """Behind HAProxy (Serve's direct ingress) the replica writes a plain socket's frames
    to its transport (`serve_app/ws/wire.py`); a compressing one gets the same messages
    through the ASGI send."""
    _, url, env = running
    keys = _funded_market(url, env, "WSR", "USDW")
    plain, deflate = WsClient(url), WsClient(url, compression="deflate")
    assert deflate.ws.protocol.extensions, "permessage-deflate was not negotiated"
    seen: list[list[dict[str, Any]]] = [[], []]
    for client, messages in zip((plain, deflate), seen, strict=True):
        for channel in ("trades", "orderbook"):
            answer = client.call(op="subscribe", channel=channel, market="WSR-USDW")
            assert answer["op"] == "subscribed", answer
        snapshot = client.until(lambda m: m.get("type") == "snapshot")
        messages.append({**snapshot, "seq": 0, "E": 0})
    text = httpx.get(f"{url}/ws/metrics", timeout=10).text
    gauges = {
        line.split("{", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(("clob_ws_connections{", "clob_ws_raw_connections{"))
    }
    assert gauges["clob_ws_raw_connections"] >= 1
    assert gauges["clob_ws_connections"] - gauges["clob_ws_raw_connections"] >= 1
    _cross(url, "WSR-USDW", *keys)
    for client, messages in zip((plain, deflate), seen, strict=True):
        trade = client.until(lambda m: m.get("channel") == "trades")  # seq checked on the way
        messages.append({**trade, "seq": 0})
    assert seen[0] == seen[1]
    assert Decimal(seen[0][1]["trades"][0]["price"]) == 100
    plain.close()
    deflate.close()


def test_banner_names_the_admin_token_file_and_the_demo_keys(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, _, env = running
    data_dir = Path(env["CLOB_DATA_DIR"]).resolve()
    printed = (data_dir / OUTPUT).read_text()
    assert f"(the token is in {data_dir / 'admin_token'})" in printed
    keys_file = data_dir / demo.KEYS_FILE
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert f"demo keys  {keys_file}  " in printed
    accounts = demo.read_keys(keys_file)
    assert sorted(accounts) == ["alice", "bob"]
    for name, account in accounts.items():
        assert f"  {name:<8} X-API-Key: {account['api_key']}" in printed
    port = (data_dir / "solana" / "port").read_text().strip()
    assert f"Solana     http://127.0.0.1:{port}" in printed
    keypairs = sorted((data_dir / "keys").iterdir())
    assert [k.name for k in keypairs] == [
        "admin.json", "mint_authority.json", "operator.json", "payer.json",
    ]  # fmt: skip
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keypairs)


# -- the README's walk-through -----------------------------------------------------------------

_BLOCK = re.compile(r"```(sh|json)\n(.*?)```", re.DOTALL)
_STEP_END = "@@walkthrough-step@@"


def _walkthrough() -> list[tuple[list[str], Any]]:
    """Return the README walk-through's steps: the commands of each `sh` block, and the
    answer the `json` block after it shows for its last command (None when none)."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("<!-- walkthrough -->")[1].split("<!-- /walkthrough -->")[0]
    steps: list[tuple[list[str], Any]] = []
    for language, body in _BLOCK.findall(section):
        if language == "json":
            steps[-1] = (steps[-1][0], json.loads(body))
            continue
        joined = body.replace("\\\n", " ")
        steps.append(([c for c in joined.splitlines() if c.strip()], None))
    return steps


def _shows(actual: Any, shown: Any) -> bool:
    """Whether `actual` has every field `shown` has, with the same values (lists whole)."""
    if isinstance(shown, dict):
        return isinstance(actual, dict) and all(
            key in actual and _shows(actual[key], value) for key, value in shown.items()
        )
    if isinstance(shown, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(shown)
            and all(_shows(a, s) for a, s in zip(actual, shown, strict=True))
        )
    return bool(actual == shown)


def test_the_readme_walkthrough_trades_as_it_says(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
    tmp_path: Path,
) -> None:
    _, _, env = running
    quick_start = (REPO_ROOT / "README.md").read_text().split("## Quick start")[1]
    assert "make up " in quick_start.split("```")[1], "the walk-through starts with make up"
    steps = _walkthrough()
    commands = [command for step, _ in steps for command in step]
    assert 8 <= len(commands) <= 12, commands
    # The commands run at the repository's root: give them a `.venv` there.
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    script = "set -euo pipefail\n" + "".join(f"{c}\necho; echo {_STEP_END}\n" for c in commands)
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = [out.strip() for out in done.stdout.split(_STEP_END)[:-1]]
    assert len(outputs) == len(commands)
    for command, output in zip(commands, outputs, strict=True):
        if command.startswith("curl"):
            answer = json.loads(output)
            assert not (isinstance(answer, dict) and "code" in answer), (command, answer)
    index = 0
    for step, shown in steps:
        index += len(step)
        if shown is not None:
            answer = json.loads(outputs[index - 1])
            assert _shows(answer, shown), (step[-1], answer, shown)


def test_a_trade_of_the_demo_accounts_is_settled_on_chain(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    # After the walk-through (its tape shows one trade): the demo accounts' funds came by
    # deposit, so `settlement:0` can put their trades on chain. Landed (`confirmed`) is
    # enough here: `finalized` is 32 slots of 400 ms later (test_settlement_e2e.py waits
    # for it on the tests' quick chain).
    _, url, env = running
    keys = demo.read_keys(Path(env["CLOB_DATA_DIR"]) / demo.KEYS_FILE)
    api = f"{url}/api/v1"
    for name, side in (("alice", "sell"), ("bob", "buy")):
        order = {"market": "SOL-USDC", "side": side, "price": "150", "qty": "0.1"}
        headers = {"X-API-Key": keys[name]["api_key"]}
        placed = httpx.post(f"{api}/orders", json=order, headers=headers, timeout=30)
        assert placed.status_code == 201, placed.text

    def tape() -> list[dict[str, Any]]:
        trades: list[dict[str, Any]] = httpx.get(f"{api}/trades/SOL-USDC", timeout=30).json()[
            "trades"
        ]
        return trades

    landed = ("confirmed", "finalized")
    deadline = time.monotonic() + 60
    while not all(t["settlement_status"] in landed for t in tape()):
        assert time.monotonic() < deadline, tape()
        time.sleep(0.2)
    for settlement_id in {t["settlement_id"] for t in tape()}:
        body = httpx.get(f"{api}/settlements/{settlement_id}", timeout=30).json()
        assert body["status"] in landed and body["signature"] and body["slot"], body


def test_clob_deposit_funds_an_account_from_the_demo_wallet_by_a_real_deposit(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    _, url, env = running
    bob = demo.read_keys(Path(env["CLOB_DATA_DIR"]) / demo.KEYS_FILE)["bob"]["api_key"]
    headers = {"X-API-Key": bob}

    def usdc_deposits() -> list[dict[str, Any]]:
        answer = httpx.get(f"{url}/api/v1/deposits", headers=headers, timeout=30).json()
        return [d for d in answer["deposits"] if d["asset"] == "USDC"]

    before = httpx.get(f"{url}/api/v1/balances", headers=headers, timeout=30).json()
    [usdc] = [b["available"] for b in before["balances"] if b["asset"] == "USDC"]
    done = subprocess.run(
        [CLOB, "deposit", "--key", bob, "USDC", "5"], env=env, cwd=env["CLOB_DATA_DIR"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sent 5 USDC to "), done.stdout
    deadline = time.monotonic() + 60
    while not (len(usdc_deposits()) == 2 and usdc_deposits()[0]["status"] == "credited"):
        assert time.monotonic() < deadline, usdc_deposits()
        time.sleep(0.5)
    assert usdc_deposits()[0]["amount"] == "5.000000"
    after = httpx.get(f"{url}/api/v1/balances", headers=headers, timeout=30).json()
    [now] = [b["available"] for b in after["balances"] if b["asset"] == "USDC"]
    assert Decimal(now) - Decimal(usdc) == 5
    refused = subprocess.run(
        [CLOB, "deposit", "--key", bob, "NOPE", "5"], env=env, cwd=env["CLOB_DATA_DIR"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "unknown_asset" in refused.stderr, refused.stderr


def _haproxy_pids(data_dir: Path) -> list[int]:
    """Pids of the processes that use the HAProxy directory of `data_dir`."""
    home = str(haproxy_home(Settings.model_construct(data_dir=data_dir)))
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any(home in part for part in p.info["cmdline"] or [])
    ]


def test_ctrl_c_stops_everything_and_leaves_no_process(
    running: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    proc, url, env = running
    data_dir = Path(env["CLOB_DATA_DIR"])
    tree = [proc.pid, *(child.pid for child in psutil.Process(proc.pid).children(recursive=True))]
    postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    redis_pid = int((data_dir / "redis" / "redis.pid").read_text().strip())
    chain_pid = int((data_dir / "solana" / "server.pid").read_text().strip())
    watched = [*tree, postmaster, redis_pid, chain_pid]
    assert len(tree) > 3, "clob up should run Ray's processes as its children"
    assert _haproxy_pids(data_dir), "clob up should serve through HAProxy"

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) == 0
    deadline = time.monotonic() + 20
    alive = watched
    while alive and time.monotonic() < deadline:
        alive = [
            pid
            for pid in watched
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        time.sleep(0.2)
    assert alive == [], [psutil.Process(p).cmdline() for p in alive]
    # Nor an HAProxy that Serve restarted outside the process tree (it was seen once).
    assert _haproxy_pids(data_dir) == []
    assert not (data_dir / "state.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)

    after = subprocess.run(
        [CLOB, "status"],
        env=env,
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert after.returncode == 3, after.stdout
