"""On-chain settlement: committed trades put on Solana in batches, each exactly once."""
