"""The embedded chain's own methods (`clob_*`): fault switches, slot control and a faucet.

No validator has these; tests set them to make a fault happen on purpose, and the demo
uses the faucet. docs/custody.md ("The chain layer") describes each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from spl.token import instructions as spl
from spl.token.constants import TOKEN_PROGRAM_ID

from actors.chain.rpc_server import encode
from actors.chain.rpc_server.chain import Chain, Commitment
from actors.chain.rpc_server.errors import invalid

Params = list[Any]
MAX_ADVANCE_SLOTS = 10_000


def _count(params: Params, index: int, name: str, most: int = 1_000_000) -> int:
    value = params[index] if len(params) > index else None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
        raise invalid(f"{name} must be an integer 0 to {most}")
    return value


def drop_transactions(chain: Chain, params: Params) -> Any:
    """`clob_dropTransactions [n]`: accept the next n sent transactions, never execute them."""
    chain.switches.drop_next = _count(params, 0, "n")
    return switches(chain, [])


def delay_confirmations(chain: Chain, params: Params) -> Any:
    """`clob_delayConfirmations [k]`: hold the confirmed and finalized frontiers k slots
    further back (they stall for k slots, then follow k slots later; 0 restores them)."""
    chain.switches.confirm_delay_slots = _count(params, 0, "k", MAX_ADVANCE_SLOTS)
    return switches(chain, [])


def expire_blockhashes(chain: Chain, params: Params) -> Any:
    """`clob_expireBlockhashes []`: every blockhash handed out so far becomes invalid."""
    chain.expire_blockhashes()
    return switches(chain, [])


def fail_requests(chain: Chain, params: Params) -> Any:
    """`clob_failRequests [n, {method?, code?, message?}]`: answer the next n requests (of
    one method, if given) with a JSON-RPC error (default -32005 "Node is unhealthy")."""
    options = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
    code, message = options.get("code", -32005), options.get("message", "Node is unhealthy")
    method = options.get("method")
    if not isinstance(code, int) or not isinstance(message, str):
        raise invalid("code must be an integer and message a string")
    if method is not None and not isinstance(method, str):
        raise invalid("method must be a string")
    s = chain.switches
    s.fail_next, s.fail_method, s.fail_code, s.fail_message = (
        _count(params, 0, "n"), method, code, message,
    )  # fmt: skip
    return switches(chain, [])


def advance_slots(chain: Chain, params: Params) -> Any:
    """`clob_advanceSlots [n]`: advance n slots at once (instead of waiting for the timer)."""
    chain.tick(_count(params, 0, "n", MAX_ADVANCE_SLOTS) or 0)
    return chain.slot


def pause_slots(chain: Chain, params: Params) -> Any:
    """`clob_pauseSlots [paused]`: stop (true) or restart (false) the slot timer, so a test
    moves slots only with `clob_advanceSlots` and can hit a boundary exactly."""
    if len(params) < 1 or not isinstance(params[0], bool):
        raise invalid("expected [true] or [false]")
    chain.switches.slots_paused = params[0]
    return switches(chain, [])


def switches(chain: Chain, params: Params) -> Any:
    """`clob_switches []`: the switches' state and the frontiers."""
    s = chain.switches
    return {
        "dropNext": s.drop_next, "confirmDelaySlots": s.confirm_delay_slots,
        "failNext": s.fail_next, "failMethod": s.fail_method, "slotsPaused": s.slots_paused,
        "slot": chain.slot, "confirmed": chain.frontier(Commitment.CONFIRMED),
        "finalized": chain.frontier(Commitment.FINALIZED),
    }  # fmt: skip


def create_mint(chain: Chain, params: Params) -> Any:
    """`clob_createMint [decimals]`: a new SPL mint whose authority is the faucet."""
    decimals = _count(params, 0, "decimals", 18)
    mint = Keypair()
    faucet = chain.faucet.pubkey()
    lamports = chain.rent_exempt_minimum(encode.MINT_LEN)
    instructions = [
        create_account(CreateAccountParams(from_pubkey=faucet, to_pubkey=mint.pubkey(),
                       lamports=lamports, space=encode.MINT_LEN,
                       owner=TOKEN_PROGRAM_ID)),
        spl.initialize_mint(spl.InitializeMintParams(decimals=decimals,
                            program_id=TOKEN_PROGRAM_ID, mint=mint.pubkey(),
                            mint_authority=faucet)),
    ]  # fmt: skip
    signature = chain.run_as_faucet(instructions, [mint])
    return {"mint": str(mint.pubkey()), "signature": str(signature)}


def mint_to(chain: Chain, params: Params) -> Any:
    """`clob_mintTo [mint, owner, amount]`: mint a faucet mint's tokens to the owner's
    associated token account (created if needed)."""
    if len(params) < 3 or not all(isinstance(p, str) for p in params[:2]):
        raise invalid("expected [mint, owner, amount]")
    try:
        mint, owner = Pubkey.from_string(params[0]), Pubkey.from_string(params[1])
    except ValueError:
        raise invalid("mint and owner must be base58 public keys") from None
    amount = _count(params, 2, "amount", 2**64 - 1)
    faucet = chain.faucet.pubkey()
    account = spl.get_associated_token_address(owner, mint)
    instructions = [
        spl.create_idempotent_associated_token_account(faucet, owner, mint),
        spl.mint_to(spl.MintToParams(program_id=TOKEN_PROGRAM_ID, mint=mint,
                    dest=account, mint_authority=faucet, amount=amount)),
    ]  # fmt: skip
    signature = chain.run_as_faucet(instructions, [])
    return {"tokenAccount": str(account), "signature": str(signature)}


SWITCHES: dict[str, Callable[[Chain, Params], Any]] = {
    "clob_dropTransactions": drop_transactions,
    "clob_delayConfirmations": delay_confirmations,
    "clob_expireBlockhashes": expire_blockhashes,
    "clob_failRequests": fail_requests,
    "clob_advanceSlots": advance_slots,
    "clob_pauseSlots": pause_slots,
    "clob_switches": switches,
    "clob_createMint": create_mint,
    "clob_mintTo": mint_to,
}
