"""Demo data for a newcomer's first `clob up`: a sample market and two funded accounts.

Seed 000 describes the sample market: SOL-USDC, a tick of 0.01 USDC, orders of 0.1 to
100 SOL, maker 10 bps and taker 20 bps, and sample users holding 10 SOL and 100,000 USDC
each. It names no lot size; the market uses 0.001 SOL, the API reference's example. SOL
has 9 decimals and USDC 6, as on Solana.

Everything is idempotent, so every `clob up` on the same data directory may run it: the
market is created only when no market of that symbol exists; the accounts are found by
their external reference (`demo:alice`, `demo:bob`); their funds are real deposits from
a demo wallet on the embedded chain into their deposit addresses (`demo_deposit.py`),
made once per address and credited once by the deposit listener; and a key is created
only when `<data_dir>/demo_keys.json` (mode 0600) holds no live key of the
account, since only the secret's hash is in the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from actors.chain.keys import ChainKeys
from actors.engine import MarketSpec
from actors.infra.errors import ClobError
from actors.infra.settings import Settings
from serve_app import demo_deposit, keys, units

KEYS_FILE = "demo_keys.json"
ACCOUNTS = ("alice", "bob")
FUNDS = {"SOL": "10", "USDC": "100000"}
"""What each demo account is credited once, in whole units (seed 000's sample balances)."""
MARKET: dict[str, Any] = {
    "symbol": "SOL-USDC", "base_asset": "SOL", "quote_asset": "USDC", "base_decimals": 9,
    "quote_decimals": 6, "tick_size": "0.01", "lot_size": "0.001", "min_qty": "0.1",
    "max_qty": "100", "maker_fee_bps": 10, "taker_fee_bps": 20,
}  # fmt: skip
"""The sample market, in the shape of `POST /admin/markets` (sizes in whole units)."""


class DemoError(ClobError):
    """The demo data could not be made (e.g. an asset exists with other decimals)."""


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """A demo account and its API key.

    Attributes:
        name: `alice` or `bob`.
        account_id: The account's id.
        api_key: The key to send as `X-API-Key` (`key_id.secret`).
    """

    name: str
    account_id: int
    api_key: str


@dataclass(frozen=True, slots=True)
class DemoData:
    """What `clob up` made (or found) and where the keys are."""

    market: str
    accounts: tuple[DemoAccount, ...]
    keys_file: Path


def keys_path(settings: Settings) -> Path:
    """Return the absolute path of the demo keys file of the data directory."""
    return (settings.data_dir / KEYS_FILE).resolve()


def market_spec() -> MarketSpec:
    """Return the sample market's spec in integer units."""
    m = MARKET
    base, quote = m["base_decimals"], m["quote_decimals"]
    lot = units.amount_to_atoms(m["lot_size"], base, "lot_size")
    return MarketSpec(
        symbol=m["symbol"], base_asset=m["base_asset"], quote_asset=m["quote_asset"],
        base_decimals=base, quote_decimals=quote,
        tick_size=units.amount_to_atoms(m["tick_size"], quote, "tick_size"), lot_size=lot,
        min_qty=units.amount_to_atoms(m["min_qty"], base, "min_qty") // lot,
        max_qty=units.amount_to_atoms(m["max_qty"], base, "max_qty") // lot,
        maker_fee_bps=m["maker_fee_bps"], taker_fee_bps=m["taker_fee_bps"],
    )  # fmt: skip


def for_launch(
    settings: Settings, database_url: str, controller: Any, progress: Callable[[str], None]
) -> DemoData | None:
    """Make the demo data if the settings ask for it (`Settings.demo_enabled`).

    Returns:
        The demo data, or None when it is off or could not be made (the exchange runs
        without it, and `progress` says why).
    """
    if not settings.demo_enabled:
        return None
    progress("creating the demo market and accounts (demo.enabled)")
    try:
        return ensure_demo(settings, database_url, controller)
    except DemoError as exc:
        progress(f"demo data skipped: {exc}")
        return None


def ensure_demo(settings: Settings, database_url: str, controller: Any) -> DemoData:
    """Create whatever of the demo market and accounts is missing; call on a driver
    connected to Ray. Their funds come by deposit (`fund`).

    Args:
        settings: The configuration (data directory, Ray namespace).
        database_url: The PostgreSQL URL in use.
        controller: The handle of the running controller actor.

    Raises:
        DemoError: The market or an account could not be made.
    """
    spec = market_spec()
    _ensure_market(controller, spec)
    path = keys_path(settings)
    try:
        accounts = asyncio.run(_ensure_accounts(database_url, read_keys(path)))
    except keys.KeysError as exc:
        raise DemoError(str(exc)) from None
    write_keys(path, spec.symbol, accounts)
    return DemoData(spec.symbol, tuple(accounts), path)


def _ensure_market(controller: Any, spec: MarketSpec) -> dict[str, int]:
    """Create the market unless one of its symbol exists; return its assets' decimals."""
    import ray
    from ray.exceptions import RayTaskError

    markets = ray.get(controller.list_markets.remote())
    found = next((m for m in markets if m["symbol"] == spec.symbol), None)
    if found is None:
        try:
            found = ray.get(controller.create_market.remote(spec.to_dict()))
        except RayTaskError as exc:
            cause = str(exc.cause if exc.cause is not None else exc).strip().splitlines()
            raise DemoError(f"market {spec.symbol}: {cause[-1] if cause else exc}") from None
    # A market made earlier, or by hand, is left as it is: fund in its own assets' units.
    decimals = {
        found["base_asset"]: int(found["base_decimals"]),
        found["quote_asset"]: int(found["quote_decimals"]),
    }
    if set(FUNDS) - set(decimals):
        raise DemoError(f"market {spec.symbol} exists with other assets than {', '.join(FUNDS)}")
    return decimals


async def _ensure_accounts(
    database_url: str, previous: dict[str, dict[str, Any]]
) -> list[DemoAccount]:
    conn = await asyncpg.connect(database_url)
    try:
        made = []
        for name in ACCOUNTS:
            account_id, _ = await keys.ensure_account(conn, f"demo:{name}")
            known = previous.get(name, {})
            api_key = str(known.get("api_key", ""))
            live = await keys.live_key_ids(conn, account_id)
            if known.get("account_id") != account_id or api_key.split(".", 1)[0] not in live:
                api_key = (await keys.create_key(conn, account_id, label="demo")).key
            made.append(DemoAccount(name, account_id, api_key))
        return made
    finally:
        await conn.close()


def fund(  # noqa: PLR0917 (what a deposit needs)
    settings: Settings, database_url: str, data: DemoData, chain_actor: Any, rpc_url: str,
    chain_keys: ChainKeys, progress: Callable[[str], None] = lambda _: None,
) -> list[str]:  # fmt: skip
    """Fund each demo account with `FUNDS` by a real deposit from the demo wallet on the
    embedded chain, once, and wait until the deposit listener credits them.

    Returns:
        The signatures of the deposits made now (none when all were made before).
    """
    wallet = demo_deposit.load_wallet(settings.data_dir)
    todo = [demo_deposit.Deposit(a.account_id, asset, amount)
            for a in data.accounts for asset, amount in FUNDS.items()]  # fmt: skip
    return asyncio.run(demo_deposit.fund(chain_actor, rpc_url, database_url, chain_keys, wallet,
                                         todo, progress))  # fmt: skip


def fund_for_launch(  # noqa: PLR0917 (what a deposit needs)
    settings: Settings, database_url: str, data: DemoData, chain_actor: Any, rpc_url: str,
    chain_keys: ChainKeys, progress: Callable[[str], None],
) -> None:  # fmt: skip
    """`fund` for `clob up`, on the embedded chain only; a failure is reported, not
    raised (the exchange runs without the demo funds)."""
    if settings.solana_rpc_url is not None:
        progress("demo funds skipped: a real chain (SOLANA_RPC_URL) has no demo wallet")
        return
    try:
        fund(settings, database_url, data, chain_actor, rpc_url, chain_keys, progress)
    except Exception as exc:  # reported: the demo is a convenience, not the exchange
        progress(f"demo funds incomplete: {type(exc).__name__}: {str(exc)[:200]}")


def read_keys(path: Path) -> dict[str, dict[str, Any]]:
    """Return the accounts recorded in a demo keys file by name (empty if there is none)."""
    try:
        data = json.loads(path.read_text())
        return {str(a["name"]): dict(a) for a in data["accounts"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def write_keys(path: Path, market: str, accounts: list[DemoAccount]) -> None:
    """Write the demo keys file, readable by its owner only, whole or not at all."""
    partial = path.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"market": market, "accounts": [asdict(a) for a in accounts]}, out, indent=2)
    partial.replace(path)


def banner(demo: DemoData | None) -> list[str]:
    """Return the lines `clob up` prints about the demo data."""
    if demo is None:
        return []
    funds = " and ".join(f"{amount} {asset}" for asset, amount in FUNDS.items())
    names = " and ".join(f"{a.name} (account {a.account_id})" for a in demo.accounts)
    variables = ["API", *(a.name.upper() for a in demo.accounts)]
    sets = f"{', '.join(variables[:-1])} and {variables[-1]}"
    return [
        f"demo       market {demo.market}; {names}, each funded once with {funds} by a "
        "deposit from the demo wallet",
        f'demo keys  {demo.keys_file}  (eval "$(.venv/bin/clob demo)" sets {sets})',
        *(f"  {a.name:<8} X-API-Key: {a.api_key}" for a in demo.accounts),
    ]


def shell_lines(settings: Settings, http_url: str) -> list[str]:
    """Return shell assignments of the API's URL and each demo account's key.

    Raises:
        DemoError: The data directory has no demo keys.
    """
    path = keys_path(settings)
    accounts = read_keys(path)
    if not accounts:
        raise DemoError(f"no demo keys in {path}: `clob up` creates them (demo.enabled)")
    lines = [f"API={shlex.quote(http_url + '/api/v1')}"]
    for name, account in accounts.items():
        key = shlex.quote(str(account["api_key"]))
        lines.append(f"{name.upper()}={key}  # account {account['account_id']}")
    return lines
