"""The rows a market actor writes and reads: journal rows, snapshots, and the orders and
trades projection (pure records; `journal.py` stores them in PostgreSQL, the tests' fakes
in memory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.accounts import AccountId

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One journaled command: `payload` = request_id, account_id, client_order_id,
    command, events and, when it reserved funds, reservation; `hold` = (ledger shard,
    shard epoch) of that reservation's hold."""

    seq: int
    kind: str
    payload: JsonDict
    hold: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A stored engine snapshot taken after journal row `seq` and engine event `event_seq`."""

    seq: int
    event_seq: int
    epoch: int
    format: str
    state: bytes


@dataclass(frozen=True, slots=True)
class NewOrderRow:
    """An order accepted in the batch, with its state after the batch (prices in ticks,
    quantities in lots, amounts in quote atoms, times in ms): one row, no update."""

    order_id: str
    account_id: AccountId
    client_order_id: str | None
    side: str
    kind: str
    tif: str
    post_only: str | None
    stp: str
    price_ticks: int | None
    stop_price_ticks: int | None
    qty_lots: int | None
    quote_qty_tick_lots: int | None
    display_qty_lots: int | None
    expire_at_ms: int | None
    open_qty_lots: int
    status: str
    event_seq: int
    filled_qty_lots: int = 0
    filled_quote_atoms: int = 0
    fee_atoms: int = 0
    reason: str | None = None
    request_digest: str | None = None
    created_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A change of one order: absolute open qty and status, deltas of fills and fees.

    `price_ticks` None leaves the stored price unchanged. Quote amounts are atoms. After
    an amend (`amended_open_lots`, the new open qty) the order's qty becomes its filled qty
    before the batch, plus `filled_before_amend_lots` (filled in the batch before the
    amend), plus the new open qty. `updated_at_ms` is the market's clock at the batch.
    """

    order_id: str
    open_qty_lots: int
    filled_qty_delta_lots: int
    filled_quote_delta_atoms: int
    fee_delta_atoms: int
    price_ticks: int | None
    status: str
    reason: str | None
    event_seq: int
    amended_open_lots: int | None = None
    filled_before_amend_lots: int = 0
    updated_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OrderRow:
    """A live order as the orders table holds it (what the stream publisher starts from):
    prices in ticks, quantities in lots, amounts in quote atoms, times in ms."""

    order_id: str
    account_id: AccountId
    client_order_id: str | None
    side: str
    kind: str
    tif: str
    post_only: str | None
    stp: str
    price_ticks: int | None
    stop_price_ticks: int | None
    qty_lots: int | None
    quote_qty_tick_lots: int | None
    display_qty_lots: int | None
    expire_at_ms: int | None
    open_qty_lots: int
    filled_qty_lots: int
    filled_quote_atoms: int
    fee_atoms: int
    status: str
    reason: str | None
    last_event_seq: int
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One fill: `seq` is the fill's engine event seq; amounts in quote atoms."""

    seq: int
    maker_order_id: str
    taker_order_id: str
    maker_account_id: AccountId
    taker_account_id: AccountId
    taker_side: str
    price_ticks: int
    qty_lots: int
    quote_qty_atoms: int
    maker_fee_atoms: int
    taker_fee_atoms: int
    executed_at_ms: int


def trade_dict(r: Any) -> JsonDict:
    """Return the public form of a trade (a record or a `TradeRow`-like mapping)."""
    return {
        "seq": int(r["seq"]),
        "maker_order_id": r["maker_order_id"],
        "taker_order_id": r["taker_order_id"],
        "taker_side": r["taker_side"],
        "price": int(r["price_ticks"]),
        "qty": int(r["qty_lots"]),
        "ts": int(r["ts"]),
    }
