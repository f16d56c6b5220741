"""The JSON-RPC methods the embedded chain serves, with a validator's parameters and answers.

Each method takes the request's `params` list and returns the `result`, or raises
`RpcFault` for an error answer. Answers are built with solders' own RPC types where one
exists, so their JSON is what a validator sends and what `solana`'s client parses.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import based58
import solders
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from actors.chain.rpc_server import encode
from actors.chain.rpc_server.chain import Chain, Commitment
from actors.chain.rpc_server.errors import RpcFault, invalid
from actors.chain.rpc_server.faults import SWITCHES

Params = list[Any]
Method = Callable[[Chain, Params], Any]

MAX_SIGNATURE_STATUSES = 256
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURES_LIMIT = 1000
_LEGACY_COMMITMENT = {
    "recent": "processed", "single": "confirmed", "singleGossip": "confirmed",
    "root": "finalized", "max": "finalized",
}  # fmt: skip


def _arg(params: Params, index: int, kind: type, name: str) -> Any:
    if len(params) <= index or not isinstance(params[index], kind):
        raise invalid(f"{name} must be a {kind.__name__} at position {index}")
    return params[index]


def _config(params: Params, index: int) -> dict[str, Any]:
    if len(params) <= index or params[index] is None:
        return {}
    if not isinstance(params[index], dict):
        raise invalid(f"the configuration at position {index} must be an object")
    return dict(params[index])


def _commitment(config: dict[str, Any], chain: Chain | None = None) -> Commitment:
    text = config.get("commitment") or "finalized"  # a validator's default
    if not isinstance(text, str):
        raise invalid("commitment must be a string")
    try:
        commitment = Commitment(_LEGACY_COMMITMENT.get(text, text))
    except ValueError:
        raise invalid(f"unknown commitment {text!r}") from None
    wanted = config.get("minContextSlot")
    if chain is not None and isinstance(wanted, int) and chain.frontier(commitment) < wanted:
        raise RpcFault(-32016, "Minimum context slot has not been reached",
                       {"contextSlot": chain.frontier(commitment)})  # fmt: skip
    return commitment


def _pubkey(text: Any, name: str = "address") -> Pubkey:
    try:
        return Pubkey.from_string(text)
    except (ValueError, TypeError):
        raise invalid(f"{name} {text!r} is not a base58 public key") from None


def _signature(text: Any) -> Signature:
    try:
        return Signature.from_string(text)
    except (ValueError, TypeError):
        raise invalid(f"{text!r} is not a base58 signature") from None


def _context(slot: int, value: Any) -> dict[str, Any]:
    return {"context": {"apiVersion": _VERSION, "slot": slot}, "value": value}


def _at_least_confirmed(commitment: Commitment) -> Commitment:
    if commitment is Commitment.PROCESSED:
        raise invalid("Method does not support commitment below `confirmed`")
    return commitment


_VERSION = f"{solders.__version__}-litesvm"
_VERSION_0_UNSUPPORTED = (
    "Transaction version (0) is not supported by the requesting client. Please try the "
    'request again with the following configuration parameter: "maxSupportedTransactionVersion": 0'
)


# -- cluster and slots --------------------------------------------------------------------


def get_health(chain: Chain, params: Params) -> Any:
    """`getHealth`: always "ok" (the embedded chain has no cluster to lag behind)."""
    return "ok"


def get_version(chain: Chain, params: Params) -> Any:
    """`getVersion`: solders' version, marked as LiteSVM."""
    return {"solana-core": _VERSION, "feature-set": None}


def get_genesis_hash(chain: Chain, params: Params) -> Any:
    """`getGenesisHash`: the random hash made on the chain's first start."""
    return str(chain.genesis_hash)


def get_slot(chain: Chain, params: Params) -> Any:
    """`getSlot`: the newest slot at the commitment."""
    return chain.frontier(_commitment(_config(params, 0), chain))


def get_block_height(chain: Chain, params: Params) -> Any:
    """`getBlockHeight`: equal to the slot (the embedded chain skips no slot)."""
    return get_slot(chain, params)


def get_latest_blockhash(chain: Chain, params: Params) -> Any:
    """`getLatestBlockhash`: the commitment slot's blockhash, valid 150 more slots."""
    commitment = _commitment(_config(params, 0), chain)
    blockhash, last_valid = chain.latest_blockhash(commitment)
    value = {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid}
    return _context(chain.frontier(commitment), value)


def is_blockhash_valid(chain: Chain, params: Params) -> Any:
    """`isBlockhashValid`: whether a blockhash is at most 150 slots old."""
    from solders.hash import Hash

    text = _arg(params, 0, str, "blockhash")
    commitment = _commitment(_config(params, 1), chain)
    try:
        valid = chain.blockhash_valid(Hash.from_string(text))
    except ValueError:
        raise invalid(f"{text!r} is not a base58 hash") from None
    return _context(chain.frontier(commitment), valid)


def get_minimum_balance_for_rent_exemption(chain: Chain, params: Params) -> Any:
    """`getMinimumBalanceForRentExemption`: lamports for an account of that many bytes."""
    size = _arg(params, 0, int, "data length")
    if not 0 <= size <= 10 * 1024 * 1024:
        raise invalid("data length must be 0 to 10 MiB")
    return chain.rent_exempt_minimum(size)


# -- transactions -------------------------------------------------------------------------


def _decode_tx(params: Params, config: dict[str, Any]) -> VersionedTransaction:
    text = _arg(params, 0, str, "transaction")
    encoding = config.get("encoding", "base58")
    try:
        if encoding == "base64":
            raw = base64.b64decode(text, validate=True)
        elif encoding == "base58":
            raw = based58.b58decode(text.encode())
        else:
            raise invalid(f"unsupported encoding {encoding!r}; use base64 or base58")
        return VersionedTransaction.from_bytes(raw)
    except RpcFault:
        raise
    except Exception as exc:
        raise invalid(f"failed to deserialize the transaction: {exc}") from None


def send_transaction(chain: Chain, params: Params) -> Any:
    """`sendTransaction`: verify, preflight (unless skipped), execute; return the signature."""
    config = _config(params, 1)
    tx = _decode_tx(params, config)
    # Preflight always runs against the newest state; the level is only checked.
    _commitment({"commitment": config.get("preflightCommitment")})
    return str(chain.send(tx, bool(config.get("skipPreflight", False))))


def simulate_transaction(chain: Chain, params: Params) -> Any:
    """`simulateTransaction`: run against the newest state, keep nothing."""
    config = _config(params, 1)
    tx = _decode_tx(params, config)
    result = chain.simulate(tx, bool(config.get("sigVerify", False)))
    return _context(chain.slot, json.loads(result.to_json()))


def request_airdrop(chain: Chain, params: Params) -> Any:
    """`requestAirdrop`: a transfer from the faucet; return its signature."""
    to = _pubkey(_arg(params, 0, str, "address"))
    lamports = _arg(params, 1, int, "lamports")
    if not 0 < lamports <= 10**18:
        raise invalid("lamports must be 1 to 10^18")
    return str(chain.transfer_from_faucet(to, lamports))


def get_signature_statuses(chain: Chain, params: Params) -> Any:
    """`getSignatureStatuses`: slot, confirmations, err and level of each, null if unknown."""
    texts = _arg(params, 0, list, "signatures")
    if len(texts) > MAX_SIGNATURE_STATUSES:
        raise invalid(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
    return _context(chain.slot, [_status(chain, _signature(text)) for text in texts])


def _status(chain: Chain, signature: Signature) -> dict[str, Any] | None:
    row = chain.landed(str(signature))
    if row is None:
        return None
    err = json.loads(row.meta_json)["err"]
    level, confirmations = _level(chain, row.slot)
    return {
        "slot": row.slot, "confirmations": confirmations, "err": err,
        "status": {"Ok": None} if err is None else {"Err": err},
        "confirmationStatus": level,
    }  # fmt: skip


def _level(chain: Chain, slot: int) -> tuple[str, int | None]:
    """Return a slot's commitment level and a validator's `confirmations` (None: rooted)."""
    if slot <= chain.frontier(Commitment.FINALIZED):
        return "finalized", None
    confirmed = chain.frontier(Commitment.CONFIRMED)
    if slot <= confirmed:
        return "confirmed", confirmed - slot + 1
    return "processed", 0


def get_signatures_for_address(chain: Chain, params: Params) -> Any:
    """`getSignaturesForAddress`: newest first, paged by `before`/`until`/`limit`."""
    address = str(_pubkey(_arg(params, 0, str, "address")))
    config = _config(params, 1)
    commitment = _at_least_confirmed(_commitment(config, chain))
    limit = config.get("limit") or MAX_SIGNATURES_LIMIT
    if not isinstance(limit, int) or not 1 <= limit <= MAX_SIGNATURES_LIMIT:
        raise invalid(f"limit must be 1 to {MAX_SIGNATURES_LIMIT}")
    before, until = _cursor(chain, config.get("before")), _cursor(chain, config.get("until"))
    if config.get("before") is not None and before is None:
        return []  # a validator answers nothing before a signature it does not know
    rows = chain.store.signatures_for_address(
        address, chain.frontier(commitment), before, until, limit
    )
    out = []
    for row in rows:
        err = json.loads(row.meta_json)["err"]
        level, _ = _level(chain, row.slot)
        out.append({"signature": row.signature, "slot": row.slot, "err": err, "memo": None,
                    "blockTime": row.block_time, "confirmationStatus": level})  # fmt: skip
    return out


def _cursor(chain: Chain, text: Any) -> int | None:
    if text is None:
        return None
    return chain.store.signature_seq(str(_signature(text)))


def get_transaction(chain: Chain, params: Params) -> Any:
    """`getTransaction`: the landed transaction with its meta, once at the commitment."""
    signature = _signature(_arg(params, 0, str, "signature"))
    config = _config(params, 1)
    commitment = _at_least_confirmed(_commitment(config, chain))
    row = chain.landed(str(signature))
    if row is None or row.slot > chain.frontier(commitment):
        return None
    tx = VersionedTransaction.from_bytes(row.tx)
    version = tx.version()
    legacy = str(version).endswith("Legacy")
    if not legacy and config.get("maxSupportedTransactionVersion") is None:
        raise RpcFault(-32015, _VERSION_0_UNSUPPORTED)
    return {
        "slot": row.slot, "blockTime": row.block_time, "version": "legacy" if legacy else 0,
        "transaction": _encode_tx(tx, row.tx, config.get("encoding", "json")),
        "meta": json.loads(row.meta_json),
    }  # fmt: skip


def _encode_tx(tx: VersionedTransaction, raw: bytes, encoding: str) -> Any:
    if encoding == "json":
        return json.loads(encode.ui_transaction(tx).to_json())
    if encoding == "base64":
        return [base64.b64encode(raw).decode(), "base64"]
    if encoding == "base58":
        return [based58.b58encode(raw).decode(), "base58"]
    raise invalid(f"unsupported encoding {encoding!r}; use json, base64 or base58")


# -- accounts -----------------------------------------------------------------------------


def _account_json(chain: Chain, address: Pubkey, config: dict[str, Any], c: Commitment) -> Any:
    account = chain.account(address, c)
    if account is None:
        return None
    encoding = config.get("encoding", "base64")
    data = bytes(account.data)
    if encoding == "base64":
        encoded = [base64.b64encode(data).decode(), "base64"]
    elif encoding == "base58":
        encoded = [based58.b58encode(data).decode(), "base58"]
    else:
        raise invalid(f"unsupported encoding {encoding!r}; use base64 or base58")
    return {
        "lamports": account.lamports, "owner": str(account.owner), "data": encoded,
        "executable": account.executable, "rentEpoch": account.rent_epoch, "space": len(data),
    }  # fmt: skip


def get_account_info(chain: Chain, params: Params) -> Any:
    """`getAccountInfo`: the account at the commitment's slot (base64 or base58 data)."""
    address = _pubkey(_arg(params, 0, str, "address"))
    config = _config(params, 1)
    commitment = _commitment(config, chain)
    return _context(chain.frontier(commitment), _account_json(chain, address, config, commitment))


def get_multiple_accounts(chain: Chain, params: Params) -> Any:
    """`getMultipleAccounts`: up to 100 accounts at one commitment."""
    texts = _arg(params, 0, list, "addresses")
    if len(texts) > MAX_MULTIPLE_ACCOUNTS:
        raise invalid(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
    addresses = [_pubkey(text) for text in texts]
    config = _config(params, 1)
    commitment = _commitment(config, chain)
    values = [_account_json(chain, a, config, commitment) for a in addresses]
    return _context(chain.frontier(commitment), values)


def get_balance(chain: Chain, params: Params) -> Any:
    """`getBalance`: lamports at the commitment's slot (0 for no account)."""
    address = _pubkey(_arg(params, 0, str, "address"))
    commitment = _commitment(_config(params, 1), chain)
    account = chain.account(address, commitment)
    return _context(chain.frontier(commitment), 0 if account is None else account.lamports)


def get_token_account_balance(chain: Chain, params: Params) -> Any:
    """`getTokenAccountBalance`: an SPL token account's amount, with its mint's decimals."""
    address = _pubkey(_arg(params, 0, str, "address"))
    commitment = _commitment(_config(params, 1), chain)
    parsed = encode.token_account(chain.account(address, commitment))
    if parsed is None:
        raise invalid("not a Token account")
    decimals = encode.mint_decimals(chain.account(parsed[0], Commitment.PROCESSED))
    if decimals is None:
        raise invalid("Invalid param: could not find mint")
    value = json.loads(encode.ui_amount(parsed[2], decimals).to_json())
    return _context(chain.frontier(commitment), value)


METHODS: dict[str, Method] = {
    "getHealth": get_health,
    "getVersion": get_version,
    "getGenesisHash": get_genesis_hash,
    "getSlot": get_slot,
    "getBlockHeight": get_block_height,
    "getLatestBlockhash": get_latest_blockhash,
    "isBlockhashValid": is_blockhash_valid,
    "getMinimumBalanceForRentExemption": get_minimum_balance_for_rent_exemption,
    "sendTransaction": send_transaction,
    "simulateTransaction": simulate_transaction,
    "requestAirdrop": request_airdrop,
    "getSignatureStatuses": get_signature_statuses,
    "getSignaturesForAddress": get_signatures_for_address,
    "getTransaction": get_transaction,
    "getAccountInfo": get_account_info,
    "getMultipleAccounts": get_multiple_accounts,
    "getBalance": get_balance,
    "getTokenAccountBalance": get_token_account_balance,
    **SWITCHES,
}
"""Every method served, by its JSON-RPC name (docs/custody.md lists them)."""
