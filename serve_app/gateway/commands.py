"""Request bodies -> the market's typed commands (integers), with the gateway's checks.

Everything that can be refused from the market spec alone is refused here, before any actor
is called, so bad input never reaches the pipeline: off-grid prices and quantities, and the
spec's quantity and notional bounds. The market actor and the engine check again (they are
the authority); these checks only give clearer codes and save the round trip.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.contracts import AmendOrder, PlaceOrder
from actors.engine import (
    Lots,
    MarketSpec,
    Millis,
    OrderId,
    OrderKind,
    PostOnly,
    Side,
    StpMode,
    TickLots,
    Ticks,
    TimeInForce,
)
from serve_app import units
from serve_app.errors import ApiError
from serve_app.gateway.models import OrderAmend, OrderCreate
from serve_app.gateway.rejects import api_error

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JsonDict = dict[str, Any]


def new_order_id() -> str:
    """Return a fresh exchange order id."""
    return str(uuid.uuid4())


def to_ms(at: datetime) -> int:
    """Return an aware datetime as milliseconds since the epoch."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _unit_error(exc: units.UnitError) -> ApiError:
    return api_error(exc.code, str(exc), field=exc.field)


def _convert(spec: MarketSpec, body: OrderCreate) -> JsonDict:
    out: JsonDict = {}
    for name, convert in (
        ("price", units.price_to_ticks),
        ("stop_price", units.price_to_ticks),
        ("qty", units.qty_to_lots),
        ("display_qty", units.qty_to_lots),
        ("quote_qty", units.quote_to_tick_lots),
    ):
        text = getattr(body, name)
        if text is not None:
            out[name] = convert(spec, text, name)
    return out


def _check_bounds(spec: MarketSpec, kind: str, fields: JsonDict) -> None:
    qty, price = fields.get("qty"), fields.get("price")
    if qty is not None and spec.min_qty is not None and qty < spec.min_qty:
        raise api_error(
            "qty_below_minimum",
            f"qty is below the minimum {units.lots_to_qty(spec, spec.min_qty)}",
            field="qty", min_qty=units.lots_to_qty(spec, spec.min_qty),
        )  # fmt: skip
    if qty is not None and spec.max_qty is not None and qty > spec.max_qty:
        raise api_error(
            "qty_above_maximum",
            f"qty is above the maximum {units.lots_to_qty(spec, spec.max_qty)}",
            field="qty", max_qty=units.lots_to_qty(spec, spec.max_qty),
        )  # fmt: skip
    limit_kind = kind in ("limit", "stop_limit")
    minimum = spec.min_notional
    if limit_kind and minimum is not None and qty and price and qty * price < minimum:
        text = units.tick_lots_to_quote(spec, minimum)
        raise api_error(
            "notional_below_minimum", f"price * qty is below the minimum {text}",
            field="qty", min_notional=text,
        )  # fmt: skip


def new_order_command(spec: MarketSpec, body: OrderCreate, order_id: str) -> PlaceOrder:
    """Return the market command of an order request.

    Raises:
        ApiError: 422 with `invalid_decimal`, `invalid_tick`, `invalid_lot`,
            `invalid_price`, `invalid_qty`, `qty_below_minimum`, `qty_above_maximum` or
            `notional_below_minimum`.
    """
    try:
        fields = _convert(spec, body)
    except units.UnitError as exc:
        raise _unit_error(exc) from None
    _check_bounds(spec, body.kind, fields)
    price, stop, qty = fields.get("price"), fields.get("stop_price"), fields.get("qty")
    display, budget = fields.get("display_qty"), fields.get("quote_qty")
    return PlaceOrder(
        id=OrderId(order_id), side=Side(body.side), kind=OrderKind(body.kind),
        qty=None if qty is None else Lots(qty), price=None if price is None else Ticks(price),
        stop_price=None if stop is None else Ticks(stop), tif=TimeInForce(body.time_in_force()),
        expire_at=None if body.expire_at is None else Millis(to_ms(body.expire_at)),
        post_only=None if body.post_only is None else PostOnly(body.post_only),
        display_qty=None if display is None else Lots(display),
        quote_qty=None if budget is None else TickLots(budget), stp=StpMode(body.stp),
    )  # fmt: skip


def order_digest(symbol: str, command: PlaceOrder) -> str:
    """Return the digest of a new order's terms: its market and its command without the
    order id. Amounts are compared as integers (ticks, lots), so `"1"` and `"1.000"` are
    the same terms, as are two `quote_qty` that round down to the same budget.

    The terms are hashed in the form digests have always had (the replay codec's keys,
    absent fields and the `gtc`/`none` defaults left out), so that the digests stored
    with existing orders keep matching their retries.
    """
    terms: JsonDict = {"type": "new", "side": command.side.value, "kind": command.kind.value}
    for name in ("price", "stop_price", "qty", "display_qty", "quote_qty", "expire_at"):
        value = getattr(command, name)
        if value is not None:
            terms[name] = value
    if command.tif is not TimeInForce.GTC:
        terms["tif"] = command.tif.value
    if command.post_only is not None:
        terms["post_only"] = command.post_only.value
    if command.stp is not StpMode.NONE:
        terms["stp"] = command.stp.value
    text = json.dumps([symbol, terms], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def amend_command(spec: MarketSpec, body: OrderAmend, order_id: str) -> AmendOrder:
    """Return the market command of an amend request.

    Raises:
        ApiError: 422 for off-grid, zero or out-of-bounds values.
    """
    fields: JsonDict = {}
    try:
        if body.price is not None:
            fields["price"] = units.price_to_ticks(spec, body.price, "price")
        if body.qty is not None:
            fields["qty"] = units.qty_to_lots(spec, body.qty, "qty")
    except units.UnitError as exc:
        raise _unit_error(exc) from None
    _check_bounds(spec, "amend", fields)
    price, qty = fields.get("price"), fields.get("qty")
    return AmendOrder(
        OrderId(order_id),
        None if qty is None else Lots(qty),
        None if price is None else Ticks(price),
    )
