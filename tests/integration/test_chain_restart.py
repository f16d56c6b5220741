"""The embedded chain as a process: its record survives a restart, it loads extra programs,
it is reused while running, and its faucet key is a 0600 file."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from actors.chain.client import AlreadyProcessedError, ChainClient, TransactionRejectedError
from actors.chain.embedded import EmbeddedChain
from actors.infra.embedded import EmbeddedServiceError
from actors.infra.services import ensure_chain, stop_embedded
from actors.infra.settings import EmbeddedSettings, Settings
from actors.settlement.lookup import ensure_table
from serve_app.operations import status
from tests.support.chain import advance, funded, lamports_to, rpc, signed

pytestmark = pytest.mark.litesvm  # the VM in this process: run last (tests/conftest.py)

MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")


def _memo_elf(path: Path) -> Path:
    """Write the SPL Memo program's ELF (LiteSVM bundles it) to `path`: a real .so file."""
    account = LiteSVM().get_account(MEMO_PROGRAM_ID)
    assert account is not None
    path.write_bytes(bytes(account.data))
    return path


async def _memo(client: ChainClient, payer: Keypair, program_id: Pubkey, text: bytes) -> None:
    blockhash = await client.latest_blockhash("processed")
    tx = signed(payer, [Instruction(program_id, text, [])], blockhash.blockhash)
    await client.send_transaction(tx)


async def test_the_chain_survives_a_restart_and_reloads_its_programs(
    server_dir: Callable[[str], Path],
) -> None:
    data = server_dir("chain-restart")
    program_id = Keypair().pubkey()
    so = _memo_elf(data / "memo.so")
    chain = EmbeddedChain(data, slot_ms=25, programs=(f"{program_id}={so}",))
    url = chain.start()
    try:
        assert chain.start() == url, "a running chain is reused"
        async with ChainClient(url) as client:
            payer, to = await funded(client), Keypair().pubkey()
            mint = (await rpc(url, "clob_createMint", 6))["mint"]
            account = Pubkey.from_string(
                (await rpc(url, "clob_mintTo", mint, str(to), 42_000))["tokenAccount"]
            )
            blockhash = await client.latest_blockhash("processed")
            tx = lamports_to(payer, to, 3_000_000, blockhash.blockhash)
            await client.send_transaction(tx)
            await _memo(client, payer, program_id, b"before")
            owner = await funded(client)
            table = await ensure_table(client, payer=owner, authority=owner, table=None,
                                       addresses=[Keypair().pubkey(), to])  # fmt: skip
            await advance(url, 40)
            before = {
                "slot": await client.slot("processed"),
                "lamports": await client.balance(to, "finalized"),
                "tokens": await client.token_balance(account, "finalized"),
                "history": await client.signatures_since(payer.pubkey(), commitment="finalized"),
                "status": await client.signature_statuses([tx.signatures[0]]),
                "genesis": await rpc(url, "getGenesisHash"),
            }
        assert chain.stop() and not chain.stop()

        url = chain.start()
        async with ChainClient(url) as client:
            assert await client.slot("processed") >= before["slot"]
            assert await client.balance(to, "finalized") == before["lamports"] == 3_000_000
            assert await client.balance(to, "processed") == 3_000_000
            assert await client.token_balance(account, "finalized") == before["tokens"] == 42_000
            history = await client.signatures_since(payer.pubkey(), commitment="finalized")
            assert history == before["history"] and len(history) == 3  # airdrop, transfer, memo
            assert await client.signature_statuses([tx.signatures[0]]) == before["status"]
            assert await rpc(url, "getGenesisHash") == before["genesis"]
            with pytest.raises(AlreadyProcessedError):
                await client.send_transaction(tx)
            await _memo(client, payer, program_id, b"after")  # the program is loaded again
            fresh = await client.latest_blockhash("processed")
            await client.send_transaction(lamports_to(payer, to, 1, fresh.blockhash))
            assert await client.balance(to, "processed") == 3_000_001
            # A lookup table made before the restart still loads `to`, and new ones can be
            # made (the SlotHashes sysvar is rebuilt).
            ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=1))
            message = MessageV0.try_compile(payer.pubkey(), [ix], [table], fresh.blockhash)
            assert bytes(message.address_table_lookups[0].writable_indexes) == bytes([1])
            await client.send_transaction(VersionedTransaction(message, [payer]))
            assert await client.balance(to, "processed") == 3_000_002
            await ensure_table(client, payer=owner, authority=owner, table=None, addresses=[to])
    finally:
        chain.stop()
    assert stat.S_IMODE((chain.home / "faucet.json").stat().st_mode) == 0o600


async def test_a_program_not_loaded_cannot_be_called(solana_rpc_url: str) -> None:
    async with ChainClient(solana_rpc_url) as client:
        payer = await funded(client)
        with pytest.raises(TransactionRejectedError):
            await _memo(client, payer, Keypair().pubkey(), b"nobody home")


def test_a_missing_program_file_stops_the_start_with_the_reason(
    server_dir: Callable[[str], Path],
) -> None:
    chain = EmbeddedChain(server_dir("chain-bad"), programs=(f"{Keypair().pubkey()}=/nope.so",))
    with pytest.raises(EmbeddedServiceError, match=r"existing \.so file"):
        chain.start()
    assert chain.running_pid_port() is None


def test_clob_up_starts_reuses_reports_and_stops_the_embedded_chain(
    server_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOLANA_RPC_URL", raising=False)
    settings = Settings(
        data_dir=server_dir("chain-up"), embedded=EmbeddedSettings(solana_slot_ms=25)
    )
    url, started = ensure_chain(settings)
    try:
        assert started and ensure_chain(settings) == (url, False), "reused, not restarted"
        row = next(r for r in status(settings) if r["name"] == "solana")
        assert (row["status"], row["address"]) == ("up", url)
        assert stop_embedded(settings, ["redis"]) == [], "only what is asked for"
    finally:
        assert stop_embedded(settings) == ["solana"]
    row = next(r for r in status(settings) if r["name"] == "solana")
    assert row["status"] == "down"

    configured = Settings(
        data_dir=settings.data_dir, solana_rpc_url="https://api.devnet.solana.com"
    )
    assert ensure_chain(configured) == ("https://api.devnet.solana.com", False)
    row = next(r for r in status(configured) if r["name"] == "solana")
    assert row["status"] == "configured"
