"""A request's way into a pass: the work item, the engine command, and the segment rule.

`engine_command` turns a trader's `OrderCommand` into the engine command with the owner
and the pass's time. What it builds must replay to the same command from the journal's
stored form (the replay codec), or recovery would regenerate other events: a cancel, an
amend or a cancel-all that the codec would not decode becomes `Malformed` here too, and a
new order the engine finds malformed is refused before it is journaled (`core.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.accounts import AccountId, owner_of
from actors.contracts import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    OrderCommand,
    OrderResult,
    PlaceOrder,
    Reservation,
)
from actors.engine import (
    Amend,
    Cancel,
    CancelAll,
    Command,
    Event,
    Halt,
    Malformed,
    Millis,
    NewOrder,
    OrderId,
    Owner,
    Resume,
    Tick,
)
from actors.market import reservations as resv
from actors.market.ports import Hold

# Operator commands, journaled like any other (`MarketCore.admin`).
ADMIN_COMMANDS: dict[str, type[Halt] | type[Resume] | type[Tick]] = {
    "halt": Halt,
    "resume": Resume,
    "tick": Tick,
}


@dataclass(slots=True)
class Item:
    """One command going through the pipeline.

    Attributes:
        request_id: The request's idempotency key.
        account_id: The acting account (None for an operator's command).
        client_order_id: The trader's id of a new order.
        request: The trader's command, or the name of an operator's (`ADMIN_COMMANDS`).
        digest: The new order's terms (`OrderRequest.digest`).
        command: The engine command, once the pass's time is known.
        result: The answer, once known (an early reject, or after the journal commit).
        events: The engine's events for the command.
        reservation: The reservation held for the command.
        hold: (ledger shard, shard epoch) holding it.
        owners: Owners of the orders the command names, read before it ran (routing).
    """

    request_id: str
    account_id: AccountId | None
    client_order_id: str | None
    request: OrderCommand | str
    digest: str | None = None
    command: Command = field(default_factory=Malformed)
    result: OrderResult | None = None
    events: list[Event] = field(default_factory=list)
    reservation: Reservation | None = None
    hold: Hold | None = None
    owners: dict[str, AccountId] = field(default_factory=dict)


def engine_command(item: Item, ts: Millis) -> Command:
    """Return the engine command of an item at the pass's time `ts`."""
    request = item.request
    if isinstance(request, str):
        admin = ADMIN_COMMANDS.get(request)
        return Malformed() if admin is None else admin(ts)
    if item.account_id is None:
        return Malformed()
    owner = owner_of(item.account_id)
    kind = type(request)
    if kind is PlaceOrder:
        return _new_order(request, owner, ts)  # type: ignore[arg-type]
    if kind is CancelOrder:
        oid = request.id  # type: ignore[union-attr]
        return Cancel(oid, owner, ts) if _name(oid) else Malformed(_id(oid))
    if kind is AmendOrder:
        return _amend(request, owner, ts)  # type: ignore[arg-type]
    if kind is CancelAllOrders:
        return CancelAll(owner, ts)
    return Malformed(_id(getattr(request, "id", None)))


def _new_order(p: PlaceOrder, owner: Owner, ts: Millis) -> NewOrder:
    # Checked by the engine's own validation before matching (`new_order_malformed`): a
    # malformed new order is refused early and never journaled.
    return NewOrder(
        p.id, owner, p.side, p.kind, ts, p.qty, p.price, p.stop_price, p.tif, p.expire_at,
        p.post_only, p.display_qty, p.quote_qty, p.stp,
    )  # fmt: skip


def _amend(a: AmendOrder, owner: Owner, ts: Millis) -> Command:
    if not _name(a.id) or not (_opt_int(a.qty) and _opt_int(a.price)):
        return Malformed(_id(a.id))
    return Amend(a.id, owner, ts, a.qty, a.price)


def _name(value: object) -> bool:
    return type(value) is str and bool(value)


def _opt_int(value: object) -> bool:
    return value is None or type(value) is int


def _id(value: object) -> OrderId | None:
    return OrderId(value) if isinstance(value, str) else None


def command_id(command: Command) -> str | None:
    """Return the order id a command names, if it names one."""
    oid = getattr(command, "id", None)
    return oid if isinstance(oid, str) else None


_BOOK = "\x00book"


def segment_keys(command: Command) -> tuple[list[str], list[str]]:
    """Return what a command changes (its order id, or `owner:X` for a cancel-all, and the
    book) and what its early checks and reservation read from the engine: a pass is cut
    before a command that reads what an earlier command of the segment changed."""
    if isinstance(command, NewOrder):
        return [command.id, _BOOK], ([_BOOK] if resv.needs_book(command) else [command.id])
    if isinstance(command, CancelAll):
        return [f"owner:{command.owner}", _BOOK], []
    if isinstance(command, Amend):
        return [command.id, _BOOK], [command.id, f"owner:{command.owner}"]
    oid = command_id(command)
    return ([_BOOK] if oid is None else [oid, _BOOK]), []


def refuse(item: Item, code: str) -> None:
    """Answer an item with an early reject: it changes nothing and is not journaled."""
    item.result = OrderResult(
        item.request_id, ok=False, code=code, order_id=command_id(item.command)
    )


_KINDS: dict[type, str] = {
    PlaceOrder: "new",
    AmendOrder: "amend",
    CancelOrder: "cancel",
    CancelAllOrders: "cancel_all",
}


def journal_kind(item: Item) -> str:
    """Return a journal row's `kind`: the request's command type in the replay format."""
    request = item.request
    if isinstance(request, str):
        return request
    return _KINDS.get(type(request), "malformed")
