"""Compute units of each exchange-program instruction, in the Solana VM (LiteSVM).

Runs the built program (`make program`) in-process and prints the compute units every
instruction consumed: the admin instructions once, `register_vault` and `withdraw` over
several account ids (the vault PDA's bump search varies with the id), and `settle` for
batches of 1, 2, 5, 10 and 20 vault entries (one mint, debits and credits of unequal
sizes, so the greedy netting needs about one transfer per entry). Asserts nothing.

    .venv/bin/python bench/program_cu.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from solders.pubkey import Pubkey  # noqa: E402

from actors.accounts import AccountId  # noqa: E402
from actors.chain import program as prog  # noqa: E402
from tests.support.program_kit import (  # noqa: E402
    PROGRAM_SO,
    Exchange,
    ProgramChain,
    funded_vault,
)

SETTLE_SIZES = (1, 2, 5, 10, 20)
ACCOUNT_IDS = range(1, 21)


def admin_units(chain: ProgramChain) -> tuple[dict[str, int], Exchange]:
    """Initialise an exchange step by step, recording each instruction's units."""
    pid, admin, payer = chain.program_id, chain.admin.pubkey(), chain.payer.pubkey()
    units = {}
    ix = prog.ix_initialize(pid, payer, admin, chain.operator.pubkey())
    units["initialize"] = chain.ok(ix, chain.admin).compute_units
    base, quote = chain.create_mint(9), chain.create_mint(6)
    for mint in (base, quote):
        ix = prog.ix_add_asset(
            pid, admin=admin, payer=payer, mint=mint, cap_atoms=10**15, window_slots=216_000
        )
        units["add_asset"] = chain.ok(ix, chain.admin).compute_units
    ix = prog.ix_add_market(
        pid, admin=admin, payer=payer, market_id=1, base_mint=base, quote_mint=quote
    )
    units["add_market"] = chain.ok(ix, chain.admin).compute_units
    ix = prog.ix_update_asset(pid, admin=admin, mint=base, cap_atoms=10**15, window_slots=216_000)
    units["update_asset"] = chain.ok(ix, chain.admin).compute_units
    ix = prog.ix_update_exchange(pid, admin=admin, status=prog.STATUS_ACTIVE)
    units["update_exchange"] = chain.ok(ix, chain.admin).compute_units
    ix = prog.ix_rotate_authorities(
        pid, admin=admin, new_admin=admin, new_operator=chain.operator.pubkey()
    )
    units["rotate_authorities"] = chain.ok(ix, chain.admin).compute_units
    return units, Exchange(chain, base, quote, 1)


def vault_units(ex: Exchange) -> dict[str, list[int]]:
    """Register a vault and withdraw from it (both paths) for each account id."""
    chain, pid = ex.chain, ex.chain.program_id
    operator = chain.operator.pubkey()
    dest = chain.token_account(ex.base, chain.funded().pubkey())
    units: dict[str, list[int]] = {"register_vault": [], "withdraw": [], "withdraw_approved": []}
    for n in ACCOUNT_IDS:
        account = AccountId(n)
        ix = prog.ix_register_vault(pid, operator=operator, mint=ex.base, account_id=account)
        units["register_vault"].append(chain.ok(ix, chain.operator).compute_units)
        chain.mint_to(ex.base, prog.vault_pda(pid, ex.base, account), 1_000)
        common = {
            "operator": operator,
            "mint": ex.base,
            "account_id": account,
            "amount_atoms": 10,
            "destination": dest,
        }
        ix = prog.ix_withdraw(pid, withdrawal_id=2 * n, **common)  # type: ignore[arg-type]
        units["withdraw"].append(chain.ok(ix, chain.operator).compute_units)
        ix = prog.ix_withdraw_approved(
            pid,
            admin=chain.admin.pubkey(),
            withdrawal_id=2 * n + 1,
            **common,  # type: ignore[arg-type]
        )
        units["withdraw_approved"].append(chain.ok(ix, chain.operator, chain.admin).compute_units)
    return units


def settle_units(ex: Exchange, entries: int, first_account: int, batch_id: int) -> tuple[int, int]:
    """Settle one batch of `entries` quote vaults; return (units, token transfers)."""
    chain = ex.chain
    debtors = entries // 2
    vaults: list[tuple[Pubkey, int]] = []
    for i in range(entries):
        funded = 100_000 if i < debtors else 0
        vaults.append((funded_vault(ex, ex.quote, first_account + i, funded), 0))
    deltas = [-(1_000 + 37 * i) for i in range(debtors)]
    credits = entries - debtors
    owed = -sum(deltas)
    shares = [owed // credits + (1 if i < owed % credits else 0) for i in range(credits)]
    deltas += shares
    batch = [(vault, delta) for (vault, _), delta in zip(vaults, deltas, strict=True)]
    ix = prog.ix_settle(
        chain.program_id,
        operator=chain.operator.pubkey(),
        market_id=ex.market_id,
        batch_id=batch_id,
        entries=batch,
    )
    sent = chain.ok(ix, chain.operator)
    invoke = f"Program {prog.TOKEN_PROGRAM_ID} invoke"
    return sent.compute_units, sum(line.startswith(invoke) for line in sent.logs)


def main() -> None:
    """Print the compute units of every instruction."""
    chain = ProgramChain(PROGRAM_SO.read_bytes())
    units, ex = admin_units(chain)
    for name, value in units.items():
        print(f"{name:20} {value:>8,} CU")
    for name, values in vault_units(ex).items():
        print(
            f"{name:20} {statistics.median(values):>8,.0f} CU median, "
            f"{min(values):,}-{max(values):,} over {len(values)} account ids"
        )
    first = 1_000
    for batch_id, size in enumerate(SETTLE_SIZES, start=1):
        cu, transfers = settle_units(ex, size, first, batch_id)
        first += size
        print(f"settle {size:>2} entries    {cu:>8,} CU ({transfers} transfers)")


if __name__ == "__main__":
    main()
