-- 0021_settlement: what 0002's settlement tables lack for the batchers of issue 16.
--   * settlements: one Solana transaction's worth of one market's trades (netted: one
--     settle instruction; unnetted: one per trade, batch ids batch_id .. batch_id +
--     batch_count - 1). The statuses of actors/settlement/states.py, with `finalized`;
--     a trigger moves a row only along its transition table (SQLSTATE CL004 otherwise).
--     The planned deltas are stored (`instructions`), so a rebuild after a restart sends
--     the same ones; the program applies a (market, batch id) once.
--   * settlement_attempts: the signed bytes of each attempt, re-sent byte for byte while
--     its blockhash is valid (also by a batcher that restarted).
--   * settlement_markets: per market, the batcher's durable high-water mark (every trade
--     with seq <= mark_seq is in a settlement) and its next on-chain batch id.
SET LOCAL ROLE clob_owner;

-- ---------------------------------------------------------------------------------------
ALTER TABLE settlements DROP CONSTRAINT settlements_status_check;
ALTER TABLE settlements DROP CONSTRAINT settlements_check;  -- 0002's confirmed_at rule
ALTER TABLE settlements
    ADD CONSTRAINT settlements_status_check
        CHECK (status IN ('pending', 'submitted', 'confirmed', 'finalized', 'failed')),
    ADD CONSTRAINT settlements_confirmed_at_check
        CHECK ((status IN ('confirmed', 'finalized')) = (confirmed_at IS NOT NULL)),
    ADD COLUMN chain_market_id  BIGINT CHECK (chain_market_id >= 0),
    ADD COLUMN batch_id         BIGINT CHECK (batch_id > 0),
    ADD COLUMN batch_count      INTEGER CHECK (batch_count > 0),
    ADD COLUMN netted           BOOLEAN,
    ADD COLUMN first_seq        BIGINT CHECK (first_seq > 0),
    ADD COLUMN last_seq         BIGINT,
    ADD COLUMN instructions     JSONB CHECK (jsonb_typeof(instructions) = 'array'),
    ADD COLUMN retries          INTEGER NOT NULL DEFAULT 0 CHECK (retries >= 0),
    ADD COLUMN next_try_at      TIMESTAMPTZ,
    ADD COLUMN cu_limit         INTEGER CHECK (cu_limit > 0),
    ADD COLUMN cu_consumed      INTEGER CHECK (cu_consumed >= 0),
    ADD COLUMN tx_bytes         INTEGER CHECK (tx_bytes BETWEEN 1 AND 1232),
    ADD COLUMN fee_lamports     BIGINT CHECK (fee_lamports >= 0),
    ADD COLUMN submitted_at     TIMESTAMPTZ,
    ADD COLUMN finalized_at     TIMESTAMPTZ,
    ADD COLUMN failed_at        TIMESTAMPTZ,
    ADD COLUMN alerted          BOOLEAN NOT NULL DEFAULT false,
    ADD CONSTRAINT settlements_finalized_at_check
        CHECK ((status = 'finalized') = (finalized_at IS NOT NULL)),
    ADD CONSTRAINT settlements_failed_at_check
        CHECK ((status = 'failed') = (failed_at IS NOT NULL)),
    ADD CONSTRAINT settlements_seq_range_check CHECK (last_seq >= first_seq),
    ADD CONSTRAINT settlements_batch_key UNIQUE (chain_market_id, batch_id);
COMMENT ON TABLE settlements IS 'On-chain settlement batches: one Solana transaction of one market''s trades each (retried, rebuilt). Holds no account ids outside `instructions`: readable by the API, which shows no instructions.';
COMMENT ON COLUMN settlements.status IS 'pending, submitted, confirmed, finalized or failed (after the last retry; an operator''s retry makes it pending again). Transitions: actors/settlement/states.py, enforced by the trigger settlements_transition.';
COMMENT ON COLUMN settlements.confirmed_at IS 'Confirmation time (set iff status is confirmed or finalized).';
COMMENT ON COLUMN settlements.chain_market_id IS 'The program''s market id (actors.chain.program.chain_market_id of the two mints).';
COMMENT ON COLUMN settlements.batch_id IS 'First on-chain batch id (the program applies a (market, batch id) once); an unnetted batch uses batch_id .. batch_id + batch_count - 1.';
COMMENT ON COLUMN settlements.batch_count IS 'Settle instructions, hence batch ids, in the transaction (netted: 1).';
COMMENT ON COLUMN settlements.netted IS 'Whether each vault moves once by its net change (else one instruction per trade).';
COMMENT ON COLUMN settlements.first_seq IS 'trades.seq of its first trade.';
COMMENT ON COLUMN settlements.last_seq IS 'trades.seq of its last trade.';
COMMENT ON COLUMN settlements.instructions IS 'The planned deltas, one array per instruction: [[account_id or null (the fee vault), "base" or "quote", delta atoms], ...]. A rebuild sends these.';
COMMENT ON COLUMN settlements.retries IS 'Failed submissions so far (reset by an operator''s retry).';
COMMENT ON COLUMN settlements.next_try_at IS 'Not sent again before this time (the retry back-off).';
COMMENT ON COLUMN settlements.cu_limit IS 'Compute-unit limit of the latest attempt (simulated units plus a margin).';
COMMENT ON COLUMN settlements.cu_consumed IS 'Compute units the landed transaction consumed.';
COMMENT ON COLUMN settlements.tx_bytes IS 'Size of the latest signed transaction, bytes (at most 1,232).';
COMMENT ON COLUMN settlements.fee_lamports IS 'Fee paid by the landed transaction, lamports: 5,000 per signature + price x limit / 10^6.';
COMMENT ON COLUMN settlements.submitted_at IS 'When its first transaction was sent.';
COMMENT ON COLUMN settlements.finalized_at IS 'When it was finalized (set iff status = finalized).';
COMMENT ON COLUMN settlements.failed_at IS 'When it failed (set iff status = failed).';
COMMENT ON COLUMN settlements.alerted IS 'Whether its failure was alerted (an error log and a metric, once).';

DROP INDEX settlements_unfinished_idx;
-- The batcher resumes unfinished settlements in batch-id order after a restart.
CREATE INDEX settlements_unfinished_idx ON settlements (market_id, batch_id)
    WHERE status IN ('pending', 'submitted', 'confirmed');

-- The transition table of actors/settlement/states.py (an integration test compares them).
-- A change of status must be listed; an UPDATE that keeps the status changes fields only.
CREATE FUNCTION clob_settlement_transition() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.status <> 'pending' THEN
                RAISE EXCEPTION 'a settlement starts pending, not %', NEW.status
                    USING ERRCODE = 'CL004';
            END IF;
        ELSIF NEW.status IS DISTINCT FROM OLD.status
              AND (OLD.status, NEW.status) NOT IN (
                  ('pending', 'submitted'), ('pending', 'failed'),
                  ('submitted', 'confirmed'), ('submitted', 'failed'),
                  ('confirmed', 'finalized'),
                  ('failed', 'pending')) THEN
            RAISE EXCEPTION 'a settlement cannot go from % to %', OLD.status, NEW.status
                USING ERRCODE = 'CL004';
        END IF;
        RETURN NEW;
    END
    $$;
COMMENT ON FUNCTION clob_settlement_transition() IS
    'Row trigger: a settlement starts pending and changes status only along the transition table of actors/settlement/states.py (SQLSTATE CL004).';
CREATE TRIGGER settlements_transition
    BEFORE INSERT OR UPDATE OF status ON settlements
    FOR EACH ROW EXECUTE FUNCTION clob_settlement_transition();

-- ---------------------------------------------------------------------------------------
ALTER TABLE settlement_attempts
    ADD COLUMN wire      BYTEA CHECK (wire IS NULL OR octet_length(wire) BETWEEN 1 AND 1232),
    ADD COLUMN cu_limit  INTEGER CHECK (cu_limit > 0);
COMMENT ON COLUMN settlement_attempts.wire IS 'The signed transaction as sent (at most 1,232 bytes): sent again byte for byte while its blockhash is valid. Not shown by the API.';
COMMENT ON COLUMN settlement_attempts.cu_limit IS 'Its compute-unit limit.';

-- ---------------------------------------------------------------------------------------
CREATE TABLE settlement_markets (
    market_id        INTEGER PRIMARY KEY REFERENCES markets,
    chain_market_id  BIGINT NOT NULL CHECK (chain_market_id >= 0),
    mark_seq         BIGINT NOT NULL DEFAULT 0 CHECK (mark_seq >= 0),
    next_batch_id    BIGINT NOT NULL DEFAULT 1 CHECK (next_batch_id > 0)
);
COMMENT ON TABLE settlement_markets IS 'Per market, the settlement batcher''s durable state. System only.';
COMMENT ON COLUMN settlement_markets.market_id IS 'Market.';
COMMENT ON COLUMN settlement_markets.chain_market_id IS 'The program''s market id (of the two mints).';
COMMENT ON COLUMN settlement_markets.mark_seq IS 'High-water mark: every trade with seq <= mark_seq is in a settlement (moved in the transaction that creates it).';
COMMENT ON COLUMN settlement_markets.next_batch_id IS 'Next on-chain batch id, taken when a settlement is created; raised past the program''s replay window at the batcher''s start.';

GRANT SELECT, INSERT, UPDATE ON settlement_markets TO clob_system;
GRANT SELECT ON settlement_attempts TO clob_api;
