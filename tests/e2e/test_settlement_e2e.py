"""Settlement end to end, as clients see it: accounts funded by real deposits trade over
REST (a partial fill on each side), a settlement batcher (`settlement:0`) puts the trades
on the session's embedded chain, and then every trade view shows its settlement
finalized, `GET /settlements/{id}` shows how it landed, each account's `settlements`
socket saw submitted, confirmed and finalized with its own trades only (an outsider's saw
nothing), the vaults on chain equal the ledger to the atom, and the system status shows
the batcher up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys
from actors.chain.program import PROGRAM_ID, fee_vault_pda, vault_pda
from serve_app.demo_deposit import mint_and_deposit
from tests.e2e.conftest import Exchange, Trader
from tests.e2e.ws_client import WsClient

pytestmark = pytest.mark.timeout(300)
BASE, QUOTE = "SETB", "SETQ"  # this module's own assets: 9 and 6 decimals (MARKET_SPEC)
DECIMALS = {BASE: 9, QUOTE: 6}
STATUSES = ["submitted", "confirmed", "finalized"]


@dataclass
class Settled:
    """The module's market after its trades settled: the traders, each one's socket
    messages on `settlements`, and the outsider's."""

    market: str
    maker: Trader  # sold 2: to the first taker 1, to the second 1 (its order filled in two)
    takers: tuple[Trader, Trader]  # the second bought 1.5: 1 filled, 0.5 rests
    seen: dict[int, list[dict[str, Any]]]  # account -> its settlement views, in order
    outsider_seen: list[dict[str, Any]]
    finished_at: datetime


def _until(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    """GET an API path with a trader's client (or a client without a key); check 200."""
    response = client.get(f"/api/v1{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _public(exchange: Exchange, path: str, **params: Any) -> Any:
    with httpx.Client(base_url=exchange.url, timeout=30) as client:
        return _get(client, path, **params)


def _atoms(amount: str, asset: str) -> int:
    return int(Decimal(amount) * 10 ** DECIMALS[asset])


async def _deposit_all(url: str, keys: ChainKeys, deposits: list[tuple[dict[str, Any], int]]
                       ) -> None:  # fmt: skip
    async with ChainClient(url) as client:
        for address, atoms in deposits:
            await mint_and_deposit(client, keys, Keypair(), Pubkey.from_string(address["mint"]),
                                   Pubkey.from_string(address["address"]), atoms,
                                   DECIMALS[address["asset"]])  # fmt: skip


def _credited(trader: Trader, asset: str, amount: str) -> bool:
    return trader.balances().get(asset, ("0", "0"))[0] == f"{Decimal(amount):.{DECIMALS[asset]}f}"


def _fund(url: str, keys: ChainKeys, funds: list[tuple[Trader, str, str]]) -> None:
    """Deposit each (trader, asset, amount) on chain into the trader's deposit address;
    wait for every credit."""
    deposits = [(_get(t.http, "/deposit-address", asset=asset), _atoms(amount, asset))
                for t, asset, amount in funds]  # fmt: skip
    asyncio.run(_deposit_all(url, keys, deposits))
    for trader, asset, amount in funds:
        _until(f"the credit of {amount} {asset}", partial(_credited, trader, asset, amount))


def _socket(exchange: Exchange, trader: Trader) -> WsClient:
    client = WsClient(exchange.url)
    assert client.call(op="auth", api_key=trader.key)["account_id"] == trader.account_id
    assert client.call(op="subscribe", channel="settlements")["op"] == "subscribed"
    return client


def _all_finalized(trades: list[dict[str, Any]]) -> bool:
    return bool(trades) and all(t["settlement_status"] == "finalized" for t in trades)


def _views_until_finalized(client: WsClient, settlement_ids: set[int]) -> list[dict[str, Any]]:
    """Return the socket's settlement views until each settlement's `finalized` came, and
    any that follow within a quiet moment."""
    views: list[dict[str, Any]] = []
    done: set[int] = set()
    while done != settlement_ids:
        message = client.until(lambda m: m.get("channel") == "settlements", timeout=30)
        views.extend(message["settlements"])
        done |= {v["settlement_id"] for v in views if v["status"] == "finalized"}
    for message in client.drain():
        views.extend(message.get("settlements", []) if "channel" in message else [])
    return views


@pytest.fixture(scope="module")
def settled(
    exchange: Exchange, custody: Any, settlement: Callable[[str], Any], solana_rpc_url: str,
    chain_keys: ChainKeys,
) -> Settled:  # fmt: skip
    import ray

    market = exchange.create_market(BASE, QUOTE)
    ray.get(custody.sync.remote(), timeout=120)  # the new assets' mints and the market
    settlement(market)
    maker, takers, outsider = exchange.trader(), (exchange.trader(), exchange.trader()), \
        exchange.trader()  # fmt: skip
    _fund(solana_rpc_url, chain_keys,
          [(maker, BASE, "3"), (takers[0], QUOTE, "50"), (takers[1], QUOTE, "50")])  # fmt: skip
    sockets = {t.account_id: _socket(exchange, t) for t in (maker, *takers, outsider)}
    maker.place(market=market, side="sell", price="10.00", qty="2")
    takers[0].place(market=market, side="buy", price="10.00", qty="1")
    takers[1].place(market=market, side="buy", price="10.00", qty="1.5")
    _until("every trade's settlement finalized", lambda: _all_finalized(
        _public(exchange, f"/trades/{market}")["trades"]))  # fmt: skip
    seen = {}
    for trader in (maker, *takers):
        own = {t["settlement_id"] for t in _get(trader.http, "/trades")["trades"]}
        seen[trader.account_id] = _views_until_finalized(sockets[trader.account_id], own)
    outsider_seen = [m for m in sockets[outsider.account_id].drain() if "channel" in m]
    for client in sockets.values():
        client.close()
    return Settled(market, maker, takers, seen, outsider_seen, datetime.now(UTC))


def test_every_trade_gets_a_settlement_that_reaches_finalized_in_both_trade_views(
    exchange: Exchange, settled: Settled
) -> None:
    tape = _public(exchange, f"/trades/{settled.market}")["trades"]
    assert len(tape) == 2 and all(isinstance(t["settlement_id"], int) for t in tape), tape
    assert _all_finalized(tape)
    by_seq = {t["seq"]: t["settlement_id"] for t in tape}
    for trader, count in ((settled.maker, 2), (settled.takers[0], 1), (settled.takers[1], 1)):
        fills = _get(trader.http, "/trades")["trades"]
        assert len(fills) == count and _all_finalized(fills), fills
        assert {(f["seq"], f["settlement_id"]) for f in fills} <= set(by_seq.items())


def test_a_finalized_settlement_shows_how_it_landed(exchange: Exchange, settled: Settled) -> None:
    tape = _public(exchange, f"/trades/{settled.market}")["trades"]
    for settlement_id in {t["settlement_id"] for t in tape}:
        body = _public(exchange, f"/settlements/{settlement_id}")  # public
        assert (body["settlement_id"], body["market"], body["status"]) == (
            settlement_id, settled.market, "finalized",
        )  # fmt: skip
        assert body["signature"] and body["slot"] > 0 and body["finalized_at"] is not None
        assert sorted(t["seq"] for t in body["trades"]) == sorted(
            t["seq"] for t in tape if t["settlement_id"] == settlement_id
        )  # fmt: skip
        assert body["trade_count"] == len(body["trades"]) and body["netted"] is True
        assert body["attempts"] and body["signature"] in {a["signature"]
                                                          for a in body["attempts"]}  # fmt: skip
        # 5,000 lamports for the signature plus a priority fee (a price of 1,000 micro-
        # lamports per unit times a limit of some thousands: a few lamports).
        assert body["fee_lamports"] > 5_000 and body["retries"] == 0, body
        assert 1_000 < body["compute_units"] < 200_000 and 0 < body["tx_bytes"] <= 1_232


def test_each_accounts_socket_saw_every_step_with_its_own_trades_only(
    exchange: Exchange, settled: Settled
) -> None:
    for trader in (settled.maker, *settled.takers):
        fills = _get(trader.http, "/trades")["trades"]
        own: dict[int, list[int]] = {}
        for fill in sorted(fills, key=lambda f: f["seq"]):
            own.setdefault(fill["settlement_id"], []).append(fill["seq"])
        views = settled.seen[trader.account_id]
        assert {v["settlement_id"] for v in views} == set(own), views
        for settlement_id, seqs in own.items():
            mine = [v for v in views if v["settlement_id"] == settlement_id]
            assert [v["status"] for v in mine] == STATUSES, mine
            assert all(v["trades"] == seqs and v["market"] == settled.market for v in mine)
            assert mine[-1]["signature"] and mine[-1]["slot"] > 0
    assert settled.outsider_seen == []


def _vaults(trader: Trader, mints: dict[str, Pubkey]) -> dict[str, Pubkey]:
    return {asset: vault_pda(PROGRAM_ID, mint, trader.account_id) for asset, mint in mints.items()}


async def _on_chain(url: str, accounts: list[Pubkey]) -> list[int]:
    async with ChainClient(url) as client:
        found = await client.token_balances(accounts, "confirmed")
    return [found[a] or 0 for a in accounts]


def test_the_vaults_on_chain_equal_the_ledger_to_the_atom(
    exchange: Exchange, settled: Settled, solana_rpc_url: str
) -> None:
    mints = {a["asset"]: Pubkey.from_string(a["mint"]) for a in (
        _get(settled.maker.http, "/deposit-address", asset=asset)
        for asset in DECIMALS)}  # fmt: skip
    traders = (settled.maker, *settled.takers)
    ledger = [sum(_atoms(x, asset) for x in t.balances().get(asset, ("0", "0")))
              for t in traders for asset in DECIMALS]  # fmt: skip
    vaults = [_vaults(t, mints)[asset] for t in traders for asset in DECIMALS]
    fee_vault = fee_vault_pda(PROGRAM_ID, mints[QUOTE])
    on_chain = asyncio.run(_on_chain(solana_rpc_url, [*vaults, fee_vault]))
    assert on_chain[:-1] == ledger
    # Fees: the takers' 20 bps and the maker's 10 bps of two trades of 10 quote each.
    assert on_chain[-1] == _atoms("0.06", QUOTE)

    def report() -> dict[str, Any] | None:
        body: dict[str, Any] = _public(exchange, "/reserves")
        fresh = datetime.fromisoformat(body["as_of"]) > settled.finished_at
        return body if fresh else None

    body = _until("a reserves report after the settlements", report, timeout_s=30)
    rows = {r["asset"]: r for r in body["assets"] if r["asset"] in DECIMALS}
    zero = {asset: f"{0:.{d}f}" for asset, d in DECIMALS.items()}
    assert {a: (r["difference"], r["unsettled"]) for a, r in rows.items()} == {
        a: (z, z) for a, z in zero.items()
    }, rows  # fmt: skip
    # The first 20 differing vaults, largest first: other modules' credited accounts may
    # differ (credits are not deposits), so ours are checked one by one above too.
    assert [v for v in body["differing"] if v["asset"] in DECIMALS] == []


def test_the_system_status_shows_the_batcher_and_the_settlements_up(
    exchange: Exchange, settled: Settled
) -> None:
    body = exchange.admin.get("/api/v1/system/status").json()
    components = {c["name"]: c for c in body["components"]}
    batcher, summary = components["settlement:0"], components["settlements"]
    assert batcher["status"] == "up" and summary["status"] == "up", (batcher, summary)
    assert settled.market in batcher["details"]["markets"]
    assert batcher["details"]["finalized"] >= 1 and batcher["details"]["failed"] == 0
    assert summary["details"]["failed"] == 0
