"""Cutting a settlement that cannot pay in two (its SQL, over `records.py`'s rows).

Markets settle independently, so a vault that one market's batch debits may be paid by a
batch of another market that has not landed. Usually that batch lands soon and the
waiting one goes (the batcher retries its simulation, uncounted). But two batches can
wait on each other: X's quote, paid to X in market A's batch, pays X's buy in market B's
batch, while Y's quote goes the other way. Netting hides the order in which the trades
happened; cutting restores it: a batch that has waited too long keeps its first half of
trades, and the second half becomes a new settlement. Down to single trades, the earliest
unsettled trade of all always has every earlier trade settled, so it can pay, and the
cycle is broken.

Only a settlement that never sent anything is cut (`pending`, no attempt): its batch ids
were never used on chain, and its trades and deltas are still only a plan.
"""

from __future__ import annotations

import asyncpg

from actors.chain.program import I64_MAX, I64_MIN, MAX_SETTLE_ENTRIES
from actors.settlement.records import encode_instructions, settle_trade
from actors.settlement.trades import (
    Instruction,
    SettleTrade,
    VaultKey,
    instruction_of,
    trade_deltas,
)


def instructions_of(trades: list[SettleTrade], netted: bool) -> tuple[Instruction, ...]:
    """Return the instructions that settle `trades`: netted, as few as hold at most
    `MAX_SETTLE_ENTRIES` vaults each, taking the trades in order (part of a batch that
    fitted a transaction, so no more instructions or vaults than it had); else one per
    trade."""
    if not netted:
        return tuple(instruction_of(trade_deltas(t)) for t in trades)
    nets: list[dict[VaultKey, int]] = [{}]
    for trade in trades:
        net = nets[-1]
        widened = {key: net.get(key, 0) + d for key, d in trade_deltas(trade).items()}
        in_range = all(I64_MIN <= d <= I64_MAX for d in widened.values())
        if net and (len(net.keys() | widened.keys()) > MAX_SETTLE_ENTRIES or not in_range):
            nets.append({})
            widened = trade_deltas(trade)
        nets[-1].update(widened)
    return tuple(instruction_of(net) for net in nets)


async def cut(conn: asyncpg.Connection, settlement_id: int) -> int | None:
    """Cut a pending settlement with no attempt and more than one trade in two; return the
    new settlement's id (its second half), or None when it cannot be cut."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT market_id, netted FROM settlements WHERE settlement_id = $1 "
            "AND status = 'pending' AND attempts = 0 AND trade_count > 1 FOR UPDATE",
            settlement_id,
        )  # fmt: skip
        if row is None:
            return None
        market_id, netted = int(row["market_id"]), bool(row["netted"])
        rows = await conn.fetch(
            """SELECT t.seq, t.maker_account_id, t.taker_account_id, t.taker_side,
                      (t.qty_lots * m.lot_size_atoms)::text AS base,
                      t.quote_qty_atoms::text AS q, t.maker_fee_atoms::text AS mf,
                      t.taker_fee_atoms::text AS tf, t.executed_at
                 FROM trades t JOIN markets m USING (market_id)
                WHERE t.settlement_id = $1 ORDER BY t.seq""",
            settlement_id,
        )  # fmt: skip
        trades = [settle_trade(r) for r in rows]
        keep, rest = trades[: len(trades) // 2], trades[len(trades) // 2 :]
        kept = instructions_of(keep, netted)
        await conn.execute(
            "UPDATE settlements SET trade_count = $2, last_seq = $3, batch_count = $4, "
            "instructions = $5::jsonb, updated_at = now() WHERE settlement_id = $1",
            settlement_id, len(keep), keep[-1].seq, len(kept), encode_instructions(kept),
        )  # fmt: skip
        moved = instructions_of(rest, netted)
        first_id = await conn.fetchval(
            "UPDATE settlement_markets SET next_batch_id = next_batch_id + $2 "
            "WHERE market_id = $1 RETURNING next_batch_id - $2",
            market_id, len(moved),
        )  # fmt: skip
        new_id = await conn.fetchval(
            """INSERT INTO settlements (market_id, trade_count, chain_market_id, batch_id,
                   batch_count, netted, first_seq, last_seq, instructions)
               SELECT market_id, $2, chain_market_id, $3, $4, netted, $5, $6, $7::jsonb
                 FROM settlements WHERE settlement_id = $1 RETURNING settlement_id""",
            settlement_id, len(rest), first_id, len(moved), rest[0].seq, rest[-1].seq,
            encode_instructions(moved),
        )  # fmt: skip
        await conn.execute(
            "UPDATE trades SET settlement_id = $2 WHERE settlement_id = $1 AND seq >= $3",
            settlement_id, new_id, rest[0].seq,
        )  # fmt: skip
    return int(new_id)
