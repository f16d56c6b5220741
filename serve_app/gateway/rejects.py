"""The one table from error codes (gateway, engine and pipeline rejects) to HTTP statuses.

STYLE 5: only `serve_app` maps codes to HTTP. Every code the API can answer is listed here
and in `docs/api.md`. Rules of thumb: 400 the request could not be read at all, 401 no
valid key, 403 a valid key that may not do this, 404 no such market/order/asset (another
account's order is "no such order"), 409 the request conflicts with the current state,
422 the request was understood and refused by a validation or business rule, 429 rate
limit, 503 a component is unavailable (retry).
"""

from __future__ import annotations

from typing import Any

from serve_app.errors import ApiError

STATUS_OF_CODE: dict[str, int] = {
    # 400: unreadable requests
    "malformed_json": 400,
    "bad_request": 400,
    "invalid_request_id": 400,  # answered by the edge (serve_app.edge)
    "cors_refused": 400,  # a CORS preflight the edge refused
    # 401/403: identity and permission
    "unauthorized": 401,
    "forbidden": 403,
    "test_credits_disabled": 403,
    # 404: unknown things (another account's order included: it is not yours to know)
    "not_found": 404,
    "unknown_market": 404,
    "unknown_order": 404,
    "unknown_asset": 404,
    "unknown_account": 404,
    "unknown_key": 404,
    "unknown_address": 404,
    "unknown_withdrawal": 404,
    "settlement_not_found": 404,
    # 405/415: a method or a media type the route does not take
    "method_not_allowed": 405,
    "unsupported_media_type": 415,
    # 409: conflicts with the current state
    "conflict": 409,
    "duplicate_id": 409,
    "duplicate_client_order_id": 409,
    "duplicate_reference": 409,
    "market_halted": 409,
    "market_exists": 409,
    "order_not_open": 409,
    "key_limit_reached": 409,
    "withdrawal_not_pending": 409,
    "confirmation_expired": 409,
    "asset_not_on_chain": 409,
    "settlement_not_failed": 409,
    # 422: validation and business rejects
    "invalid_request": 422,
    "invalid_decimal": 422,
    "invalid_tick": 422,
    "invalid_lot": 422,
    "invalid_amount": 422,
    "invalid_qty": 422,
    "invalid_price": 422,
    "missing_price": 422,
    "missing_stop_price": 422,
    "invalid_display_qty": 422,
    "invalid_expiry": 422,
    "invalid_command": 422,
    "invalid_cursor": 422,
    "invalid_market_spec": 422,
    "qty_below_minimum": 422,
    "qty_above_maximum": 422,
    "notional_below_minimum": 422,
    "insufficient_funds": 422,
    "amount_too_large": 422,
    "total_too_large": 422,
    "invalid_address": 422,
    "address_not_allowed": 422,
    "address_cooling_off": 422,
    "daily_limit_exceeded": 422,
    "insufficient_balance": 422,
    "invalid_confirmation_code": 422,
    # 429 / 503
    "rate_limited": 429,
    "unavailable": 503,
}

_ALIASES = {
    # Never tell a caller that an order id belongs to someone else.
    "not_owner": "unknown_order",
}

_MESSAGES = {
    "unknown_order": "no such order",
    "unknown_market": "no such market",
    "settlement_not_found": "no such settlement",
    "market_halted": "the market is halted: only cancels are accepted",
    "insufficient_funds": "not enough available balance for this order",
    "amount_too_large": "an amount of this order could pass 2^64 - 1 atoms of an asset",
    "duplicate_id": "an order with this id is live",
    "invalid_qty": "the quantity is out of the market's bounds",
    "invalid_price": "the price is out of range",
    "missing_price": "this order kind needs a price",
    "missing_stop_price": "this order kind needs a stop_price",
    "invalid_display_qty": "display_qty must be below qty on a limit or stop_limit order",
    "invalid_expiry": "expire_at must be in the future and only with tif gtd",
    "invalid_command": "the order's fields do not fit together",
}

DEFAULT_REJECT_STATUS = 422
"""Status of a business reject code not (yet) in the table: refused, changed nothing."""


def status_of(code: str) -> int:
    """Return the HTTP status of an error code."""
    return STATUS_OF_CODE.get(_ALIASES.get(code, code), DEFAULT_REJECT_STATUS)


# Reads of your orders, fills and balances first wait for what was journaled before them
# (docs/ARCHITECTURE.md, "Answers at the journal commit").
READ_CATCHING_UP: dict[int | str, dict[str, Any]] = {
    503: {"description": "A market or ledger shard is catching up after a restart; retry"}
}
UNKNOWN_MARKET: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown market (`unknown_market`)"}
}
UNKNOWN_SETTLEMENT: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown settlement (`settlement_not_found`)"}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "A component (market, ledger shard, controller) is unavailable; retry"}
}


def api_error(code: str, message: str | None = None, **details: Any) -> ApiError:
    """Return the API error of a code, with its status from the table."""
    code = _ALIASES.get(code, code)
    text = message or _MESSAGES.get(code) or code.replace("_", " ")
    return ApiError(status_of(code), code, text, details or None)
