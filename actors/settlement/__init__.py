"""On-chain settlement: every trade moved between the users' vaults on chain, exactly once."""
