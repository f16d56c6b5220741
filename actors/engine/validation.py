"""Validation of commands, in the order fixed by docs/engine-decisions.md.

``*_malformed`` checks run before anything else (a malformed command expires nothing);
``new_order_param_error`` and ``amend_param_error`` run after expiry and the
halted/duplicate/ownership checks the engine does itself.
"""

from __future__ import annotations

from actors.engine.commands import Amend, NewOrder
from actors.engine.spec import MarketSpec
from actors.engine.types import (
    MAX_INT64_EXCLUSIVE,
    OrderKind,
    PostOnly,
    RejectReason,
    Side,
    StpMode,
    TimeInForce,
)

_LIMIT = OrderKind.LIMIT
_MARKET = OrderKind.MARKET
_STOP_LIMIT = OrderKind.STOP_LIMIT
_STOP_MARKET = OrderKind.STOP_MARKET
_STOPS = (_STOP_LIMIT, _STOP_MARKET)
_PRICED = (_LIMIT, _STOP_LIMIT)
_NO_PRICE = (_MARKET, _STOP_MARKET)
_BUDGET_KINDS = (_MARKET, _STOP_MARKET)
_GTD = TimeInForce.GTD
_MAX = MAX_INT64_EXCLUSIVE


def is_int(value: object) -> bool:
    """Return whether ``value`` is an integer (``bool`` is not)."""
    return type(value) is int


def _opt_int(value: object) -> bool:
    return value is None or is_int(value)


def is_name(value: object) -> bool:
    """Return whether ``value`` is a non-empty string (an id or owner)."""
    return isinstance(value, str) and value != ""


def _in_range(value: int) -> bool:
    return 0 < value < MAX_INT64_EXCLUSIVE


def new_order_malformed(cmd: NewOrder) -> bool:
    """Return whether a new-order command is malformed (``invalid_command``)."""
    # Locals typed ``object``: typed callers may still pass anything at run time. The checks
    # are written out (no helper calls) because they run once per order on the hot path.
    oid: object = cmd.id
    owner: object = cmd.owner
    ts: object = cmd.ts
    if type(oid) is not str or not oid or type(owner) is not str or not owner:
        return True
    side: object = cmd.side
    kind: object = cmd.kind
    tif: object = cmd.tif
    stp: object = cmd.stp
    if (
        type(ts) is not int
        or type(side) is not Side
        or type(kind) is not OrderKind
        or type(tif) is not TimeInForce
        or type(stp) is not StpMode
    ):
        return True
    qty: object = cmd.qty
    price: object = cmd.price
    if (qty is not None and type(qty) is not int) or (price is not None and type(price) is not int):
        return True
    if (
        qty is not None
        and cmd.stop_price is None
        and cmd.quote_qty is None
        and cmd.post_only is None
        and cmd.display_qty is None
        and cmd.expire_at is None
    ):
        # The common plain limit / market order.
        if kind is _LIMIT:
            return False
        if kind is _MARKET:
            return price is not None
    return _rare_malformed(cmd)


def _rare_malformed(cmd: NewOrder) -> bool:
    post_only: object = cmd.post_only
    if post_only is not None and type(post_only) is not PostOnly:
        return True
    for value in (cmd.stop_price, cmd.expire_at, cmd.display_qty, cmd.quote_qty):
        if not _opt_int(value):
            return True
    return _bad_combination(cmd)


def _bad_combination(cmd: NewOrder) -> bool:
    kind = cmd.kind
    tif = cmd.tif
    if cmd.quote_qty is not None and (
        kind not in _BUDGET_KINDS or cmd.side is not Side.BUY or tif is TimeInForce.FOK
    ):
        return True
    if cmd.qty is None and cmd.quote_qty is None:
        return True
    if cmd.price is not None and kind in _NO_PRICE:
        return True
    if cmd.stop_price is not None and kind not in _STOPS:
        return True
    if cmd.post_only is not None and (
        kind is not _LIMIT or tif not in (TimeInForce.GTC, TimeInForce.GTD)
    ):
        return True
    return kind in _STOPS and tif in (TimeInForce.IOC, TimeInForce.FOK)


def _qty_error(spec: MarketSpec, qty: int) -> bool:
    if not 0 < qty < _MAX:
        return True
    min_qty = spec.min_qty
    if min_qty is not None and qty < min_qty:
        return True
    max_qty = spec.max_qty
    return max_qty is not None and qty > max_qty


def new_order_param_error(cmd: NewOrder, spec: MarketSpec) -> RejectReason | None:
    """Return the first failing parameter check of a well-formed new order (steps 4-8)."""
    kind = cmd.kind
    qty = cmd.qty
    price = cmd.price
    priced = kind is _LIMIT or kind is _STOP_LIMIT
    if qty is not None:
        if _qty_error(spec, qty):
            return RejectReason.INVALID_QTY
        min_notional = spec.min_notional
        if min_notional is not None and priced and price is not None and price * qty < min_notional:
            return RejectReason.INVALID_QTY
    if cmd.quote_qty is not None and not 0 < cmd.quote_qty < _MAX:
        return RejectReason.INVALID_QTY
    if priced:
        if price is None:
            return RejectReason.MISSING_PRICE
        if not 0 < price < _MAX:
            return RejectReason.INVALID_PRICE
    if kind is _STOP_LIMIT or kind is _STOP_MARKET:
        stop = cmd.stop_price
        if stop is None:
            return RejectReason.MISSING_STOP_PRICE
        if not 0 < stop < _MAX:
            return RejectReason.INVALID_PRICE
    display = cmd.display_qty
    if display is not None and (not priced or display <= 0 or display >= (qty or 0)):
        return RejectReason.INVALID_DISPLAY_QTY
    if cmd.tif is _GTD:
        if cmd.expire_at is None or cmd.expire_at <= cmd.ts:
            return RejectReason.INVALID_EXPIRY
    elif cmd.expire_at is not None:
        return RejectReason.INVALID_EXPIRY
    return None


def amend_malformed(cmd: Amend) -> bool:
    """Return whether an amend command is malformed (``invalid_command``)."""
    if not (is_name(cmd.id) and is_name(cmd.owner) and is_int(cmd.ts)):
        return True
    if cmd.qty is None and cmd.price is None:
        return True
    return not (_opt_int(cmd.qty) and _opt_int(cmd.price))


def amend_param_error(cmd: Amend, spec: MarketSpec, is_stop_market: bool) -> RejectReason | None:
    """Return the first failing quantity/price check of an amend of a known order."""
    if cmd.qty is not None and _qty_error(spec, cmd.qty):
        return RejectReason.INVALID_QTY
    if cmd.price is not None and (is_stop_market or not _in_range(cmd.price)):
        return RejectReason.INVALID_PRICE
    return None
