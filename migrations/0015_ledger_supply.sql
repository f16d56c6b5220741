-- 0015_ledger_supply: the total credited of each asset, bounded by what an SPL token amount
-- holds (a u64). Conservation makes every balance, locked amount, fill and net fee of an
-- asset at most that total, so bounding it bounds them all (docs/api.md, "Amount bounds").
-- A ledger shard checks the total before it credits; a shard sees only its own accounts, so
-- two shards crediting the same asset at once could each pass that check: this row, kept
-- by a trigger in the credit's own transaction, and its CHECK are what make the bound hold
-- whatever the race. The CHECK is NOT VALID so that a data directory already past the bound
-- still migrates (its total then only refuses further credits).
SET LOCAL ROLE clob_owner;

CREATE TABLE ledger_supply (
    asset_id        INTEGER PRIMARY KEY REFERENCES assets,
    credited_atoms  NUMERIC(38,0) NOT NULL
);
INSERT INTO ledger_supply (asset_id, credited_atoms)
    SELECT asset_id, sum(amount_atoms) FROM ledger_credits GROUP BY asset_id;
ALTER TABLE ledger_supply ADD CONSTRAINT ledger_supply_u64
    CHECK (credited_atoms BETWEEN 0 AND 18446744073709551615) NOT VALID;
COMMENT ON TABLE ledger_supply IS 'Total credited per asset (sum of ledger_credits), kept by a trigger; bounded by u64. System only.';
COMMENT ON COLUMN ledger_supply.asset_id IS 'Asset.';
COMMENT ON COLUMN ledger_supply.credited_atoms IS 'Sum of the asset''s credits, atoms; at most 2^64 - 1 (ledger_supply_u64).';

CREATE FUNCTION clob_count_credit() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO ledger_supply AS s (asset_id, credited_atoms)
            VALUES (NEW.asset_id, NEW.amount_atoms)
            ON CONFLICT (asset_id)
            DO UPDATE SET credited_atoms = s.credited_atoms + EXCLUDED.credited_atoms;
        RETURN NULL;
    END
    $$;
COMMENT ON FUNCTION clob_count_credit() IS
    'Row trigger: add a credit to its asset''s ledger_supply total (the CHECK refuses a total past u64).';
CREATE TRIGGER ledger_credits_supply
    AFTER INSERT ON ledger_credits
    FOR EACH ROW EXECUTE FUNCTION clob_count_credit();

GRANT SELECT, INSERT, UPDATE ON ledger_supply TO clob_system;
