"""Custody on Solana: the exchange program's client, the chain layer (RPC client, embedded
chain, keys)."""
