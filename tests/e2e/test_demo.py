"""The demo data of `clob up`, made against the e2e exchange's real controller and ledger,
funded by real deposits on the session's chain through the custody actors.

`clob up` itself runs it in `test_clob_up.py` (the README walk-through trades on it).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.chain.keys import ChainKeys
from actors.infra.settings import DemoSettings, Settings
from serve_app import demo, demo_deposit
from tests.e2e.conftest import Exchange


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.model_construct(data_dir=tmp_path_factory.mktemp("demo"))


@dataclass
class Chain:
    """The custody actors' chain: the chain actor, the URL and the exchange's keys."""

    actor: Any
    url: str
    keys: ChainKeys


@pytest.fixture(scope="module")
def chain(custody: Any, solana_rpc_url: str, chain_keys: ChainKeys) -> Chain:
    return Chain(custody, solana_rpc_url, chain_keys)


def _make(exchange: Exchange, settings: Settings, chain: Chain) -> demo.DemoData:
    made, _ = _make_and_fund(exchange, settings, chain)
    return made


def _make_and_fund(
    exchange: Exchange, settings: Settings, chain: Chain
) -> tuple[demo.DemoData, list[str]]:
    import ray

    controller = ray.get_actor("controller", namespace=settings.ray.namespace)
    made = demo.ensure_demo(settings, exchange.database_url, controller)
    return made, demo.fund(settings, exchange.database_url, made, chain.actor, chain.url,
                           chain.keys)  # fmt: skip


def _balances(exchange: Exchange, key: str) -> dict[str, str]:
    answer = httpx.get(f"{exchange.url}/api/v1/balances", headers={"X-API-Key": key}, timeout=30)
    assert answer.status_code == 200, answer.text
    return {b["asset"]: b["available"] for b in answer.json()["balances"]}


def _deposits(exchange: Exchange, key: str) -> list[tuple[str, str, str]]:
    answer = httpx.get(f"{exchange.url}/api/v1/deposits", headers={"X-API-Key": key}, timeout=30)
    assert answer.status_code == 200, answer.text
    return sorted((d["asset"], d["amount"], d["status"]) for d in answer.json()["deposits"])


def test_demo_makes_the_sample_market_and_two_accounts_funded_by_deposits_once(
    exchange: Exchange, settings: Settings, chain: Chain
) -> None:
    first, deposited = _make_and_fund(exchange, settings, chain)
    assert len(deposited) == 4  # SOL and USDC into each account's deposit address
    assert first.market == "SOL-USDC"
    assert [a.name for a in first.accounts] == ["alice", "bob"]
    market = httpx.get(f"{exchange.url}/api/v1/markets/SOL-USDC", timeout=30).json()
    assert (market["tick_size"], market["lot_size"]) == ("0.010000", "0.001000000")
    assert (market["min_qty"], market["max_qty"]) == ("0.100000000", "100.000000000")
    assert (market["maker_fee_bps"], market["taker_fee_bps"]) == (10, 20)
    funded = {"SOL": "10.000000000", "USDC": "100000.000000"}
    credited = [("SOL", "10.000000000", "credited"), ("USDC", "100000.000000", "credited")]
    for account in first.accounts:
        assert _balances(exchange, account.api_key) == funded
        assert _deposits(exchange, account.api_key) == credited
    wallet = demo_deposit.wallet_path(settings.data_dir)
    assert stat.S_IMODE(wallet.stat().st_mode) == 0o600

    # A second `clob up` on the same data directory deposits nothing more.
    again, deposited = _make_and_fund(exchange, settings, chain)
    assert again == first and deposited == []
    for account in again.accounts:
        assert _balances(exchange, account.api_key) == funded
        assert _deposits(exchange, account.api_key) == credited
    markets = httpx.get(f"{exchange.url}/api/v1/markets", timeout=30).json()
    assert [m["symbol"] for m in markets].count("SOL-USDC") == 1


def test_the_keys_file_is_private_and_a_lost_file_gets_new_keys_for_the_same_accounts(
    exchange: Exchange, settings: Settings, chain: Chain
) -> None:
    first = _make(exchange, settings, chain)
    path = demo.keys_path(settings)
    assert first.keys_file == path and path.parent == Path(settings.data_dir).resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    recorded = demo.read_keys(path)
    assert {n: a["api_key"] for n, a in recorded.items()} == {
        a.name: a.api_key for a in first.accounts
    }
    path.unlink()
    renewed = _make(exchange, settings, chain)
    assert [a.account_id for a in renewed.accounts] == [a.account_id for a in first.accounts]
    assert all(
        n.api_key != o.api_key for n, o in zip(renewed.accounts, first.accounts, strict=True)
    )
    assert _balances(exchange, renewed.accounts[0].api_key)["SOL"] == "10.000000000"


def test_shell_lines_quote_the_url_and_each_key(
    settings: Settings, exchange: Exchange, chain: Chain
) -> None:
    made = _make(exchange, settings, chain)
    lines = demo.shell_lines(settings, "http://127.0.0.1:8000")
    assert lines[0] == "API=http://127.0.0.1:8000/api/v1"
    assert lines[1:] == [
        f"{a.name.upper()}={a.api_key}  # account {a.account_id}" for a in made.accounts
    ]


def test_demo_data_turned_off_makes_nothing(tmp_path: Path) -> None:
    off = Settings.model_construct(data_dir=tmp_path, demo=DemoSettings(enabled=False))
    said: list[str] = []
    assert demo.for_launch(off, "postgresql://unused", None, said.append) is None
    assert said == [] and list(tmp_path.iterdir()) == []
    assert demo.banner(None) == []


def test_shell_lines_without_demo_data_say_where_they_looked(tmp_path: Path) -> None:
    empty = Settings.model_construct(data_dir=tmp_path)
    with pytest.raises(demo.DemoError, match=r"no demo keys in .*demo_keys\.json"):
        demo.shell_lines(empty, "http://127.0.0.1:8000")
