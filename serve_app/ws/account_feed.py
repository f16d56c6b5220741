"""One account's private stream on one gateway replica: `orders`, `fills`, `balances` and
`settlements` for the connections authenticated with that account's keys.

Each `AccountBatch` from `stream:acct:{account_id}` becomes at most one message per
channel and filter (`market`), encoded once and queued on each subscriber. Orders show
REST's `OrderView` fields (without `fills`) plus `avg_price`; fills REST's own-trade
fields; balances REST's balance fields; settlements a settlement's new status with the
account's own trades in it (`settlement_view`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from actors.engine import MarketSpec
from actors.stream.messages import (
    AccountBatch,
    AccountFill,
    OrderState,
    SettlementState,
    decode_account,
)
from serve_app import units
from serve_app.gateway import views
from serve_app.gateway.models import OwnTrade
from serve_app.ws import svm
from serve_app.ws.book import Formatter
from serve_app.ws.connection import Connection
from serve_app.ws.protocol import encode

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SpecOf = Callable[[str], Awaitable[MarketSpec]]
DecimalsOf = Callable[[str], Awaitable[int]]
Filter = tuple[str, str | None, str]  # channel, market (None: all), format


def _when(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def order_view(spec: MarketSpec, state: OrderState) -> dict[str, Any]:
    """Return an order's state as REST's `OrderView` JSON (no `fills`) plus `avg_price`."""
    row = {
        "order_id": state.order_id, "client_order_id": state.client_order_id,
        "side": state.side, "kind": state.kind, "tif": state.tif,
        "price_ticks": state.price, "stop_price_ticks": state.stop_price,
        "qty_lots": state.qty, "quote_qty_tick_lots": state.quote_qty,
        "display_qty_lots": state.display_qty, "post_only": state.post_only, "stp": state.stp,
        "expire_at": _when(state.expire_at), "status": state.status, "reason": state.reason,
        "open_qty_lots": state.open_qty, "filled_qty_lots": state.filled_qty,
        "filled_quote_atoms": state.filled_quote, "fee_atoms": state.fee,
        "created_at": _when(state.created_at), "updated_at": _when(state.updated_at),
    }  # fmt: skip
    view = views.order_from_row(spec, row, []).model_dump(mode="json", exclude={"fills"})
    view["avg_price"] = units.average_price(spec, state.filled_quote, state.filled_qty)
    return view


def fill_view(spec: MarketSpec, fill: AccountFill) -> dict[str, Any]:
    """Return a fill as REST's own-trade JSON (`GET /trades`), without `trade_id`: the
    database numbers trades when it projects them, after the stream has them. `seq` (the
    per-market trade id, `AccountFill.trade_id`) is in both."""
    return OwnTrade(
        trade_id=0, seq=fill.trade_id, market=fill.market, order_id=fill.order_id, side=fill.side,
        liquidity=fill.liquidity, price=units.ticks_to_price(spec, fill.price),
        qty=units.lots_to_qty(spec, fill.qty),
        quote_qty=units.quote_atoms_to_quote(spec, fill.quote),
        fee=units.quote_atoms_to_quote(spec, fill.fee), fee_asset=spec.quote_asset,
        time=_when(fill.ts) or _EPOCH,
    ).model_dump(mode="json", exclude={"trade_id", *views.SETTLEMENT_FIELDS})  # fmt: skip


def settlement_view(state: SettlementState) -> dict[str, Any]:
    """Return a settlement's change of status as the account sees it: the fields of REST's
    `GET /settlements/{id}` that change, and `trades`, the seqs of the account's own trades
    in it (the settlement's other trades are other accounts')."""
    return {
        "settlement_id": state.settlement_id, "market": state.market, "status": state.status,
        "signature": state.signature, "slot": state.slot, "trades": list(state.trades),
    }  # fmt: skip


class AccountFeed:
    """See the module docstring."""

    def __init__(self, account_id: int, spec_of: SpecOf, decimals_of: DecimalsOf) -> None:
        self.account_id = account_id
        self.members: dict[Connection, set[Filter]] = {}
        self._spec_of = spec_of
        self._decimals_of = decimals_of

    def empty(self) -> bool:
        """Return whether nobody listens any more."""
        return not self.members

    def join(self, conn: Connection, flt: Filter) -> None:
        """Add a subscription of a connection."""
        self.members.setdefault(conn, set()).add(flt)

    def leave(self, conn: Connection, flt: Filter) -> None:
        """Remove a subscription of a connection."""
        filters = self.members.get(conn)
        if filters is not None:
            filters.discard(flt)
            if not filters:
                del self.members[conn]

    async def on_message(self, data: bytes) -> None:
        """Take one `AccountBatch` from Redis and send it to the subscribers."""
        try:
            batch = decode_account(data)
        except msgspec.DecodeError:
            log.error("account %d: undecodable stream message dropped", self.account_id)
            return
        if batch.account_id != self.account_id or not self.members:
            return
        bodies: dict[Filter, list[bytes]] = {}  # encoded once, not per connection
        for conn, filters in list(self.members.items()):
            for flt in sorted(filters, key=str):
                if flt not in bodies:
                    bodies[flt] = await self._messages(batch, flt)
                for body in bodies[flt]:
                    conn.send(body)

    async def _messages(self, batch: AccountBatch, flt: Filter) -> list[bytes]:
        channel, market, format_ = flt
        if channel == "orders":
            orders = [o for o in batch.orders if market in (None, o.market)]
            if format_ == "svm":
                return [
                    svm.order_message(Formatter(await self._spec_of(o.market)), batch.account_id, o)
                    for o in orders
                ]
            data = [order_view(await self._spec_of(o.market), o) for o in orders]
        elif channel == "fills":
            fills = [f for f in batch.fills if market in (None, f.market)]
            data = [fill_view(await self._spec_of(f.market), f) for f in fills]
        elif channel == "balances":
            data = [
                views.balance(b.asset, await self._decimals_of(b.asset), b.available, b.locked)
                .model_dump(mode="json")
                for b in batch.balances
            ]  # fmt: skip
        else:  # settlements
            data = [settlement_view(st) for st in batch.settlements if market in (None, st.market)]
        if not data:
            return []
        return [encode({"channel": channel, channel: data, "E": batch.E})]
