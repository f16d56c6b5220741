"""The embedded chain's fault switches, and what the product's wrapper makes of each."""

from __future__ import annotations

import asyncio

import pytest
from solders.keypair import Keypair

from actors.chain.client import (
    BlockhashExpiredError,
    ChainClient,
    ChainRpcError,
    ChainUnavailableError,
    TransactionExpiredError,
)
from actors.infra.embedded import free_port
from tests.support.chain import advance, funded, lamports_to, rpc


async def test_a_dropped_transaction_never_lands_and_then_expires(
    solana_rpc_url: str, client: ChainClient, paused: None
) -> None:
    payer, to = await funded(client), Keypair().pubkey()
    await rpc(solana_rpc_url, "clob_dropTransactions", 1)
    blockhash = await client.latest_blockhash("processed")
    signature = await client.send_transaction(lamports_to(payer, to, 1_000, blockhash.blockhash))
    await advance(solana_rpc_url, 40)
    assert await client.signature_statuses([signature]) == [None]
    assert await client.balance(to, "processed") == 0
    assert await client.signatures_since(to) == []

    await advance(solana_rpc_url, 150)
    with pytest.raises(TransactionExpiredError):
        await client.wait_for(signature, blockhash.last_valid_block_height, poll_s=0.01)

    fresh = await client.latest_blockhash("processed")
    landed = await client.send_transaction(lamports_to(payer, to, 1_000, fresh.blockhash))
    assert (await client.signature_statuses([landed]))[0] is not None, "only one was dropped"


async def test_a_blockhash_is_valid_for_150_slots_and_refused_at_151(
    solana_rpc_url: str, client: ChainClient, paused: None
) -> None:
    payer, to = await funded(client), Keypair().pubkey()
    blockhash = await client.latest_blockhash("processed")
    slot = await client.slot("processed")
    assert blockhash.last_valid_block_height == slot + 150

    await advance(solana_rpc_url, 150)
    assert await rpc(solana_rpc_url, "isBlockhashValid", str(blockhash.blockhash),
                     {"commitment": "processed"}) == {"context": {"apiVersion": "0.26.0-litesvm",
                     "slot": slot + 150}, "value": True}  # fmt: skip
    await advance(solana_rpc_url, 1)
    tx = lamports_to(payer, to, 1_000, blockhash.blockhash)
    with pytest.raises(BlockhashExpiredError) as refused:
        await client.send_transaction(tx)
    assert "Blockhash not found" in refused.value.message
    assert await client.send_transaction(tx, skip_preflight=True) == tx.signatures[0]
    assert await client.signature_statuses([tx.signatures[0]]) == [None], "accepted, never lands"


async def test_expiring_every_blockhash_refuses_the_ones_handed_out(
    solana_rpc_url: str, client: ChainClient, paused: None
) -> None:
    payer, to = await funded(client), Keypair().pubkey()
    old = await client.latest_blockhash("processed")
    await rpc(solana_rpc_url, "clob_expireBlockhashes")
    valid = await rpc(solana_rpc_url, "isBlockhashValid", str(old.blockhash))
    assert valid["value"] is False
    with pytest.raises(BlockhashExpiredError):
        await client.send_transaction(lamports_to(payer, to, 1_000, old.blockhash))
    new = await client.latest_blockhash("processed")
    assert new.blockhash != old.blockhash
    await client.send_transaction(lamports_to(payer, to, 1_000, new.blockhash))
    assert await client.balance(to, "processed") == 1_000


async def test_injected_rpc_errors_surface_as_typed_errors(
    solana_rpc_url: str, client: ChainClient, paused: None
) -> None:
    await rpc(solana_rpc_url, "clob_failRequests", 2, {"method": "getSlot"})
    for _ in range(2):
        with pytest.raises(ChainUnavailableError):
            await client.slot()
        await client.balance(Keypair().pubkey())  # other methods are not affected
    await client.slot()

    await rpc(solana_rpc_url, "clob_failRequests", 1, {"code": -32602, "message": "bad"})
    with pytest.raises(ChainRpcError) as failed:
        await client.latest_blockhash()
    assert failed.value.kind == "InvalidParams"
    await client.latest_blockhash()


async def test_delayed_confirmations_hold_a_transaction_at_processed(
    solana_rpc_url: str, client: ChainClient, paused: None
) -> None:
    payer, to = await funded(client), Keypair().pubkey()
    await advance(solana_rpc_url, 1)
    await rpc(solana_rpc_url, "clob_delayConfirmations", 5)
    blockhash = await client.latest_blockhash("processed")
    signature = await client.send_transaction(lamports_to(payer, to, 1_000, blockhash.blockhash))
    await advance(solana_rpc_url, 5)
    (status,) = await client.signature_statuses([signature])
    assert status is not None and status.commitment == "processed"
    assert await client.balance(to, "confirmed") == 0
    await advance(solana_rpc_url, 1)
    (status,) = await client.signature_statuses([signature])
    assert status is not None and status.commitment == "confirmed"
    await advance(solana_rpc_url, 30)  # 36 deep: finality needs 32 + the 5 of delay
    (status,) = await client.signature_statuses([signature])
    assert status is not None and status.commitment == "confirmed", "finality is delayed too"
    await advance(solana_rpc_url, 1)
    (status,) = await client.signature_statuses([signature])
    assert status is not None and status.commitment == "finalized"


async def test_a_silent_or_absent_node_is_unavailable_within_the_timeout() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ChainClient(f"http://127.0.0.1:{port}", timeout_s=0.3) as silent:
            with pytest.raises(ChainUnavailableError):
                await silent.slot()
            assert not await silent.is_healthy()
    finally:
        server.close()
    async with ChainClient(f"http://127.0.0.1:{free_port()}", timeout_s=2) as absent:
        with pytest.raises(ChainUnavailableError):
            await absent.slot()
        assert not await absent.is_healthy()
