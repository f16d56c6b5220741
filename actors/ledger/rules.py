"""Pure reservation and fee arithmetic of the ledger (integers only, no I/O).

Units: `*_atoms` are atoms of an asset, `*_ticks` prices in ticks, `*_lots` quantities in
lots, `*_tick_lots` notionals as `price * qty` (the spec converts them to quote atoms).

Fees are charged on an order's cumulative notional. Each fill adds `notional * bps` to the
order's fee numerator (quote atoms times basis points, with the bps of the role the order
played in that fill) and charges `ceil(numerator_after / 10^4) - ceil(numerator_before /
10^4)`. For an order that is only ever taker (or only maker) this is exactly
`fee_quote_atoms(cum_after, bps) - fee_quote_atoms(cum_before, bps)`: positive fees round
up, rebates round toward zero, both in the venue's favour. An order that is taker for some
fills and maker for others pays `ceil(sum(notional_i * bps_i) / 10^4)` in total, which
never exceeds the fee reserved at the higher of the two rates (two separate ceilings could
exceed it by one atom).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from actors.accounts import AccountId
from actors.engine import MarketSpec, OrderKind, Side, fee_quote_atoms, notional_quote_atoms
from actors.engine.spec import BPS_DENOMINATOR, tick_lots_to_quote_atoms
from actors.engine.types import MAX_ATOMS, MAX_INT64_EXCLUSIVE


class LedgerInvariantError(RuntimeError):
    """A ledger invariant broke (a bug, never a business reject): crash and recover."""


class LedgerRequestError(ValueError):
    """A request was refused before it changed anything (bad amount, wrong shard, ...)."""


class AmountBoundError(LedgerRequestError):
    """A credit would take an amount past `MAX_ATOMS` (`code`: `amount_too_large` for the
    amount itself, `total_too_large` for the asset's total); nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[AmountBoundError], tuple[str, str]]:
        return type(self), (self.code, str(self))  # it crosses Ray and direct channels


class CreditReferenceError(LedgerRequestError):
    """A credit reference was used before for another account, asset or amount."""


class DebitReferenceError(LedgerRequestError):
    """A debit reference was used before for another account, asset or amount."""


class InsufficientBalanceError(LedgerRequestError):
    """A debit asks for more than the account has available (holds excluded); nothing
    changed."""


@dataclass(slots=True)
class OrderReservation:
    """The funds a shard holds locked for one order, and what the order may still need.

    Attributes:
        market: Market symbol.
        order_id: The order's id.
        account_id: Owner of the funds.
        side: `buy` or `sell`.
        asset: Asset locked: the quote asset for buys, the base asset for sells.
        reserved_atoms: Atoms locked for the order's current terms.
        pending_atoms: Atoms locked ahead of an amend that raises the requirement; moved
            into `reserved_atoms` by the `amended` event, released by a `rejected` one.
        limit_price_ticks: Limit price (None for market and stop-market orders).
        open_qty_lots: Open quantity incl. iceberg reserve (None for a quote-budget buy).
        quote_budget_tick_lots: Unspent market-buy budget (None when there is none).
        fee_numerator: Sum over the order's fills of notional times fee bps (quote atoms
            times bps); the fees charged so far are `ceil(fee_numerator / 10^4)`.
        accepted: True once the engine accepted the order.
        request_key: Terms of the last reservation applied, for idempotent retries.
    """

    market: str
    order_id: str
    account_id: AccountId
    side: str
    asset: str
    reserved_atoms: int
    pending_atoms: int = 0
    limit_price_ticks: int | None = None
    open_qty_lots: int | None = None
    quote_budget_tick_lots: int | None = None
    fee_numerator: int = 0
    accepted: bool = False
    request_key: str = ""


Key = tuple[str, str]
"""A reservation's key: (market symbol, order id)."""


class Move(NamedTuple):
    """One balance change; `account_id` None is the shard's fee account of `asset`."""

    account_id: AccountId | None
    asset: str
    available_delta_atoms: int
    locked_delta_atoms: int


Moves = list[Move]


class Totals(NamedTuple):
    """Sums of one asset over the shard, in atoms."""

    available: int
    locked: int
    fees: int
    credited: int
    debited: int = 0


@dataclass(frozen=True, slots=True)
class Holdings:
    """Everything one shard holds, in atoms, read at one moment (the reserves' per-vault
    terms, `actors/custody/reconcile.py`).

    Attributes:
        accounts: Per (account, asset), available + locked (holds included: a hold only
            moves atoms from available to locked); balances of 0 are left out.
        totals: Per asset, the shard's sums (`LedgerState.totals`).
        marks: Per market symbol, the last journal seq applied.
    """

    accounts: dict[tuple[AccountId, str], int]
    totals: dict[str, Totals]
    marks: dict[str, int]


@dataclass(slots=True)
class Changes:
    """What changed since the last `take_changes`, as absolute values to persist."""

    balances: list[tuple[AccountId, str, int, int]] = field(default_factory=list)
    fees: list[tuple[str, int]] = field(default_factory=list)
    reservations: list[OrderReservation] = field(default_factory=list)
    dropped: list[Key] = field(default_factory=list)
    credits: list[tuple[str, AccountId, str, int]] = field(default_factory=list)
    debits: list[tuple[str, AccountId, str, int]] = field(default_factory=list)
    marks: list[tuple[str, int]] = field(default_factory=list)


def shard_of(account_id: int, shard_count: int) -> int:
    """Return the shard that owns an account."""
    return account_id % shard_count


def ceil_div(numerator: int, denominator: int) -> int:
    """Return `ceil(numerator / denominator)` for a positive denominator, exactly."""
    return -(-numerator // denominator)


def max_fee_bps(spec: MarketSpec) -> int:
    """Return the highest fee rate an order of the market may pay (>= 0), in bps."""
    return max(0, spec.taker_fee_bps, spec.maker_fee_bps)


def fees_charged_atoms(fee_numerator: int) -> int:
    """Return the fees charged so far for a fee numerator (negative = net rebate)."""
    return ceil_div(fee_numerator, BPS_DENOMINATOR)


def fill_fee_atoms(fee_numerator: int, notional_atoms: int, bps: int) -> tuple[int, int]:
    """Charge one fill on the order's cumulative notional.

    Args:
        fee_numerator: The order's fee numerator before the fill.
        notional_atoms: The fill's notional, quote atoms.
        bps: The fee rate of the order's role in this fill (negative = rebate).

    Returns:
        The fee of this fill in quote atoms (negative = rebate) and the new numerator.
    """
    after = fee_numerator + notional_atoms * bps
    return fees_charged_atoms(after) - fees_charged_atoms(fee_numerator), after


def required_reservation(  # noqa: PLR0917 (the market actor calls it positionally)
    spec: MarketSpec,
    side: str,
    kind: str,
    price_ticks: int | None,
    qty_lots: int | None,
    quote_budget_tick_lots: int | None = None,
) -> int:
    """Return the atoms a new order must lock before it is matched.

    A sell locks its quantity in base atoms. A buy with a limit price (limit, stop-limit)
    locks the notional at that price plus the fee on it at the higher of the taker and
    maker rates; a market or stop-market buy locks its quote budget plus the fee on it.

    Args:
        spec: The market.
        side: `buy` or `sell`.
        kind: The engine order kind (`limit`, `market`, `stop_limit`, `stop_market`).
        price_ticks: Limit price (limit and stop-limit).
        qty_lots: Quantity in lots (absent only for a quote-budget market buy).
        quote_budget_tick_lots: Budget (or protection budget) of a market buy.

    Raises:
        ValueError: The order's need cannot be bounded (a buy with neither a limit price
            nor a budget, or a sell without a quantity).
    """
    if Side(side) is Side.SELL:
        if qty_lots is None:
            raise ValueError("a sell needs qty_lots")
        return qty_lots * spec.lot_size
    if OrderKind(kind) in (OrderKind.LIMIT, OrderKind.STOP_LIMIT):
        if price_ticks is None or qty_lots is None:
            raise ValueError("a limit buy needs price_ticks and qty_lots")
        notional = int(notional_quote_atoms(spec, price_ticks, qty_lots))
    elif quote_budget_tick_lots is not None:
        notional = int(tick_lots_to_quote_atoms(spec, quote_budget_tick_lots))
    else:
        raise ValueError("a market buy needs quote_budget_tick_lots (a protection budget)")
    return notional + int(fee_quote_atoms(spec, notional, max_fee_bps(spec)))


def check_credit(amount_atoms: int, total_atoms: int) -> None:
    """Refuse a credit that would take the asset's supply past `MAX_ATOMS`.

    Args:
        amount_atoms: The credit (> 0).
        total_atoms: The asset's supply before it: credited minus debited (what the
            balances and fees hold together, by conservation).

    Raises:
        AmountBoundError: `amount_too_large` (the amount alone exceeds the bound) or
            `total_too_large` (the total would).
    """
    if amount_atoms > MAX_ATOMS:
        raise AmountBoundError(
            "amount_too_large", f"a credit is at most {MAX_ATOMS} atoms, got {amount_atoms}"
        )
    if total_atoms + amount_atoms > MAX_ATOMS:
        raise AmountBoundError(
            "total_too_large",
            f"the asset's total would pass {MAX_ATOMS} atoms ({total_atoms} held so far)",
        )


def exceeds_amount_bounds(  # noqa: PLR0917 (same order as `required_reservation`)
    spec: MarketSpec,
    side: str,
    kind: str,
    price_ticks: int | None,
    qty_lots: int | None,
    quote_budget_tick_lots: int | None = None,
) -> bool:
    """Return whether an order's terms could move more than `MAX_ATOMS` of an asset.

    Checked before an order or an amend is matched (and so before it is journaled): its
    base quantity in atoms, its full notional at its limit price (plus the fee on it for
    a buy: what a buy locks) and its quote budget (plus its fee) must each fit, and a
    budget in tick-lots must fit the signed 64-bit column that stores it. Every amount a
    fill then moves is at most one of these, and every balance at most the asset's total,
    which credits keep within `MAX_ATOMS`.
    """
    if quote_budget_tick_lots is not None:
        if quote_budget_tick_lots >= MAX_INT64_EXCLUSIVE:
            return True
        locked = required_reservation(spec, side, kind, None, None, quote_budget_tick_lots)
        if locked > MAX_ATOMS:
            return True
    if qty_lots is None:
        return False
    if qty_lots * spec.lot_size > MAX_ATOMS:
        return True
    if price_ticks is None:
        return False
    notional = int(notional_quote_atoms(spec, price_ticks, qty_lots))
    if Side(side) is Side.BUY:
        notional += int(fee_quote_atoms(spec, notional, max_fee_bps(spec)))
    return notional > MAX_ATOMS


def amend_reservation(
    spec: MarketSpec,
    side: str,
    kind: str,
    old: tuple[int | None, int],
    new: tuple[int | None, int],
    *,
    quote_budget_tick_lots: int | None = None,
) -> int:
    """Return the atoms to pre-reserve for an amend from `old` to `new` (0 if it lowers).

    `old` and `new` are `(limit price ticks, open qty lots)` of the order as the engine sees
    it. The difference of the two `required_reservation`s can fall one atom short of what
    the order's remainder needs after fee rounding on its cumulative notional, so a buy
    with fees adds one atom; the `amended` event releases any excess.
    """
    before = required_reservation(spec, side, kind, old[0], old[1], quote_budget_tick_lots)
    after = required_reservation(spec, side, kind, new[0], new[1], quote_budget_tick_lots)
    if after <= before:
        return 0
    slack = 1 if side == Side.BUY and max_fee_bps(spec) > 0 else 0
    return after - before + slack


def required_now(spec: MarketSpec, record: OrderReservation) -> int | None:
    """Return what the order's open remainder still needs locked, or None if unbounded.

    None means a buy with neither a limit price nor a budget: its reservation is kept
    whole until the order ends.
    """
    if record.side == Side.SELL:
        return (record.open_qty_lots or 0) * spec.lot_size
    if record.limit_price_ticks is not None and record.open_qty_lots is not None:
        notional = int(notional_quote_atoms(spec, record.limit_price_ticks, record.open_qty_lots))
    elif record.quote_budget_tick_lots is not None:
        notional = int(tick_lots_to_quote_atoms(spec, max(0, record.quote_budget_tick_lots)))
    else:
        return None
    worst = record.fee_numerator + notional * max_fee_bps(spec)
    return notional + fees_charged_atoms(worst) - fees_charged_atoms(record.fee_numerator)


def is_done(record: OrderReservation) -> bool:
    """Return True when the order has nothing left to trade (filled or budget spent)."""
    if record.open_qty_lots is not None and record.open_qty_lots <= 0:
        return True
    return record.open_qty_lots is None and (record.quote_budget_tick_lots or 0) <= 0
