"""`actors.settlement.tables` without a chain: what `fits` counts in a market's table."""

from __future__ import annotations

from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.accounts import AccountId
from actors.chain import program as prog
from actors.chain.client import ChainClient
from actors.settlement.lookup import MAX_TABLE_ADDRESSES
from actors.settlement.tables import MarketTables, TableState
from actors.settlement.trades import VaultKey
from actors.settlement.tx import SettleContext, fits

CTX = SettleContext(prog.PROGRAM_ID, Keypair(), 77, Keypair().pubkey(), Keypair().pubkey())
KEYS: list[VaultKey] = [(AccountId(i), side) for i in range(1, 17) for side in ("base", "quote")]


def _keys(n: int) -> list[Pubkey]:
    return [Keypair().pubkey() for _ in range(n)]


async def test_fits_measures_without_a_table_until_the_market_s_table_is_known() -> None:
    async def no_address(_: int) -> None:
        return None

    async def never(_: int, __: str) -> None:
        raise AssertionError("load creates nothing")

    # No call reaches the chain: the market has no recorded table.
    async with ChainClient("http://127.0.0.1:9") as client:
        tables = MarketTables(client, Keypair(), Keypair(), no_address, never)
        check = tables.fits(CTX, 1)
        assert len(KEYS) == 32 and not fits(CTX, [KEYS]) and not check([KEYS])
        await tables.load(1)
        assert check([KEYS])  # a table will be made, with room for all of them
        assert tables.fits(CTX, 2)([KEYS[:2]]) and not tables.fits(CTX, 2)([KEYS])  # per market


def test_a_full_table_counts_no_new_address_and_promised_room_is_kept() -> None:
    held, promised, new = _keys(MAX_TABLE_ADDRESSES - 3), _keys(2), _keys(3)
    state = TableState(Keypair().pubkey(), dict.fromkeys(held))
    state.promise(promised)
    inside, fresh = state.counted([held[0], *promised, *new, new[0]])
    assert inside == [held[0], *promised, new[0]] and fresh == [new[0]]  # one place left
    state.promise(fresh)
    assert state.counted(new[1:]) == ([], [])
    # The table takes the first promise: the second keeps its place, the room is still gone.
    assert state.key is not None
    state.holding(AddressLookupTableAccount(state.key, [*held, promised[0]]))
    assert list(state.promised) == [promised[1], new[0]]
    assert state.counted([promised[1], new[1]]) == ([promised[1]], [])
