"""Request and response bodies of the REST API.

Amounts are decimal strings in whole units (`"101.25"`); see `serve_app.units`. Requests
forbid unknown fields, so a typo answers 422 `invalid_request` naming the field instead of
being ignored.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from serve_app.gateway.order_schema import amend_shapes, order_shapes
from serve_app.units import DECIMAL_PATTERN

Amount = Annotated[
    str,
    Field(
        pattern=DECIMAL_PATTERN,
        max_length=41,
        description="Decimal string in whole units, e.g. 101.25.",
        examples=["101.25"],
    ),
]
# An amount that must be above zero (prices, quantities, credits, a market's grid). The
# pattern cannot say "not zero" (no lookahead), so the schema adds `not`; the code refuses
# zero with the field's own code (`invalid_price`, `invalid_qty`, `invalid_amount`, ...).
MAX_JSON_SAFE_INT = 2**53 - 1
"""The largest integer every JSON reader holds exactly (an IEEE double's 53 bits)."""

PositiveAmount = Annotated[
    str,
    Field(
        pattern=DECIMAL_PATTERN,
        max_length=41,
        description="Decimal string in whole units, above zero, e.g. 101.25.",
        examples=["101.25"],
        json_schema_extra={"not": {"pattern": r"^[0.]*$"}},
    ),
]
Side = Literal["buy", "sell"]
Kind = Literal["limit", "market", "stop_limit", "stop_market"]
Tif = Literal["gtc", "ioc", "fok", "gtd"]
PostOnly = Literal["reject", "slide"]
Stp = Literal["none", "cancel_newest", "cancel_oldest", "cancel_both", "decrement_and_cancel"]
OrderStatus = Literal[
    "pending_new", "open", "untriggered", "partially_filled", "filled", "cancelled",
    "expired", "rejected",
]  # fmt: skip
SettlementState = Literal["pending", "submitted", "confirmed", "finalized", "failed"]
"""A settlement's status (`actors/settlement/states.py`)."""
ClientOrderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Symbol = Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{1,32}$")]

# RFC 3339 date-time with a time zone. Pydantic alone would also take a number of seconds
# ("0.5") or a date-time without a zone.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):  # already parsed (not from the wire)
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(
            "expected an RFC 3339 date-time with a time zone, e.g. 2030-01-01T00:00:00Z"
        )
    return value


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339)]


class ErrorBody(BaseModel):
    """The shape of every error answer."""

    code: str = Field(description="Stable machine-readable code, e.g. invalid_tick.")
    message: str = Field(description="What went wrong, for people.")
    details: dict[str, Any] = Field(
        description="Structured context, e.g. the offending fields (`errors`)."
    )


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderCreate(_Request):
    """A new order. `qty` is in base units, `price`/`stop_price` in quote per base unit."""

    # The rules of `_combinations` and of the engine, for schema readers (`order_schema`).
    model_config = ConfigDict(extra="forbid", json_schema_extra=order_shapes())

    market: Symbol = Field(description="Market symbol, e.g. SOL-USDC.")
    side: Side
    kind: Kind = "limit"
    price: PositiveAmount | None = Field(
        default=None, description="Limit price (limit, stop_limit)."
    )
    stop_price: PositiveAmount | None = Field(default=None, description="Trigger price (stops).")
    qty: PositiveAmount | None = Field(default=None, description="Quantity, base units.")
    quote_qty: PositiveAmount | None = Field(
        default=None,
        description="Market or stop-market buy only: spend at most this much quote (rounded "
        "down to the market's notional unit) instead of giving qty.",
    )
    display_qty: PositiveAmount | None = Field(default=None, description="Iceberg visible slice.")
    tif: Tif | None = Field(
        default=None,
        description="Time in force: gtc by default; a market order never rests, so its "
        "default is ioc (gtc reads as ioc) and gtd is refused.",
    )
    expire_at: Rfc3339 | None = Field(default=None, description="GTD expiry (RFC 3339).")
    post_only: PostOnly | None = None
    stp: Stp = Field(default="none", description="Self-trade prevention mode.")
    client_order_id: ClientOrderId | None = Field(
        default=None,
        description="Your id, unique per account: a retry with it returns the original order.",
    )

    @model_validator(mode="after")
    def _combinations(self) -> OrderCreate:
        if (self.qty is None) == (self.quote_qty is None):
            raise ValueError("give exactly one of qty and quote_qty")
        if self.price is not None and self.kind in ("market", "stop_market"):
            raise ValueError(f"price is not allowed on a {self.kind} order")
        if self.stop_price is not None and self.kind in ("limit", "market"):
            raise ValueError(f"stop_price is not allowed on a {self.kind} order")
        if self.kind == "market" and self.tif == "gtd":
            raise ValueError("a market order never rests: tif is ioc (the default) or fok")
        if self.kind == "market" and self.side == "buy" and self.tif == "fok":
            # The market holds a market buy's funds by a quote budget it adds to the
            # command, and the engine takes no budget on a fill-or-kill order.
            raise ValueError("a market buy cannot be fok (use ioc, or a limit order with fok)")
        if (self.expire_at is not None) != (self.tif == "gtd"):
            raise ValueError("expire_at is required with tif gtd and allowed only with it")
        if self.expire_at is not None and self.expire_at.tzinfo is None:
            raise ValueError("expire_at needs a time zone (e.g. 2030-01-01T00:00:00Z)")
        return self

    def time_in_force(self) -> Tif:
        """Return the order's effective time in force (see `tif`)."""
        if self.kind == "market":
            return "fok" if self.tif == "fok" else "ioc"
        return self.tif or "gtc"


class OrderAmend(_Request):
    """Change an order: `qty` is the new open quantity; a lower qty keeps priority."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=amend_shapes())

    price: PositiveAmount | None = None
    qty: PositiveAmount | None = None

    @model_validator(mode="after")
    def _something(self) -> OrderAmend:
        if self.price is None and self.qty is None:
            raise ValueError("give price, qty or both")
        return self


class FillView(BaseModel):
    """One fill of an order, as reported when it was placed."""

    seq: int = Field(description="Engine event sequence number of the fill in its market.")
    price: str
    qty: str
    quote_qty: str
    liquidity: Literal["maker", "taker"]


class OrderView(BaseModel):
    """An order and its state."""

    order_id: str
    client_order_id: str | None = None
    market: str
    side: Side
    kind: Kind
    tif: Tif
    price: str | None = None
    stop_price: str | None = None
    qty: str | None = Field(default=None, description="Quantity ordered, base units.")
    quote_qty: str | None = Field(default=None, description="Market-buy budget, quote units.")
    display_qty: str | None = None
    post_only: PostOnly | None = None
    stp: Stp = "none"
    expire_at: datetime | None = None
    status: OrderStatus
    reason: str | None = Field(default=None, description="Why it was cancelled or rejected.")
    open_qty: str = Field(description="Quantity still live on the book, base units.")
    filled_qty: str
    filled_quote: str = Field(description="Notional filled, quote units.")
    fee: str = Field(description="Fees paid (negative: rebate), quote units.")
    fills: list[FillView] = Field(
        default_factory=list, description="Fills caused by this request (POST/PATCH only)."
    )
    created_at: datetime | None = None
    updated_at: datetime | None = None


class OrderPage(BaseModel):
    """A page of orders, newest first."""

    orders: list[OrderView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class CancelAllResult(BaseModel):
    """The orders a cancel-all removed."""

    cancelled: list[str] = Field(description="Ids of the cancelled orders.")


class Level(BaseModel):
    """One aggregated price level."""

    price: str
    qty: str = Field(description="Visible quantity at this price, base units.")
    count: int = Field(description="Orders at this price.")


class OrderBook(BaseModel):
    """An L2 snapshot (bids best first, asks best first)."""

    market: str
    seq: int = Field(description="Last engine event seq reflected in the snapshot.")
    last_update_id: int = Field(
        description="The same seq as `seq`, in the WebSocket stream's update-id space: "
        "apply the stream's book updates with `u` > this id (docs/websocket.md)."
    )
    bids: list[Level]
    asks: list[Level]


class MarketStats(BaseModel):
    """Rolling 24 h statistics (cached for up to 5 minutes)."""

    last_price: str | None
    open_price: str | None
    high: str | None
    low: str | None
    change: str | None = Field(description="last - open, quote units.")
    change_percent: str | None = Field(description="(last - open) / open * 100, 2 places.")
    volume: str = Field(description="Base volume.")
    quote_volume: str
    trade_count: int


class MarketView(BaseModel):
    """A market: its spec, fees, filters and 24 h stats."""

    symbol: str
    base_asset: str
    quote_asset: str
    base_decimals: int
    quote_decimals: int
    tick_size: str = Field(description="Price increment, quote units per base unit.")
    lot_size: str = Field(description="Quantity increment, base units.")
    min_qty: str | None
    max_qty: str | None
    min_notional: str | None = Field(description="Smallest limit-order notional, quote units.")
    maker_fee_bps: int
    taker_fee_bps: int
    status: str
    stats: MarketStats


class PublicTrade(BaseModel):
    """A trade on the public tape."""

    seq: int = Field(description="Engine event seq of the fill (orders the tape).")
    price: str
    qty: str
    quote_qty: str
    taker_side: Side
    time: datetime
    settlement_id: int | None = Field(
        default=None, description="Its on-chain settlement (`GET /settlements/{id}`); null "
        "until batched.",
    )  # fmt: skip
    settlement_status: SettlementState | None = Field(
        default=None, description="That settlement's status; null until batched."
    )


class PublicTradePage(BaseModel):
    """A page of public trades, newest first."""

    trades: list[PublicTrade]
    next_cursor: str | None


class OwnTrade(BaseModel):
    """One of your fills."""

    trade_id: int = Field(description="The trade's id (settlement keys on it).")
    seq: int = Field(
        description="The per-market trade id: the fill's engine event seq, as on the public "
        "tape and the WebSocket streams."
    )
    market: str
    order_id: str
    side: Side = Field(description="Your side.")
    liquidity: Literal["maker", "taker"]
    price: str
    qty: str
    quote_qty: str
    fee: str = Field(description="Your fee (negative: rebate), quote units.")
    fee_asset: str
    time: datetime
    settlement_id: int | None = Field(
        default=None, description="Its on-chain settlement; null until batched."
    )
    settlement_status: SettlementState | None = Field(
        default=None, description="That settlement's status; null until batched."
    )


class OwnTradePage(BaseModel):
    """A page of your fills, newest first."""

    trades: list[OwnTrade]
    next_cursor: str | None


class Balance(BaseModel):
    """One asset's balance."""

    asset: str
    available: str
    locked: str
    total: str


class Balances(BaseModel):
    """An account's balances."""

    account_id: int
    balances: list[Balance]


class MarketCreate(_Request):
    """A new market (admin). Sizes are decimal strings in whole units."""

    symbol: Symbol
    base_asset: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,16}$")]
    quote_asset: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,16}$")]
    base_decimals: int = Field(ge=0, le=30)
    quote_decimals: int = Field(ge=0, le=30)
    tick_size: PositiveAmount = Field(description="Price increment, quote units per base unit.")
    lot_size: PositiveAmount = Field(description="Quantity increment, base units.")
    min_qty: Amount | None = None
    max_qty: Amount | None = None
    min_notional: Amount | None = Field(default=None, description="Quote units.")
    maker_fee_bps: int = Field(default=0, ge=-10_000, le=10_000)
    taker_fee_bps: int = Field(default=0, ge=0, le=10_000)


class Credit(_Request):
    """A test credit (admin; embedded mode only: real money arrives by deposit)."""

    # At most 2^53 - 1, the largest integer every JSON reader holds exactly (RFC 8259,
    # section 6): a bound of 2^63 is read as the float 2^63 by some clients (and fuzzers),
    # which then take 2^63 + 191 for a valid id. Account ids are far below either bound.
    account_id: int = Field(gt=0, le=MAX_JSON_SAFE_INT)
    asset: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,16}$")]
    amount: PositiveAmount = Field(
        description="Decimal string in whole units; at most 2^64 - 1 atoms."
    )
    reference: str | None = Field(
        default=None, max_length=128, description="Idempotency key of the credit."
    )


class CreditResult(BaseModel):
    """The balance after a credit."""

    account_id: int
    balance: Balance
