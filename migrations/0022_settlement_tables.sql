-- 0022_settlement_tables: per market, the address lookup table of its settle transactions.
-- With the setting `settlement.lookup_tables`, a market's settle transactions are compiled
-- against one lookup table holding its fixed accounts and its vaults (actors/settlement/
-- tables.py). A table's address depends on the slot it was created at, so the batcher
-- records it here, before the creation is sent: a restarted batcher extends the same table
-- rather than paying for another. An address whose creation never landed has no table
-- behind it; the batcher then makes a new one and replaces the row.
-- System only (no RLS, nothing for clob_api): the API shows no tables.
SET LOCAL ROLE clob_owner;

CREATE TABLE settlement_lookup_tables (
    market_id   INTEGER PRIMARY KEY REFERENCES markets,
    address     TEXT NOT NULL CHECK (length(address) BETWEEN 32 AND 44),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE settlement_lookup_tables IS 'Per market, the address lookup table its settle transactions are compiled against (setting settlement.lookup_tables). System only.';
COMMENT ON COLUMN settlement_lookup_tables.market_id IS 'Market.';
COMMENT ON COLUMN settlement_lookup_tables.address IS 'The table''s address (base58), recorded before its creation is sent.';
COMMENT ON COLUMN settlement_lookup_tables.created_at IS 'When this address was recorded.';

GRANT SELECT, INSERT, UPDATE ON settlement_lookup_tables TO clob_system;
