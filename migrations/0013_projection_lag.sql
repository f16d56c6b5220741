-- 0013_projection_lag: the API's read barrier.
-- A market actor answers its callers once a pass is journaled and applied to the ledger;
-- the pass's orders/trades projection is written behind the answer. A read of the orders
-- or trades tables first waits until every market's projection mark reaches the journal's
-- head as it was when the read began, so it sees every command acknowledged before it.
-- The API (clob_api) may read neither the journal nor the marks, so two SECURITY DEFINER
-- functions owned by clob_system tell it how far projections lag: market ids and
-- sequence numbers, nothing of the journal's content. Like api_key_authenticate (0005),
-- they are created as the superuser that runs migrations and handed to clob_system.

CREATE FUNCTION clob_projection_lag(p_only INTEGER, p_besides INTEGER)
    RETURNS TABLE (market_id INTEGER, head BIGINT)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT m.market_id, j.seq
          FROM public.markets m
         CROSS JOIN LATERAL (SELECT seq FROM public.journal
                              WHERE journal.market_id = m.market_id
                              ORDER BY seq DESC LIMIT 1) j
          LEFT JOIN public.market_projection_marks p ON p.market_id = m.market_id
         WHERE j.seq > coalesce(p.projected_seq, 0)
           AND (p_only IS NULL OR m.market_id = p_only)
           AND (p_besides IS NULL OR m.market_id <> p_besides)
    $$;
ALTER FUNCTION clob_projection_lag(INTEGER, INTEGER) OWNER TO clob_system;
REVOKE EXECUTE ON FUNCTION clob_projection_lag(INTEGER, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clob_projection_lag(INTEGER, INTEGER) TO clob_api;
COMMENT ON FUNCTION clob_projection_lag(INTEGER, INTEGER) IS
    'Markets whose journal head is past their projection mark (all, only p_only, or all but p_besides), with that head.';

CREATE FUNCTION clob_projection_marks(p_markets INTEGER[])
    RETURNS TABLE (market_id INTEGER, projected_seq BIGINT)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
        SELECT p.market_id, p.projected_seq
          FROM public.market_projection_marks p
         WHERE p.market_id = ANY(p_markets)
    $$;
ALTER FUNCTION clob_projection_marks(INTEGER[]) OWNER TO clob_system;
REVOKE EXECUTE ON FUNCTION clob_projection_marks(INTEGER[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clob_projection_marks(INTEGER[]) TO clob_api;
COMMENT ON FUNCTION clob_projection_marks(INTEGER[]) IS
    'The projection marks of the given markets (a market not yet projected has no row).';
