-- 0017_ledger_debits: the ledger's debits (withdrawals), the mirror of ledger_credits.
-- Conservation per asset becomes: sum(balances) + sum(fee_balances) = sum(ledger_credits)
-- - sum(ledger_debits). A shard writes its debits in the same statement as the balances
-- they move (clob_ledger_save_json, now with a ninth argument), so a recovery that loads the
-- tables keeps the equation. ledger_supply (0015) counts the debits too, and its u64 bound
-- now applies to what the ledger holds (credited - debited): a refund after a failed
-- withdrawal is a credit, so a total of credits alone would fill up over time.
SET LOCAL ROLE clob_owner;

CREATE TABLE ledger_debits (
    reference     TEXT PRIMARY KEY CHECK (length(reference) BETWEEN 1 AND 200),
    account_id    BIGINT NOT NULL REFERENCES accounts,
    asset_id      INTEGER NOT NULL REFERENCES assets,
    amount_atoms  NUMERIC(38,0) NOT NULL CHECK (amount_atoms > 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ledger_debits_account_idx ON ledger_debits (account_id, asset_id);
COMMENT ON TABLE ledger_debits IS 'Debits taken from available balances (withdrawals), exactly once per reference. System only.';
COMMENT ON COLUMN ledger_debits.reference IS 'Idempotency key of the debit (withdrawal:<withdrawal_id>): a repeat with the same reference changes nothing.';
COMMENT ON COLUMN ledger_debits.account_id IS 'Account debited.';
COMMENT ON COLUMN ledger_debits.asset_id IS 'Asset debited.';
COMMENT ON COLUMN ledger_debits.amount_atoms IS 'Amount taken from available, atoms (> 0).';
COMMENT ON COLUMN ledger_debits.created_at IS 'When it was applied.';
GRANT SELECT, INSERT ON ledger_debits TO clob_system;
-- A withdrawal takes available funds at once (a debit), it locks nothing.
COMMENT ON COLUMN balances.locked_atoms IS 'Funds reserved for open orders, atoms, >= 0.';
COMMENT ON TABLE ledger_reservations IS 'Locked funds per open order (ledger shards only). Sum of an account''s rows in an asset = its locked balance.';

-- ---------------------------------------------------------------------------------------
ALTER TABLE ledger_supply ADD COLUMN debited_atoms NUMERIC(38,0) NOT NULL DEFAULT 0;
COMMENT ON COLUMN ledger_supply.debited_atoms IS 'Sum of the asset''s debits, atoms.';
COMMENT ON COLUMN ledger_supply.credited_atoms IS 'Sum of the asset''s credits, atoms; credited - debited is at most 2^64 - 1 (ledger_supply_u64).';
COMMENT ON TABLE ledger_supply IS 'Credits and debits per asset (sums of ledger_credits and ledger_debits), kept by triggers; what the ledger holds (credited - debited) is bounded by u64. System only.';
ALTER TABLE ledger_supply DROP CONSTRAINT ledger_supply_u64;
ALTER TABLE ledger_supply ADD CONSTRAINT ledger_supply_u64
    CHECK (credited_atoms - debited_atoms BETWEEN 0 AND 18446744073709551615) NOT VALID;

CREATE FUNCTION clob_count_debit() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
    BEGIN
        -- An UPDATE, not an upsert: the row exists (a debit only takes what credits put
        -- in), and an upsert's proposed row (0 credited) would fail the CHECK first.
        UPDATE ledger_supply SET debited_atoms = debited_atoms + NEW.amount_atoms
         WHERE asset_id = NEW.asset_id;
        RETURN NULL;
    END
    $$;
COMMENT ON FUNCTION clob_count_debit() IS
    'Row trigger: add a debit to its asset''s ledger_supply debited total.';
CREATE TRIGGER ledger_debits_supply
    AFTER INSERT ON ledger_debits
    FOR EACH ROW EXECUTE FUNCTION clob_count_debit();

-- ---------------------------------------------------------------------------------------
-- The shard's write, with the debits as a ninth argument (same semantics as 0011 else).
CREATE FUNCTION clob_ledger_save_json(
    p_shard_id INTEGER, p_shard_count INTEGER, p_credits JSON, p_balances JSON, p_fees JSON,
    p_dropped JSON, p_reservations JSON, p_marks JSON, p_debits JSON
) RETURNS VOID
    LANGUAGE plpgsql
    AS $$
    DECLARE
        d RECORD;
    BEGIN
        INSERT INTO ledger_credits (reference, account_id, asset_id, amount_atoms)
        SELECT c.reference, c.account_id, c.asset_id, c.amount
          FROM json_to_recordset(p_credits)
               AS c(reference TEXT, account_id BIGINT, asset_id INTEGER, amount NUMERIC);

        INSERT INTO ledger_debits (reference, account_id, asset_id, amount_atoms)
        SELECT x.reference, x.account_id, x.asset_id, x.amount
          FROM json_to_recordset(p_debits)
               AS x(reference TEXT, account_id BIGINT, asset_id INTEGER, amount NUMERIC);

        INSERT INTO balances (account_id, asset_id, available_atoms, locked_atoms)
        SELECT b.account_id, b.asset_id, b.available, b.locked
          FROM json_to_recordset(p_balances)
               AS b(account_id BIGINT, asset_id INTEGER, available NUMERIC, locked NUMERIC)
        ON CONFLICT (account_id, asset_id) DO UPDATE
           SET available_atoms = EXCLUDED.available_atoms,
               locked_atoms = EXCLUDED.locked_atoms, updated_at = now();

        INSERT INTO fee_balances (shard_id, asset_id, amount_atoms)
        SELECT p_shard_id, f.asset_id, f.amount
          FROM json_to_recordset(p_fees) AS f(asset_id INTEGER, amount NUMERIC)
        ON CONFLICT (shard_id, asset_id) DO UPDATE
           SET amount_atoms = EXCLUDED.amount_atoms, updated_at = now();

        FOR d IN SELECT * FROM json_to_recordset(p_dropped) AS x(market_id INTEGER, order_id TEXT)
        LOOP
            DELETE FROM ledger_reservations
             WHERE market_id = d.market_id AND order_id = d.order_id;
        END LOOP;

        INSERT INTO ledger_reservations (market_id, order_id, account_id, asset_id, side,
            reserved_atoms, pending_atoms, limit_price_ticks, open_qty_lots,
            quote_budget_tick_lots, fee_numerator, accepted, request_key)
        SELECT r.market_id, r.order_id, r.account_id, r.asset_id, r.side, r.reserved,
               r.pending, r.limit_price, r.open_qty, r.budget, r.fee_numerator, r.accepted,
               r.request_key
          FROM json_to_recordset(p_reservations)
               AS r(market_id INTEGER, order_id TEXT, account_id BIGINT, asset_id INTEGER,
                    side TEXT, reserved NUMERIC, pending NUMERIC, limit_price BIGINT,
                    open_qty BIGINT, budget BIGINT, fee_numerator NUMERIC, accepted BOOLEAN,
                    request_key TEXT)
        ON CONFLICT (market_id, order_id) DO UPDATE
           SET reserved_atoms = EXCLUDED.reserved_atoms, pending_atoms = EXCLUDED.pending_atoms,
               limit_price_ticks = EXCLUDED.limit_price_ticks,
               open_qty_lots = EXCLUDED.open_qty_lots,
               quote_budget_tick_lots = EXCLUDED.quote_budget_tick_lots,
               fee_numerator = EXCLUDED.fee_numerator, accepted = EXCLUDED.accepted,
               request_key = EXCLUDED.request_key, updated_at = now();

        INSERT INTO ledger_shard_marks (shard_id, shard_count, market_id, applied_journal_seq)
        SELECT p_shard_id, p_shard_count, m.market_id, m.seq
          FROM json_to_recordset(p_marks) AS m(market_id INTEGER, seq BIGINT)
        ON CONFLICT (shard_id, shard_count, market_id) DO UPDATE
           SET applied_journal_seq = EXCLUDED.applied_journal_seq, updated_at = now();
    END
    $$;
COMMENT ON FUNCTION clob_ledger_save_json(INTEGER, INTEGER, JSON, JSON, JSON, JSON, JSON, JSON, JSON) IS
    'Write what a ledger shard changed (credits, debits, balances, fees, reservations, marks; JSON arrays of rows) in one statement, atomically.';
REVOKE EXECUTE ON FUNCTION clob_ledger_save_json(INTEGER, INTEGER, JSON, JSON, JSON, JSON, JSON, JSON, JSON) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clob_ledger_save_json(INTEGER, INTEGER, JSON, JSON, JSON, JSON, JSON, JSON, JSON) TO clob_system;

DROP FUNCTION clob_ledger_save_json(INTEGER, INTEGER, JSON, JSON, JSON, JSON, JSON, JSON);
