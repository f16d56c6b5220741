"""The handlers of the less frequent commands, and the reject and expiry helpers.

``MatchingEngine`` (engine.py) inherits them and keeps the hot paths (new orders and
cancels) itself; amend, cancel-all, halt, resume and tick are here, to keep each module
near the size budget.
"""

from __future__ import annotations

from collections import deque
from heapq import heappop

from actors.engine.book import Order
from actors.engine.commands import Amend, Cancel, CancelAll, Halt, Resume, Tick
from actors.engine.events import Amended, Event, Halted, Rejected, Resumed
from actors.engine.queries import EngineQueries
from actors.engine.types import CancelReason, Lots, OrderId, OrderKind, RejectReason, Ticks
from actors.engine.validation import amend_malformed, amend_param_error, is_int, is_name

_USER = CancelReason.USER
_INVALID = RejectReason.INVALID_COMMAND
_HALTED = RejectReason.MARKET_HALTED


class CommandHandlers(EngineQueries):
    """Amend, cancel-all, halt, resume and tick, for ``MatchingEngine``; see that class."""

    __slots__ = ()

    def _reject(self, oid: object, reason: RejectReason, out: list[Event]) -> None:
        self._seq += 1
        out.append(Rejected(self._seq, OrderId(oid) if isinstance(oid, str) else None, reason))

    def _expire(self, ts: int, out: list[Event]) -> None:
        """Cancel, in arrival order, every GTD order and stop with ``expire_at <= ts``."""
        heap = self._expiry
        due: list[Order] = []
        while heap and heap[0][0] <= ts:
            due.append(heappop(heap)[2])
        due.sort(key=_arrival_of)
        for o in due:
            if self._is_live(o):
                self._take_out(o)
                self._cancelled(o.id, CancelReason.EXPIRED, o.qty, out)

    def _find_own(self, cmd: Cancel | Amend, out: list[Event]) -> Order | None:
        """Return the live order or stop ``cmd`` targets, or reject and return None."""
        o = self._orders.get(cmd.id) or self._stops.get(cmd.id)
        if o is None:
            self._reject(cmd.id, RejectReason.UNKNOWN_ORDER, out)
        elif o.owner != cmd.owner:
            self._reject(cmd.id, RejectReason.NOT_OWNER, out)
            return None
        return o

    def _on_amend(self, cmd: Amend, out: list[Event]) -> None:
        if amend_malformed(cmd):
            self._reject(cmd.id, _INVALID, out)
            return
        if self._expiry and self._expiry[0][0] <= cmd.ts:
            self._expire(cmd.ts, out)
        if self._halted:
            self._reject(cmd.id, _HALTED, out)
            return
        o = self._find_own(cmd, out)
        if o is None:
            return
        pending = self._stops.get(o.id) is o
        reason = amend_param_error(cmd, self.spec, pending and o.kind is OrderKind.STOP_MARKET)
        if reason is not None:
            self._reject(cmd.id, reason, out)
        elif pending:
            self._amend_stop(o, cmd, out)
        else:
            self._amend_resting(o, cmd, out)

    def _amend_stop(self, o: Order, cmd: Amend, out: list[Event]) -> None:
        if cmd.qty is not None:
            o.qty = cmd.qty
        if cmd.price is not None:
            o.price = cmd.price
        self._amended(o, True, out)

    def _amended(self, o: Order, kept: bool, out: list[Event]) -> None:
        self._seq += 1
        price = None if o.price is None else Ticks(o.price)
        out.append(Amended(self._seq, o.id, price, Lots(o.qty), kept))

    def _amend_resting(self, o: Order, cmd: Amend, out: list[Event]) -> None:
        new_price = o.price if cmd.price is None else cmd.price
        new_qty = o.qty if cmd.qty is None else cmd.qty
        if new_price == o.price and new_qty <= o.qty:
            side = self._bids if o.is_buy else self._asks
            lv = side.level_of(o)
            visible = min(o.visible, new_qty)
            lv.total -= o.visible - visible
            o.visible = visible
            o.qty = new_qty
            self._amended(o, True, out)
            return
        self._take_out(o)
        o.price = new_price
        o.qty = new_qty
        self._amended(o, False, out)
        o.arrival = self._next_arrival()
        self._traded = False
        self._process(o, out)
        if self._traded and self._stops:
            self._cascade(deque(), out)

    def _on_cancel_all(self, cmd: CancelAll, out: list[Event]) -> None:
        owner = cmd.owner
        if not (is_name(owner) and is_int(cmd.ts)):
            self._reject(None, _INVALID, out)
            return
        if self._expiry and self._expiry[0][0] <= cmd.ts:
            self._expire(cmd.ts, out)
        mine = [o for o in self._orders.values() if o.owner == owner]
        mine += [s for s in self._stops.values() if s.owner == owner]
        mine.sort(key=_arrival_of)
        for o in mine:
            self._take_out(o)
            self._cancelled(o.id, _USER, o.qty, out)

    def _time_command_ok(self, ts: int, out: list[Event]) -> bool:
        if not is_int(ts):
            self._reject(None, _INVALID, out)
            return False
        if self._expiry and self._expiry[0][0] <= ts:
            self._expire(ts, out)
        return True

    def _on_halt(self, cmd: Halt, out: list[Event]) -> None:
        if self._time_command_ok(cmd.ts, out) and not self._halted:
            self._halted = True
            self._seq += 1
            out.append(Halted(self._seq))

    def _on_resume(self, cmd: Resume, out: list[Event]) -> None:
        if self._time_command_ok(cmd.ts, out) and self._halted:
            self._halted = False
            self._seq += 1
            out.append(Resumed(self._seq))

    def _on_tick(self, cmd: Tick, out: list[Event]) -> None:
        self._time_command_ok(cmd.ts, out)


def _arrival_of(o: Order) -> int:
    return o.arrival
