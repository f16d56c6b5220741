"""The embedded chain serves each method the product uses with a validator's semantics.

Everything goes through JSON-RPC: `ChainClient` (the product's wrapper), `solana`'s own
AsyncClient where the wrapper has no call, and raw requests for the switches.
"""

from __future__ import annotations

import asyncio

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.types import TxOpts
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token import instructions as spl
from spl.token.constants import TOKEN_PROGRAM_ID

from actors.chain.client import (
    AlreadyProcessedError,
    ChainClient,
    ChainRpcError,
    TransactionFailedError,
    TransactionRejectedError,
)
from tests.support.chain import advance, funded, lamports_to, rpc, rpc_raw, signed


async def test_identity_methods_answer_as_a_validator(
    solana_rpc_url: str, client: ChainClient
) -> None:
    assert await client.is_healthy()
    async with AsyncClient(solana_rpc_url) as raw:
        assert await raw.is_connected()
        version = (await raw.get_version()).value
        assert "litesvm" in version.solana_core
        genesis = (await raw.get_genesis_hash()).value
        assert genesis == (await raw.get_genesis_hash()).value


async def test_the_same_airdrop_twice_in_one_slot_lands_twice(
    client: ChainClient, paused: None
) -> None:
    to = Keypair().pubkey()
    first = await client.request_airdrop(to, 1_000)
    second = await client.request_airdrop(to, 1_000)
    assert first != second
    assert await client.balance(to, "processed") == 2_000


async def test_slots_advance_on_a_timer(client: ChainClient) -> None:
    first = await client.slot("processed")
    await asyncio.sleep(0.2)  # 8 slots of 25 ms
    assert await client.slot("processed") > first


async def test_frontiers_trail_the_newest_slot_by_their_depth(
    solana_rpc_url: str, client: ChainClient, paused: None
) -> None:
    first = await client.slot("processed")
    await advance(solana_rpc_url, 40)
    processed = await client.slot("processed")
    confirmed, finalized = await client.slot("confirmed"), await client.slot("finalized")
    assert processed >= first + 40
    assert finalized <= confirmed < processed
    assert (processed - confirmed, processed - finalized) == (1, 32)
    assert await client.block_height("processed") >= processed


async def test_a_transfer_is_processed_then_confirmed_then_finalized(
    solana_rpc_url: str, client: ChainClient, paused: None
) -> None:
    payer, to = await funded(client), Keypair().pubkey()
    await advance(solana_rpc_url, 40)  # the airdrop is final
    blockhash = await client.latest_blockhash("processed")
    signature = await client.send_transaction(
        lamports_to(payer, to, 5_000_000, blockhash.blockhash)
    )

    (status,) = await client.signature_statuses([signature])
    assert status is not None and status.commitment == "processed" and status.confirmations == 0
    assert await client.balance(to, "processed") == 5_000_000
    assert await client.balance(to, "confirmed") == 0, "not yet confirmed: the old state"
    assert await client.transaction(signature, "confirmed") is None

    await advance(solana_rpc_url, 1)
    (status,) = await client.signature_statuses([signature])
    assert status is not None and status.commitment == "confirmed" and status.confirmations == 1
    assert await client.balance(to, "confirmed") == 5_000_000
    assert await client.balance(to, "finalized") == 0

    await advance(solana_rpc_url, 31)
    (status,) = await client.signature_statuses([signature])
    assert status is not None and status.commitment == "finalized" and status.confirmations is None
    assert await client.balance(to, "finalized") == 5_000_000
    landed = await client.transaction(signature, "finalized")
    assert landed is not None and landed.err is None and landed.slot == status.slot


async def test_solanas_own_send_and_confirm_works_against_it(
    solana_rpc_url: str, client: ChainClient
) -> None:
    payer, to = await funded(client), Keypair().pubkey()
    async with AsyncClient(solana_rpc_url, Confirmed) as raw:
        blockhash = (await raw.get_latest_blockhash()).value
        tx = lamports_to(payer, to, 1_000, blockhash.blockhash)
        # solana confirms at the preflight commitment: make it `confirmed`.
        opts = TxOpts(skip_confirmation=False, preflight_commitment=Confirmed,
                      last_valid_block_height=blockhash.last_valid_block_height)  # fmt: skip
        sent = await raw.send_transaction(tx, opts)
        assert sent.value == tx.signatures[0]
    assert await client.balance(to, "confirmed") == 1_000


async def test_tokens_move_and_their_balance_changes_are_reported(
    solana_rpc_url: str, client: ChainClient
) -> None:
    mint = Pubkey.from_string((await rpc(solana_rpc_url, "clob_createMint", 6))["mint"])
    alice, bob = await funded(client), Keypair()
    minted = await rpc(solana_rpc_url, "clob_mintTo", str(mint), str(alice.pubkey()), 1_000_000)
    source = Pubkey.from_string(minted["tokenAccount"])
    dest = spl.get_associated_token_address(bob.pubkey(), mint)
    blockhash = await client.latest_blockhash("processed")
    move = spl.transfer_checked(spl.TransferCheckedParams(
        program_id=TOKEN_PROGRAM_ID, source=source, mint=mint, dest=dest,
        owner=alice.pubkey(), amount=250_000, decimals=6,
    ))  # fmt: skip
    create = spl.create_idempotent_associated_token_account(alice.pubkey(), bob.pubkey(), mint)
    tx = signed(alice, [create, move], blockhash.blockhash)
    signature = await client.send_transaction(tx)
    await client.wait_for(signature, blockhash.last_valid_block_height, "confirmed", 0.02)

    assert await client.token_balance(source) == 750_000
    balances = await client.token_balances([source, dest, alice.pubkey()])
    assert balances == {source: 750_000, dest: 250_000, alice.pubkey(): None}
    changes = {c.account: c for c in await client.token_balance_changes(signature)}
    assert changes[source].delta_atoms == -250_000 and changes[source].owner == alice.pubkey()
    assert changes[dest].pre_atoms == 0 and changes[dest].post_atoms == 250_000
    assert changes[dest].mint == mint and changes[dest].decimals == 6
    only = await client.token_balance_changes(signature, dest)
    assert [c.account for c in only] == [dest]
    async with AsyncClient(solana_rpc_url, Confirmed) as raw:
        ui = (await raw.get_token_account_balance(dest)).value
        assert (ui.amount, ui.decimals, ui.ui_amount_string) == ("250000", 6, "0.25")


async def test_signatures_of_an_address_page_with_before_until_and_limit(
    solana_rpc_url: str, client: ChainClient
) -> None:
    payer, to = await funded(client), Keypair().pubkey()
    sent = []
    for lamports in range(1_000_000, 1_000_005):
        blockhash = await client.latest_blockhash("processed")
        sent.append(
            await client.send_transaction(lamports_to(payer, to, lamports, blockhash.blockhash))
        )
    await advance(solana_rpc_url, 2)

    everything = await client.signatures_since(to)
    assert [s.signature for s in everything] == sent, "oldest first, each once"
    assert [s.signature for s in await client.signatures_since(to, page_size=2)] == sent
    assert [s.signature for s in await client.signatures_since(to, until=sent[2])] == sent[3:]
    async with AsyncClient(solana_rpc_url, Confirmed) as raw:
        newest = (await raw.get_signatures_for_address(to, limit=2)).value
        assert [s.signature for s in newest] == [sent[4], sent[3]]
        older = (await raw.get_signatures_for_address(to, before=sent[3], limit=10)).value
        assert [s.signature for s in older] == [sent[2], sent[1], sent[0]]


async def test_a_resent_transaction_is_not_executed_twice(
    solana_rpc_url: str, client: ChainClient
) -> None:
    payer, to = await funded(client), Keypair().pubkey()
    blockhash = await client.latest_blockhash("processed")
    tx = lamports_to(payer, to, 7_000_000, blockhash.blockhash)
    signature = await client.send_transaction(tx)
    with pytest.raises(AlreadyProcessedError):
        await client.send_transaction(tx)
    assert await client.send_transaction(tx, skip_preflight=True) == signature
    await advance(solana_rpc_url, 1)
    assert await client.balance(to, "confirmed") == 7_000_000
    assert len(await client.signatures_since(to)) == 1


async def test_preflight_refuses_a_failing_transaction_and_nothing_lands(
    client: ChainClient,
) -> None:
    payer = await funded(client, 10**7)
    blockhash = await client.latest_blockhash("processed")
    tx = lamports_to(payer, Keypair().pubkey(), 10**9, blockhash.blockhash)
    with pytest.raises(TransactionRejectedError) as refused:
        await client.send_transaction(tx)
    assert refused.value.program_error == 1, "the system program's insufficient-funds error"
    assert any("insufficient lamports" in line for line in refused.value.logs)
    assert await client.signature_statuses([tx.signatures[0]]) == [None]
    assert await client.balance(payer.pubkey(), "processed") == 10**7


async def test_without_preflight_a_failing_transaction_lands_with_its_error(
    solana_rpc_url: str, client: ChainClient
) -> None:
    payer = await funded(client, 10**7)
    blockhash = await client.latest_blockhash("processed")
    tx = lamports_to(payer, Keypair().pubkey(), 10**9, blockhash.blockhash)
    signature = await client.send_transaction(tx, skip_preflight=True)
    await advance(solana_rpc_url, 1)
    with pytest.raises(TransactionFailedError) as failed:
        await client.wait_for(signature, blockhash.last_valid_block_height)
    assert failed.value.status.slot > 0
    assert await client.balance(payer.pubkey(), "confirmed") == 10**7 - 5000, "only the fee"


async def test_simulation_runs_without_keeping_effects(
    client: ChainClient, solana_rpc_url: str
) -> None:
    payer, to = await funded(client), Keypair().pubkey()
    blockhash = await client.latest_blockhash("processed")
    tx = lamports_to(payer, to, 1_000_000, blockhash.blockhash)
    async with AsyncClient(solana_rpc_url) as raw:
        result = (await raw.simulate_transaction(tx)).value
    assert result.err is None and result.logs and result.units_consumed
    assert await client.balance(to, "processed") == 0
    assert await client.signature_statuses([tx.signatures[0]]) == [None]


async def test_accounts_read_as_base64_and_rent_matches_a_validator(
    solana_rpc_url: str, client: ChainClient
) -> None:
    assert await client.minimum_balance_for_rent_exemption(165) == 2_039_280
    mint = Pubkey.from_string((await rpc(solana_rpc_url, "clob_createMint", 9))["mint"])
    data = await client.account_data(mint, "processed")
    assert data is not None and len(data) == 82 and data[44] == 9
    assert await client.account_data(Keypair().pubkey(), "processed") is None


async def test_transactions_read_in_json_encoding_need_the_version_flag_for_v0(
    solana_rpc_url: str, client: ChainClient
) -> None:
    payer = await funded(client)
    blockhash = await client.latest_blockhash("processed")
    signature = await client.send_transaction(
        lamports_to(payer, Keypair().pubkey(), 1, blockhash.blockhash)
    )
    await advance(solana_rpc_url, 1)
    async with AsyncClient(solana_rpc_url, Confirmed) as raw:
        value = (await raw.get_transaction(signature, max_supported_transaction_version=0)).value
        assert value is not None and value.transaction.meta is not None
        assert value.transaction.meta.fee == 5000
    params = [str(signature), {"commitment": "confirmed"}]
    request = {"jsonrpc": "2.0", "id": 7, "method": "getTransaction", "params": params}
    body = await rpc_raw(solana_rpc_url, request)
    assert body["error"]["code"] == -32015 and body["id"] == 7


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ({"jsonrpc": "2.0", "id": 1, "method": "getBalance", "params": ["not-a-key"]}, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "noSuchMethod", "params": []}, -32601),
        ({"jsonrpc": "2.0", "id": 1, "method": "getSlot", "params": {"a": 1}}, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "getSlot", "params": [{"commitment": 5}]}, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "getSlot", "params": [{"commitment": "max!"}]},
         -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "getSignaturesForAddress",
          "params": [str(Pubkey.default()), {"commitment": "processed"}]}, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "sendTransaction", "params": ["!!"]}, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "requestAirdrop",
          "params": [str(Pubkey.default()), 0]}, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "clob_dropTransactions", "params": [-1]}, -32602),
        ([], -32600),
    ],
)  # fmt: skip
async def test_bad_requests_get_a_json_rpc_error_and_change_nothing(
    solana_rpc_url: str, request_body: object, code: int
) -> None:
    before = await rpc(solana_rpc_url, "clob_switches")
    body = await rpc_raw(solana_rpc_url, request_body)
    assert body["error"]["code"] == code
    after = await rpc(solana_rpc_url, "clob_switches")
    assert {k: v for k, v in after.items() if k not in ("slot", "confirmed", "finalized")} == {
        k: v for k, v in before.items() if k not in ("slot", "confirmed", "finalized")
    }


async def test_balance_changes_of_an_unknown_transaction_are_a_typed_error(
    client: ChainClient,
) -> None:
    with pytest.raises(ChainRpcError):
        await client.token_balance_changes(Keypair().sign_message(b"x"))
