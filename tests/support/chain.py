"""Helpers of the chain tests: the embedded chain's switches, funded keys, transactions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys


async def rpc(url: str, method: str, *params: Any) -> Any:
    """Call a JSON-RPC method and return its result (asserting there was no error)."""
    body = await rpc_raw(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert "error" not in body, body
    return body["result"]


async def rpc_raw(url: str, request: Any) -> Any:
    """Post one JSON-RPC body (any JSON) and return the decoded answer."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(url, json=request)
        response.raise_for_status()
        return response.json()


async def advance(url: str, slots: int) -> int:
    """Advance the embedded chain by `slots` slots at once; return the new slot."""
    return int(await rpc(url, "clob_advanceSlots", slots))


async def funded(client: ChainClient, lamports: int = 10**9) -> Keypair:
    """Return a new keypair holding `lamports` (an airdrop, processed)."""
    owner = Keypair()
    signature = await client.request_airdrop(owner.pubkey(), lamports)
    (status,) = await client.signature_statuses([signature])
    assert status is not None and status.err is None
    return owner


def signed(payer: Keypair, instructions: list[Instruction], blockhash: Hash,
           signers: tuple[Keypair, ...] = ()) -> VersionedTransaction:  # fmt: skip
    """Return a v0 transaction paid and signed by `payer` (and `signers`)."""
    message = MessageV0.try_compile(payer.pubkey(), instructions, [], blockhash)
    return VersionedTransaction(message, [payer, *signers])


def lamports_to(payer: Keypair, to: Pubkey, lamports: int, blockhash: Hash) -> VersionedTransaction:
    """Return a system transfer of `lamports` from `payer` to `to`."""
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))
    return signed(payer, [ix], blockhash)


def write_keys(directory: Path, keys: ChainKeys) -> Path:
    """Write each role's keypair as a file of mode 0600 in `directory` (as `keys.py` reads
    them); return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for role in ("admin", "operator", "payer", "mint_authority"):
        path = directory / f"{role}.json"
        path.write_text(json.dumps(list(bytes(getattr(keys, role)))))
        os.chmod(path, 0o600)
    return directory
