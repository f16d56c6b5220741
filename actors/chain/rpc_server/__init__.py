"""The embedded Solana chain: a JSON-RPC server over `solders.litesvm` (a validator stand-in).

Run it as `python -m actors.chain.rpc_server --port P --data-dir D --slot-ms 400
[--program <id>=<path.so>]...`; `actors.chain.embedded` starts and stops it like the
embedded PostgreSQL and Redis. It imports solders (and spl's instruction builders), never
the `solana` client.
"""
