"""The `svm` format (`"format": "svm"` on subscribe): seed 002's WebSocket message types,
`MarketData` (`OrderBookUpdate`, `TradeExecution`) and `OrderUpdate`, with their field names.

Prices and quantities are JSON numbers written exactly from the decimal strings (never
through a float); a few fields the seed lacks are added (`market`, the book message's
`type`, `first_update_id`, `checksum`) so that the book can be kept as in the native format.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.stream.messages import OrderState, Trade
from serve_app.ws.book import Formatter, PriceQty
from serve_app.ws.protocol import encode

_SIDE = {"buy": "Bid", "sell": "Ask"}
_KIND = {"limit": "Limit", "market": "Market", "stop_limit": "StopLimit",
         "stop_market": "StopMarket"}  # fmt: skip
_STATUS = {
    "open": "Open", "untriggered": "Untriggered", "partially_filled": "PartiallyFilled",
    "filled": "Filled", "cancelled": "Cancelled", "expired": "Expired", "rejected": "Rejected",
}  # fmt: skip


def number(text: str) -> msgspec.Raw:
    """Return a decimal string as a JSON number, digit for digit."""
    return msgspec.Raw(text.encode())


def _levels(fmt: Formatter, levels: list[PriceQty]) -> list[list[msgspec.Raw]]:
    return [[number(fmt.price(p)), number(fmt.qty(q))] for p, q in levels]


def book_message(  # noqa: PLR0917 (a message's fields)
    fmt: Formatter, market: str, kind: str, u: int, e_ms: int,
    bids: list[PriceQty], asks: list[PriceQty], check: int,
) -> bytes:  # fmt: skip
    """Return a `MarketData` / `OrderBookUpdate` message (a snapshot or a diff: `type`)."""
    book = {"bids": _levels(fmt, bids), "asks": _levels(fmt, asks), "sequence_number": u,
            "timestamp": e_ms, "type": kind, "checksum": check}  # fmt: skip
    data = {"update_type": "OrderBookUpdate", "market": market, "order_book": book}
    return encode({"type": "MarketData", "data": data})


def trade_message(fmt: Formatter, market: str, trade: Trade) -> bytes:
    """Return a `MarketData` / `TradeExecution` message of one trade."""
    body: dict[str, Any] = {
        "trade_id": trade.id, "maker_order_id": trade.maker_order_id,
        "taker_order_id": trade.taker_order_id, "price": number(fmt.price(trade.price)),
        "quantity": number(fmt.qty(trade.qty)), "timestamp": trade.ts,
        "maker_side": "Ask" if trade.taker_side == "buy" else "Bid",
    }  # fmt: skip
    data = {"update_type": "TradeExecution", "market": market, "trade": body}
    return encode({"type": "MarketData", "data": data})


def order_message(fmt: Formatter, account_id: int, state: OrderState) -> bytes:
    """Return an `OrderUpdate` message of one order's state."""
    order: dict[str, Any] = {
        "order_id": state.order_id, "client_order_id": state.client_order_id,
        "owner": str(account_id), "side": _SIDE.get(state.side, state.side),
        "order_type": _KIND.get(state.kind, state.kind),
        "price": None if state.price is None else number(fmt.price(state.price)),
        "quantity": None if state.qty is None else number(fmt.qty(state.qty)),
        "remaining_quantity": number(fmt.qty(state.open_qty)),
        "status": _STATUS.get(state.status, state.status),
        "timestamp": state.updated_at or state.created_at, "market": state.market,
    }  # fmt: skip
    return encode({"type": "OrderUpdate", "data": {"order": order}})
