"""A deliberately simple reference model of the matching engine.

It implements `ENGINE_SPEC.md` (in `../shared/`) and `docs/engine-decisions.md` with plain
lists and linear scans, so that every rule can be checked by reading it next to the docs.
The property tests compare the real engine (`actors/engine/`) against it event for event,
and `bench/engine_bench.py` uses it as the slow baseline. Speed is not a goal.

Orders are plain records. One list holds every resting order of both sides, one list the
pending stops; the best maker is found by scanning, and queue order is the arrival number.
Quantities are lots, prices ticks, `ts` and `expire_at` milliseconds, budgets tick-lots.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]

LIMIT_EXCLUSIVE = 2**63  # qty, price and budgets must stay below it
SIDES = ("buy", "sell")
KINDS = ("limit", "market", "stop_limit", "stop_market")
TIFS = ("gtc", "ioc", "fok", "gtd")
POST_ONLY_MODES = ("reject", "slide")
STP_MODES = ("none", "cancel_newest", "cancel_oldest", "cancel_both", "decrement_and_cancel")
COMMAND_TYPES = ("new", "cancel", "amend", "cancel_all", "halt", "resume", "tick")
NEW_INT_FIELDS = ("qty", "price", "stop_price", "expire_at", "display_qty", "quote_qty", "ts")
STOP_KINDS = ("stop_limit", "stop_market")


@dataclass(eq=False)  # identity, not field equality: `list.remove` must take this very order
class Order:
    """One order: resting, pending as a stop, or being matched as the incoming order.

    `qty` is the open quantity in lots (an iceberg's slice plus reserve; 0 for a market buy
    with only `quote_qty`), `visible` the queued slice in lots, `budget` the unspent
    `quote_qty` in tick-lots (None without one), `arrival` the per-market arrival number.
    A market buy with both `qty` and `quote_qty` is `capped`: it stops at `qty` lots too.
    """

    id: str
    owner: str
    side: str
    kind: str
    qty: int
    price: int | None
    stop_price: int | None
    tif: str
    expire_at: int | None
    post_only: str | None
    display_qty: int | None
    stp: str
    budget: int | None = None
    visible: int = 0
    arrival: int = 0
    filled: bool = False  # set by the first fill while incoming
    capped: bool = False  # a `quote_qty` order that also has a `qty`


def _field(cmd: dict[str, Any], name: str) -> Any:
    """Return a command field; `null` counts as absent."""
    return cmd.get(name)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _choice_ok(value: Any, allowed: tuple[str, ...]) -> bool:
    return value is None or (isinstance(value, str) and value in allowed)


def _well_formed(cmd: dict[str, Any]) -> bool:
    """Apply the `invalid_command` checks of every command type."""
    kind = cmd.get("type")
    if not isinstance(kind, str) or kind not in COMMAND_TYPES or not _is_int(_field(cmd, "ts")):
        return False
    if kind == "new":
        return _well_formed_new(cmd)
    if kind in ("cancel", "amend") and not (_is_name(cmd.get("id")) and _is_name(cmd.get("owner"))):
        return False
    if kind == "amend":
        qty, price = _field(cmd, "qty"), _field(cmd, "price")
        if qty is None and price is None:
            return False
        return all(v is None or _is_int(v) for v in (qty, price))
    if kind == "cancel_all":
        return _is_name(cmd.get("owner"))
    return True


def _well_formed_new(cmd: dict[str, Any]) -> bool:
    if not (_is_name(cmd.get("id")) and _is_name(cmd.get("owner"))):
        return False
    side, kind = cmd.get("side"), cmd.get("kind")
    if side is None or kind is None or not (_choice_ok(side, SIDES) and _choice_ok(kind, KINDS)):
        return False
    if not (
        _choice_ok(cmd.get("tif"), TIFS)
        and _choice_ok(cmd.get("post_only"), POST_ONLY_MODES)
        and _choice_ok(cmd.get("stp"), STP_MODES)
    ):
        return False
    if any(not (cmd.get(f) is None or _is_int(cmd.get(f))) for f in NEW_INT_FIELDS):
        return False
    tif = cmd.get("tif") or "gtc"
    has_qty, has_quote = cmd.get("qty") is not None, cmd.get("quote_qty") is not None
    budget_kinds = ("market", "stop_market")  # buys only; with or without `qty`
    if has_quote and (kind not in budget_kinds or side != "buy" or tif == "fok"):
        return False
    if not has_qty and not has_quote:
        return False
    if cmd.get("price") is not None and kind in ("market", "stop_market"):
        return False
    if cmd.get("stop_price") is not None and kind in ("limit", "market"):
        return False
    if cmd.get("post_only") is not None and (kind != "limit" or tif not in ("gtc", "gtd")):
        return False
    return not (kind in STOP_KINDS and tif in ("ioc", "fok"))


@dataclass
class ReferenceEngine:
    """The reference matching engine of one market.

    Args:
        spec: the market spec; only `min_qty`, `max_qty` (lots), `min_notional`
            (tick-lots) and `status` (`"halted"` starts halted) change behaviour, all optional.
    """

    spec: dict[str, Any]
    resting: list[Order] = field(default_factory=list)
    stops: list[Order] = field(default_factory=list)
    halted: bool = False
    last_price: int | None = None  # ticks; None before the first trade
    seq: int = 0
    arrivals: int = 0
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.halted = self.spec.get("status") == "halted"

    # ----------------------------------------------------------------- public interface

    def apply(self, cmd: dict[str, Any] | str) -> list[Event]:
        """Process one command (a dict or a JSON line) and return its events."""
        self.events = []
        if isinstance(cmd, str) and not cmd.strip():
            return self.events  # a blank line carries no command
        parsed = self._parse(cmd)
        if parsed is None or not _well_formed(parsed):
            rid = parsed.get("id") if parsed is not None else None
            self._reject(rid, "invalid_command")
            return self.events
        self._expire(parsed["ts"])
        handler = getattr(self, "_cmd_" + parsed["type"])
        handler(parsed)
        return self.events

    def book(self) -> dict[str, Any]:
        """Return the book in the `--book-out` format."""
        return {
            "bids": self._levels("buy"),
            "asks": self._levels("sell"),
            "stops": [
                {
                    "id": s.id,
                    "owner": s.owner,
                    "side": s.side,
                    "kind": s.kind,
                    "stop_price": s.stop_price,
                    "qty": s.qty,
                }
                for s in sorted(self.stops, key=lambda s: s.arrival)
            ],
        }

    def _levels(self, side: str) -> list[dict[str, Any]]:
        orders = [o for o in self.resting if o.side == side]
        prices = sorted({o.price for o in orders if o.price is not None}, reverse=side == "buy")
        return [
            {
                "price": p,
                "orders": [
                    {"id": o.id, "owner": o.owner, "visible_qty": o.visible, "remaining_qty": o.qty}
                    for o in sorted(orders, key=lambda o: o.arrival)
                    if o.price == p
                ],
            }
            for p in prices
        ]

    @staticmethod
    def _parse(cmd: dict[str, Any] | str) -> dict[str, Any] | None:
        if isinstance(cmd, str):
            try:
                cmd = json.loads(cmd)
            except ValueError:
                return None
        return cmd if isinstance(cmd, dict) else None

    # ----------------------------------------------------------------- events

    def _emit(self, type_: str, **fields: Any) -> None:
        self.seq += 1
        self.events.append({"seq": self.seq, "type": type_, **fields})

    def _reject(self, rid: Any, reason: str) -> None:
        self._emit("rejected", id=rid if isinstance(rid, str) else None, reason=reason)

    def _cancelled(self, order: Order, reason: str, incoming: bool = True) -> None:
        """Report an order cancelled; an incoming budget order adds its unspent budget."""
        extra = (
            {"remaining_quote_qty": order.budget} if incoming and order.budget is not None else {}
        )
        self._emit("cancelled", id=order.id, reason=reason, remaining_qty=order.qty, **extra)

    def _next_arrival(self) -> int:
        self.arrivals += 1
        return self.arrivals

    # ----------------------------------------------------------------- lookups

    def _live(self) -> list[Order]:
        """Every resting order and pending stop, in arrival order."""
        return sorted(self.resting + self.stops, key=lambda o: o.arrival)

    def _find(self, order_id: str) -> Order | None:
        for order in self._live():
            if order.id == order_id:
                return order
        return None

    def _remove(self, order: Order, reason: str) -> None:
        """Take a resting order or pending stop out and report it cancelled."""
        if order in self.stops:
            self.stops.remove(order)
        else:
            self.resting.remove(order)
        self._cancelled(order, reason, incoming=False)

    def _qty_ok(self, qty: int) -> bool:
        low, high = self.spec.get("min_qty"), self.spec.get("max_qty")
        if qty <= 0 or qty >= LIMIT_EXCLUSIVE:
            return False
        return (low is None or qty >= low) and (high is None or qty <= high)

    # ----------------------------------------------------------------- time

    def _expire(self, ts: int) -> None:
        for order in self._live():
            if order.tif == "gtd" and order.expire_at is not None and order.expire_at <= ts:
                self._remove(order, "expired")

    # ----------------------------------------------------------------- simple commands

    def _cmd_tick(self, cmd: dict[str, Any]) -> None:
        pass

    def _cmd_halt(self, cmd: dict[str, Any]) -> None:
        if not self.halted:
            self.halted = True
            self._emit("halted")

    def _cmd_resume(self, cmd: dict[str, Any]) -> None:
        if self.halted:
            self.halted = False
            self._emit("resumed")

    def _cmd_cancel(self, cmd: dict[str, Any]) -> None:
        order = self._find(cmd["id"])
        if order is None:
            self._reject(cmd["id"], "unknown_order")
        elif order.owner != cmd["owner"]:
            self._reject(cmd["id"], "not_owner")
        else:
            self._remove(order, "user")

    def _cmd_cancel_all(self, cmd: dict[str, Any]) -> None:
        for order in self._live():
            if order.owner == cmd["owner"]:
                self._remove(order, "user")

    # ----------------------------------------------------------------- new

    def _new_reject_reason(self, cmd: dict[str, Any]) -> str | None:
        """Apply validation steps 2-8 of a well-formed `new` (first failing check wins)."""
        kind, qty, quote = cmd["kind"], cmd.get("qty"), cmd.get("quote_qty")
        price, stop_price, display = cmd.get("price"), cmd.get("stop_price"), cmd.get("display_qty")
        if self.halted:
            return "market_halted"
        if self._find(cmd["id"]) is not None:
            return "duplicate_id"
        if qty is not None and not self._qty_ok(qty):
            return "invalid_qty"
        if quote is not None and not 0 < quote < LIMIT_EXCLUSIVE:
            return "invalid_qty"
        if kind in ("limit", "stop_limit") and self._below_min_notional(price, qty):
            return "invalid_qty"
        if kind in ("limit", "stop_limit"):
            if price is None:
                return "missing_price"
            if not 0 < price < LIMIT_EXCLUSIVE:
                return "invalid_price"
        if kind in STOP_KINDS:
            if stop_price is None:
                return "missing_stop_price"
            if not 0 < stop_price < LIMIT_EXCLUSIVE:
                return "invalid_price"
        if display is not None and (
            kind not in ("limit", "stop_limit") or display <= 0 or display >= qty
        ):
            return "invalid_display_qty"
        tif, expire_at = cmd.get("tif") or "gtc", cmd.get("expire_at")
        if (tif == "gtd") != (expire_at is not None) or (
            expire_at is not None and expire_at <= cmd["ts"]
        ):
            return "invalid_expiry"
        return None

    def _below_min_notional(self, price: Any, qty: Any) -> bool:
        min_notional = self.spec.get("min_notional")
        if min_notional is None or not isinstance(price, int):
            return False
        return bool(price * qty < min_notional)

    def _cmd_new(self, cmd: dict[str, Any]) -> None:
        reason = self._new_reject_reason(cmd)
        if reason is not None:
            self._reject(cmd["id"], reason)
            return
        order = Order(
            id=cmd["id"],
            owner=cmd["owner"],
            side=cmd["side"],
            kind=cmd["kind"],
            qty=cmd.get("qty") or 0,
            price=cmd.get("price"),
            stop_price=cmd.get("stop_price"),
            tif=cmd.get("tif") or "gtc",
            expire_at=cmd.get("expire_at"),
            post_only=cmd.get("post_only"),
            display_qty=cmd.get("display_qty"),
            stp=cmd.get("stp") or "none",
            budget=cmd.get("quote_qty"),
        )
        self._emit("accepted", id=order.id, owner=order.owner, side=order.side, kind=order.kind)
        if order.kind in STOP_KINDS:
            order.arrival = self._next_arrival()
            self.stops.append(order)
        else:
            self._incoming(order)
        self._run_stops()

    # ----------------------------------------------------------------- amend

    def _amend_reject_reason(self, cmd: dict[str, Any], order: Order | None) -> str | None:
        qty, price = cmd.get("qty"), cmd.get("price")
        if self.halted:
            return "market_halted"
        if order is None:
            return "unknown_order"
        if order.owner != cmd["owner"]:
            return "not_owner"
        if qty is not None and not self._qty_ok(qty):
            return "invalid_qty"
        if price is not None and (
            not 0 < price < LIMIT_EXCLUSIVE or (order in self.stops and order.kind == "stop_market")
        ):
            return "invalid_price"
        return None

    def _cmd_amend(self, cmd: dict[str, Any]) -> None:
        order = self._find(cmd["id"])
        reason = self._amend_reject_reason(cmd, order)
        if reason is not None:
            self._reject(cmd["id"], reason)
            return
        assert order is not None
        new_qty = cmd["qty"] if cmd.get("qty") is not None else order.qty
        new_price = cmd["price"] if cmd.get("price") is not None else order.price
        if order in self.stops:
            order.qty, order.price = new_qty, new_price
            self._emit("amended", id=order.id, price=order.price, qty=order.qty, priority_kept=True)
            return
        if new_price == order.price and new_qty <= order.qty:
            order.qty, order.visible = new_qty, min(order.visible, new_qty)
            self._emit("amended", id=order.id, price=order.price, qty=order.qty, priority_kept=True)
            return
        self._emit("amended", id=order.id, price=new_price, qty=new_qty, priority_kept=False)
        self.resting.remove(order)
        order.qty, order.price, order.filled = new_qty, new_price, False
        self._incoming(order)
        self._run_stops()

    # ----------------------------------------------------------------- incoming orders

    def _incoming(self, order: Order) -> None:
        """Process a newly arrived (or re-queued, or triggered) limit or market order."""
        order.arrival = self._next_arrival()
        order.capped = order.budget is not None and order.qty > 0
        crosses = order.post_only is not None and self._would_take(order)
        if crosses and (order.post_only == "reject" or not self._slide(order)):
            self._cancelled(order, "post_only")
            return
        if order.tif == "fok" and not self._fok_fits(order):
            self._cancelled(order, "fok_unfilled")
            return
        if self._match(order):
            self._finish(order)

    def _best_maker(self, order: Order) -> Order | None:
        """Return the best resting order on the other side that the order may trade with."""
        if order.side == "buy":
            asks = [o for o in self.resting if o.side == "sell"]
            if order.price is not None:
                asks = [o for o in asks if o.price is not None and o.price <= order.price]
            return min(asks, key=lambda o: (o.price, o.arrival), default=None)
        bids = [o for o in self.resting if o.side == "buy"]
        if order.price is not None:
            bids = [o for o in bids if o.price is not None and o.price >= order.price]
        return min(bids, key=lambda o: (-(o.price or 0), o.arrival), default=None)

    def _best_price(self, side: str) -> int | None:
        prices = [o.price for o in self.resting if o.side == side and o.price is not None]
        if not prices:
            return None
        return max(prices) if side == "buy" else min(prices)

    def _would_take(self, order: Order) -> bool:
        assert order.price is not None
        if order.side == "buy":
            ask = self._best_price("sell")
            return ask is not None and order.price >= ask
        bid = self._best_price("buy")
        return bid is not None and order.price <= bid

    def _slide(self, order: Order) -> bool:
        """Re-price a post-only order to the best non-crossing price; False if none exists."""
        if order.side == "buy":
            ask = self._best_price("sell")
            assert ask is not None
            order.price = ask - 1
        else:
            bid = self._best_price("buy")
            assert bid is not None
            order.price = bid + 1
        return order.price > 0

    def _fok_fits(self, order: Order) -> bool:
        """Run the matching on a throw-away copy and see whether it completes cleanly."""
        trial = copy.deepcopy(self)
        trial.events = []
        taker = copy.deepcopy(order)
        completed = trial._match(taker)
        met_own = any(e["type"] == "stp_decrement" for e in trial.events)
        return completed and taker.qty == 0 and not met_own

    def _wanted(self, order: Order, maker: Order) -> int:
        """The lots the incoming order still wants at this maker's price."""
        if order.budget is None:
            return order.qty
        assert maker.price is not None
        affordable = order.budget // maker.price
        return min(affordable, order.qty) if order.capped else affordable

    def _match(self, order: Order) -> bool:
        """Match the incoming order; False if self-trade prevention cancelled it."""
        while True:
            maker = self._best_maker(order)
            if maker is None:
                return True
            wanted = self._wanted(order, maker)
            if wanted == 0:
                return True
            if maker.owner == order.owner and order.stp != "none":
                if not self._self_trade(order, maker, wanted):
                    return False
                continue
            self._fill(order, maker, min(wanted, maker.visible))

    def _fill(self, order: Order, maker: Order, qty: int) -> None:
        assert maker.price is not None
        self._emit(
            "fill",
            maker_id=maker.id,
            taker_id=order.id,
            maker_owner=maker.owner,
            taker_owner=order.owner,
            price=maker.price,
            qty=qty,
            taker_side=order.side,
        )
        self.last_price = maker.price
        order.filled = True
        self._take_from_incoming(order, qty, maker.price)
        maker.qty -= qty
        maker.visible -= qty
        if maker.visible == 0:
            self.resting.remove(maker)
            if maker.qty > 0:  # iceberg: a new slice goes to the back of the queue
                assert maker.display_qty is not None
                maker.visible = min(maker.display_qty, maker.qty)
                maker.arrival = self._next_arrival()
                self.resting.append(maker)

    @staticmethod
    def _take_from_incoming(order: Order, qty: int, price: int) -> None:
        """Count `qty` lots at `price` off the incoming order's lots and/or budget."""
        if order.budget is None or order.capped:
            order.qty -= qty
        if order.budget is not None:
            order.budget -= qty * price

    def _self_trade(self, order: Order, maker: Order, wanted: int) -> bool:
        """Apply the incoming order's STP mode; False if the incoming order is cancelled."""
        if order.stp == "cancel_newest":
            self._cancelled(order, "stp")
            return False
        if order.stp == "cancel_oldest":
            self._remove(maker, "stp")
            return True
        if order.stp == "cancel_both":
            self._remove(maker, "stp")
            self._cancelled(order, "stp")
            return False
        assert order.stp == "decrement_and_cancel"
        assert maker.price is not None
        dec = min(wanted, maker.qty)
        self._emit("stp_decrement", maker_id=maker.id, taker_id=order.id, qty=dec)
        from_reserve = min(dec, maker.qty - maker.visible)
        maker.visible -= dec - from_reserve
        maker.qty -= dec
        self._take_from_incoming(order, dec, maker.price)
        if maker.qty == 0:
            self._remove(maker, "stp")
        if dec == wanted:
            self._cancelled(order, "stp")
            return False
        return True

    def _finish(self, order: Order) -> None:
        """Deal with what is left of the incoming order once matching stopped."""
        if order.kind == "market":
            if order.budget is None:
                if order.qty > 0:
                    self._cancelled(order, self._market_reason(order))
                return
            # A budget order is done when its lots (if capped) or its budget are used up;
            # otherwise the only reasons it stopped are: priced out with asks left, or no asks.
            if order.qty > 0 if order.capped else order.budget > 0:
                asks_left = self._best_price("sell") is not None
                self._cancelled(order, "quote_budget" if asks_left else self._market_reason(order))
        elif order.qty > 0:
            if order.tif == "ioc":
                self._cancelled(order, "ioc_remainder")
                return
            assert order.tif in ("gtc", "gtd")
            order.visible = min(order.display_qty or order.qty, order.qty)
            self.resting.append(order)

    @staticmethod
    def _market_reason(order: Order) -> str:
        return "ioc_remainder" if order.filled else "no_liquidity"

    # ----------------------------------------------------------------- stops

    def _run_stops(self) -> None:
        """Trigger and process every stop whose condition holds, as one cascade."""
        queue: list[Order] = []
        self._scan_stops(queue)
        while queue:
            stop = queue.pop(0)
            self._emit("triggered", id=stop.id)
            stop.kind = "limit" if stop.kind == "stop_limit" else "market"
            if stop.tif != "gtd" or stop.kind == "market":
                stop.tif, stop.expire_at = "gtc", None
            self._incoming(stop)
            self._scan_stops(queue)

    def _scan_stops(self, queue: list[Order]) -> None:
        if self.last_price is None:
            return
        for stop in sorted(self.stops, key=lambda s: s.arrival):
            assert stop.stop_price is not None
            if (stop.side == "buy" and self.last_price >= stop.stop_price) or (
                stop.side == "sell" and self.last_price <= stop.stop_price
            ):
                self.stops.remove(stop)
                queue.append(stop)
