-- 0016_order_terms: what the API says about an order agrees with what was asked and done.
--   * orders.request_digest: a digest of the placement's terms (market, side, kind, prices,
--     quantities, tif, ...), so a reused client order id is answered as a retry only when
--     the terms are the same (else 409 duplicate_client_order_id), however old the order.
--   * created_at / updated_at are the market's clock at the command (the `ts` the engine
--     matched at), as the gateway's answer to the command reports them, instead of the
--     projection's commit time, which came later and was unknown to the answer.
--   * An amend sets qty_lots to the filled quantity plus the new open quantity, so `qty`
--     reads what the order is for after the amend. The iceberg check `display_qty_lots <
--     qty_lots` of 0002 holds at placement only (an amend may go below the slice), so it
--     is dropped; the gateway and the engine check it when an order is placed.
-- clob_project_json keeps its signature; rows without the new fields keep the old behaviour.
SET LOCAL ROLE clob_owner;

ALTER TABLE orders ADD COLUMN request_digest TEXT CHECK (length(request_digest) <= 64);
COMMENT ON COLUMN orders.request_digest IS
    'Digest of the placement''s terms (the gateway''s, hex): a client order id reused with other terms is refused.';

DO $$
DECLARE
    c NAME;
BEGIN
    SELECT conname INTO STRICT c
      FROM pg_constraint
     WHERE conrelid = 'orders'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%display_qty_lots < qty_lots%';
    EXECUTE format('ALTER TABLE orders DROP CONSTRAINT %I', c);
END
$$;

CREATE OR REPLACE FUNCTION clob_project_json(
    p_market_id INTEGER, p_upto_seq BIGINT, p_epoch BIGINT,
    p_new JSON, p_updates JSON, p_trades JSON
) RETURNS VOID
    LANGUAGE plpgsql
    AS $$
    DECLARE
        u RECORD;
    BEGIN
        INSERT INTO market_projection_marks AS m (market_id, projected_seq, epoch)
        VALUES (p_market_id, p_upto_seq, p_epoch)
        ON CONFLICT (market_id) DO UPDATE
            SET projected_seq = greatest(m.projected_seq, EXCLUDED.projected_seq),
                epoch = EXCLUDED.epoch, updated_at = now();

        INSERT INTO orders AS o (order_id, account_id, market_id, client_order_id, side, kind,
            tif, post_only, stp, price_ticks, stop_price_ticks, qty_lots, quote_qty_tick_lots,
            display_qty_lots, expire_at, open_qty_lots, status, last_event_seq,
            filled_qty_lots, filled_quote_atoms, fee_atoms, reason, request_digest,
            created_at, updated_at)
        SELECT n.order_id, n.account_id, p_market_id,
            -- A client order id the account already used on another market is not kept
            -- (see 0007): a UNIQUE violation here would fail every re-projection.
            CASE WHEN n.client_order_id IS NOT NULL AND EXISTS (
                     SELECT FROM orders x WHERE x.account_id = n.account_id
                        AND x.client_order_id = n.client_order_id AND x.order_id <> n.order_id)
                 THEN NULL ELSE n.client_order_id END,
            n.side, n.kind, n.tif, n.post_only, n.stp, n.price_ticks, n.stop_price_ticks,
            n.qty_lots, n.quote_qty_tick_lots, n.display_qty_lots,
            CASE WHEN n.expire_at_ms IS NULL THEN NULL
                 ELSE to_timestamp(n.expire_at_ms / 1000.0) END,
            n.open_qty_lots, n.status, n.event_seq, n.filled_qty_lots, n.filled_quote_atoms,
            n.fee_atoms, n.reason, n.request_digest,
            coalesce(to_timestamp(n.created_at_ms / 1000.0), now()),
            coalesce(to_timestamp(n.created_at_ms / 1000.0), now())
        FROM json_to_recordset(p_new) AS n(order_id TEXT, account_id BIGINT,
            client_order_id TEXT, side TEXT, kind TEXT, tif TEXT, post_only TEXT, stp TEXT,
            price_ticks BIGINT, stop_price_ticks BIGINT, qty_lots BIGINT,
            quote_qty_tick_lots BIGINT, display_qty_lots BIGINT, expire_at_ms BIGINT,
            open_qty_lots BIGINT, status TEXT, event_seq BIGINT, filled_qty_lots BIGINT,
            filled_quote_atoms NUMERIC, fee_atoms NUMERIC, reason TEXT, request_digest TEXT,
            created_at_ms BIGINT)
        ON CONFLICT (order_id) DO UPDATE
            SET open_qty_lots = EXCLUDED.open_qty_lots, status = EXCLUDED.status,
                price_ticks = EXCLUDED.price_ticks, last_event_seq = EXCLUDED.last_event_seq,
                filled_qty_lots = EXCLUDED.filled_qty_lots,
                filled_quote_atoms = EXCLUDED.filled_quote_atoms,
                fee_atoms = EXCLUDED.fee_atoms, reason = EXCLUDED.reason, updated_at = now()
            WHERE o.status = 'pending_new' AND o.account_id = EXCLUDED.account_id
              AND o.market_id = EXCLUDED.market_id;

        FOR u IN SELECT * FROM json_to_recordset(p_updates) AS x(order_id TEXT,
                open_qty_lots BIGINT, filled_qty_delta_lots BIGINT,
                filled_quote_delta_atoms NUMERIC, fee_delta_atoms NUMERIC, price_ticks BIGINT,
                status TEXT, reason TEXT, event_seq BIGINT, amended_open_lots BIGINT,
                filled_before_amend_lots BIGINT, updated_at_ms BIGINT) LOOP
            UPDATE orders AS o
               SET open_qty_lots = u.open_qty_lots,
                   filled_qty_lots = o.filled_qty_lots + u.filled_qty_delta_lots,
                   filled_quote_atoms = o.filled_quote_atoms + u.filled_quote_delta_atoms,
                   fee_atoms = o.fee_atoms + u.fee_delta_atoms,
                   price_ticks = coalesce(u.price_ticks, o.price_ticks),
                   -- A quote-budget order has no qty to follow the amend.
                   qty_lots = CASE WHEN u.amended_open_lots IS NULL OR o.qty_lots IS NULL
                                   THEN o.qty_lots
                                   ELSE o.filled_qty_lots + coalesce(u.filled_before_amend_lots, 0)
                                        + u.amended_open_lots END,
                   status = CASE WHEN u.status = 'open'
                                      AND o.filled_qty_lots + u.filled_qty_delta_lots > 0
                                 THEN 'partially_filled' ELSE u.status END,
                   reason = coalesce(u.reason, o.reason),
                   last_event_seq = u.event_seq,
                   updated_at = coalesce(to_timestamp(u.updated_at_ms / 1000.0), now())
             WHERE o.order_id = u.order_id AND o.market_id = p_market_id
               AND o.last_event_seq < u.event_seq;
        END LOOP;

        INSERT INTO trades (market_id, seq, maker_order_id, taker_order_id, maker_account_id,
            taker_account_id, taker_side, price_ticks, qty_lots, quote_qty_atoms,
            maker_fee_atoms, taker_fee_atoms, executed_at)
        SELECT p_market_id, t.seq, t.maker_order_id, t.taker_order_id, t.maker_account_id,
            t.taker_account_id, t.taker_side, t.price_ticks, t.qty_lots, t.quote_qty_atoms,
            t.maker_fee_atoms, t.taker_fee_atoms, to_timestamp(t.executed_at_ms / 1000.0)
        FROM json_to_recordset(p_trades) AS t(seq BIGINT, maker_order_id TEXT,
            taker_order_id TEXT, maker_account_id BIGINT, taker_account_id BIGINT,
            taker_side TEXT, price_ticks BIGINT, qty_lots BIGINT, quote_qty_atoms NUMERIC,
            maker_fee_atoms NUMERIC, taker_fee_atoms NUMERIC, executed_at_ms BIGINT)
        ON CONFLICT (market_id, seq) DO NOTHING;
    END
    $$;
