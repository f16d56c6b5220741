"""Turn a batch's engine events into the orders projection and trade rows.

Fees follow the ledger's rule (`actors.ledger.rules.fill_fee_atoms`): each order keeps a
fee numerator, the sum of `notional * bps` over its fills (bps of its role in each fill),
and a fill charges `ceil(after / 10^4) - ceil(before / 10^4)`. `cum` (order id -> fee
numerator) is kept for live orders only; `accepted` resets it, so a reused id starts at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.engine import (
    Accepted,
    Amended,
    Cancelled,
    Event,
    Fill,
    MarketSpec,
    MatchingEngine,
    OrderId,
    StpDecrement,
    Triggered,
    notional_quote_atoms,
)
from actors.ledger.rules import fill_fee_atoms
from actors.market.journal import NewOrderRow, OrderUpdate, TradeRow

JsonDict = dict[str, Any]


def fill_fees(spec: MarketSpec, cum: dict[str, int], fill: Fill) -> tuple[int, int, int]:
    """Return (notional, maker fee, taker fee) in quote atoms and advance `cum`."""
    notional = int(notional_quote_atoms(spec, fill.price, fill.qty))
    maker_fee, cum[fill.maker_id] = fill_fee_atoms(
        cum.get(fill.maker_id, 0), notional, spec.maker_fee_bps
    )
    taker_fee, cum[fill.taker_id] = fill_fee_atoms(
        cum.get(fill.taker_id, 0), notional, spec.taker_fee_bps
    )
    return notional, maker_fee, taker_fee


def track_cum(spec: MarketSpec, cum: dict[str, int], events: list[Event]) -> None:
    """Advance `cum` over events without building rows (journal replay)."""
    for e in events:
        if type(e) is Fill:
            fill_fees(spec, cum, e)
        elif type(e) is Accepted:
            cum.pop(e.id, None)


def prune_cum(cum: dict[str, int], engine: MatchingEngine) -> None:
    """Drop the cumulative notional of orders that are no longer live."""
    for oid in [o for o in cum if engine.get_order(OrderId(o)) is None]:
        del cum[oid]


@dataclass(slots=True)
class _Acc:
    """What a batch did to one order."""

    filled_qty: int = 0
    filled_quote: int = 0
    fee: int = 0
    price: int | None = None
    last_seq: int = 0
    cancel_reason: str | None = None
    # The last amend: (lots filled in this batch before it, the new open qty).
    amended: tuple[int, int] | None = None
    ts: int | None = None


class Projection:
    """Collects one batch's orders projection and trades.

    Args:
        spec: The market.
        cum: Live orders' cumulative notional (updated in place).
    """

    def __init__(self, spec: MarketSpec, cum: dict[str, int]) -> None:
        self._spec = spec
        self._cum = cum
        self._acc: dict[str, _Acc] = {}
        self._new: dict[str, tuple[int, str | None, JsonDict, str | None]] = {}
        self._ts: int | None = None
        self.trades: list[TradeRow] = []

    def _touch(self, oid: str, seq: int) -> _Acc:
        acc = self._acc.get(oid)
        if acc is None:
            acc = self._acc[oid] = _Acc()
        acc.last_seq = seq
        acc.ts = self._ts
        return acc

    def add(
        self,
        account_id: int | None,
        coid: str | None,
        cmd: JsonDict,
        events: list[Event],
        digest: str | None = None,
    ) -> None:
        """Record one command's events (`cmd` carries `owner` and `ts`; `digest` is the
        placement terms' digest of a new order, see `OrderRequest`)."""
        self._ts = int(cmd["ts"])
        for e in events:
            if isinstance(e, Fill):
                self._fill(e, self._ts)
            elif isinstance(e, Accepted):
                self._cum.pop(e.id, None)
                self._acc.pop(e.id, None)
                self._touch(e.id, e.seq)
                self._new[e.id] = (int(e.owner), coid, cmd, digest)
            elif isinstance(e, Cancelled):
                self._touch(e.id, e.seq).cancel_reason = e.reason.value
            elif isinstance(e, Amended):
                acc = self._touch(e.id, e.seq)
                acc.price, acc.amended = e.price, (acc.filled_qty, int(e.qty))
            elif isinstance(e, Triggered):
                self._touch(e.id, e.seq)
            elif isinstance(e, StpDecrement):
                self._touch(e.maker_id, e.seq)
                self._touch(e.taker_id, e.seq)
        del account_id

    def _fill(self, f: Fill, ts: int) -> None:
        notional, maker_fee, taker_fee = fill_fees(self._spec, self._cum, f)
        for oid, fee in ((f.maker_id, maker_fee), (f.taker_id, taker_fee)):
            acc = self._touch(oid, f.seq)
            acc.filled_qty += f.qty
            acc.filled_quote += notional
            acc.fee += fee
        self.trades.append(
            TradeRow(
                seq=f.seq, maker_order_id=f.maker_id, taker_order_id=f.taker_id,
                maker_account_id=int(f.maker_owner), taker_account_id=int(f.taker_owner),
                taker_side=f.taker_side.value, price_ticks=f.price, qty_lots=f.qty,
                quote_qty_atoms=notional, maker_fee_atoms=maker_fee,
                taker_fee_atoms=taker_fee, executed_at_ms=ts,
            )
        )  # fmt: skip

    def finish(self, engine: MatchingEngine) -> list[NewOrderRow | OrderUpdate]:
        """Return the new-order rows and updates, from the engine's state after the batch."""
        out: list[NewOrderRow | OrderUpdate] = []
        updates: list[NewOrderRow | OrderUpdate] = []
        for oid, acc in self._acc.items():
            view = engine.get_order(OrderId(oid))
            price: int | None
            if view is not None:
                status = "untriggered" if view.status == "pending_stop" else "open"
                open_qty, price = int(view.remaining_qty), view.price
            elif acc.cancel_reason is not None:
                status = "expired" if acc.cancel_reason == "expired" else "cancelled"
                open_qty, price = 0, acc.price
            else:
                status, open_qty, price = "filled", 0, acc.price
            new = self._new.get(oid)
            if new is not None:
                out.append(_new_row(oid, new, (status, open_qty, price), acc))
                continue
            updates.append(
                OrderUpdate(
                    order_id=oid, open_qty_lots=open_qty, filled_qty_delta_lots=acc.filled_qty,
                    filled_quote_delta_atoms=acc.filled_quote, fee_delta_atoms=acc.fee,
                    price_ticks=price, status=status, reason=acc.cancel_reason,
                    event_seq=acc.last_seq,
                    amended_open_lots=None if acc.amended is None else acc.amended[1],
                    filled_before_amend_lots=0 if acc.amended is None else acc.amended[0],
                    updated_at_ms=acc.ts,
                )
            )  # fmt: skip
        prune_cum(self._cum, engine)
        return out + updates


def _new_row(
    oid: str,
    new: tuple[int, str | None, JsonDict, str | None],
    state: tuple[str, int, int | None],
    acc: _Acc,
) -> NewOrderRow:
    status, open_qty, price = state
    account_id, coid, cmd, digest = new
    if status == "open" and acc.filled_qty > 0:
        status = "partially_filled"
    kind = cmd["kind"]
    has_qty = cmd.get("qty") is not None
    qty = cmd.get("qty")
    if has_qty and acc.amended is not None:  # amended in its first batch: see OrderUpdate
        qty = acc.amended[0] + acc.amended[1]
    return NewOrderRow(
        order_id=oid, account_id=account_id, client_order_id=coid, side=cmd["side"],
        kind=kind, tif=cmd.get("tif", "gtc"), post_only=cmd.get("post_only"),
        stp=cmd.get("stp", "none"),
        price_ticks=(price if price is not None else cmd.get("price"))
        if kind in ("limit", "stop_limit") else None,
        stop_price_ticks=cmd.get("stop_price"), qty_lots=qty,
        quote_qty_tick_lots=None if has_qty else cmd.get("quote_qty"),
        display_qty_lots=cmd.get("display_qty"), expire_at_ms=cmd.get("expire_at"),
        open_qty_lots=open_qty, status=status, event_seq=acc.last_seq,
        filled_qty_lots=acc.filled_qty, filled_quote_atoms=acc.filled_quote, fee_atoms=acc.fee,
        reason=acc.cancel_reason, request_digest=digest, created_at_ms=int(cmd["ts"]),
    )  # fmt: skip
