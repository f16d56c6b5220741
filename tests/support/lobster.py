"""LOBSTER sample data: loading and translation into matching-engine commands.

The data (``../shared/data/lobster/``, see its README.md) is real NASDAQ order flow for
2012-06-21 as reconstructed by LOBSTER: a *message* file (one event per row) and an
*orderbook* file (the top ``LEVEL`` price levels per side after every message).

This module does two things and knows nothing about the engine:

* **Loading.** :func:`iter_rows` streams ``(Message, BookRow)`` pairs in lockstep, either from
  a plain folder or straight out of LOBSTER's original zip (``zipfile``, no extraction).
* **Translation with a plain-FIFO expectation model.** :class:`LobsterReplay` keeps its own
  deliberately simple price-time (FIFO) model of the book and turns every message into engine
  commands, each paired with the exact ``fill`` events plain FIFO predicts for it (see
  :class:`Expected`). The model is independent of the engine; the tests feed the commands to
  the engine and compare its events and book with these expectations and with LOBSTER's
  recorded book rows.

Translation (prices: LOBSTER price / 100 = ticks of $0.01; sizes: shares = lots):

* seed: orderbook row 0 is the book *after* message 0. Every occupied level becomes one
  synthetic GTC order (owner ``seed``). If message 0 is an add, that order is taken out of
  its level's seed and entered as itself, last in the queue (it was the latest arrival).
  Replay then starts at message 1.
* type 1 add -> ``new`` limit GTC (owner ``lobster``, id = LOBSTER order id).
* type 2 partial cancel -> ``amend`` to the lower quantity (keeps priority).
* type 3 delete -> ``cancel``.
* type 4 visible execution -> an IOC limit order on the opposite side at that price and size
  (owner ``taker``, id ``x<row>``); expected: exactly one fill, maker = the executed order
  (or, for an order the replay never saw, the synthetic orders FIFO reaches first).
* type 5 hidden execution -> nothing (the visible book does not change).
* type 7 -> ``halt`` (price -1) / ``resume`` (price 1); price 0 (quoting resumes) -> nothing.

Data quirks (README "Quirks to know before replaying") and how each is handled. Every case is
counted in :attr:`LobsterReplay.counts` under the name given here.

*Exposed orders.* A level-N file reports no event at prices beyond the N-th occupied level
at that moment. The model therefore marks every order whose price has been beyond the
recorded depth (the N-th price of a recorded row) as ``exposed``: it may since have been
cancelled, reduced or replaced (delete + add with a new id) without any message. Orders
that never left the recorded depth are *vouched for*: every event on them is in the file.
Synthetic orders (``seed``, ``filler``) stand for orders the replay never saw. Together,
synthetic and exposed orders are *uncertain*.

* Levels that come into view (``sync_filler``, ``sync_removed_orders``,
  ``sync_reduced_orders``): after each message, every price that was beyond the previous
  row's depth (``b[i-1]``) and is within the new row's recorded depth is re-synced with the
  recorded size: missing shares become one ``filler`` GTC order at the back of the queue
  (they were added while out of view, so after every order the model knows there); surplus
  shares are taken from exposed orders (one of exactly the surplus size if there is one, else
  from the back). Prices at or better than ``b[i-1]`` are never re-synced: the model must
  already agree with the recorded row there (``unexplained_level_mismatch`` must stay 0).
* ``unknown_exec`` / ``unknown_partial_cancel`` / ``unknown_delete``: an event on an id never
  added in the file (placed before 09:30 and inside a seed level, or added out of view and
  inside a filler). Distinct ids: :attr:`LobsterReplay.unknown_ids` (README: GOOG 3,210). An
  execution is still an IOC: FIFO must fill it from the uncertain order(s) at the head of the
  queue. A cancel/delete takes its shares from a synthetic order holding enough, else from an
  exposed order of that size (``unknown_on_exposed_order``: the unknown id replaced it out of
  view), else from the uncertain orders back to front (``unknown_spread_over_orders``). If
  known vouched orders are ahead of the uncertain ones, an unknown execution is translated as
  such a reduction instead of an IOC (``unknown_exec_behind_known``).
* ``dropped_exec`` / ``dropped_delete`` / ``dropped_partial_cancel``: an event on an order the
  file did add but that the model already used up as a stand-in above (a guess that took the
  wrong exposed order). Handled like an unknown id.
* ``delete_size_mismatch`` / ``exec_size_mismatch``: a delete or execution naming a size
  other than what the model holds for a known order (README: GOOG 53 such deletes for a
  replay without re-sync; with the re-sync most disappear). The order is deleted / executed
  for what the model holds; if it is exposed, its level may be re-synced after this message
  (``resync_after_size_mismatch``); if it is vouched for, that is an anomaly.
* ``out_of_sequence_add``: an add whose id is below an id already added (a re-entry that may
  keep older priority; README: GOOG 33, AMZN 25). It is queued last, like any add.
* ``non_fifo_exec`` (rows) and ``non_fifo_groups`` (aggressor groups: consecutive type-4 rows
  with one timestamp and direction): a known order executed while a vouched known order is
  ahead of it. These are NASDAQ's own exceptions to plain FIFO (README: GOOG 3 of 5,154
  groups, AMZN 9 of 4,947). ``fifo_groups`` counts groups in which every order ahead of and
  including the executed ones is vouched for (the README's "whole queue is known"; its
  exact definition differs a little, hence a slightly different denominator).
* ``exec_behind_uncertain``: a known order executed while uncertain orders are ahead of it
  (that volume was not really ahead, e.g. cancelled out of view).
* Both are translated as an ``amend``/``cancel`` of the executed order (no fill), so the
  model's book stays exact. :attr:`LobsterReplay.EXEMPT` lists every category whose
  executions are not sent as an IOC; every other execution (``exec_checked``) is.

Anything else that does not fit (``anomaly_*`` keys) is a replay or data error and the tests
require those counts to be zero.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sortedcontainers import SortedDict

BID = 1
ASK = -1
DUMMY_ASK = 9999999999
DUMMY_BID = -9999999999
PRICE_UNIT = 100  # LOBSTER prices are $ * 10,000; type 1-4 prices are on the $0.01 grid.

Command = dict[str, Any]
Fill = tuple[str, int, int]  # (maker engine id, price in ticks, qty)


# --------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True, slots=True)
class Message:
    """One row of a LOBSTER message file."""

    row: int
    time: str  # seconds after midnight, as written (keeps full precision)
    ts: int  # milliseconds after midnight (truncated)
    type: int
    order_id: int
    size: int
    price: int
    direction: int  # 1 = buy (bid side), -1 = sell (ask side)


BookRow = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Dataset:
    """Where one message/orderbook pair lives under the data directory."""

    name: str
    levels: int
    message: str
    orderbook: str
    zip: str | None = None  # path of the zip relative to the data dir; None = plain files

    def rows(self, data_dir: Path, limit: int | None = None) -> Iterator[tuple[Message, BookRow]]:
        return iter_rows(self, data_dir, limit)


_DAY = "2012-06-21_34200000_57600000"
GOOG_10 = Dataset(
    "GOOG level 10",
    10,
    f"GOOG_{_DAY}_message_10.csv",
    f"GOOG_{_DAY}_orderbook_10.csv",
    "zips/LOBSTER_SampleFile_GOOG_2012-06-21_10.zip",
)
AMZN_5 = Dataset(
    "AMZN level 5",
    5,
    f"AMZN_{_DAY}_message_5.csv",
    f"AMZN_{_DAY}_orderbook_5.csv",
    "zips/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip",
)
AAPL_672_50 = Dataset(
    "AAPL first 672 rows level 50",
    50,
    "aapl_first_672_rows_level50/AAPL_2012-06-21_message_50.csv",
    "aapl_first_672_rows_level50/AAPL_2012-06-21_orderbook_50.csv",
)
AAPL_999_10 = Dataset(
    "AAPL first 999 rows level 10",
    10,
    f"aapl_first_999_rows_level10/AAPL_{_DAY}_message_10.csv",
    f"aapl_first_999_rows_level10/AAPL_{_DAY}_orderbook_10.csv",
)


def seconds_to_ms(time: str) -> int:
    """``"34200.015105074"`` -> ``34200015`` (truncated, so it never runs ahead)."""
    whole, _, frac = time.partition(".")
    return int(whole) * 1000 + int((frac + "000")[:3])


def parse_message(row: int, line: str) -> Message:
    t, typ, oid, size, price, direction = line.strip().split(",")
    return Message(
        row, t, seconds_to_ms(t), int(typ), int(oid), int(size), int(price), int(direction)
    )


def parse_book(line: str) -> BookRow:
    return tuple(int(x) for x in line.strip().split(","))


def _lines(raw: IO[bytes]) -> Iterator[str]:
    for line in raw:
        text = line.decode("ascii")
        if text.strip():
            yield text


def iter_rows(
    dataset: Dataset, data_dir: Path, limit: int | None = None
) -> Iterator[tuple[Message, BookRow]]:
    """Stream ``(message, book row after it)`` pairs; rows are numbered from 0."""
    if dataset.zip is not None:
        with (
            zipfile.ZipFile(data_dir / dataset.zip) as zf,
            zf.open(dataset.message) as fm,
            zf.open(dataset.orderbook) as fb,
        ):
            yield from _pair(_lines(fm), _lines(fb), dataset.levels, limit)
    else:
        with (
            (data_dir / dataset.message).open("rb") as fm,
            (data_dir / dataset.orderbook).open("rb") as fb,
        ):
            yield from _pair(_lines(fm), _lines(fb), dataset.levels, limit)


def _pair(
    messages: Iterator[str], books: Iterator[str], levels: int, limit: int | None
) -> Iterator[tuple[Message, BookRow]]:
    for row, (mline, bline) in enumerate(zip(messages, books, strict=True)):
        if limit is not None and row >= limit:
            return
        book = parse_book(bline)
        if len(book) != 4 * levels:
            raise ValueError(f"orderbook row {row}: {len(book)} columns, expected {4 * levels}")
        yield parse_message(row, mline), book


def never_added_ids(dataset: Dataset, data_dir: Path, limit: int | None = None) -> set[int]:
    """Ids that rows 1.. cancel, reduce or execute but no row adds (README's "never added")."""
    added: set[int] = set()
    touched: set[int] = set()
    for msg, _ in dataset.rows(data_dir, limit):
        if msg.type == 1:
            added.add(msg.order_id)
        elif msg.type in (2, 3, 4) and msg.row > 0:
            touched.add(msg.order_id)
    return touched - added


def type_counts(dataset: Dataset, data_dir: Path, limit: int | None = None) -> Counter[int]:
    """Message types of rows 1.. (row 0 only seeds the book)."""
    return Counter(msg.type for msg, _ in dataset.rows(data_dir, limit) if msg.row > 0)


def book_levels(row: BookRow, side: int) -> list[tuple[int, int]]:
    """The occupied ``(price, size)`` levels of one side of a recorded row, best first."""
    off = 2 if side == BID else 0
    out = []
    for k in range(0, len(row), 4):
        price, size = row[k + off], row[k + off + 1]
        if price in (DUMMY_ASK, DUMMY_BID):
            break
        out.append((price, size))
    return out


def to_ticks(price: int) -> int:
    if price % PRICE_UNIT:
        raise ValueError(f"price {price} is not on the $0.01 grid")
    return price // PRICE_UNIT


# --------------------------------------------------------------------------------------
# Plain-FIFO expectation model and translation


@dataclass(slots=True)
class Entry:
    """One resting order in the model. ``lid`` is None for synthetic (seed/filler) orders."""

    eid: str
    owner: str
    lid: int | None
    side: int
    price: int
    qty: int
    # True once the order's price has been beyond the recorded depth: it may since have been
    # cancelled, reduced or replaced without any message.
    exposed: bool = False

    @property
    def synthetic(self) -> bool:
        return self.lid is None


@dataclass(frozen=True, slots=True)
class Expected:
    """A command for the engine and the exact fills plain FIFO predicts for it."""

    command: Command
    fills: tuple[Fill, ...] = ()
    cancelled_qty: int | None = None  # for a cancel: the open quantity it must remove


@dataclass(slots=True)
class Step:
    message: Message
    book: BookRow
    commands: list[Expected] = field(default_factory=list)


def _better_or_equal(side: int, price: int, bound: int | None) -> bool:
    """Is ``price`` at or better than ``bound`` on ``side``? ``None`` = no bound (all in view)."""
    if bound is None:
        return True
    return price >= bound if side == BID else price <= bound


class LobsterReplay:
    """Translate LOBSTER rows into engine commands with FIFO expectations.

    Usage: ``r = LobsterReplay(levels, symbol)``; ``r.seed(msg0, row0)`` returns the seeding
    commands; then ``r.step(msg, row)`` for every later row returns a :class:`Step`.
    """

    # Execution categories translated without an IOC (no fill to check).
    EXEMPT = ("non_fifo_exec", "exec_behind_uncertain", "unknown_exec_behind_known")

    def __init__(self, levels: int) -> None:
        self.levels = levels
        # side -> price -> queue (FIFO, oldest first)
        self.sides: dict[int, SortedDict] = {BID: SortedDict(), ASK: SortedDict()}
        self.by_lid: dict[int, Entry] = {}
        self.counts: Counter[str] = Counter()
        self.unknown_ids: set[int] = set()
        self.max_added_id = 0
        self._bound: dict[int, int | None] = {BID: None, ASK: None}
        self._ts = 0
        self._unsettled: set[tuple[int, int]] = set()
        self.added_ids: set[int] = set()
        self._group_key: tuple[str, int] | None = None
        self._group_clean = True
        self._group_fully_known = True

    # ---- model primitives -------------------------------------------------------------

    def _queue(self, side: int, price: int) -> list[Entry]:
        q: list[Entry] | None = self.sides[side].get(price)
        if q is None:
            q = []
            self.sides[side][price] = q
        return q

    def _remove(self, e: Entry) -> None:
        q: list[Entry] = self.sides[e.side][e.price]
        q.remove(e)
        if not q:
            del self.sides[e.side][e.price]
        if e.lid is not None:
            del self.by_lid[e.lid]

    def _add(self, e: Entry) -> Expected:
        self._queue(e.side, e.price).append(e)
        if e.lid is not None:
            self.by_lid[e.lid] = e
            self.added_ids.add(e.lid)
        return Expected(
            {
                "type": "new",
                "id": e.eid,
                "owner": e.owner,
                "side": "buy" if e.side == BID else "sell",
                "kind": "limit",
                "qty": e.qty,
                "price": to_ticks(e.price),
                "tif": "gtc",
                "ts": self._ts,
            }
        )

    def _reduce(self, e: Entry, by: int) -> Expected:
        """Lower ``e`` by ``by`` shares: amend (keeps priority) or cancel when nothing is left."""
        if by >= e.qty:
            self._remove(e)
            return Expected(
                {"type": "cancel", "id": e.eid, "owner": e.owner, "ts": self._ts},
                cancelled_qty=e.qty,
            )
        e.qty -= by
        return Expected(
            {"type": "amend", "id": e.eid, "owner": e.owner, "qty": e.qty, "ts": self._ts}
        )

    def best(self, side: int) -> int | None:
        prices = self.sides[side]
        if not prices:
            return None
        return int(prices.peekitem(-1 if side == BID else 0)[0])

    def level_total(self, side: int, price: int) -> int:
        return sum(e.qty for e in self.sides[side].get(price, ()))

    def model_book(self) -> dict[str, list[tuple[int, list[tuple[str, int]]]]]:
        """The model's whole book in engine units: side -> [(tick price, [(id, qty)...])]."""
        out: dict[str, list[tuple[int, list[tuple[str, int]]]]] = {}
        for name, side in (("bids", BID), ("asks", ASK)):
            prices = list(self.sides[side].keys())
            if side == BID:
                prices.reverse()
            out[name] = [
                (to_ticks(p), [(e.eid, e.qty) for e in self.sides[side][p]]) for p in prices
            ]
        return out

    # ---- seeding ----------------------------------------------------------------------

    def seed(self, msg: Message, row: BookRow) -> list[Expected]:
        """Seed from orderbook row 0 (the book after message 0)."""
        self._ts = msg.ts
        held_back: Entry | None = None
        if msg.type == 1:
            held_back = Entry(
                str(msg.order_id), "lobster", msg.order_id, msg.direction, msg.price, msg.size
            )
            self.max_added_id = msg.order_id
        out: list[Expected] = []
        for side in (BID, ASK):
            tag = "B" if side == BID else "A"
            for price, recorded in book_levels(row, side):
                size = recorded
                if held_back is not None and (side, price) == (held_back.side, held_back.price):
                    size -= held_back.qty
                if size > 0:
                    out.append(
                        self._add(Entry(f"seed:{tag}:{price}", "seed", None, side, price, size))
                    )
                    self.counts["seed_orders"] += 1
        if held_back is not None:
            out.append(self._add(held_back))
        else:
            self.counts[f"seed_message_type_{msg.type}"] += 1
        self._bound = {side: self._row_bound(row, side) for side in (BID, ASK)}
        return out

    def _row_bound(self, row: BookRow, side: int) -> int | None:
        """The worst recorded price of a side (``None``: fewer than LEVEL levels, all in view)."""
        levels = book_levels(row, side)
        return levels[-1][0] if len(levels) == self.levels else None

    # ---- messages ---------------------------------------------------------------------

    def step(self, msg: Message, row: BookRow) -> Step:
        self._ts = msg.ts
        st = Step(msg, row)
        if msg.type != 4:
            self._close_group()
        if msg.type == 1:
            self._on_add(msg, st)
        elif msg.type == 2:
            self._on_cancel(msg, st, partial=True)
        elif msg.type == 3:
            self._on_cancel(msg, st, partial=False)
        elif msg.type == 4:
            self._on_exec(msg, st)
        elif msg.type == 5:
            self.counts["hidden_exec"] += 1
        elif msg.type == 7:
            if msg.price == -1:
                st.commands.append(Expected({"type": "halt", "ts": msg.ts}))
            elif msg.price == 1:
                st.commands.append(Expected({"type": "resume", "ts": msg.ts}))
            self.counts["halt_message"] += 1
        else:
            self.counts[f"anomaly_message_type_{msg.type}"] += 1
        self._sync(row, st)
        return st

    def finish(self) -> None:
        self._close_group()

    def _on_add(self, msg: Message, st: Step) -> None:
        if msg.order_id in self.by_lid:
            self.counts["anomaly_duplicate_add"] += 1
            return
        if msg.order_id < self.max_added_id:
            self.counts["out_of_sequence_add"] += 1
        self.max_added_id = max(self.max_added_id, msg.order_id)
        opposite = self.best(-msg.direction)
        if opposite is not None and (
            msg.price >= opposite if msg.direction == BID else msg.price <= opposite
        ):
            self.counts["anomaly_crossing_add"] += 1
        e = Entry(str(msg.order_id), "lobster", msg.order_id, msg.direction, msg.price, msg.size)
        st.commands.append(self._add(e))

    def _unknown(self, msg: Message, kind: str) -> None:
        if msg.order_id in self.added_ids:
            # Added in view, but already removed as a stand-in for another order (a re-sync
            # or an unknown id's event took the wrong one).
            self.counts[f"dropped_{kind}"] += 1
        else:
            self.unknown_ids.add(msg.order_id)
            self.counts[f"unknown_{kind}"] += 1

    def _take_uncertain(
        self, side: int, price: int, size: int, delete: bool
    ) -> list[Expected] | None:
        """Take ``size`` shares of an unknown id's order out of the uncertain orders at ``price``.

        Uncertain orders are the synthetic ones (seed/filler: they stand for orders the replay
        never saw) and the exposed known ones (they may have been replaced, out of view, by the
        unknown id). Preference: one synthetic order holding at least ``size``; an exposed
        order of exactly ``size`` (``delete``) or at least ``size``; otherwise the uncertain
        orders from the back of the queue. ``None`` (nothing changed) if they hold too little.
        """
        queue = self.sides[side].get(price, [])
        uncertain = [e for e in queue if e.synthetic or e.exposed]
        if sum(e.qty for e in uncertain) < size:
            return None
        pick = next((e for e in uncertain if e.synthetic and e.qty >= size), None)
        if pick is None:
            pick = next(
                (
                    e
                    for e in uncertain
                    if e.exposed and (e.qty == size or (not delete and e.qty >= size))
                ),
                None,
            )
        if pick is not None:
            if not pick.synthetic:
                self.counts["unknown_on_exposed_order"] += 1
            return [self._reduce(pick, size)]
        self.counts["unknown_spread_over_orders"] += 1
        out = []
        for e in reversed(uncertain):
            if size <= 0:
                break
            take = min(size, e.qty)
            out.append(self._reduce(e, take))
            size -= take
        return out

    def _on_cancel(self, msg: Message, st: Step, partial: bool) -> None:
        e = self.by_lid.get(msg.order_id)
        kind = "partial_cancel" if partial else "delete"
        if e is None:
            self._unknown(msg, kind)
            cmds = self._take_uncertain(msg.direction, msg.price, msg.size, delete=not partial)
            if cmds is None:
                self.counts[f"anomaly_unknown_{kind}_uncovered"] += 1
                return
            st.commands.extend(cmds)
            return
        if (e.side, e.price) != (msg.direction, msg.price):
            self.counts[f"anomaly_{kind}_wrong_price"] += 1
        if partial:
            if msg.size >= e.qty:
                self.counts["anomaly_partial_cancel_too_big"] += 1
            st.commands.append(self._reduce(e, msg.size))
            return
        if msg.size != e.qty:
            self.counts["delete_size_mismatch"] += 1
            self._size_mismatch(e)
        self._remove(e)
        st.commands.append(
            Expected(
                {"type": "cancel", "id": e.eid, "owner": e.owner, "ts": msg.ts},
                cancelled_qty=e.qty,
            )
        )

    def _close_group(self) -> None:
        if self._group_key is None:
            return
        if self._group_fully_known:
            self.counts["fifo_groups"] += 1
            if not self._group_clean:
                self.counts["non_fifo_groups"] += 1
        self._group_key = None

    def _on_exec(self, msg: Message, st: Step) -> None:
        key = (msg.time, msg.direction)
        if key != self._group_key:
            self._close_group()
            self._group_key = key
            self._group_clean = True
            self._group_fully_known = True
        side = msg.direction
        best = self.best(side)
        if best != msg.price:
            self.counts["anomaly_exec_not_at_best"] += 1
        queue = self.sides[side].get(msg.price, [])
        e = self.by_lid.get(msg.order_id)
        if e is None:
            self._unknown(msg, "exec")
            self._group_fully_known = False
            # FIFO: the IOC takes the head of the queue; fine as long as the head orders it
            # reaches are uncertain ones that can stand for the unknown order.
            makers = []
            left = msg.size
            for m in queue:
                if left <= 0 or not (m.synthetic or m.exposed):
                    break
                makers.append((m, min(left, m.qty)))
                left -= min(left, m.qty)
            if left <= 0:
                self.counts["unknown_exec_on_exposed_order"] += sum(
                    1 for m, _ in makers if not m.synthetic
                )
                self._ioc(msg, makers, st)
                return
            cmds = self._take_uncertain(side, msg.price, msg.size, delete=False)
            if cmds is None:
                self.counts["anomaly_unknown_exec_uncovered"] += 1
                return
            self.counts["unknown_exec_behind_known"] += 1
            st.commands.extend(cmds)
            return
        if (e.side, e.price) != (side, msg.price):
            self.counts["anomaly_exec_wrong_price"] += 1
            return
        if msg.size > e.qty:
            self.counts["exec_size_mismatch"] += 1
            self._size_mismatch(e)
        if e.exposed:
            self._group_fully_known = False
        ahead = queue[: queue.index(e)]
        if not ahead:
            self._ioc(msg, [(e, min(msg.size, e.qty))], st)
            return
        if any(a.synthetic or a.exposed for a in ahead):
            self._group_fully_known = False
            self.counts["exec_behind_uncertain"] += 1
        else:
            self._group_clean = False
            self.counts["non_fifo_exec"] += 1
        st.commands.append(self._reduce(e, msg.size))

    def _ioc(self, msg: Message, makers: list[tuple[Entry, int]], st: Step) -> None:
        """An opposite-side IOC at the execution's price that FIFO fills from ``makers``."""
        price = to_ticks(msg.price)
        cmd: Command = {
            "type": "new",
            "id": f"x{msg.row}",
            "owner": "taker",
            "side": "sell" if msg.direction == BID else "buy",
            "kind": "limit",
            "qty": sum(q for _, q in makers),
            "price": price,
            "tif": "ioc",
            "ts": msg.ts,
        }
        self.counts["exec_checked"] += 1
        fills = tuple((m.eid, price, q) for m, q in makers)
        for m, q in makers:
            self._reduce(m, q)
        st.commands.append(Expected(cmd, fills))

    # ---- re-sync of levels that come into view ------------------------------------------

    def _sync(self, row: BookRow, st: Step) -> None:
        for side in (BID, ASK):
            prev = self._bound[side]
            recorded = book_levels(row, side)
            bound = recorded[-1][0] if len(recorded) == self.levels else None
            truth = dict(recorded)
            prices = self.sides[side]
            if bound is None:
                model_prices = list(prices.keys())
            elif side == BID:
                model_prices = list(prices.irange(minimum=bound))
            else:
                model_prices = list(prices.irange(maximum=bound))
            for price in sorted(set(model_prices) | truth.keys()):
                have = self.level_total(side, price)
                want = truth.get(price, 0)
                if have == want:
                    continue
                if (side, price) in self._unsettled:
                    self.counts["resync_after_size_mismatch"] += 1
                elif _better_or_equal(side, price, prev):
                    self.counts["unexplained_level_mismatch"] += 1
                self._resync_level(side, price, have, want, st)
            self._expose(side, prev, bound)
            self._bound[side] = bound
        self._unsettled.clear()

    def _size_mismatch(self, e: Entry) -> None:
        """A delete/execution names a size the model does not hold for ``e``.

        For an exposed order this is the README's "reduced or replaced silently" case (or an
        earlier re-sync took shares from the wrong order): its level may be re-synced after this
        message. For an order never out of view it is an anomaly.
        """
        if e.exposed:
            self._unsettled.add((e.side, e.price))
        else:
            self.counts["anomaly_size_mismatch_unexposed"] += 1

    def _expose(self, side: int, prev: int | None, bound: int | None) -> None:
        """Mark the orders at prices that just went beyond the recorded depth."""
        if bound is None:
            return
        prices = self.sides[side]
        if side == BID:
            gone = prices.irange(maximum=bound, inclusive=(True, False))
            if prev is not None:
                gone = prices.irange(minimum=prev, maximum=bound, inclusive=(True, False))
        else:
            gone = prices.irange(minimum=bound, inclusive=(False, True))
            if prev is not None:
                gone = prices.irange(minimum=bound, maximum=prev, inclusive=(False, True))
        for price in list(gone):
            for e in prices[price]:
                e.exposed = True

    def _resync_level(self, side: int, price: int, have: int, want: int, st: Step) -> None:
        if want > have:
            tag = "B" if side == BID else "A"
            e = Entry(
                f"fill:{st.message.row}:{tag}:{price}", "filler", None, side, price, want - have
            )
            st.commands.append(self._add(e))
            self.counts["sync_filler"] += 1
            return
        excess = have - want
        queue = self.sides[side][price]
        exact = [e for e in queue if e.exposed and e.qty == excess]
        candidates = exact[:1] or [e for e in reversed(queue) if e.exposed] or list(reversed(queue))
        for e in candidates:
            if excess <= 0:
                break
            take = min(excess, e.qty)
            if take == e.qty:
                self.counts["sync_removed_orders"] += 1
            else:
                self.counts["sync_reduced_orders"] += 1
            st.commands.append(self._reduce(e, take))
            excess -= take
