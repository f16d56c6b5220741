"""A desk that plays the market actor's part: hold, match with the real engine, apply.

Each command is one journal entry; its reservation (held before matching) and its events
(the engine's typed events) go to every shard, or (`routed=True`) only to the shards of
the accounts the entry concerns, the way the market actor routes them
(`actors.market.routing`): the other shards just move their mark past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from actors.accounts import AccountId
from actors.contracts import JsonDict, Reservation
from actors.engine import Amend, Command, Event, MarketSpec, MatchingEngine, OrderId
from actors.engine.codec import command_from_dict
from actors.ledger.core import LedgerCore, Moves, shard_of
from actors.ledger.rules import required_reservation
from actors.market.reservations import for_amend
from actors.market.routing import entry_accounts, owners_before

SPEC = MarketSpec(
    symbol="B-Q", base_asset="B", quote_asset="Q", base_decimals=0, quote_decimals=0,
    tick_size=1, lot_size=10, maker_fee_bps=10, taker_fee_bps=30,
)  # fmt: skip


# The property tests' market: a maker rebate, a taker fee, odd tick and lot sizes.
FLOW_SPEC = MarketSpec(
    symbol="P-Q", base_asset="P", quote_asset="Q", base_decimals=1, tick_size=5, lot_size=2,
    maker_fee_bps=-3, taker_fee_bps=25,
)  # fmt: skip
PRICES = st.integers(98, 102)
QUANTITIES = st.integers(1, 6)
SIDES = st.sampled_from(["buy", "sell"])
MARKET_ORDERS = st.one_of(
    st.fixed_dictionaries({"side": st.just("buy"), "kind": st.just("market"),
                           "quote_qty": st.integers(50, 2_000)}),
    st.fixed_dictionaries({"side": st.just("sell"), "kind": st.just("market"),
                           "qty": QUANTITIES}),
)  # fmt: skip


def limit_orders(tifs: Sequence[str], **optional: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Limit orders around 100 with any of `tifs`, self-trade prevention, icebergs and
    the `optional` fields' strategies."""
    stp = st.sampled_from(["cancel_newest", "cancel_oldest", "cancel_both",
                           "decrement_and_cancel"])  # fmt: skip
    return st.fixed_dictionaries(
        {"side": SIDES, "price": PRICES, "qty": QUANTITIES},
        optional={"tif": st.sampled_from(list(tifs)), "stp": stp, "display_qty": st.just(1),
                  **optional},
    )  # fmt: skip


class Desk:
    """A market with its engine and `shard_count` ledger shards."""

    def __init__(self, spec: MarketSpec = SPEC, shard_count: int = 1, routed: bool = False) -> None:
        self.spec = spec
        self.routed = routed
        # Shards each entry went to (routed desks): per entry, their number.
        self.reached: list[int] = []
        self.engine = MatchingEngine(spec)
        self.shards = [LedgerCore(i, shard_count) for i in range(shard_count)]
        self.journal_seq = 0
        self.ts = 0
        self.moves: Moves = []
        self.events: list[Event] = []
        # Every journal entry: (seq, events, reservation), as a shard reads them back.
        self.journal: list[tuple[int, list[Event], Reservation | None]] = []

    def shard(self, account: int) -> LedgerCore:
        """Return the shard owning an account."""
        return self.shards[shard_of(account, len(self.shards))]

    def fund(self, account: int, asset: str, atoms: int) -> None:
        """Credit an account."""
        self.shard(account).credit(account, asset, atoms, f"dep-{account}-{asset}-{atoms}")

    def balance(self, account: int, asset: str) -> tuple[int, int]:
        """Return (available, locked) of an account."""
        return self.shard(account).balance(account, asset)

    def fees(self, asset: str = "Q") -> int:
        """Return the fees of every shard together."""
        return sum(s.fees(asset) for s in self.shards)

    def place(self, account: int, oid: str, side: str, **fields: Any) -> bool:
        """Reserve for and submit a new order; False if the funds were short."""
        kind = fields.setdefault("kind", "limit")
        budget = fields.pop("budget", fields.get("quote_qty"))
        price = fields.get("price")
        qty = fields.get("qty")
        amount = required_reservation(self.spec, side, kind, price, qty, budget)
        asset = self.spec.quote_asset if side == "buy" else self.spec.base_asset
        reservation = Reservation(
            self.spec.symbol, oid, AccountId(account), asset, amount, side, price, qty, budget
        )
        if not self.shard(account).hold(reservation):
            return False
        command = {"type": "new", "id": oid, "owner": str(account), "side": side, **fields}
        self.submit(command, reservation)
        return True

    def cancel(self, account: int, oid: str) -> None:
        """Cancel an order."""
        self.submit({"type": "cancel", "id": oid, "owner": str(account)})

    def amend(self, account: int, oid: str, price: int | None, qty: int) -> bool:
        """Pre-reserve an amend when it needs more, then submit it; False if short."""
        view = self.engine.get_order(OrderId(oid))
        record = self.shard(account).reservation(self.spec.symbol, oid)
        command = {"type": "amend", "id": oid, "owner": str(account), "price": price, "qty": qty}
        reservation = None
        if view is not None and record is not None:
            # What the market actor reserves for an amend (nothing for a stop-market buy,
            # which its budget bounds).
            amend = command_from_dict({**command, "ts": self.ts + 1})
            assert isinstance(amend, Amend)
            reservation = for_amend(self.spec, AccountId(account), amend, view, 0)
            if reservation is not None and not self.shard(account).hold(reservation):
                return False
        self.submit(command, reservation)
        return True

    def submit(self, command: JsonDict, reservation: Reservation | None = None) -> list[Event]:
        """Journal and match one command, then apply its reservation and events on every
        shard."""
        self.ts += 1
        decoded: Command = command_from_dict({**command, "ts": self.ts})
        known = owners_before(self.engine, decoded)
        events = self.engine.submit(decoded)
        self.journal_seq += 1
        self.moves = []
        seq = self.journal_seq
        shards = self.shards
        if self.routed:
            accounts = entry_accounts(events, reservation, known)
            if accounts is not None:
                count = len(self.shards)
                shards = [self.shards[i] for i in sorted({shard_of(a, count) for a in accounts})]
            self.reached.append(len(shards))
        symbol = self.spec.symbol
        for shard in shards:
            self.moves += shard.apply_events(self.spec, symbol, seq, events, reservation)
        for shard in self.shards:
            shard.advance(symbol, seq)
        self.events = events
        self.journal.append((seq, events, reservation))
        return events

    def conserved(self) -> dict[str, tuple[int, int]]:
        """Return per asset (available + locked + fees, credited - debited) summed over
        shards."""
        out: dict[str, tuple[int, int]] = {}
        for shard in self.shards:
            for asset, t in shard.totals().items():
                held, net = out.get(asset, (0, 0))
                out[asset] = (held + t.available + t.locked + t.fees, net + t.credited - t.debited)
        return out
