"""Harness for the engine's rule tests: typed commands in, compact event tuples out.

Every step checks ``validate_internal_state()`` and that ``seq`` has no gaps.
"""

from __future__ import annotations

from typing import Any

from actors.engine import (
    Amend,
    Cancel,
    CancelAll,
    Command,
    Halt,
    Lots,
    MarketSpec,
    MatchingEngine,
    Millis,
    NewOrder,
    OrderId,
    OrderKind,
    Owner,
    PostOnly,
    Resume,
    Side,
    StpMode,
    Tick,
    TickLots,
    Ticks,
    TimeInForce,
)
from actors.engine.codec import event_to_dict


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    """Return the fields of an event dict that the rule tests compare."""
    t = event["type"]
    if t == "accepted":
        return ("accepted", event["id"])
    if t == "rejected":
        return ("rejected", event["id"], event["reason"])
    if t == "fill":
        return ("fill", event["maker_id"], event["taker_id"], event["price"], event["qty"])
    if t == "cancelled":
        base = ("cancelled", event["id"], event["reason"], event["remaining_qty"])
        if "remaining_quote_qty" in event:
            return (*base, event["remaining_quote_qty"])
        return base
    if t == "amended":
        return ("amended", event["id"], event["price"], event["qty"], event["priority_kept"])
    if t == "triggered":
        return ("triggered", event["id"])
    if t == "stp_decrement":
        return ("stp_decrement", event["maker_id"], event["taker_id"], event["qty"])
    return (t,)


class Harness:
    """Drives one engine; ``ts`` advances by one per command unless given."""

    def __init__(self, spec: MarketSpec | None = None) -> None:
        self.engine = MatchingEngine(spec or MarketSpec("X"))
        self.ts = 0
        self.events: list[dict[str, Any]] = []

    def do(self, command: Command) -> list[tuple[Any, ...]]:
        """Submit a command, check invariants and seq, return event summaries."""
        raw = self.engine.submit(command)
        self.engine.validate_internal_state()
        dicts = [event_to_dict(e) for e in raw]
        for d in dicts:
            expected = self.events[-1]["seq"] + 1 if self.events else 1
            assert d["seq"] == expected
            self.events.append(d)
        return [summary(d) for d in dicts]

    def _ts(self, ts: int | None) -> Millis:
        self.ts = self.ts + 1 if ts is None else ts
        return Millis(self.ts)

    def new(
        self,
        oid: str,
        owner: str,
        side: str,
        qty: int | None = None,
        price: int | None = None,
        *,
        kind: str = "limit",
        ts: int | None = None,
        tif: str = "gtc",
        stp: str = "none",
        post_only: str | None = None,
        **kw: Any,
    ) -> list[tuple[Any, ...]]:
        """Place an order."""
        command = NewOrder(
            id=OrderId(oid),
            owner=Owner(owner),
            side=Side(side),
            kind=OrderKind(kind),
            ts=self._ts(ts),
            qty=None if qty is None else Lots(qty),
            price=None if price is None else Ticks(price),
            stop_price=kw.pop("stop_price", None),
            tif=TimeInForce(tif),
            expire_at=kw.pop("expire_at", None),
            post_only=None if post_only is None else PostOnly(post_only),
            display_qty=kw.pop("display_qty", None),
            quote_qty=None if "quote_qty" not in kw else TickLots(kw.pop("quote_qty")),
            stp=StpMode(stp),
        )
        assert not kw, kw
        return self.do(command)

    def cancel(self, oid: str, owner: str, ts: int | None = None) -> list[tuple[Any, ...]]:
        """Cancel an order."""
        return self.do(Cancel(OrderId(oid), Owner(owner), self._ts(ts)))

    def amend(
        self,
        oid: str,
        owner: str,
        qty: int | None = None,
        price: int | None = None,
        ts: int | None = None,
    ) -> list[tuple[Any, ...]]:
        """Amend an order."""
        return self.do(Amend(OrderId(oid), Owner(owner), self._ts(ts), qty, price))  # type: ignore[arg-type]

    def cancel_all(self, owner: str, ts: int | None = None) -> list[tuple[Any, ...]]:
        """Cancel all of an owner's orders."""
        return self.do(CancelAll(Owner(owner), self._ts(ts)))

    def halt(self, ts: int | None = None) -> list[tuple[Any, ...]]:
        """Halt the market."""
        return self.do(Halt(self._ts(ts)))

    def resume(self, ts: int | None = None) -> list[tuple[Any, ...]]:
        """Resume the market."""
        return self.do(Resume(self._ts(ts)))

    def tick(self, ts: int | None = None) -> list[tuple[Any, ...]]:
        """Advance time."""
        return self.do(Tick(self._ts(ts)))

    def book(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Return the L2 book as (price, visible qty, order count) tuples."""
        l2 = self.engine.l2()
        return [tuple(lv) for lv in l2.bids], [tuple(lv) for lv in l2.asks]  # type: ignore[return-value]

    def queue(self, price: int) -> list[str]:
        """Return the ids at one price, in queue order."""
        return [v.id for v in self.engine.l3() if v.price == price]
