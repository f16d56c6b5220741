"""``MatchingEngine``: the public, pure, deterministic matching engine of one market.

Feed it commands (``submit`` / ``submit_batch``); it returns the events, each with the next
gap-free ``seq``. It keeps no clock: each command's ``ts`` (ms) is the time. Queries
(``best_bid``, ``l2``, ``l3``, ``get_order``) and snapshots (``dump`` / ``restore``) never
change state. See ENGINE_SPEC.md and docs/engine-decisions.md for the rules.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from actors.engine import snapshot
from actors.engine.book import Order, new_order
from actors.engine.commands import (
    Amend,
    Cancel,
    CancelAll,
    Command,
    Halt,
    NewOrder,
    Resume,
    Tick,
)
from actors.engine.events import Accepted, Cancelled, Event
from actors.engine.handlers import CommandHandlers
from actors.engine.matching import NO_LIMIT
from actors.engine.spec import MarketSpec
from actors.engine.types import (
    MAX_INT64_EXCLUSIVE,
    CancelReason,
    MarketStatus,
    OrderKind,
    RejectReason,
    Side,
    StpMode,
    TimeInForce,
)
from actors.engine.validation import new_order_malformed, new_order_param_error

_BUY = Side.BUY
_LIMIT = OrderKind.LIMIT
_MARKET = OrderKind.MARKET
_SELL = Side.SELL
_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_STP_NONE = StpMode.NONE
_USER = CancelReason.USER
_IOC_REMAINDER = CancelReason.IOC_REMAINDER
_NO_LIQ = CancelReason.NO_LIQUIDITY
_MAX = MAX_INT64_EXCLUSIVE
# CPython 3.11 specialises an int comparison only when both ints are below 2**30 in magnitude
# (one digit); comparing with _MAX takes the generic path. The fast path therefore compares
# with _SMALL first and with the real bound only above it.
_SMALL = (1 << 30) - 1
_INVALID = RejectReason.INVALID_COMMAND
_HALTED = RejectReason.MARKET_HALTED

# Builds a NamedTuple event without its Python-level ``__new__`` (about 2x faster; the
# hot path passes every field, in order).
_new_tuple = tuple.__new__

_Handler = Callable[[Any, list[Event]], None]


# Garbage-collector thresholds recommended for a process that hosts an engine (the market
# actor applies them; the engine itself changes no process state). The book holds many
# long-lived objects and every command allocates events, so CPython's default gen-0
# threshold of 700 runs collections constantly. Measured on the mixed benchmark in separate
# processes at low load (`bench/engine_bench.py --gc actor`), before the plain-order fast
# path: 124k-137k commands/s with the defaults, 168k-214k with these. (With the fast path
# the difference was within the noise of a loaded machine; see bench/README.md.)
GC_THRESHOLDS = (50_000, 50, 1_000)


class MatchingEngine(CommandHandlers):
    """The matching engine of one market.

    Args:
        spec: The market; a market whose ``status`` is ``halted`` starts halted.
    """

    __slots__ = ("_handlers",)

    def __init__(self, spec: MarketSpec) -> None:
        super().__init__(spec)
        self._halted = spec.status is MarketStatus.HALTED
        self._handlers: dict[type, _Handler] = {
            NewOrder: self._on_new,
            Cancel: self._on_cancel,
            Amend: self._on_amend,
            CancelAll: self._on_cancel_all,
            Halt: self._on_halt,
            Resume: self._on_resume,
            Tick: self._on_tick,
        }

    # -- commands --------------------------------------------------------------------------

    def submit(self, command: Command) -> list[Event]:
        """Apply one command and return its events (possibly none), in ``seq`` order."""
        out: list[Event] = []
        # The two hot commands skip the handler table.
        if type(command) is NewOrder:
            self._on_new(command, out)
        elif type(command) is Cancel:
            self._on_cancel(command, out)
        else:
            handler = self._handlers.get(type(command))
            if handler is None:
                self._reject(getattr(command, "id", None), _INVALID, out)
            else:
                handler(command, out)
        return out

    def submit_batch(self, commands: Iterable[Command]) -> list[Event]:
        """Apply commands in order and return all their events, in ``seq`` order.

        The cyclic garbage collector is paused for the batch (and restored as it was): the
        engine makes no reference cycles, and the growing event list made every collection
        longer (one call of 200,000 benchmark commands: 20,000 instructions per command with
        the collector on, 13,600 paused).
        """
        out: list[Event] = []
        handlers = self._handlers
        on_new = self._on_new
        on_cancel = self._on_cancel
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            for command in commands:
                if type(command) is NewOrder:
                    on_new(command, out)
                elif type(command) is Cancel:
                    on_cancel(command, out)
                else:
                    handler = handlers.get(type(command))
                    if handler is None:
                        self._reject(getattr(command, "id", None), _INVALID, out)
                    else:
                        handler(command, out)
        finally:
            if paused:
                gc.enable()
        return out

    def _on_new(self, cmd: NewOrder, out: list[Event]) -> None:
        """Place a new order: the plain fast path inline, anything else ``_on_new_general``.

        Plain: a GTC or IOC limit order with a price, or a GTC or IOC market order, by
        quantity, with no stop, expiry, post-only, iceberg slice, budget or STP, whose fields
        all pass validation. Only ``market_halted`` and ``duplicate_id`` can reject it, so it
        is checked in one pass and matched here; it gets an ``Order`` only if it rests. Every
        other order, and every order that fails a check, takes the general path, which
        applies the checks in their documented order: both paths emit the same events.
        """
        oid = cmd.id
        owner = cmd.owner
        # ``object``: NewType-typed fields may hold anything at run time (mypy would deem
        # the type checks unreachable).
        qty: object = cmd.qty
        tif = cmd.tif
        side = cmd.side
        ts = cmd.ts
        if (
            type(qty) is not int
            or qty < self._min_qty
            or (qty > self._small_max_qty and qty > self._max_qty)
            or (tif is not _GTC and tif is not _IOC)
            or cmd.stp is not _STP_NONE
            or type(oid) is not str
            or not oid
            or type(owner) is not str
            or not owner
            or type(ts) is not int
            or (side is not _BUY and side is not _SELL)
            or cmd.stop_price is not None
            or cmd.expire_at is not None
            or cmd.post_only is not None
            or cmd.display_qty is not None
            or cmd.quote_qty is not None
        ):
            self._on_new_general(cmd, out)
            return
        kind = cmd.kind
        price: object = cmd.price
        is_buy = side is _BUY
        if kind is _LIMIT:
            if (
                type(price) is not int
                or price < 1
                or (price > _SMALL and price >= _MAX)
                or price * qty < self._min_notional
            ):
                self._on_new_general(cmd, out)
                return
            limit_key = price if is_buy else -price
        elif kind is _MARKET and price is None:
            limit_key = NO_LIMIT
        else:
            self._on_new_general(cmd, out)
            return
        expiry = self._expiry
        if expiry and expiry[0][0] <= ts:
            self._expire(ts, out)
        if self._halted:
            self._reject(oid, _HALTED, out)
            return
        orders = self._orders
        if oid in orders or oid in self._stops:
            self._reject(oid, RejectReason.DUPLICATE_ID, out)
            return
        arrival = self._arrival + 1
        self._arrival = arrival
        seq = self._seq + 1
        self._seq = seq
        out.append(_new_tuple(Accepted, (seq, oid, owner, side, kind)))
        opp = self._asks if is_buy else self._bids
        heap = opp.heap
        r = qty
        if heap and heap[0] <= limit_key:
            r = self._sweep(opp, limit_key, oid, owner, None, qty, out)
            traded = r < qty
        else:
            traded = False
        if r:
            if kind is _LIMIT and tif is _GTC:
                # plain_order inlined (one call less); append or the branch below links it.
                o = Order()
                o.id = oid
                o.owner = owner
                o.is_buy = is_buy
                o.price = price
                o.qty = r
                o.visible = r
                o.arrival = arrival
                book = self._bids if is_buy else self._asks
                lv = book.levels.get(-limit_key)
                if lv is None:
                    book.append(o)
                else:
                    # BookSide.append for an existing level.
                    tail = lv.tail
                    assert tail is not None
                    tail.next = o
                    o.prev = tail
                    o.next = None
                    lv.tail = o
                    lv.total += r
                    lv.count += 1
                orders[oid] = o
            else:
                seq = self._seq + 1
                self._seq = seq
                reason = _IOC_REMAINDER if kind is _LIMIT or traded else _NO_LIQ
                out.append(_new_tuple(Cancelled, (seq, oid, reason, r, None)))
        self._traded = traded
        if traded and self._stops:
            self._cascade(deque(), out)

    def _on_new_general(self, cmd: NewOrder, out: list[Event]) -> None:
        if new_order_malformed(cmd):
            self._reject(cmd.id, _INVALID, out)
            return
        ts = cmd.ts
        expiry = self._expiry
        if expiry and expiry[0][0] <= ts:
            self._expire(ts, out)
        oid = cmd.id
        if self._halted:
            reason: RejectReason | None = _HALTED
        elif oid in self._orders or oid in self._stops:
            reason = RejectReason.DUPLICATE_ID
        else:
            reason = new_order_param_error(cmd, self.spec)
        if reason is not None:
            self._reject(oid, reason, out)
            return
        arrival = self._arrival + 1
        self._arrival = arrival
        kind = cmd.kind
        side = cmd.side
        owner = cmd.owner
        o = new_order(
            oid,
            owner,
            side is _BUY,
            kind,
            cmd.price,
            cmd.qty or 0,
            cmd.display_qty or 0,
            cmd.tif,
            cmd.expire_at,
            cmd.post_only,
            cmd.stp,
            cmd.stop_price,
            arrival,
            cmd.quote_qty or 0,
        )
        seq = self._seq + 1
        self._seq = seq
        out.append(_new_tuple(Accepted, (seq, oid, owner, side, kind)))
        self._traded = False
        if kind is _LIMIT or kind is _MARKET:
            if o.budget:
                self._process_quote(o, o.budget, out)
            else:
                self._process(o, out)
            if self._traded and self._stops:
                self._cascade(deque(), out)
        else:
            self._add_stop(o, out)

    def _on_cancel(self, cmd: Cancel, out: list[Event]) -> None:
        oid = cmd.id
        owner = cmd.owner
        ts = cmd.ts
        # is_name and is_int, inlined.
        if not (
            isinstance(oid, str)
            and oid != ""
            and isinstance(owner, str)
            and owner != ""
            and type(ts) is int
        ):
            self._reject(oid, _INVALID, out)
            return
        expiry = self._expiry
        if expiry and expiry[0][0] <= ts:
            self._expire(ts, out)
        o = self._orders.get(oid)
        if o is not None and o.owner == owner:
            # The common case, a resting order of its owner: _take_out and _cancelled inlined.
            book = self._bids if o.is_buy else self._asks
            price = o.price
            assert price is not None
            book.unlink(o, book.levels[-price if o.is_buy else price])
            del self._orders[o.id]
            seq = self._seq + 1
            self._seq = seq
            out.append(_new_tuple(Cancelled, (seq, o.id, _USER, o.qty, None)))
            return
        o = self._find_own(cmd, out)
        if o is not None:
            self._take_out(o)
            self._cancelled(o.id, _USER, o.qty, out)

    # -- snapshots -------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Return the full state as a JSON-serialisable dict (see ``restore``)."""
        return snapshot.dump_state(self)

    @classmethod
    def restore(cls, dump: dict[str, Any]) -> MatchingEngine:
        """Rebuild an engine that emits exactly what the dumped one would have emitted."""
        engine = cls(MarketSpec.from_dict(dump["spec"]))
        snapshot.load_state(engine, dump)
        return engine

    def validate_internal_state(self) -> None:
        """Check every invariant of the book; raise ``AssertionError`` on the first broken."""
        snapshot.check_invariants(self)
