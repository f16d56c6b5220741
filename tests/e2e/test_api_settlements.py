"""Settlements over HTTP and the WebSocket, on real trades: `GET /settlements/{id}`, the
trade views' settlement fields (public tape from memory and from PostgreSQL, own fills),
the operators' list and retry, and the `settlements` channel reaching each account of a
settlement with its own trades only.

The batcher is not run here: the test makes the settlements with `records.create` and
moves them with `records.transition`, as the batcher does, and publishes their changes with
`settlement_messages` to Redis, as the batcher's sink does.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from actors.ledger import store
from actors.settlement import records
from actors.settlement.states import SettlementStatus as S
from actors.stream.messages import settlement_messages
from tests.e2e.conftest import Exchange, Trader
from tests.e2e.ws_client import WsClient
from tests.support.settlement_kit import SIGNATURES, plan_of

CHAIN_MARKET = secrets.randbits(62)  # the e2e database's settlement batch keys are its own


@dataclass
class Settled:
    """The module's market, its traders and its two settlements (pending as created)."""

    market: str
    maker: Trader  # sold three times
    takers: tuple[Trader, Trader]  # bought: the first twice (trades 1 and 3), the second once
    first: int  # netted: trades 1 and 2
    second: int  # unnetted: trade 3
    seqs: tuple[int, int, int]


async def _settle(database_url: str, symbol: str) -> tuple[int, int, tuple[int, int, int]]:
    conn = await store.connect(database_url)
    try:
        market_id = await conn.fetchval("SELECT market_id FROM markets WHERE symbol = $1", symbol)
        await records.market_state(conn, market_id, CHAIN_MARKET)
        trades = await records.trades_after(conn, market_id, 0, 10)
        assert len(trades) == 3
        first = await records.create(conn, market_id, plan_of(trades[:2], netted=True),
                                     netted=True)  # fmt: skip
        second = await records.create(conn, market_id, plan_of(trades[2:], netted=False),
                                      netted=False)  # fmt: skip
        seqs = (trades[0].seq, trades[1].seq, trades[2].seq)
        return first.settlement_id, second.settlement_id, seqs
    finally:
        await conn.close()


async def _advance(database_url: str, settlement_id: int, *steps: tuple[str, str, dict[str, Any]]
                   ) -> dict[int, list[int]]:  # fmt: skip
    """Move a settlement along `steps` (old, new, fields); return its accounts' trades."""
    conn = await store.connect(database_url)
    try:
        for old, new, fields in steps:
            assert await records.transition(conn, settlement_id, old, new, **fields)
        return await records.accounts_of(conn, settlement_id)
    finally:
        await conn.close()


async def _attempt(database_url: str, settlement_id: int) -> None:
    conn = await store.connect(database_url)
    try:
        await records.add_attempt(conn, settlement_id, SIGNATURES[0], b"\x01" * 400, 1_000,
                                  12_000, 500)  # fmt: skip
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def settled(exchange: Exchange) -> Settled:
    market = exchange.create_market("STL")
    maker = exchange.trader(STL="10")
    takers = (exchange.trader(USDC="1000"), exchange.trader(USDC="1000"))
    for price in ("10.00", "10.01", "10.02"):
        maker.place(market=market, side="sell", price=price, qty="1")
    for taker, price in ((takers[0], "10.00"), (takers[1], "10.01"), (takers[0], "10.02")):
        taker.place(market=market, side="buy", price=price, qty="1", tif="ioc")
    # Own fills wait for the projection: then the trades are stored.
    assert len(maker.http.get("/api/v1/trades").json()["trades"]) == 3
    first, second, seqs = asyncio.run(_settle(exchange.database_url, market))
    return Settled(market, maker, takers, first, second, seqs)


@pytest.fixture(scope="module")
def publisher(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _get(exchange: Exchange, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{exchange.url}/api/v1{path}", params=params, timeout=30)


def test_a_settlement_is_public_with_its_trades_attempts_and_progress(
    exchange: Exchange, settled: Settled
) -> None:
    asyncio.run(_attempt(exchange.database_url, settled.first))
    asyncio.run(_advance(exchange.database_url, settled.first,
                         (S.PENDING, S.SUBMITTED, {}),
                         (S.SUBMITTED, S.CONFIRMED, {"slot": 77, "cu_consumed": 7_150,
                                                     "fee_lamports": 17_000})))  # fmt: skip
    answer = _get(exchange, f"/settlements/{settled.first}")  # no key: public
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {k: body[k] for k in ("settlement_id", "market", "status", "signature", "slot",
                                 "batch_count", "netted", "trade_count", "retries",
                                 "fee_lamports", "compute_units", "tx_bytes")} == {
        "settlement_id": settled.first, "market": settled.market, "status": "confirmed",
        "signature": SIGNATURES[0], "slot": 77, "batch_count": 1, "netted": True,
        "trade_count": 2, "retries": 0, "fee_lamports": 17_000, "compute_units": 7_150,
        "tx_bytes": 400,
    }  # fmt: skip
    assert body["confirmed_at"] is not None and body["finalized_at"] is None
    assert [(t["seq"], t["price"], t["qty"], t["taker_side"]) for t in body["trades"]] == [
        (settled.seqs[0], "10.000000", "1.000000000", "buy"),
        (settled.seqs[1], "10.010000", "1.000000000", "buy"),
    ]  # fmt: skip
    assert {(t["settlement_id"], t["settlement_status"]) for t in body["trades"]} == {
        (settled.first, "confirmed")
    }
    [attempt] = body["attempts"]
    assert (attempt["attempt"], attempt["signature"], attempt["status"]) == (
        1, SIGNATURES[0], "sent",
    )  # fmt: skip
    assert attempt["priority_fee_micro_lamports"] == 1_000 and "wire" not in attempt
    for missing, code in ((10**12, 404), (0, 422), (2**63, 422)):
        refused = _get(exchange, f"/settlements/{missing}")
        assert refused.status_code == code, refused.text
    assert _get(exchange, f"/settlements/{10**12}").json()["code"] == "settlement_not_found"


def test_trade_views_show_each_trades_settlement(exchange: Exchange, settled: Settled) -> None:
    status = {settled.first: "confirmed", settled.second: "pending"}
    expected = dict(zip(settled.seqs, (settled.first, settled.first, settled.second),
                        strict=True))  # fmt: skip
    newest = _get(exchange, f"/trades/{settled.market}", limit=2).json()  # market's memory
    older = _get(exchange, f"/trades/{settled.market}", limit=2,
                 cursor=newest["next_cursor"]).json()  # PostgreSQL  # fmt: skip
    seen = newest["trades"] + older["trades"]
    assert sorted(t["seq"] for t in seen) == sorted(settled.seqs)
    for t in seen:
        sid = expected[t["seq"]]
        assert (t["settlement_id"], t["settlement_status"]) == (sid, status[sid])
    fills = settled.maker.http.get("/api/v1/trades").json()["trades"]
    assert {(f["seq"], f["settlement_id"], f["settlement_status"]) for f in fills} == {
        (seq, sid, status[sid]) for seq, sid in expected.items()
    }


def test_operators_list_and_retry_a_failed_settlement(exchange: Exchange, settled: Settled) -> None:
    failing = (S.PENDING, S.FAILED, {"retries": 3, "last_error": "rpc down"})
    asyncio.run(_advance(exchange.database_url, settled.second, failing))
    listed = exchange.admin.get("/api/v1/admin/settlements",
                                params={"status": "failed", "market": settled.market})  # fmt: skip
    assert listed.status_code == 200, listed.text
    [failed] = listed.json()["settlements"]
    assert (failed["settlement_id"], failed["retries"], failed["last_error"]) == (
        settled.second, 3, "rpc down",
    )  # fmt: skip
    retried = exchange.admin.post(f"/api/v1/admin/settlements/{settled.second}/retry")
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["retries"]) == ("pending", 0)
    again = exchange.admin.post(f"/api/v1/admin/settlements/{settled.second}/retry")
    assert (again.status_code, again.json()["code"]) == (409, "settlement_not_failed")
    unknown = exchange.admin.post(f"/api/v1/admin/settlements/{10**12}/retry")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "settlement_not_found")
    assert httpx.get(f"{exchange.url}/api/v1/admin/settlements").status_code == 403
    for params, code in (({"status": "lost"}, 422), ({"market": "NOPE-USDC"}, 404),
                         ({"cursor": "x"}, 422)):  # fmt: skip
        refused = exchange.admin.get("/api/v1/admin/settlements", params=params)
        assert refused.status_code == code, refused.text


def test_a_settlement_change_reaches_each_account_with_its_own_trades_only(
    exchange: Exchange, settled: Settled, publisher: redis.Redis
) -> None:
    outsider = exchange.trader()
    clients = {}
    for trader in (settled.maker, *settled.takers, outsider):
        client = WsClient(exchange.url)
        assert client.call(op="auth", api_key=trader.key)["account_id"] == trader.account_id
        assert client.call(op="subscribe", channel="settlements")["op"] == "subscribed"
        clients[trader.account_id] = client
    accounts = asyncio.run(_advance(exchange.database_url, settled.first,
                                    (S.CONFIRMED, S.FINALIZED, {})))  # fmt: skip
    for channel, data in settlement_messages(accounts, settled.first, settled.market,
                                             "finalized", SIGNATURES[0], 77, 1):  # fmt: skip
        assert publisher.publish(channel, data) >= 1  # the gateway listens
    own = {settled.maker.account_id: [settled.seqs[0], settled.seqs[1]],
           settled.takers[0].account_id: [settled.seqs[0]],
           settled.takers[1].account_id: [settled.seqs[1]]}  # fmt: skip
    for account, seqs in own.items():
        first = clients[account].until(lambda m: m.get("channel") == "settlements")
        got = [first, *(m for m in clients[account].drain() if "channel" in m)]
        assert [m["settlements"] for m in got] == [[{
            "settlement_id": settled.first, "market": settled.market, "status": "finalized",
            "signature": SIGNATURES[0], "slot": 77, "trades": seqs,
        }]]  # fmt: skip
    assert [m for m in clients[outsider.account_id].drain() if "channel" in m] == []
    for client in clients.values():
        client.close()
