"""The balance ledger: pure core (`core`, `rules`), PostgreSQL adapter (`store`), Ray shell."""
