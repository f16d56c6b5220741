"""On-chain settlement: batcher actors put every committed trade on chain exactly once."""
