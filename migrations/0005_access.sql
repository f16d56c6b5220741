-- 0005_access: row level security, grants, public market-data views and API-key lookup.
--
-- The model:
--   * Every user-owned table has ENABLE + FORCE ROW LEVEL SECURITY and one policy for
--     PUBLIC: the row's account (trades: maker or taker) must be clob_current_account_id(),
--     the transaction-local setting clob.account_id. No setting -> no rows. FORCE makes the
--     owner clob_owner subject to it as well; only BYPASSRLS roles (clob_system) and
--     superusers skip it.
--   * The gateway, as clob_api, acts for one account per transaction:
--         BEGIN;
--         SET LOCAL ROLE clob_api;              -- if the login role is not clob_api itself
--         SELECT set_config('clob.account_id', '42', true);
--         ... queries ...
--         COMMIT;                               -- the setting and the role end here
--   * Public market data that lives in RLS tables is exposed through views owned by
--     clob_system (views run with their owner's rights, and the owner bypasses RLS):
--     public_trades (trades without account or order ids) and market_stats_24h.
--     Reference data (assets, markets) and settlement batches (no account data) have no
--     RLS and are granted SELECT.
--   * System-only tables (journal, engine_snapshots, market_epochs, ledger_marks,
--     fee_balances) have no RLS and no grant to clob_api at all.
-- A new table needs its own grants and an RLS decision here (no default privileges, on
-- purpose: nothing becomes readable by accident).

-- ---------------------------------------------------------------------------------------
-- Row level security (as the owner; ALTER TABLE needs ownership).
SET LOCAL ROLE clob_owner;

DO $rls$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['accounts', 'api_keys', 'balances', 'orders', 'deposit_addresses',
                             'deposits', 'withdrawal_addresses', 'withdrawals'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I FOR ALL TO PUBLIC '
            'USING (account_id = clob_current_account_id()) '
            'WITH CHECK (account_id = clob_current_account_id())',
            t || '_own_rows', t);
    END LOOP;
END
$rls$;

ALTER TABLE trades ENABLE ROW LEVEL SECURITY;
ALTER TABLE trades FORCE ROW LEVEL SECURITY;
-- Read-only for RLS-subject roles: no INSERT/UPDATE/DELETE policy, so only clob_system
-- (BYPASSRLS) writes trades.
CREATE POLICY trades_own_fills ON trades FOR SELECT TO PUBLIC
    USING (maker_account_id = clob_current_account_id()
           OR taker_account_id = clob_current_account_id());

-- The API may only take the user's steps of the withdrawal flow: confirm or cancel a
-- request. Later states belong to the ledger and custody actors (clob_system).
CREATE POLICY withdrawals_api_steps ON withdrawals AS RESTRICTIVE FOR UPDATE TO clob_api
    USING (status = 'requested')
    WITH CHECK (status IN ('requested', 'confirmed', 'cancelled'));

-- ---------------------------------------------------------------------------------------
-- Grants. clob_system: all DML except on the immutable parts.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    assets, markets, accounts, api_keys, balances, ledger_marks, fee_balances,
    market_epochs, orders, settlements, settlement_attempts, trades,
    deposit_addresses, deposits, withdrawal_addresses, withdrawals
    TO clob_system;
-- Journal and snapshots: append and prune (retention after a snapshot), never rewrite.
GRANT SELECT, INSERT, DELETE ON journal, engine_snapshots TO clob_system;
GRANT SELECT, INSERT ON audit_log TO clob_system;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO clob_system;
REVOKE EXECUTE ON FUNCTION clob_acquire_market_epoch(INTEGER, TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clob_acquire_market_epoch(INTEGER, TEXT) TO clob_system;

-- clob_api: reads of public reference data, and the account's own rows (RLS).
GRANT SELECT ON assets, markets, settlements TO clob_api;
GRANT SELECT ON accounts, balances, trades, deposit_addresses, deposits TO clob_api;
GRANT SELECT, INSERT ON orders TO clob_api;
GRANT SELECT (key_id, account_id, label, scopes, created_at, expires_at, revoked_at, last_used_at),
      INSERT (key_id, account_id, secret_sha256, label, scopes, expires_at),
      UPDATE (label, revoked_at, last_used_at)
    ON api_keys TO clob_api;
GRANT SELECT, INSERT, DELETE ON withdrawal_addresses TO clob_api;
GRANT SELECT, INSERT ON withdrawals TO clob_api;
GRANT UPDATE (status, updated_at) ON withdrawals TO clob_api;
GRANT USAGE ON SEQUENCE withdrawals_withdrawal_id_seq TO clob_api;
-- The API writes its own audit entries (and the row-change triggers write as the invoker);
-- it cannot read the log.
GRANT INSERT ON audit_log TO clob_api;

-- ---------------------------------------------------------------------------------------
-- Views and functions that must bypass RLS are owned by clob_system (set as superuser).
RESET ROLE;

CREATE VIEW public_trades AS
    SELECT trade_id, market_id, seq, taker_side, price_ticks, qty_lots, quote_qty_atoms,
           settlement_id, executed_at
      FROM trades;
ALTER VIEW public_trades OWNER TO clob_system;
COMMENT ON VIEW public_trades IS
    'Public tape (GET /trades/{market}): every trade of a market, without account or order ids. Owned by clob_system so it reads past RLS; page by (market_id, seq).';
COMMENT ON COLUMN public_trades.trade_id IS 'Trade id.';
COMMENT ON COLUMN public_trades.market_id IS 'Market.';
COMMENT ON COLUMN public_trades.seq IS 'Engine event seq of the fill (pagination key within a market).';
COMMENT ON COLUMN public_trades.taker_side IS 'Aggressor side.';
COMMENT ON COLUMN public_trades.price_ticks IS 'Price, ticks.';
COMMENT ON COLUMN public_trades.qty_lots IS 'Quantity, lots.';
COMMENT ON COLUMN public_trades.quote_qty_atoms IS 'Notional, quote atoms.';
COMMENT ON COLUMN public_trades.settlement_id IS 'Settlement batch, NULL until batched.';
COMMENT ON COLUMN public_trades.executed_at IS 'Execution time.';

CREATE VIEW market_stats_24h AS
    SELECT m.market_id, m.symbol,
           s.trade_count, s.volume_lots, s.quote_volume_atoms,
           s.open_price_ticks, s.high_price_ticks, s.low_price_ticks,
           l.price_ticks AS last_price_ticks, l.executed_at AS last_trade_at
      FROM markets m
      LEFT JOIN LATERAL (
            SELECT count(*) AS trade_count,
                   coalesce(sum(t.qty_lots), 0) AS volume_lots,
                   coalesce(sum(t.quote_qty_atoms), 0) AS quote_volume_atoms,
                   (array_agg(t.price_ticks ORDER BY t.seq))[1] AS open_price_ticks,
                   max(t.price_ticks) AS high_price_ticks,
                   min(t.price_ticks) AS low_price_ticks
              FROM trades t
             WHERE t.market_id = m.market_id AND t.executed_at >= now() - interval '24 hours'
           ) s ON true
      LEFT JOIN LATERAL (
            SELECT t.price_ticks, t.executed_at
              FROM trades t
             WHERE t.market_id = m.market_id
             ORDER BY t.seq DESC
             LIMIT 1
           ) l ON true;
ALTER VIEW market_stats_24h OWNER TO clob_system;
COMMENT ON VIEW market_stats_24h IS
    'Rolling 24h statistics per market (GET /markets). Scans a day of trades: cache it (market_stats:{market}, 5 min).';
COMMENT ON COLUMN market_stats_24h.market_id IS 'Market.';
COMMENT ON COLUMN market_stats_24h.symbol IS 'Market symbol.';
COMMENT ON COLUMN market_stats_24h.trade_count IS 'Trades in the last 24h.';
COMMENT ON COLUMN market_stats_24h.volume_lots IS 'Base volume, lots.';
COMMENT ON COLUMN market_stats_24h.quote_volume_atoms IS 'Quote volume, quote atoms.';
COMMENT ON COLUMN market_stats_24h.open_price_ticks IS 'First trade price in the window, ticks.';
COMMENT ON COLUMN market_stats_24h.high_price_ticks IS 'Highest price in the window, ticks.';
COMMENT ON COLUMN market_stats_24h.low_price_ticks IS 'Lowest price in the window, ticks.';
COMMENT ON COLUMN market_stats_24h.last_price_ticks IS 'Last trade price ever, ticks.';
COMMENT ON COLUMN market_stats_24h.last_trade_at IS 'Time of the last trade.';

GRANT SELECT ON public_trades, market_stats_24h TO clob_api, clob_system;

-- Authentication happens before any account is known, so it cannot go through RLS: a
-- SECURITY DEFINER function owned by clob_system compares the presented secret's SHA-256
-- in the database; the API never reads stored hashes.
CREATE FUNCTION api_key_authenticate(p_key_id TEXT, p_secret_sha256 BYTEA)
    RETURNS TABLE (account_id BIGINT, scopes TEXT[], account_status TEXT)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT k.account_id, k.scopes, a.status
          FROM public.api_keys k
          JOIN public.accounts a ON a.account_id = k.account_id
         WHERE k.key_id = p_key_id
           AND k.secret_sha256 = p_secret_sha256
           AND k.revoked_at IS NULL
           AND (k.expires_at IS NULL OR k.expires_at > now())
    $$;
ALTER FUNCTION api_key_authenticate(TEXT, BYTEA) OWNER TO clob_system;
REVOKE EXECUTE ON FUNCTION api_key_authenticate(TEXT, BYTEA) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_authenticate(TEXT, BYTEA) TO clob_api;
COMMENT ON FUNCTION api_key_authenticate(TEXT, BYTEA) IS
    'Return the account, scopes and account status of a live key whose secret hashes to p_secret_sha256; no row otherwise.';
