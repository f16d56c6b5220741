"""Value types, enums and reject codes of the matching engine.

Units (see ``docs/matching-rules.md``):

* ``Ticks``: a price, in integer ticks of the market (``MarketSpec.tick_size``).
* ``Lots``: a quantity, in integer lots of the base asset (``MarketSpec.lot_size``).
* ``TickLots``: a notional, ``price_ticks * qty_lots``; ``MarketSpec`` converts it to quote atoms.
* ``QuoteAtoms``: an amount of the quote asset in its smallest unit (``10**-quote_decimals``).
* ``Millis``: a timestamp, in milliseconds; it only ever comes in with a command.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import NewType

OrderId = NewType("OrderId", str)
"""Client-chosen order id, unique among the live orders and pending stops of a market."""

Owner = NewType("Owner", str)
"""Owner of an order: any non-empty string (the replay format's owners are names). The
exchange's accounts are integers (`actors.accounts.AccountId`); `actors.accounts` converts
between the two, and nothing else does."""

Ticks = NewType("Ticks", int)
Lots = NewType("Lots", int)
TickLots = NewType("TickLots", int)
QuoteAtoms = NewType("QuoteAtoms", int)
Millis = NewType("Millis", int)

MAX_INT64_EXCLUSIVE = 2**63
"""Quantities, prices and budgets must be strictly below this (they fit a signed 64-bit int)."""

MAX_ATOMS = 2**64 - 1
"""The largest amount of one asset, in atoms, that the exchange holds or moves: an SPL token
amount is a u64, so no balance, total, notional, fee or reservation may exceed it (the
trading core refuses, before journaling, any command that could; docs/api.md)."""


class Side(StrEnum):
    """Side of an order."""

    BUY = "buy"
    SELL = "sell"


class OrderKind(StrEnum):
    """Kind of an order."""

    LIMIT = "limit"
    MARKET = "market"
    STOP_LIMIT = "stop_limit"
    STOP_MARKET = "stop_market"


class TimeInForce(StrEnum):
    """How long an order may stay live."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    GTD = "gtd"


class PostOnly(StrEnum):
    """What a post-only order does when it would take liquidity."""

    REJECT = "reject"
    SLIDE = "slide"


class StpMode(StrEnum):
    """Self-trade prevention mode of the incoming order."""

    NONE = "none"
    CANCEL_NEWEST = "cancel_newest"
    CANCEL_OLDEST = "cancel_oldest"
    CANCEL_BOTH = "cancel_both"
    DECREMENT_AND_CANCEL = "decrement_and_cancel"


class MarketStatus(StrEnum):
    """Status a market starts in."""

    ACTIVE = "active"
    HALTED = "halted"


class CancelReason(StrEnum):
    """Why live quantity was removed (the spec's exact codes)."""

    USER = "user"
    IOC_REMAINDER = "ioc_remainder"
    FOK_UNFILLED = "fok_unfilled"
    POST_ONLY = "post_only"
    STP = "stp"
    EXPIRED = "expired"
    NO_LIQUIDITY = "no_liquidity"
    QUOTE_BUDGET = "quote_budget"


class RejectReason(StrEnum):
    """Why a command was rejected and changed nothing (the spec's exact codes)."""

    INVALID_QTY = "invalid_qty"
    INVALID_PRICE = "invalid_price"
    MISSING_PRICE = "missing_price"
    MISSING_STOP_PRICE = "missing_stop_price"
    INVALID_DISPLAY_QTY = "invalid_display_qty"
    DUPLICATE_ID = "duplicate_id"
    UNKNOWN_ORDER = "unknown_order"
    NOT_OWNER = "not_owner"
    MARKET_HALTED = "market_halted"
    INVALID_EXPIRY = "invalid_expiry"
    INVALID_COMMAND = "invalid_command"

    @property
    def code(self) -> RejectCode:
        """Return the stable numeric code of this reason."""
        return _CODE_OF_REASON[self]


class RejectCode(IntEnum):
    """Stable numeric reject codes, grouped by range. Never reuse a retired number.

    1xxx: command format. 3xxx: matching (3000-3099 order parameters, 3100-3199 order
    identity and ownership, 3200-3299 market state).
    """

    INVALID_COMMAND = 1001
    INVALID_QTY = 3001
    INVALID_PRICE = 3002
    MISSING_PRICE = 3003
    MISSING_STOP_PRICE = 3004
    INVALID_DISPLAY_QTY = 3005
    INVALID_EXPIRY = 3006
    DUPLICATE_ID = 3101
    UNKNOWN_ORDER = 3102
    NOT_OWNER = 3103
    MARKET_HALTED = 3201

    @property
    def reason(self) -> RejectReason:
        """Return the spec's string code of this reject."""
        return RejectReason(self.name.lower())


_CODE_OF_REASON: dict[RejectReason, RejectCode] = {r: RejectCode[r.name] for r in RejectReason}
