"""Custody's records ports (`ports.DepositRecords`, `ports.WithdrawalRecords`) over
PostgreSQL, through the SQL of `deposits.py` and `records.py`.

One `clob_system` connection per custody actor: each actor runs one pass at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from actors.accounts import AccountId
from actors.custody import deposits, records
from actors.custody.detect import DepositSeen, Vault
from actors.custody.ports import PendingDeposit, SignedTx, WithdrawalJob

_VAULTS = """SELECT da.address, da.account_id, a.symbol, a.mint, a.asset_id
    FROM deposit_addresses da JOIN assets a USING (asset_id) WHERE a.mint IS NOT NULL"""


class PgDepositRecords:
    """`DepositRecords` over PostgreSQL."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._vaults: dict[str, tuple[Vault, int]] = {}  # address: (vault, asset id)

    async def vaults(self) -> list[Vault]:
        """Return every registered vault (and remember them for the other calls)."""
        rows = await self._conn.fetch(_VAULTS)
        self._vaults = {
            r[0]: (Vault(r[0], AccountId(int(r[1])), r[2], r[3]), int(r[4])) for r in rows
        }
        return [vault for vault, _ in self._vaults.values()]

    async def cursor(self, address: str) -> str | None:
        """See `DepositRecords.cursor`."""
        found = await deposits.cursor(self._conn, address)
        return None if found is None else found[0]

    async def advance(
        self, address: str, signature: str, slot: int, seen: Sequence[DepositSeen]
    ) -> None:
        """See `DepositRecords.advance`."""
        async with self._conn.transaction():
            for deposit in seen:
                vault, asset_id = self._vaults[deposit.vault.address]
                await deposits.insert_seen(
                    self._conn, vault.account_id, asset_id, deposit.amount_atoms,
                    vault.address, deposit.signature, deposit.slot,
                )  # fmt: skip
            await deposits.set_cursor(self._conn, address, signature, slot)

    async def pending(self) -> list[PendingDeposit]:
        """See `DepositRecords.pending` (deposits of vaults not listed are left alone)."""
        if not self._vaults:
            await self.vaults()
        out = []
        for d in await deposits.pending(self._conn):
            known = self._vaults.get(d.address)
            if known is not None:
                seen = DepositSeen(d.tx_signature, d.slot or 0, known[0], d.amount_atoms)
                out.append(PendingDeposit(d.deposit_id, seen))
        return out

    async def confirmations(self, deposit: PendingDeposit, confirmations: int) -> None:
        """See `DepositRecords.confirmations`."""
        seen = deposit.seen
        await deposits.set_confirmations(self._conn, seen.signature, seen.vault.address,
                                         confirmations)  # fmt: skip

    async def credited(self, deposit: PendingDeposit) -> None:
        """See `DepositRecords.credited`."""
        await deposits.mark_credited(self._conn, deposit.seen.signature,
                                     deposit.seen.vault.address)  # fmt: skip


class PgWithdrawalRecords:
    """`WithdrawalRecords` over PostgreSQL."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def in_flight(self) -> list[WithdrawalJob]:
        """Return the debited and sent withdrawals, oldest first."""
        rows = await self._conn.fetch(
            "SELECT w.withdrawal_id, w.account_id, a.symbol, w.amount_atoms::text, "
            "w.destination, extract(epoch FROM now() - coalesce(w.debited_at, w.created_at)) "
            "FROM withdrawals w JOIN assets a USING (asset_id) "
            "WHERE w.status IN ('debited', 'sent') ORDER BY w.withdrawal_id"
        )
        return [WithdrawalJob(int(r[0]), AccountId(int(r[1])), r[2], int(r[3]), r[4],
                              float(r[5])) for r in rows]  # fmt: skip

    async def attempts(self, withdrawal_id: int) -> list[SignedTx]:
        """See `WithdrawalRecords.attempts`."""
        sent = await records.sent_wires(self._conn, withdrawal_id)
        return [SignedTx(signature, height, wire) for signature, height, wire in sent]

    async def add_attempt(self, withdrawal_id: int, tx: SignedTx) -> None:
        """See `WithdrawalRecords.add_attempt`."""
        moved = await records.mark_sent(self._conn, withdrawal_id, tx.signature,
                                        tx.last_valid_height, tx.wire)  # fmt: skip
        if moved is None:
            raise RuntimeError(f"withdrawal {withdrawal_id} is no longer debited or sent")

    async def confirmed(self, withdrawal_id: int, signature: str, slot: int) -> None:
        """See `WithdrawalRecords.confirmed`."""
        await records.mark_confirmed(self._conn, withdrawal_id, signature)

    async def failed(self, withdrawal_id: int, reason: str) -> None:
        """Mark it failed and refunded (the sender re-credited the ledger first)."""
        async with self._conn.transaction():  # never seen failed and not yet refunded
            await records.mark_failed(self._conn, withdrawal_id, reason)
            await records.mark_refunded(self._conn, withdrawal_id)
