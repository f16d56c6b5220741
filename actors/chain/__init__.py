"""Custody on Solana: the chain layer (RPC client, embedded chain, keys) and the program."""
