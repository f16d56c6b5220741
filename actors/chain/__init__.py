"""The Solana side of custody: the exchange program's client, the chain layer and its RPC."""
