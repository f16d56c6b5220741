"""The ledger references of custody's credits and debits: each moves money once."""

from __future__ import annotations


def deposit_reference(signature: str, address: str) -> str:
    """Return the reference that credits a deposit (one per transaction and vault)."""
    return f"deposit:{signature}:{address}"


def debit_reference(withdrawal_id: int) -> str:
    """Return the reference that debits a withdrawal."""
    return f"withdrawal:{withdrawal_id}"


def refund_reference(withdrawal_id: int) -> str:
    """Return the reference that re-credits a failed withdrawal."""
    return f"withdrawal-refund:{withdrawal_id}"
