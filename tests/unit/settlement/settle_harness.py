"""Shared pieces of the settlement unit tests: trade strategies, a byte model, a clock."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from actors.accounts import AccountId
from actors.settlement.trades import SettleTrade, VaultKey

MAX_TX_BYTES = 1232
# A settle transaction's fixed accounts: the operator (payer and signer), the exchange, the
# market, the vault authority, the token program, the exchange program and the compute
# budget program.
FIXED_ACCOUNTS = 7


def _compact_u16(n: int) -> int:
    return 1 if n < 0x80 else 2 if n < 0x4000 else 3


def v0_tx_bytes(vault_sets: Sequence[Sequence[VaultKey]]) -> int:
    """Return the size of a signed v0 settle transaction without lookup tables.

    A stand-in for part B's measure of the real transaction: one signature; the message's
    version byte, header, account keys (the fixed ones and each vault once), blockhash,
    the two ComputeBudget instructions (5 and 9 bytes of data) and one `settle` per vault
    list (5 fixed accounts and the vaults; data: discriminator, market id, batch id, the
    vector's length and an i64 per vault); no lookup tables.
    """
    keys = FIXED_ACCOUNTS + len({vault for vaults in vault_sets for vault in vaults})
    ixs = [(0, 5), (0, 9)] + [(5 + len(v), 8 + 8 + 8 + 4 + 8 * len(v)) for v in vault_sets]
    body = sum(1 + _compact_u16(a) + a + _compact_u16(d) + d for a, d in ixs)
    message = 1 + 3 + _compact_u16(keys) + 32 * keys + 32 + _compact_u16(len(ixs)) + body + 1
    return _compact_u16(1) + 64 + message


def v0_fits(vault_sets: Sequence[Sequence[VaultKey]]) -> bool:
    """Return whether the modelled transaction fits Solana's 1,232 bytes."""
    return v0_tx_bytes(vault_sets) <= MAX_TX_BYTES


class FakeClock:
    """A monotonic clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


_AMOUNT = st.integers(1, 10**9)
# Now and then amounts whose sums leave i64 within a few trades (the planner closes then).
_AMOUNT_OR_HUGE = st.one_of(_AMOUNT, _AMOUNT, st.integers(2**60, 2**62))
_FEE = st.integers(-(10**6), 10**6)  # negative: a rebate


@st.composite
def trade_lists(
    draw: st.DrawFn, max_accounts: int = 40, max_size: int = 80, huge: bool = True
) -> list[SettleTrade]:
    """Draw trades in increasing seq order (with gaps), self-trades and rebates included."""
    amount = _AMOUNT_OR_HUGE if huge else _AMOUNT
    accounts = st.integers(1, draw(st.integers(1, max_accounts)))
    seq, trades = draw(st.integers(0, 5)), []
    for _ in range(draw(st.integers(0, max_size))):
        seq += draw(st.integers(1, 3))
        maker = AccountId(draw(accounts))
        taker = AccountId(maker if draw(st.integers(0, 9)) == 0 else draw(accounts))
        trades.append(
            SettleTrade(
                seq=seq, maker=maker, taker=taker,
                taker_side=draw(st.sampled_from(["buy", "sell"])),
                base_atoms=draw(amount), quote_atoms=draw(amount),
                maker_fee_atoms=draw(_FEE), taker_fee_atoms=draw(st.integers(0, 10**6)),
                executed_at_ms=1_700_000_000_000 + seq,
            )
        )  # fmt: skip
    return trades


def trade(
    seq: int,
    maker: int,
    taker: int,
    side: str = "buy",
    *,
    base: int = 100,
    quote: int = 5_000,
    maker_fee: int = 0,
    taker_fee: int = 0,
) -> SettleTrade:
    """Build one trade for an example test."""
    assert side in ("buy", "sell")
    return SettleTrade(
        seq, AccountId(maker), AccountId(taker), "buy" if side == "buy" else "sell",
        base, quote, maker_fee, taker_fee, 1_700_000_000_000 + seq,
    )  # fmt: skip
