"""Turn a batch's committed entries into the orders projection and trade rows.

Fees come with the entries (`CommittedEntry.fees`, computed once by the market with
`actors.ledger.fees.charge_fill`): this module only places them in rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.accounts import AccountId, account_id_of
from actors.engine import (
    Accepted,
    Amended,
    Cancelled,
    Fill,
    MarketSpec,
    NewOrder,
    OrderId,
    OrderKind,
    StpDecrement,
    Triggered,
)
from actors.ledger.fees import FillFees
from actors.market.rows import NewOrderRow, OrderUpdate, TradeRow
from actors.market.seam import Book, CommittedEntry

_PRICED = (OrderKind.LIMIT, OrderKind.STOP_LIMIT)


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


_New = tuple[AccountId, str | None, NewOrder, str | None]
"""A new order's account, client order id, command and digest."""


class Projection:
    """Collects the orders projection and trades of committed entries.

    Args:
        spec: The market.
    """

    def __init__(self, spec: MarketSpec) -> None:
        self._spec = spec
        self._acc: dict[str, _Acc] = {}
        self._new: dict[str, _New] = {}
        self._ts: int | None = None
        self.trades: list[TradeRow] = []

    def _touch(self, oid: str, seq: int) -> _Acc:
        acc = self._acc.get(oid)
        if acc is None:
            acc = self._acc[oid] = _Acc()
        acc.last_seq = seq
        acc.ts = self._ts
        return acc

    def add(self, entry: CommittedEntry) -> None:
        """Record one journal entry's events."""
        command = entry.command
        self._ts = int(getattr(command, "ts", 0))
        fees = iter(entry.fees)
        for e in entry.events:
            if isinstance(e, Fill):
                self._fill(e, next(fees), self._ts)
            elif isinstance(e, Accepted):
                self._acc.pop(e.id, None)
                self._touch(e.id, e.seq)
                if not isinstance(command, NewOrder):  # only a new order is accepted
                    raise ValueError(f"journal seq {entry.seq}: accepted without a new order")
                new = (account_id_of(e.owner), entry.client_order_id, command, entry.digest)
                self._new[e.id] = new
            elif isinstance(e, Cancelled):
                self._touch(e.id, e.seq).cancel_reason = e.reason._value_
            elif isinstance(e, Amended):
                acc = self._touch(e.id, e.seq)
                acc.price, acc.amended = e.price, (acc.filled_qty, int(e.qty))
            elif isinstance(e, Triggered):
                self._touch(e.id, e.seq)
            elif isinstance(e, StpDecrement):
                self._touch(e.maker_id, e.seq)
                self._touch(e.taker_id, e.seq)

    def _fill(self, f: Fill, fees: FillFees, ts: int) -> None:
        notional, maker_fee, taker_fee = fees
        for oid, fee in ((f.maker_id, maker_fee), (f.taker_id, taker_fee)):
            acc = self._touch(oid, f.seq)
            acc.filled_qty += f.qty
            acc.filled_quote += notional
            acc.fee += fee
        self.trades.append(
            TradeRow(
                seq=f.seq, maker_order_id=f.maker_id, taker_order_id=f.taker_id,
                maker_account_id=account_id_of(f.maker_owner),
                taker_account_id=account_id_of(f.taker_owner),
                taker_side=f.taker_side._value_, price_ticks=f.price, qty_lots=f.qty,
                quote_qty_atoms=notional, maker_fee_atoms=maker_fee,
                taker_fee_atoms=taker_fee, executed_at_ms=ts,
            )
        )  # fmt: skip

    def finish(self, book: Book) -> list[NewOrderRow | OrderUpdate]:
        """Return the new-order rows and updates, from the book's state after the entries."""
        out: list[NewOrderRow | OrderUpdate] = []
        updates: list[NewOrderRow | OrderUpdate] = []
        for oid, acc in self._acc.items():
            view = book.get_order(OrderId(oid))
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
        return out + updates


def _new_row(oid: str, new: _New, state: tuple[str, int, int | None], acc: _Acc) -> NewOrderRow:
    status, open_qty, price = state
    account_id, coid, cmd, digest = new
    if status == "open" and acc.filled_qty > 0:
        status = "partially_filled"
    qty: int | None = cmd.qty
    if qty is not None and acc.amended is not None:  # amended in its first batch: see OrderUpdate
        qty = acc.amended[0] + acc.amended[1]
    # `_value_`: a member's value without the enum property's descriptor (one row per order).
    return NewOrderRow(
        order_id=oid, account_id=account_id, client_order_id=coid, side=cmd.side._value_,
        kind=cmd.kind._value_, tif=cmd.tif._value_,
        post_only=None if cmd.post_only is None else cmd.post_only._value_,
        stp=cmd.stp._value_,
        price_ticks=(price if price is not None else cmd.price) if cmd.kind in _PRICED else None,
        stop_price_ticks=cmd.stop_price, qty_lots=qty,
        quote_qty_tick_lots=None if cmd.qty is not None else cmd.quote_qty,
        display_qty_lots=cmd.display_qty, expire_at_ms=cmd.expire_at,
        open_qty_lots=open_qty, status=status, event_seq=acc.last_seq,
        filled_qty_lots=acc.filled_qty, filled_quote_atoms=acc.filled_quote, fee_atoms=acc.fee,
        reason=acc.cancel_reason, request_digest=digest, created_at_ms=int(cmd.ts),
    )  # fmt: skip
