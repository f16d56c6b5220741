-- 0008_ledger_save: a ledger shard writes what one batch changed with ONE statement.
-- Until now a shard wrapped its writes (credits, balances, fees, reservations, marks) in
-- BEGIN ... COMMIT, up to eight round trips per call; on a busy machine each is a context
-- switch to the database and back, and the reserve and apply calls sit on every order's
-- path. clob_ledger_save() takes the batch as arrays and writes it in one implicit
-- transaction: all or nothing, one round trip. Amounts travel as text and are cast to
-- NUMERIC here, so no float or Decimal ever touches them.
SET LOCAL ROLE clob_owner;

CREATE FUNCTION clob_ledger_save(
    p_shard_id INTEGER,
    c_reference TEXT[], c_account_id BIGINT[], c_asset_id INTEGER[], c_amount TEXT[],
    b_account_id BIGINT[], b_asset_id INTEGER[], b_available TEXT[], b_locked TEXT[],
    f_asset_id INTEGER[], f_amount TEXT[],
    d_market_id INTEGER[], d_order_id TEXT[],
    r_market_id INTEGER[], r_order_id TEXT[], r_account_id BIGINT[], r_asset_id INTEGER[],
    r_side TEXT[], r_reserved TEXT[], r_pending TEXT[], r_limit_price BIGINT[],
    r_open_qty BIGINT[], r_budget BIGINT[], r_fee_numerator TEXT[], r_accepted BOOLEAN[],
    r_request_key TEXT[],
    m_shard_count INTEGER, m_market_id INTEGER[], m_seq BIGINT[]
) RETURNS VOID
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO ledger_credits (reference, account_id, asset_id, amount_atoms)
        SELECT u.reference, u.account_id, u.asset_id, u.amount::numeric
          FROM unnest(c_reference, c_account_id, c_asset_id, c_amount)
               AS u(reference, account_id, asset_id, amount);

        INSERT INTO balances (account_id, asset_id, available_atoms, locked_atoms)
        SELECT u.account_id, u.asset_id, u.available::numeric, u.locked::numeric
          FROM unnest(b_account_id, b_asset_id, b_available, b_locked)
               AS u(account_id, asset_id, available, locked)
        ON CONFLICT (account_id, asset_id) DO UPDATE
           SET available_atoms = EXCLUDED.available_atoms,
               locked_atoms = EXCLUDED.locked_atoms, updated_at = now();

        INSERT INTO fee_balances (shard_id, asset_id, amount_atoms)
        SELECT p_shard_id, u.asset_id, u.amount::numeric
          FROM unnest(f_asset_id, f_amount) AS u(asset_id, amount)
        ON CONFLICT (shard_id, asset_id) DO UPDATE
           SET amount_atoms = EXCLUDED.amount_atoms, updated_at = now();

        -- One primary-key DELETE per key: a join of the whole batch is planned from
        -- statistics that lag a fast-growing table (seen scanning it once per key).
        FOR i IN 1 .. coalesce(array_length(d_order_id, 1), 0) LOOP
            DELETE FROM ledger_reservations
             WHERE market_id = d_market_id[i] AND order_id = d_order_id[i];
        END LOOP;

        INSERT INTO ledger_reservations (market_id, order_id, account_id, asset_id, side,
            reserved_atoms, pending_atoms, limit_price_ticks, open_qty_lots,
            quote_budget_tick_lots, fee_numerator, accepted, request_key)
        SELECT u.market_id, u.order_id, u.account_id, u.asset_id, u.side,
               u.reserved::numeric, u.pending::numeric, u.limit_price, u.open_qty, u.budget,
               u.fee_numerator::numeric, u.accepted, u.request_key
          FROM unnest(r_market_id, r_order_id, r_account_id, r_asset_id, r_side, r_reserved,
                      r_pending, r_limit_price, r_open_qty, r_budget, r_fee_numerator,
                      r_accepted, r_request_key)
               AS u(market_id, order_id, account_id, asset_id, side, reserved, pending,
                    limit_price, open_qty, budget, fee_numerator, accepted, request_key)
        ON CONFLICT (market_id, order_id) DO UPDATE
           SET reserved_atoms = EXCLUDED.reserved_atoms, pending_atoms = EXCLUDED.pending_atoms,
               limit_price_ticks = EXCLUDED.limit_price_ticks,
               open_qty_lots = EXCLUDED.open_qty_lots,
               quote_budget_tick_lots = EXCLUDED.quote_budget_tick_lots,
               fee_numerator = EXCLUDED.fee_numerator, accepted = EXCLUDED.accepted,
               request_key = EXCLUDED.request_key, updated_at = now();

        INSERT INTO ledger_shard_marks (shard_id, shard_count, market_id, applied_journal_seq)
        SELECT p_shard_id, m_shard_count, u.market_id, u.seq
          FROM unnest(m_market_id, m_seq) AS u(market_id, seq)
        ON CONFLICT (shard_id, shard_count, market_id) DO UPDATE
           SET applied_journal_seq = EXCLUDED.applied_journal_seq, updated_at = now();
    END
    $$;
COMMENT ON FUNCTION clob_ledger_save IS
    'Write everything one ledger shard batch changed (credits, balances, fees, reservations, marks) in one statement, atomically.';

REVOKE EXECUTE ON FUNCTION clob_ledger_save FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clob_ledger_save TO clob_system;
