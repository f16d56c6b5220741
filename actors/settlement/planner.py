"""Cut a market's trades into settlement batches under the chain's limits (pure).

A batch is one Solana transaction's worth of one market's trades, in seq order. Netted
(the default) it is one `settle` instruction moving each vault's net delta once;
unnetted (the seed's way) one instruction per trade. A batch closes when the next trade
does not fit (more than `MAX_SETTLE_ENTRIES` entries in an instruction, a net delta
outside i64, or a transaction over the byte limit, which the caller's `fits` measures),
when it holds `max_trades`, or when `interval_s` has passed since its first trade.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from actors.chain.program import I64_MAX, I64_MIN, MAX_SETTLE_ENTRIES
from actors.settlement.trades import (
    Instruction,
    SettleTrade,
    VaultKey,
    instruction_of,
    trade_deltas,
    vault_order,
)

Fits = Callable[[Sequence[Sequence[VaultKey]]], bool]
"""Whether a signed settle transaction whose instructions hold these vaults fits."""


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """A closed batch: its trades and the instructions that settle them.

    Attributes:
        trades: The trades, in seq order.
        instructions: Netted: one; unnetted: one per trade, in trade order.
        first_seq: The first trade's seq.
        last_seq: The last trade's seq.
        opened_at: The planner clock's time (s) when the first trade came in.
    """

    trades: tuple[SettleTrade, ...]
    instructions: tuple[Instruction, ...]
    first_seq: int
    last_seq: int
    opened_at: float


class Planner:
    """Group one market's trades, fed in seq order, into batches.

    Args:
        netting: Netted instructions (True) or one per trade (False).
        max_trades: A batch closes when it holds this many trades (seed mode: 10).
        interval_s: A batch closes this many seconds after its first trade came in.
        fits: Whether a transaction with instructions over these vault lists (each in
            `vault_order`) fits the byte limit. Netted, it is called only when a trade
            brings a vault the open batch has not seen (the size depends only on the set
            of vaults); unnetted, once per trade.
        clock: Monotonic time in seconds.
        max_instructions: Netted, how many instructions a batch may hold: when a trade
            would take an instruction past `MAX_SETTLE_ENTRIES` vaults, it starts the
            next one in the same transaction if the bytes allow (with a lookup table two
            fit: twice the vaults per transaction). Each has its own batch id.

    Raises:
        ValueError: `max_trades` or `max_instructions` below 1 or `interval_s` not
            positive.
    """

    def __init__(
        self,
        *,
        netting: bool,
        max_trades: int,
        interval_s: float,
        fits: Fits,
        clock: Callable[[], float] = time.monotonic,
        max_instructions: int = 1,
    ) -> None:
        if max_trades < 1 or max_instructions < 1 or not interval_s > 0:
            raise ValueError(f"bad limits: max_trades={max_trades}, interval_s={interval_s}, "
                             f"max_instructions={max_instructions}")  # fmt: skip
        self._max_instructions = max_instructions
        self._netting = netting
        self._max_trades = max_trades
        self._interval_s = interval_s
        self._fits = fits
        self._clock = clock
        self._last_seq: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._trades: list[SettleTrade] = []
        self._opened_at = 0.0
        # Netted: the running net per vault (zeros kept: its keys are the vaults seen) of
        # the open instruction, and the nets of the batch's instructions before it.
        self._net: dict[VaultKey, int] = {}
        self._nets: list[dict[VaultKey, int]] = []
        # Unnetted: each trade's instruction, and the vaults of each (what `fits` sizes).
        self._instructions: list[Instruction] = []
        self._vault_lists: list[tuple[VaultKey, ...]] = []

    @property
    def open_trades(self) -> int:
        """Return how many trades the open batch holds."""
        return len(self._trades)

    def add(self, trade: SettleTrade) -> list[BatchPlan]:
        """Add the next trade; return the batch that closed, if one did (0 or 1).

        An overdue open batch closes before the trade; a batch the trade does not fit
        closes and the trade starts the next; a batch reaching `max_trades` closes with
        the trade. Only one can happen: an open batch holds fewer than `max_trades`.

        Raises:
            ValueError: The trade's seq does not follow the last one's, or the trade does
                not fit a transaction alone.
        """
        if self._last_seq is not None and trade.seq <= self._last_seq:
            raise ValueError(f"trade seq {trade.seq} after {self._last_seq}: out of order")
        closed = [plan for plan in (self.due(),) if plan is not None]
        deltas = trade_deltas(trade)
        if self._trades and not self._take(deltas):
            closed.append(self._close())
        if not self._trades:
            self._opened_at = self._clock()
            if not self._take(deltas):
                raise ValueError(f"trade {trade.seq} does not fit a transaction alone")
        self._trades.append(trade)
        self._last_seq = trade.seq
        if len(self._trades) >= self._max_trades:
            closed.append(self._close())
        return closed

    def due(self) -> BatchPlan | None:
        """Close the open batch if `interval_s` has passed since its first trade."""
        if self._trades and self._clock() - self._opened_at >= self._interval_s:
            return self._close()
        return None

    def flush(self) -> BatchPlan | None:
        """Close the open batch now (None when it is empty)."""
        return self._close() if self._trades else None

    def _take(self, deltas: dict[VaultKey, int]) -> bool:
        """Add a trade's deltas to the open batch if they fit; report whether they did."""
        if self._netting:
            return self._take_netted(deltas)
        instruction = instruction_of(deltas)
        if not _in_i64(delta for _, delta in instruction):
            return False
        vaults = tuple(key for key, _ in instruction)
        if len(vaults) > MAX_SETTLE_ENTRIES or not self._fits([*self._vault_lists, vaults]):
            return False
        self._instructions.append(instruction)
        self._vault_lists.append(vaults)
        return True

    def _take_netted(self, deltas: dict[VaultKey, int]) -> bool:
        net = self._net
        summed = {key: net.get(key, 0) + delta for key, delta in deltas.items()}
        if not _in_i64(summed.values()):
            return self._next_instruction(deltas)
        if not summed.keys() <= net.keys():
            vaults = sorted(net.keys() | summed.keys(), key=vault_order)
            if len(vaults) > MAX_SETTLE_ENTRIES:
                return self._next_instruction(deltas)
            if not self._fits([*self._vault_sets(), vaults]):
                return False
        net.update(summed)
        return True

    def _vault_sets(self) -> list[list[VaultKey]]:
        """Return the vaults of the batch's closed instructions (netted)."""
        return [sorted(n, key=vault_order) for n in self._nets]

    def _next_instruction(self, deltas: dict[VaultKey, int]) -> bool:
        """Start the batch's next netted instruction with a trade, if one more fits."""
        if not self._net or len(self._nets) + 1 >= self._max_instructions:
            return False
        opened = sorted(deltas, key=vault_order)
        current = sorted(self._net, key=vault_order)
        if not self._fits([*self._vault_sets(), current, opened]):
            return False
        self._nets.append(self._net)
        self._net = dict(deltas)
        return True

    def _close(self) -> BatchPlan:
        trades = tuple(self._trades)
        if self._netting:
            nets = [*self._nets, self._net]
            instructions: tuple[Instruction, ...] = tuple(instruction_of(n) for n in nets)
        else:
            instructions = tuple(self._instructions)
        plan = BatchPlan(trades, instructions, trades[0].seq, trades[-1].seq, self._opened_at)
        self._reset()
        return plan


def _in_i64(deltas: Iterable[int]) -> bool:
    # `settle` takes i64 deltas: a net beyond them closes the batch rather than fail later.
    return all(I64_MIN <= delta <= I64_MAX for delta in deltas)
