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
were never used on chain, and its trades and deltas are still only a plan. The batcher
also cuts a settlement whose transaction would exceed 1,232 bytes.

A settlement of several netted instructions is cut between two of them (`split`), so each
part keeps whole instructions: neither part's transaction is larger than the one the
planner measured. Halving its trades instead would net the end of one instruction with the
start of the next, and the vaults they share would then be named twice.
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


def _netted(trades: list[SettleTrade]) -> list[tuple[int, dict[VaultKey, int]]]:
    """Return each netted instruction's trade count and net, as the planner groups the
    trades: in order, the next instruction when a vault past `MAX_SETTLE_ENTRIES` or a net
    outside i64 would come."""
    nets: list[tuple[int, dict[VaultKey, int]]] = [(0, {})]
    for trade in trades:
        count, net = nets[-1]
        widened = {key: net.get(key, 0) + d for key, d in trade_deltas(trade).items()}
        in_range = all(I64_MIN <= d <= I64_MAX for d in widened.values())
        if net and (len(net.keys() | widened.keys()) > MAX_SETTLE_ENTRIES or not in_range):
            nets.append((0, {}))
            count, net, widened = 0, nets[-1][1], trade_deltas(trade)
        net.update(widened)
        nets[-1] = (count + 1, net)
    return nets


def instructions_of(trades: list[SettleTrade], netted: bool) -> tuple[Instruction, ...]:
    """Return the instructions that settle `trades`: netted, grouped as the planner does
    (`_netted`), so the instructions of a planned batch, or of a part `split` cut; else
    one per trade."""
    if not netted:
        return tuple(instruction_of(trade_deltas(t)) for t in trades)
    return tuple(instruction_of(net) for _, net in _netted(trades))


def split(trades: list[SettleTrade], netted: bool) -> int:
    """Return how many of a settlement's trades its first part keeps when it is cut:
    those of the first half of its netted instructions when it has several, else half."""
    counts = [count for count, _ in _netted(trades)] if netted else []
    if len(counts) > 1:
        return sum(counts[: len(counts) // 2])
    return len(trades) // 2


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
        at = split(trades, netted)
        keep, rest = trades[:at], trades[at:]
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
