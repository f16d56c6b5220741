"""Integer records and engine events -> API views with decimal strings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from actors.contracts import PlaceOrder
from actors.engine import (
    Amended,
    Cancelled,
    Event,
    Fill,
    MarketSpec,
    OrderKind,
    StpDecrement,
    Triggered,
)
from actors.engine.spec import fee_quote_atoms, notional_quote_atoms
from actors.markets_repo import MarketRecord
from serve_app import units
from serve_app.gateway.models import (
    Balance,
    FillView,
    Level,
    MarketStats,
    MarketView,
    OrderView,
    OwnTrade,
    PublicTrade,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SETTLEMENT_FIELDS = frozenset({"settlement_id", "settlement_status"})
"""REST's settlement fields of a trade, left out of the WebSocket's trades and fills: a
trade is streamed before any settlement has it; its settlement's changes come on the
`settlements` channel."""


def _opt(value: Any, convert: Any) -> str | None:
    return None if value is None else str(convert(int(value)))


def order_from_row(spec: MarketSpec, row: Mapping[str, Any], fills: list[FillView]) -> OrderView:
    """Return the view of an `orders` row (ticks, lots and atoms in the row)."""
    return OrderView(
        order_id=row["order_id"],
        client_order_id=row["client_order_id"],
        market=spec.symbol,
        side=row["side"],
        kind=row["kind"],
        tif=row["tif"],
        price=_opt(row["price_ticks"], lambda t: units.ticks_to_price(spec, t)),
        stop_price=_opt(row["stop_price_ticks"], lambda t: units.ticks_to_price(spec, t)),
        qty=_opt(row["qty_lots"], lambda q: units.lots_to_qty(spec, q)),
        quote_qty=_opt(row["quote_qty_tick_lots"], lambda q: units.tick_lots_to_quote(spec, q)),
        display_qty=_opt(row["display_qty_lots"], lambda q: units.lots_to_qty(spec, q)),
        post_only=row["post_only"],
        stp=row["stp"],
        expire_at=row["expire_at"],
        status=row["status"],
        reason=row["reason"],
        open_qty=units.lots_to_qty(spec, int(row["open_qty_lots"])),
        filled_qty=units.lots_to_qty(spec, int(row["filled_qty_lots"])),
        filled_quote=units.quote_atoms_to_quote(spec, int(row["filled_quote_atoms"])),
        fee=units.quote_atoms_to_quote(spec, int(row["fee_atoms"])),
        fills=fills,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def fills_of(spec: MarketSpec, order_id: str, events: Iterable[Event]) -> list[FillView]:
    """Return the fills of one order among engine events."""
    out = []
    for e in events:
        if not isinstance(e, Fill) or order_id not in (e.maker_id, e.taker_id):
            continue
        out.append(
            FillView(
                seq=int(e.seq),
                price=units.ticks_to_price(spec, int(e.price)),
                qty=units.lots_to_qty(spec, int(e.qty)),
                quote_qty=units.quote_atoms_to_quote(
                    spec, notional_quote_atoms(spec, int(e.price), int(e.qty))
                ),
                liquidity="taker" if e.taker_id == order_id else "maker",
            )
        )
    return out


@dataclass
class _Progress:
    open_lots: int
    filled_lots: int = 0
    maker_atoms: int = 0
    taker_atoms: int = 0
    live: bool = True
    triggered: bool = False
    reason: str | None = None


def _track(p: _Progress, spec: MarketSpec, order_id: str, e: Event) -> None:
    if isinstance(e, Fill) and order_id in (e.maker_id, e.taker_id):
        lots, atoms = int(e.qty), notional_quote_atoms(spec, int(e.price), int(e.qty))
        p.filled_lots += lots
        p.open_lots = max(p.open_lots - lots, 0)
        if e.taker_id == order_id:
            p.taker_atoms += atoms
        else:
            p.maker_atoms += atoms
    elif isinstance(e, StpDecrement) and order_id in (e.maker_id, e.taker_id):
        p.open_lots = max(p.open_lots - int(e.qty), 0)
    elif isinstance(e, Cancelled) and e.id == order_id:
        p.live, p.open_lots, p.reason = False, 0, e.reason.value
    elif isinstance(e, Amended) and e.id == order_id:
        p.open_lots = int(e.qty)
    elif isinstance(e, Triggered) and e.id == order_id:
        p.triggered = True


def _status(p: _Progress, kind: OrderKind) -> str:
    if not p.live:
        return "expired" if p.reason == "expired" else "cancelled"
    if kind in (OrderKind.STOP_LIMIT, OrderKind.STOP_MARKET) and not p.triggered:
        return "untriggered"
    if p.open_lots == 0:
        return "filled"
    return "partially_filled" if p.filled_lots else "open"


def placed_order(
    spec: MarketSpec, command: PlaceOrder, client_order_id: str | None,
    events: Sequence[Event], ts_ms: int | None,
) -> OrderView:  # fmt: skip
    """Return the view of a just-placed order from its command (integers), its events and
    the market's clock when it was matched (`created_at`, as the orders table has it)."""
    order_id = command.id
    progress = _Progress(open_lots=int(command.qty or 0))
    for event in events:
        _track(progress, spec, order_id, event)
    fee = fee_quote_atoms(spec, progress.taker_atoms, spec.taker_fee_bps) + fee_quote_atoms(
        spec, progress.maker_atoms, spec.maker_fee_bps
    )
    row = {
        "order_id": order_id, "client_order_id": client_order_id,
        "side": command.side.value, "kind": command.kind.value, "tif": command.tif.value,
        "price_ticks": command.price, "stop_price_ticks": command.stop_price,
        "qty_lots": command.qty, "quote_qty_tick_lots": command.quote_qty,
        "display_qty_lots": command.display_qty,
        "post_only": None if command.post_only is None else command.post_only.value,
        "stp": command.stp.value, "status": _status(progress, command.kind),
        "expire_at": _ms_to_datetime(command.expire_at), "reason": progress.reason,
        "open_qty_lots": progress.open_lots, "filled_qty_lots": progress.filled_lots,
        "filled_quote_atoms": progress.maker_atoms + progress.taker_atoms, "fee_atoms": fee,
        "created_at": _ms_to_datetime(ts_ms), "updated_at": _ms_to_datetime(ts_ms),
    }  # fmt: skip
    return order_from_row(spec, row, fills_of(spec, order_id, events))


def _ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def _price(spec: MarketSpec, ticks: Any) -> str | None:
    return None if ticks is None else units.ticks_to_price(spec, int(ticks))


def market_stats(spec: MarketSpec, row: Mapping[str, Any] | None) -> MarketStats:
    """Return a market's 24 h stats from its `market_stats_24h` row (or none: no trades)."""
    s: Mapping[str, Any] = row or {}
    last, first = s.get("last_price_ticks"), s.get("open_price_ticks")
    change = percent = None
    if last is not None and first is not None:
        change = units.ticks_to_price(spec, int(last) - int(first))
        percent = units.percent_change(int(first), int(last))
    return MarketStats(
        last_price=_price(spec, last), open_price=_price(spec, first),
        high=_price(spec, s.get("high_price_ticks")), low=_price(spec, s.get("low_price_ticks")),
        change=change, change_percent=percent,
        volume=units.lots_to_qty(spec, int(s.get("volume_lots") or 0)),
        quote_volume=units.quote_atoms_to_quote(spec, int(s.get("quote_volume_atoms") or 0)),
        trade_count=int(s.get("trade_count") or 0),
    )  # fmt: skip


def market_view(record: MarketRecord, stats: MarketStats) -> MarketView:
    """Return the view of a market with its 24 h stats."""
    spec = record.spec
    return MarketView(
        symbol=spec.symbol, base_asset=spec.base_asset, quote_asset=spec.quote_asset,
        base_decimals=spec.base_decimals, quote_decimals=spec.quote_decimals,
        tick_size=units.ticks_to_price(spec, 1), lot_size=units.lots_to_qty(spec, 1),
        min_qty=_opt(spec.min_qty, lambda q: units.lots_to_qty(spec, q)),
        max_qty=_opt(spec.max_qty, lambda q: units.lots_to_qty(spec, q)),
        min_notional=_opt(spec.min_notional, lambda n: units.tick_lots_to_quote(spec, n)),
        maker_fee_bps=spec.maker_fee_bps, taker_fee_bps=spec.taker_fee_bps,
        status=spec.status.value, stats=stats,
    )  # fmt: skip


def levels(spec: MarketSpec, raw: Iterable[Mapping[str, Any]]) -> list[Level]:
    """Return L2 levels (ticks, lots) as decimal views."""
    return [
        Level(
            price=units.ticks_to_price(spec, int(lv["price"])),
            qty=units.lots_to_qty(spec, int(lv["qty"])),
            count=int(lv["count"]),
        )
        for lv in raw
    ]


def public_trade(  # noqa: PLR0917 (a trade's fields)
    spec: MarketSpec, seq: int, side: str, price: int, qty: int, at: datetime,
    settlement: tuple[int, str] | None = None,
) -> PublicTrade:  # fmt: skip
    """Return a trade of the public tape, with its settlement's id and status once batched."""
    settlement_id, status = settlement or (None, None)
    return PublicTrade(
        seq=seq,
        price=units.ticks_to_price(spec, price),
        qty=units.lots_to_qty(spec, qty),
        quote_qty=units.quote_atoms_to_quote(spec, notional_quote_atoms(spec, price, qty)),
        taker_side=side,  # type: ignore[arg-type]
        time=at,
        settlement_id=settlement_id,
        settlement_status=status,  # type: ignore[arg-type]
    )


def own_trade(spec: MarketSpec, row: Mapping[str, Any]) -> OwnTrade:
    """Return one of the caller's fills from a `trades` row plus its `liquidity` and
    `settlement_status`."""
    maker = row["liquidity"] == "maker"
    taker_side = row["taker_side"]
    side: Literal["buy", "sell"] = taker_side
    if maker:
        side = "sell" if taker_side == "buy" else "buy"
    return OwnTrade(
        trade_id=int(row["trade_id"]), seq=int(row["seq"]), market=spec.symbol,
        order_id=row["maker_order_id"] if maker else row["taker_order_id"],
        side=side, liquidity=row["liquidity"],
        price=units.ticks_to_price(spec, int(row["price_ticks"])),
        qty=units.lots_to_qty(spec, int(row["qty_lots"])),
        quote_qty=units.quote_atoms_to_quote(spec, int(row["quote_qty_atoms"])),
        fee=units.quote_atoms_to_quote(
            spec, int(row["maker_fee_atoms"] if maker else row["taker_fee_atoms"])
        ),
        fee_asset=spec.quote_asset, time=row["executed_at"],
        settlement_id=row["settlement_id"], settlement_status=row["settlement_status"],
    )  # fmt: skip


def balance(asset: str, decimals: int, available: int, locked: int) -> Balance:
    """Return one asset's balance view."""
    return Balance(
        asset=asset,
        available=units.atoms_to_decimal(available, decimals),
        locked=units.atoms_to_decimal(locked, decimals),
        total=units.atoms_to_decimal(available + locked, decimals),
    )
