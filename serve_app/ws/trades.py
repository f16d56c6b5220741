"""The `trades` channel's messages: one per batch with trades, each trade with the fields
of REST's public trades (`GET /trades/{market}`), or seed 002's `TradeExecution` per trade
in the `svm` format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from actors.stream.messages import MarketBatch
from serve_app.gateway import views
from serve_app.ws import svm
from serve_app.ws.book import Formatter
from serve_app.ws.protocol import encode

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def trades_messages(fmt: Formatter, batch: MarketBatch, format_: str) -> list[bytes]:
    """Return the encoded messages of a batch's trades in a format (`native`, `svm`)."""
    if format_ == "svm":
        return [svm.trade_message(fmt, batch.market, t) for t in batch.trades]
    trades: list[dict[str, Any]] = [
        views.public_trade(
            fmt.spec, t.id, t.taker_side, t.price, t.qty, _EPOCH + timedelta(milliseconds=t.ts)
        ).model_dump(mode="json")
        for t in batch.trades
    ]
    return [encode({"channel": "trades", "market": batch.market, "trades": trades, "E": batch.E})]
