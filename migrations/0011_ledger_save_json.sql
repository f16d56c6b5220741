-- 0011_ledger_save_json: a ledger shard's write arrives as JSON documents of rows instead
-- of 29 arrays (as the projection since 0010): building and type-checking the arrays cost
-- the shard more CPU than the change itself. Same semantics as clob_ledger_save (0008),
-- which this replaces: one statement, all or nothing. Amounts arrive as JSON numbers and
-- are read as NUMERIC: exact at any size.
SET LOCAL ROLE clob_owner;

CREATE FUNCTION clob_ledger_save_json(
    p_shard_id INTEGER, p_shard_count INTEGER, p_credits JSON, p_balances JSON, p_fees JSON,
    p_dropped JSON, p_reservations JSON, p_marks JSON
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

        -- One primary-key DELETE per key (see 0008).
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
COMMENT ON FUNCTION clob_ledger_save_json IS
    'Write what a ledger shard changed (credits, balances, fees, reservations, marks; JSON arrays of rows) in one statement, atomically.';
REVOKE EXECUTE ON FUNCTION clob_ledger_save_json FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clob_ledger_save_json TO clob_system;

DROP FUNCTION clob_ledger_save;
