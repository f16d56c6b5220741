"""The reconciliation formula: what the vaults on chain must hold, given the ledger.

Per asset, over every vault of its mint (users' vaults and the fee vault):

    on_chain = ledger + deposits_pending + withdrawals_in_flight - unsettled

- `ledger` = available + locked + fees: what the ledger owes its users and itself.
- `deposits_pending`: deposits on chain that the ledger has not credited yet (they wait for
  their confirmation depth).
- `withdrawals_in_flight`: withdrawals the ledger has debited that have not left a vault
  yet (debited first, sent after): the ledger no longer counts them, the vault still holds
  them, so they are added.
- `unsettled`: what trades not yet settled on chain moved into the vaults of this asset in
  the ledger only (the ledger counts it, the chain does not yet). A trade moves an asset
  between users' balances and the fee balance, so summed over every vault of one asset
  (the fee vault included) its net is zero; per vault it is not. Until settlement runs it
  is the whole of the trading (0 per asset); afterwards, the net of the trades whose batch
  has not landed (0 per asset too, unless a batch moves other amounts than the ledger did,
  which is then a difference).

The formula holds at every quiescent point, before settlement exists and after. Any
`difference` (on chain minus expected) is shown, never hidden: a positive one is money the
ledger does not know of (a deposit not yet seen), a negative one is money missing.

The same formula holds per vault (`vault_reserves`): a user's vault of an asset against
that account's balance (available + locked), its deposits pending, its withdrawals in
flight and the net of its unsettled trades; the asset's fee vault against the fee
balances (summed over the shards) and the fees of the unsettled trades.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors.accounts import AccountId

VaultKey = tuple[AccountId | None, str]
"""A vault: (account id, asset symbol); account None is the asset's fee vault."""


def expected_on_chain(ledger: int, deposits_pending: int, withdrawals_in_flight: int,
                      unsettled: int) -> int:  # fmt: skip
    """Return what vaults should hold: the formula, for an asset and for one vault alike."""
    return ledger + deposits_pending + withdrawals_in_flight - unsettled


@dataclass(frozen=True, slots=True)
class AssetReserves:
    """The terms of the formula for one asset, atoms.

    Attributes:
        asset: The asset symbol.
        on_chain: What its vaults hold on chain.
        available: The ledger's available balances.
        locked: The ledger's locked balances.
        fees: The ledger's fee balances.
        deposits_pending: Deposits on chain not yet credited.
        withdrawals_in_flight: Withdrawals debited, not yet out of a vault.
        unsettled: The net of trades not yet settled into these vaults.
    """

    asset: str
    on_chain: int
    available: int
    locked: int
    fees: int
    deposits_pending: int
    withdrawals_in_flight: int
    unsettled: int = 0

    @property
    def ledger(self) -> int:
        """Return what the ledger holds of the asset: available + locked + fees."""
        return self.available + self.locked + self.fees

    @property
    def expected(self) -> int:
        """Return what the vaults should hold by the formula."""
        return expected_on_chain(self.ledger, self.deposits_pending, self.withdrawals_in_flight,
                                 self.unsettled)  # fmt: skip

    @property
    def difference(self) -> int:
        """Return on chain minus expected (0 when they agree)."""
        return self.on_chain - self.expected

    def as_dict(self) -> dict[str, int | str]:
        """Return every term, the ledger, the expected holdings and the difference."""
        return {
            "asset": self.asset, "on_chain": self.on_chain, "available": self.available,
            "locked": self.locked, "fees": self.fees, "ledger": self.ledger,
            "deposits_pending": self.deposits_pending,
            "withdrawals_in_flight": self.withdrawals_in_flight, "unsettled": self.unsettled,
            "expected": self.expected, "difference": self.difference,
        }  # fmt: skip


def reserves(
    on_chain: Mapping[str, int],
    ledger: Mapping[str, Mapping[str, int]],
    deposits_pending: Mapping[str, int],
    withdrawals_in_flight: Mapping[str, int],
    unsettled: Mapping[str, int] | None = None,
) -> list[AssetReserves]:
    """Return the formula's terms for every asset any input names, by symbol.

    Args:
        on_chain: Vault holdings by asset.
        ledger: The ledger's totals by asset (`available`, `locked`, `fees`; others ignored).
        deposits_pending: Uncredited deposits by asset.
        withdrawals_in_flight: Debited withdrawals not yet out of a vault, by asset.
        unsettled: Unsettled trades' net by asset (none before settlement).
    """
    unsettled = unsettled or {}
    assets = set(on_chain) | set(ledger) | set(deposits_pending) | set(withdrawals_in_flight)
    rows = []
    for asset in sorted(assets | set(unsettled)):
        totals = ledger.get(asset, {})
        rows.append(AssetReserves(
            asset, on_chain.get(asset, 0), totals.get("available", 0), totals.get("locked", 0),
            totals.get("fees", 0), deposits_pending.get(asset, 0),
            withdrawals_in_flight.get(asset, 0), unsettled.get(asset, 0),
        ))  # fmt: skip
    return rows


@dataclass(frozen=True, slots=True)
class VaultReserves:
    """The terms of the formula for one vault, atoms.

    Attributes:
        account_id: The account whose vault it is; None: the asset's fee vault.
        asset: The asset symbol.
        address: The vault's address (base58).
        on_chain: What it holds on chain.
        ledger: The account's available + locked (the fee vault: the fee balance).
        deposits_pending: Its deposits on chain not yet credited.
        withdrawals_in_flight: Its withdrawals debited, not yet out of it.
        unsettled: The net of the account's trades not yet settled on chain (the fee
            vault: their fees).
    """

    account_id: AccountId | None
    asset: str
    address: str
    on_chain: int
    ledger: int
    deposits_pending: int
    withdrawals_in_flight: int
    unsettled: int

    @property
    def expected(self) -> int:
        """Return what the vault should hold by the formula."""
        return expected_on_chain(self.ledger, self.deposits_pending, self.withdrawals_in_flight,
                                 self.unsettled)  # fmt: skip

    @property
    def difference(self) -> int:
        """Return on chain minus expected (0 when they agree)."""
        return self.on_chain - self.expected

    def as_dict(self) -> dict[str, int | str | None]:
        """Return every term, the expected holdings and the difference."""
        return {
            "account_id": self.account_id, "asset": self.asset, "address": self.address,
            "on_chain": self.on_chain, "ledger": self.ledger,
            "deposits_pending": self.deposits_pending,
            "withdrawals_in_flight": self.withdrawals_in_flight, "unsettled": self.unsettled,
            "expected": self.expected, "difference": self.difference,
        }  # fmt: skip


def vault_reserves(
    addresses: Mapping[VaultKey, str],
    *,
    on_chain: Mapping[VaultKey, int],
    ledger: Mapping[VaultKey, int],
    deposits_pending: Mapping[VaultKey, int],
    withdrawals_in_flight: Mapping[VaultKey, int],
    unsettled: Mapping[VaultKey, int],
) -> list[VaultReserves]:
    """Return the formula's terms for every vault of `addresses`, by asset then account
    (the fee vault first).

    Args:
        addresses: Every vault to check, with its address; a term of a vault not listed
            here raises (its vault must be read on chain too).
        on_chain: Vault holdings (absent: 0).
        ledger: Available + locked per user's vault, the fee balance per fee vault.
        deposits_pending: Uncredited deposits per vault.
        withdrawals_in_flight: Debited withdrawals not yet out of the vault.
        unsettled: Unsettled trades' net per vault.

    Raises:
        KeyError: A term names a vault that `addresses` does not list.
    """
    for terms in (on_chain, ledger, deposits_pending, withdrawals_in_flight, unsettled):
        missing = set(terms) - set(addresses)
        if missing:
            raise KeyError(f"vaults without an address: {sorted(missing, key=_order)[:5]}")
    rows = []
    for key in sorted(addresses, key=_order):
        rows.append(VaultReserves(
            key[0], key[1], addresses[key], on_chain.get(key, 0), ledger.get(key, 0),
            deposits_pending.get(key, 0), withdrawals_in_flight.get(key, 0),
            unsettled.get(key, 0),
        ))  # fmt: skip
    return rows


def _order(key: VaultKey) -> tuple[str, int]:
    return key[1], -1 if key[0] is None else key[0]
