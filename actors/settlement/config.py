"""The settlement batcher's configuration and counts (`batcher.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BatcherConfig:
    """How the batcher batches and sends.

    Attributes:
        netting: One netted `settle` per batch (False: one per trade, as seed 000).
        max_trades: Most trades in a batch.
        interval_s: A batch closes this long after its first trade at the latest.
        max_in_flight: Most submitted settlements per market.
        intake_limit: Most trades read per market per pass.
        base_fee: The first attempt's priority fee, micro-lamports per compute unit.
        resend_s: The least pause between two sends of the same bytes.
        cut_after_s: A batch whose vaults cannot pay for this long is cut in two.
        max_instructions: Netted, the most `settle` instructions in one transaction (each
            of at most 32 vaults; the bytes decide: with a lookup table, two fit).
    """

    netting: bool = True
    max_trades: int = 10_000
    interval_s: float = 1.0
    max_in_flight: int = 32
    intake_limit: int = 5_000
    base_fee: int = 1_000
    resend_s: float = 1.0
    cut_after_s: float = 3.0
    max_instructions: int = 2


@dataclass(slots=True)
class BatcherStats:
    """Counts since the batcher started (its `health`)."""

    trades: int = 0
    created: int = 0
    sent: int = 0
    resent: int = 0
    rebuilt: int = 0
    failures: int = 0  # failed submissions (each retried until the last)
    confirmed: int = 0
    finalized: int = 0
    failed: int = 0  # settlements given up: an alert each
    blocked: int = 0  # simulations that waited for another market's batch
    cuts: int = 0  # batches cut in two after waiting too long or being too large
    oversized: int = 0  # transactions over MAX_TX_BYTES, never recorded nor sent
    last_error: str | None = None
    failed_ids: list[int] = field(default_factory=list)
