-- 0007_projection_marks: the orders/trades projection leaves the journal's transaction.
-- A market actor commits a batch's journal rows alone (the acknowledgement point), then
-- writes the batch's orders and trades rows in a second transaction, off the critical path
-- and overlapped with the next batch. This table records how far that projection got, so
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

GRANT SELECT, INSERT, UPDATE ON market_projection_marks TO clob_system;
