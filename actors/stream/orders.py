"""The orders table's state of a market's live orders, kept in memory by the stream
publisher, so that each `OrderState` it publishes equals what REST's `GET /orders/{id}`
shows once the batch is projected.

It applies the projection's own rows (`actors.market.projection`: `NewOrderRow`,
`OrderUpdate`) exactly as the projection's SQL does (`clob_project_json`, migrations 0010
and 0016): a new order is inserted with its state after the batch; an update sets the open
qty, status and `last_event_seq`, adds the fill and fee deltas, keeps the stored price and
reason when the update has none, makes an `open` order with fills `partially_filled`, and
after an amend sets `qty` to the filled qty before the batch plus what the batch filled
before the amend plus the new open qty. Orders that are no longer live are forgotten.

Known gap: the SQL stores no client order id that the account already used on another
market (a rare case the gateway refuses before routing); this copy keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from actors.accounts import AccountId
from actors.market.rows import NewOrderRow, OrderRow, OrderUpdate
from actors.stream.messages import OrderState

LIVE_STATUSES = frozenset({"open", "untriggered", "partially_filled"})
_replace = msgspec.structs.replace


class OrderStates:
    """The live orders of one market, as the orders table has them.

    Args:
        market: The market's symbol.
    """

    def __init__(self, market: str) -> None:
        self._market = market
        self._states: dict[str, tuple[AccountId, OrderState]] = {}
        self.unknown = 0  # updates of orders it did not hold (seeded from a lagging table)

    def __len__(self) -> int:
        return len(self._states)

    def get(self, order_id: str) -> OrderState | None:
        """Return a live order's state, or None."""
        held = self._states.get(order_id)
        return None if held is None else held[1]

    def seed(self, rows: Iterable[OrderRow]) -> None:
        """Replace the states with the stored live orders."""
        self._states = {r.order_id: (r.account_id, _stored(self._market, r)) for r in rows}

    def apply(
        self, rows: Sequence[NewOrderRow | OrderUpdate]
    ) -> list[tuple[AccountId, OrderState]]:
        """Apply a batch's projection rows; return each changed order's account and state."""
        out: list[tuple[AccountId, OrderState]] = []
        states = self._states
        for row in rows:
            if isinstance(row, NewOrderRow):
                account, state = row.account_id, _new(self._market, row)
            else:
                held = states.get(row.order_id)
                if held is None:
                    self.unknown += 1
                    continue
                account, state = held[0], _updated(held[1], row)
            out.append((account, state))
            if state.status in LIVE_STATUSES:
                states[state.order_id] = (account, state)
            else:
                states.pop(state.order_id, None)
        return out


def _new(market: str, n: NewOrderRow) -> OrderState:
    return _state(market, n, n.created_at_ms, n.event_seq)


def _stored(market: str, r: OrderRow) -> OrderState:
    return _state(market, r, r.updated_at_ms, r.last_event_seq)


def _state(market: str, r: NewOrderRow | OrderRow, updated_at: int | None, u: int) -> OrderState:
    """Return an order's state from a new order's row or a stored one (same columns)."""
    return OrderState(
        market=market, order_id=r.order_id, client_order_id=r.client_order_id, side=r.side,
        kind=r.kind, tif=r.tif, status=r.status, reason=r.reason, price=r.price_ticks,
        stop_price=r.stop_price_ticks, qty=r.qty_lots, quote_qty=r.quote_qty_tick_lots,
        display_qty=r.display_qty_lots, post_only=r.post_only, stp=r.stp,
        expire_at=r.expire_at_ms, open_qty=r.open_qty_lots, filled_qty=r.filled_qty_lots,
        filled_quote=r.filled_quote_atoms, fee=r.fee_atoms, created_at=r.created_at_ms,
        updated_at=updated_at, u=u,
    )  # fmt: skip


def _updated(o: OrderState, u: OrderUpdate) -> OrderState:
    filled = o.filled_qty + u.filled_qty_delta_lots
    qty = o.qty
    if u.amended_open_lots is not None and qty is not None:
        qty = o.filled_qty + u.filled_before_amend_lots + u.amended_open_lots
    status = "partially_filled" if u.status == "open" and filled > 0 else u.status
    return _replace(
        o, open_qty=u.open_qty_lots, filled_qty=filled,
        filled_quote=o.filled_quote + u.filled_quote_delta_atoms, fee=o.fee + u.fee_delta_atoms,
        price=o.price if u.price_ticks is None else u.price_ticks, qty=qty, status=status,
        reason=o.reason if u.reason is None else u.reason, u=u.event_seq,
        updated_at=o.updated_at if u.updated_at_ms is None else u.updated_at_ms,
    )  # fmt: skip
