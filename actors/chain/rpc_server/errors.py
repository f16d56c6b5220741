"""The embedded chain's error answers: a JSON-RPC code, message and optional data."""

from __future__ import annotations

from typing import Any

from solders.rpc.responses import RpcSimulateTransactionResult


class RpcFault(Exception):  # noqa: N818  (a JSON-RPC error answer, not a bug)
    """A JSON-RPC error to answer with: code, message and optional data."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def invalid(message: str) -> RpcFault:
    """Return the error of invalid parameters (-32602)."""
    return RpcFault(-32602, f"Invalid params: {message}")


class PreflightFailure(RpcFault):
    """`sendTransaction`'s preflight refused the transaction (code -32002)."""

    def __init__(self, result: RpcSimulateTransactionResult, text: str) -> None:
        super().__init__(-32002, f"Transaction simulation failed: {text}")
        self.result = result
