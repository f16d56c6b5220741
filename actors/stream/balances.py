"""The balance messages of a ledger shard: after a call changed balances, one
`AccountBatch` per account with the changed assets' `available` and `locked`, as REST's
`GET /balances` computes them (holds count as locked)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from actors.accounts import AccountId
from actors.stream.messages import AccountBatch, Balance, account_channel, encode


def balance_messages(
    touched: Iterable[tuple[AccountId, str]],
    balance: Callable[[AccountId, str], tuple[int, int]],
    now_ms: int,
) -> list[tuple[str, bytes]]:
    """Return (channel, message) per account among `touched`, its assets by symbol.

    Args:
        touched: The (account, asset) pairs whose balance may have changed.
        balance: (available, locked) atoms of an account and asset now.
        now_ms: The messages' `E`.
    """
    assets: defaultdict[AccountId, list[str]] = defaultdict(list)
    for account, asset in touched:
        assets[account].append(asset)
    out = []
    for account in sorted(assets):
        balances = [Balance(a, *balance(account, a)) for a in sorted(assets[account])]
        out.append(
            (account_channel(account), encode(AccountBatch(account, now_ms, [], [], balances)))
        )
    return out
