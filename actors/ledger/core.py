"""The ledger shard's state machine in memory: pure, integer-only, no Ray and no I/O.

A `LedgerCore` owns the accounts with `account_id % shard_count == shard_id`: per asset
their `available` and `locked` atoms, one fee account per asset, the reservation record of
each open order of those accounts, the credited and debited totals per asset and a
per-market journal high-water mark. That durable state is a function of the credits, the
debits and the journals: a reservation enters it with its journal entry
(`apply_events(..., reservation)`); before that it is a hold (`hold`, see `holds.py`), in
memory only. The Ray shell (`shard.py`)
loads the durable state from PostgreSQL, feeds the core, and writes back what
`take_changes` returns, in the background.

Which shard applies what: an event about an order is applied by the shard that holds that
order's reservation record; other shards ignore it. A fill touches two orders that may live
on two shards: each applies its own side, and each payer's fee goes to the fee account of
its own shard. Maker rebates are paid out of the fee account of the maker's shard, so one
shard's fee balance may go negative; the sum over shards never does, because the spec
forbids a rebate larger than the taker fee. Conservation per asset therefore holds over
all shards together (`sum(available + locked + fees) == sum(credited) - sum(debited)`),
and within one shard only when the counterparties of its fills are on it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from actors.accounts import AccountId
from actors.contracts import Reservation
from actors.engine import (
    Accepted,
    Amended,
    Cancelled,
    Event,
    Fill,
    MarketSpec,
    Rejected,
    Side,
    StpDecrement,
)
from actors.ledger.fees import RecordFees, charge_fill
from actors.ledger.holds import Hold, terms_key
from actors.ledger.rules import (
    Changes,
    CreditReferenceError,
    DebitReferenceError,
    InsufficientBalanceError,
    LedgerInvariantError,
    LedgerRequestError,
    Move,
    Moves,
    OrderReservation,
    Totals,
    check_credit,
    required_now,
    shard_of,
)
from actors.ledger.state import LedgerState

__all__ = ["Changes", "LedgerCore", "Move", "Moves", "Totals", "shard_of"]


class LedgerCore(LedgerState):
    """A ledger shard's commands (credit, debit, hold, reserve, release) and the rules that turn a
    journal entry's reservation and events into balance moves (see the module doc).

    Args:
        shard_id: This shard's number, `0 <= shard_id < shard_count`.
        shard_count: Number of shards.
    """

    # -- commands --------------------------------------------------------------------------

    def credit(self, account_id: AccountId, asset: str, amount_atoms: int, reference: str) -> bool:
        """Add funds to an account's available balance, once per reference.

        Returns:
            True if credited now, False if the same credit was made before with it.

        Raises:
            LedgerRequestError: The amount is not positive or the account is another
                shard's; `AmountBoundError` when the shard's total of the asset would pass
                `MAX_ATOMS` (the shard actor also checks every shard's total first).
            CreditReferenceError: The reference was used for another account, asset or
                amount.
        """
        if amount_atoms <= 0:
            raise LedgerRequestError(f"credit amount must be positive, got {amount_atoms}")
        self.check_owner(account_id)
        self._moves = []
        terms = (account_id, asset, amount_atoms)
        earlier = self._references.get(reference)
        if earlier is not None:
            if earlier != terms:
                raise CreditReferenceError(f"reference {reference!r} was used for another credit")
            return False
        check_credit(amount_atoms, self.supply(asset))
        self._references[reference] = terms
        self._move(account_id, asset, amount_atoms, 0)
        self._credited[asset] = self._credited.get(asset, 0) + amount_atoms
        self._changes.credits.append((reference, account_id, asset, amount_atoms))
        return True

    def debit(self, account_id: AccountId, asset: str, amount_atoms: int, reference: str) -> bool:
        """Take funds out of an account's available balance (a withdrawal), once per
        reference: the mirror of `credit`. Held funds are not available.

        Returns:
            True if debited now, False if the same debit was made before with it (even if
            the balance is now short: a repeat changes nothing).

        Raises:
            LedgerRequestError: The amount is not positive or the account is another
                shard's.
            DebitReferenceError: The reference was used for another account, asset or
                amount.
            InsufficientBalanceError: Less than `amount_atoms` is available; nothing
                changed.
        """
        if amount_atoms <= 0:
            raise LedgerRequestError(f"debit amount must be positive, got {amount_atoms}")
        self.check_owner(account_id)
        self._moves = []
        terms = (account_id, asset, amount_atoms)
        earlier = self._debit_references.get(reference)
        if earlier is not None:
            if earlier != terms:
                raise DebitReferenceError(f"reference {reference!r} was used for another debit")
            return False
        available = self.balance(account_id, asset)[0]
        if available < amount_atoms:
            raise InsufficientBalanceError(
                f"account {account_id} has {available} atoms of {asset} available, "
                f"{amount_atoms} asked"
            )
        self._debit_references[reference] = terms
        self._move(account_id, asset, -amount_atoms, 0)
        self._debited[asset] = self._debited.get(asset, 0) + amount_atoms
        self._changes.debits.append((reference, account_id, asset, amount_atoms))
        return True

    def hold(self, r: Reservation, market_epoch: int = 0) -> bool:
        """Set `r.amount_atoms` aside in memory for an order not yet journaled, if the
        account has them available; `apply_events` with the same reservation makes it
        durable and ends the hold.

        Idempotent: a repeat of a held reservation, or of the last reservation applied to
        the same order, changes nothing and returns True.

        Returns:
            False (changing nothing) if the funds are short or the order belongs to another
            account; True otherwise.

        Raises:
            StaleMarketEpochError: `market_epoch` is older than one seen for the market.
        """
        terms = terms_key(r)
        refused = self._refuses(r, terms)
        if refused is not None:
            return not refused
        self.holds.check_epoch(r.market, market_epoch)
        key = (r.market, r.order_id, terms)
        if self.holds.has(key):
            return True
        if self.balance(r.account_id, r.asset)[0] < r.amount_atoms:
            return False
        self.holds.add(key, Hold(r.account_id, r.asset, r.amount_atoms, market_epoch))
        return True

    def reserve(self, r: Reservation) -> bool:
        """Hold `r.amount_atoms` and make the reservation durable at once, as its journal
        entry would (`apply_events`): for callers that journal nothing, such as tests.

        Idempotent like `hold`. A further reservation of an existing order with other
        terms (an amend that raises the requirement) is held as pending until its `amended`
        event.

        Returns:
            False (changing nothing) if the funds are short or the order belongs to another
            account; True otherwise.
        """
        if not self.hold(r):
            return False
        self._commit(r)
        return True

    def _refuses(self, r: Reservation, terms: str) -> bool | None:
        """Check a reservation request (`terms`: its `terms_key`): True to refuse it, False
        if it is a repeat of the order's last reservation (nothing to do), None to go on."""
        if r.amount_atoms < 0:
            raise LedgerRequestError(f"reservation amount must be >= 0, got {r.amount_atoms}")
        self.check_owner(r.account_id)
        self._moves = []
        record = self._records.get((r.market, r.order_id))
        if record is None:
            return None
        if record.account_id != r.account_id or record.asset != r.asset:
            return True
        return False if record.request_key == terms else None

    def _commit(self, r: Reservation) -> None:
        """Make a journaled reservation durable, ending its hold (a hold lost in a restart
        was re-taken by the journal catch-up, in `replaying` mode)."""
        terms = terms_key(r)
        self.holds.pop((r.market, r.order_id, terms))
        record = self._records.get((r.market, r.order_id))
        if record is not None and record.request_key == terms:
            return
        self._lock(r, terms)

    def _lock(self, r: Reservation, terms: str) -> None:
        key = (r.market, r.order_id)
        record = self._records.get(key)
        self._move(r.account_id, r.asset, -r.amount_atoms, r.amount_atoms)
        if record is None:
            record = OrderReservation(
                r.market, r.order_id, r.account_id, r.side, r.asset, r.amount_atoms,
                limit_price_ticks=r.limit_price_ticks, open_qty_lots=r.qty_lots,
                quote_budget_tick_lots=r.quote_budget_tick_lots,
            )  # fmt: skip
            self._records[key] = record
        else:
            record.pending_atoms += r.amount_atoms
        record.request_key = terms
        self._dirty_records.add(key)

    def release(self, market: str, order_id: str) -> Moves:
        """Release an order's whole reservation and drop its record (no-op if none)."""
        self._moves = []
        record = self._records.get((market, order_id))
        if record is not None:
            self._drop(record)
        return self._moves

    def apply_events(
        self,
        spec: MarketSpec,
        market: str,
        journal_seq: int,
        events: Iterable[Event],
        reservation: Reservation | None = None,
    ) -> Moves:
        """Apply one journal entry to this shard: its reservation first (if the account is
        this shard's: made durable, ending its hold), then its engine events to this
        shard's orders.

        Entries at or below the market's mark were applied before and are skipped.

        Returns:
            The balance moves made, in order.

        Raises:
            LedgerInvariantError: A fill needs more than its order has reserved, or a
                balance would go negative (a bug: crash and recover).
        """
        self._moves = []
        if journal_seq <= self.mark(market):
            return self._moves
        if reservation is not None and self.owns(reservation.account_id):
            self._commit(reservation)
        for event in events:
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(self, spec, market, event)
        self._marks[market] = journal_seq
        self._dirty_marks.add(market)
        return self._moves

    def advance(self, market: str, journal_seq: int) -> None:
        """Raise the market's mark to `journal_seq`: the entries up to it that were not
        applied here concern none of this shard's orders (a routed apply vouches for
        that, see `actors.market.routing`). A lower `journal_seq` changes nothing."""
        if journal_seq > self.mark(market):
            self._marks[market] = journal_seq
            self._dirty_marks.add(market)

    # -- event handlers --------------------------------------------------------------------

    def _record(self, market: str, order_id: str | None) -> OrderReservation | None:
        return None if order_id is None else self._records.get((market, order_id))

    def _on_accepted(self, spec: MarketSpec, market: str, event: Accepted) -> None:
        record = self._record(market, event.id)
        if record is not None:
            record.accepted = True
            self._touch(record)

    def _on_rejected(self, spec: MarketSpec, market: str, event: Rejected) -> None:
        record = self._record(market, event.id)
        if record is None:
            return
        if not record.accepted:
            self._drop(record)
            return
        # An amend of a live order was rejected: give back what was reserved for it.
        self._unlock(record, record.pending_atoms)
        record.pending_atoms = 0
        self._true_up(spec, record)

    def _on_cancelled(self, spec: MarketSpec, market: str, event: Cancelled) -> None:
        record = self._record(market, event.id)
        if record is not None:
            self._drop(record)

    def _on_amended(self, spec: MarketSpec, market: str, event: Amended) -> None:
        record = self._record(market, event.id)
        if record is None:
            return
        record.limit_price_ticks = event.price
        record.open_qty_lots = int(event.qty)
        need = required_now(spec, record)
        take = record.pending_atoms if need is None else max(0, need - record.reserved_atoms)
        take = min(take, record.pending_atoms)
        record.reserved_atoms += take
        record.pending_atoms -= take
        self._unlock(record, record.pending_atoms)
        record.pending_atoms = 0
        if need is not None and record.reserved_atoms < need:
            self._lock_shortfall(record, need - record.reserved_atoms)
        self._true_up(spec, record)

    def _lock_shortfall(self, record: OrderReservation, atoms: int) -> None:
        # The engine already amended the order, so refusing is no longer possible: take the
        # missing atoms from available if they are there, else crash (the market actor
        # did not pre-reserve the amend, see `amend_reservation`).
        if self.balance(record.account_id, record.asset)[0] < atoms:  # holds excluded
            raise LedgerInvariantError(
                f"amend of {record.market}/{record.order_id} needs {atoms} atoms more than the "
                f"{record.reserved_atoms} reserved, and they are not available: not pre-reserved"
            )
        self._move(record.account_id, record.asset, -atoms, atoms)
        record.reserved_atoms += atoms

    def _on_stp_decrement(self, spec: MarketSpec, market: str, event: StpDecrement) -> None:
        qty = int(event.qty)
        maker = self._record(market, event.maker_id)
        taker = self._record(market, event.taker_id)
        for record in (maker, taker):
            if record is None:
                continue
            if record.open_qty_lots is not None:
                record.open_qty_lots -= qty
            elif record.quote_budget_tick_lots is not None and maker is not None:
                # Self-trade: both orders have one owner, so the maker's record is here.
                record.quote_budget_tick_lots -= qty * (maker.limit_price_ticks or 0)
            self._settle_remainder(spec, record)

    def _on_fill(self, spec: MarketSpec, market: str, event: Fill) -> None:
        fees = charge_fill(spec, event, RecordFees(self._records, market))
        price, qty = int(event.price), int(event.qty)
        taker_buys = event.taker_side == Side.BUY
        for order_id, fee, buys in (
            (event.taker_id, fees.taker_fee_atoms, taker_buys),
            (event.maker_id, fees.maker_fee_atoms, not taker_buys),
        ):
            record = self._record(market, order_id)
            if record is not None:
                self._fill_side(
                    spec, record, price=price, qty=qty, notional=fees.notional_atoms, fee=fee,
                    buys=buys,
                )  # fmt: skip

    def _fill_side(
        self,
        spec: MarketSpec,
        record: OrderReservation,
        *,
        price: int,
        qty: int,
        notional: int,
        fee: int,
        buys: bool,
    ) -> None:
        account = record.account_id
        if buys:
            self._pay(record, notional + max(fee, 0))
            self._move(account, spec.base_asset, qty * spec.lot_size, 0)
            if fee < 0:
                self._move(account, spec.quote_asset, -fee, 0)
        else:
            self._pay(record, qty * spec.lot_size)
            self._move(account, spec.quote_asset, notional - fee, 0)
        self._fee(spec.quote_asset, fee)
        if record.open_qty_lots is not None:
            record.open_qty_lots -= qty
        if record.quote_budget_tick_lots is not None:
            record.quote_budget_tick_lots -= price * qty
        self._settle_remainder(spec, record)


_Handler = Callable[[LedgerCore, MarketSpec, str, Event], None]
_HANDLERS: dict[type, _Handler] = {
    Accepted: LedgerCore._on_accepted,  # type: ignore[dict-item]
    Rejected: LedgerCore._on_rejected,  # type: ignore[dict-item]
    Fill: LedgerCore._on_fill,  # type: ignore[dict-item]
    Cancelled: LedgerCore._on_cancelled,  # type: ignore[dict-item]
    Amended: LedgerCore._on_amended,  # type: ignore[dict-item]
    StpDecrement: LedgerCore._on_stp_decrement,  # type: ignore[dict-item]
}
"""Event types that move money; `Triggered`, `Halted` and `Resumed` move none."""
