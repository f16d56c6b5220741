"""The `settlements` channel over fakes: the batcher's messages give each account its own
trades only, and an account's feed renders them for that account's subscribers alone."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from actors.engine import MarketSpec
from actors.stream.messages import account_channel, decode_account, settlement_messages
from serve_app.ws.account_feed import AccountFeed
from serve_app.ws.connection import Connection, Limits

SIGNATURE = "5" * 88


class Client:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.conn = Connection(self.send, Limits(), "t")
        self.conn.start()

    async def send(self, message: dict[str, Any]) -> None:
        self.frames.append(json.loads(message["text"]))


async def _spec(symbol: str) -> MarketSpec:
    raise AssertionError("a settlement needs no market spec")


async def _decimals(asset: str) -> int:
    raise AssertionError("a settlement needs no decimals")


def _messages() -> dict[str, bytes]:
    # Account 7 made trades 11 and 12 (maker in both), 8 took 11, 9 took 12.
    return dict(settlement_messages({7: [11, 12], 8: [11], 9: [12]}, 40, "SOL-USDC",
                                    "confirmed", SIGNATURE, 1_234, 1_700_000_000_000))  # fmt: skip


def test_each_account_gets_its_own_trades_on_its_own_channel() -> None:
    messages = _messages()
    assert set(messages) == {account_channel(a) for a in (7, 8, 9)}
    for account, seqs in ((7, [11, 12]), (8, [11]), (9, [12])):
        batch = decode_account(messages[account_channel(account)])
        [state] = batch.settlements
        assert (batch.account_id, batch.E, batch.orders, batch.fills) == (
            account, 1_700_000_000_000, [], [],
        )  # fmt: skip
        assert (state.settlement_id, state.market, state.status, state.trades) == (
            40, "SOL-USDC", "confirmed", seqs,
        )  # fmt: skip
        assert (state.signature, state.slot) == (SIGNATURE, 1_234)


async def test_the_feed_renders_a_settlement_for_its_subscribers_only() -> None:
    feed = AccountFeed(8, _spec, _decimals)
    mine, other_market, orders_only = Client(), Client(), Client()
    feed.join(mine.conn, ("settlements", None, "native"))
    feed.join(other_market.conn, ("settlements", "BTC-USDC", "native"))
    feed.join(orders_only.conn, ("orders", None, "native"))
    messages = _messages()
    await feed.on_message(messages[account_channel(7)])  # another account's: ignored
    await feed.on_message(messages[account_channel(8)])
    await asyncio.sleep(0.01)
    [frame] = mine.frames
    assert {k: v for k, v in frame.items() if k != "seq"} == {
        "channel": "settlements", "E": 1_700_000_000_000,
        "settlements": [{"settlement_id": 40, "market": "SOL-USDC", "status": "confirmed",
                         "signature": SIGNATURE, "slot": 1_234, "trades": [11]}],
    }  # fmt: skip
    assert other_market.frames == orders_only.frames == []
