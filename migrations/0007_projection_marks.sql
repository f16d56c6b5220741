-- 0007_projection_marks: the orders/trades projection leaves the journal's transaction.
-- A market actor commits a batch's journal rows alone (the acknowledgement point), then
-- writes the batch's orders and trades rows with one call of clob_project_batch() (one
-- statement, so one implicit transaction and one round trip), off the critical path and
-- overlapped with the next batch. This table records how far that projection got, so
-- a recovering actor re-projects exactly the journal rows after the mark. The projection
-- transaction raises the mark first; the same statement triggers as the journal's
-- (clob_check_epoch, 0002) lock the market's epoch row FOR SHARE and reject a stale epoch,
-- so an old incarnation can never project rows a newer one re-projects (double deltas).
SET LOCAL ROLE clob_owner;

CREATE TABLE market_projection_marks (
    market_id      INTEGER PRIMARY KEY REFERENCES markets,
    projected_seq  BIGINT NOT NULL CHECK (projected_seq >= 0),
    epoch          BIGINT NOT NULL CHECK (epoch > 0),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE market_projection_marks IS 'How far each market''s orders/trades projection has been written (journal seq). Fenced by epoch like the journal. System only.';
COMMENT ON COLUMN market_projection_marks.market_id IS 'Market.';
COMMENT ON COLUMN market_projection_marks.projected_seq IS 'Every journal row with seq <= this is reflected in orders and trades, exactly once.';
COMMENT ON COLUMN market_projection_marks.epoch IS 'Epoch of the writer; must equal market_epochs.epoch (trigger).';
COMMENT ON COLUMN market_projection_marks.updated_at IS 'Last change.';

-- Transition tables allow one event per trigger: one for the first insert, one for updates.
CREATE TRIGGER market_projection_marks_insert_fence
    AFTER INSERT ON market_projection_marks REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION clob_check_epoch();
CREATE TRIGGER market_projection_marks_update_fence
    AFTER UPDATE ON market_projection_marks REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION clob_check_epoch();

-- Until now every journal row was projected in its own transaction: mark them all.
INSERT INTO market_projection_marks (market_id, projected_seq, epoch)
SELECT j.market_id, max(j.seq), e.epoch
  FROM journal j JOIN market_epochs e USING (market_id)
 GROUP BY j.market_id, e.epoch;

-- One batch of the projection in one round trip. Orders accepted in the batch arrive with
-- their state after it (n_*: inserted, or filling in the gateway's pending_new row); orders
-- of earlier batches get deltas (u_*: one primary-key UPDATE each; a join of the whole
-- batch was planned from statistics that lag a young table and scanned it once per key);
-- fills are inserted once per (market, seq). The mark goes first: its trigger fences.
CREATE FUNCTION clob_project_batch(
    p_market_id INTEGER, p_upto_seq BIGINT, p_epoch BIGINT,
    n_order_id TEXT[], n_account_id BIGINT[], n_coid TEXT[], n_side TEXT[], n_kind TEXT[],
    n_tif TEXT[], n_post_only TEXT[], n_stp TEXT[], n_price BIGINT[], n_stop_price BIGINT[],
    n_qty BIGINT[], n_quote_qty BIGINT[], n_display_qty BIGINT[], n_expire_ms BIGINT[],
    n_open_qty BIGINT[], n_status TEXT[], n_seq BIGINT[], n_filled_qty BIGINT[],
    n_filled_quote NUMERIC[], n_fee NUMERIC[], n_reason TEXT[],
    u_order_id TEXT[], u_open_qty BIGINT[], u_filled_qty BIGINT[], u_filled_quote NUMERIC[],
    u_fee NUMERIC[], u_price BIGINT[], u_status TEXT[], u_reason TEXT[], u_seq BIGINT[],
    t_seq BIGINT[], t_maker TEXT[], t_taker TEXT[], t_maker_account BIGINT[],
    t_taker_account BIGINT[], t_side TEXT[], t_price BIGINT[], t_qty BIGINT[],
    t_quote NUMERIC[], t_maker_fee NUMERIC[], t_taker_fee NUMERIC[], t_ts BIGINT[]
) RETURNS VOID
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO market_projection_marks AS m (market_id, projected_seq, epoch)
        VALUES (p_market_id, p_upto_seq, p_epoch)
        ON CONFLICT (market_id) DO UPDATE
            SET projected_seq = greatest(m.projected_seq, EXCLUDED.projected_seq),
                epoch = EXCLUDED.epoch, updated_at = now();

        INSERT INTO orders AS o (order_id, account_id, market_id, client_order_id, side, kind,
            tif, post_only, stp, price_ticks, stop_price_ticks, qty_lots, quote_qty_tick_lots,
            display_qty_lots, expire_at, open_qty_lots, status, last_event_seq,
            filled_qty_lots, filled_quote_atoms, fee_atoms, reason)
        SELECT u.order_id, u.account_id, p_market_id,
            -- A client order id the account already used on another market (two markets
            -- accepted it at once; the gateway checks it first) is not kept: the order is
            -- journaled and live, and a UNIQUE violation here would fail every re-projection.
            CASE WHEN u.coid IS NOT NULL AND EXISTS (
                     SELECT FROM orders x WHERE x.account_id = u.account_id
                        AND x.client_order_id = u.coid AND x.order_id <> u.order_id)
                 THEN NULL ELSE u.coid END,
            u.side, u.kind, u.tif,
            u.post_only, u.stp, u.price, u.stop_price, u.qty, u.quote_qty, u.display_qty,
            CASE WHEN u.expire_ms IS NULL THEN NULL ELSE to_timestamp(u.expire_ms / 1000.0) END,
            u.open_qty, u.status, u.seq, u.filled_qty, u.filled_quote, u.fee, u.reason
        FROM unnest(n_order_id, n_account_id, n_coid, n_side, n_kind, n_tif, n_post_only,
            n_stp, n_price, n_stop_price, n_qty, n_quote_qty, n_display_qty, n_expire_ms,
            n_open_qty, n_status, n_seq, n_filled_qty, n_filled_quote, n_fee, n_reason)
            AS u(order_id, account_id, coid, side, kind, tif, post_only, stp, price,
                 stop_price, qty, quote_qty, display_qty, expire_ms, open_qty, status, seq,
                 filled_qty, filled_quote, fee, reason)
        ON CONFLICT (order_id) DO UPDATE
            SET open_qty_lots = EXCLUDED.open_qty_lots, status = EXCLUDED.status,
                price_ticks = EXCLUDED.price_ticks, last_event_seq = EXCLUDED.last_event_seq,
                filled_qty_lots = EXCLUDED.filled_qty_lots,
                filled_quote_atoms = EXCLUDED.filled_quote_atoms,
                fee_atoms = EXCLUDED.fee_atoms, reason = EXCLUDED.reason, updated_at = now()
            WHERE o.status = 'pending_new' AND o.account_id = EXCLUDED.account_id
              AND o.market_id = EXCLUDED.market_id;

        FOR i IN 1 .. coalesce(array_length(u_order_id, 1), 0) LOOP
            UPDATE orders AS o
               SET open_qty_lots = u_open_qty[i],
                   filled_qty_lots = o.filled_qty_lots + u_filled_qty[i],
                   filled_quote_atoms = o.filled_quote_atoms + u_filled_quote[i],
                   fee_atoms = o.fee_atoms + u_fee[i],
                   price_ticks = coalesce(u_price[i], o.price_ticks),
                   status = CASE WHEN u_status[i] = 'open'
                                      AND o.filled_qty_lots + u_filled_qty[i] > 0
                                 THEN 'partially_filled' ELSE u_status[i] END,
                   reason = coalesce(u_reason[i], o.reason),
                   last_event_seq = u_seq[i],
                   updated_at = now()
             WHERE o.order_id = u_order_id[i] AND o.market_id = p_market_id
               AND o.last_event_seq < u_seq[i];
        END LOOP;

        INSERT INTO trades (market_id, seq, maker_order_id, taker_order_id, maker_account_id,
            taker_account_id, taker_side, price_ticks, qty_lots, quote_qty_atoms,
            maker_fee_atoms, taker_fee_atoms, executed_at)
        SELECT p_market_id, u.seq, u.maker, u.taker, u.maker_account, u.taker_account, u.side,
            u.price, u.qty, u.quote, u.maker_fee, u.taker_fee, to_timestamp(u.ts / 1000.0)
        FROM unnest(t_seq, t_maker, t_taker, t_maker_account, t_taker_account, t_side,
            t_price, t_qty, t_quote, t_maker_fee, t_taker_fee, t_ts)
            AS u(seq, maker, taker, maker_account, taker_account, side, price, qty, quote,
                 maker_fee, taker_fee, ts)
        ON CONFLICT (market_id, seq) DO NOTHING;
    END
    $$;
COMMENT ON FUNCTION clob_project_batch IS
    'Write one batch of a market''s orders/trades projection and raise its projection mark, atomically (one statement). Fenced by the mark''s epoch trigger.';

GRANT SELECT, INSERT, UPDATE ON market_projection_marks TO clob_system;
REVOKE EXECUTE ON FUNCTION clob_project_batch FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clob_project_batch TO clob_system;
