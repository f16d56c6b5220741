"""Pure, deterministic matching engine of one market (no I/O, no clock, no Ray).

Public API: ``MatchingEngine`` (engine.py), the commands (commands.py), the events
(events.py), ``MarketSpec`` and the notional/fee conversions (spec.py), the value types and
codes (types.py), and the JSON-lines replay format (codec.py, replay.py).
"""

from actors.engine.commands import (
    Amend,
    Cancel,
    CancelAll,
    Command,
    Halt,
    Malformed,
    NewOrder,
    Resume,
    Tick,
)
from actors.engine.engine import MatchingEngine
from actors.engine.events import (
    Accepted,
    Amended,
    Cancelled,
    Event,
    Fill,
    Halted,
    Rejected,
    Resumed,
    StpDecrement,
    Triggered,
)
from actors.engine.spec import (
    InvalidMarketSpecError,
    MarketSpec,
    fee_quote_atoms,
    notional_quote_atoms,
)
from actors.engine.types import (
    CancelReason,
    Lots,
    Millis,
    OrderId,
    OrderKind,
    Owner,
    PostOnly,
    QuoteAtoms,
    RejectCode,
    RejectReason,
    Side,
    StpMode,
    TickLots,
    Ticks,
    TimeInForce,
)
from actors.engine.views import L2Book, L2Level, OrderView

__all__ = [
    "Accepted",
    "Amend",
    "Amended",
    "Cancel",
    "CancelAll",
    "CancelReason",
    "Cancelled",
    "Command",
    "Event",
    "Fill",
    "Halt",
    "Halted",
    "InvalidMarketSpecError",
    "L2Book",
    "L2Level",
    "Lots",
    "Malformed",
    "MarketSpec",
    "MatchingEngine",
    "Millis",
    "NewOrder",
    "OrderId",
    "OrderKind",
    "OrderView",
    "Owner",
    "PostOnly",
    "QuoteAtoms",
    "RejectCode",
    "RejectReason",
    "Rejected",
    "Resume",
    "Resumed",
    "Side",
    "StpDecrement",
    "StpMode",
    "Tick",
    "TickLots",
    "Ticks",
    "TimeInForce",
    "Triggered",
    "fee_quote_atoms",
    "notional_quote_atoms",
]
