-- 0009_ledger_holds: ledger shards reserve in memory; the journal makes reservations durable.
-- A shard answers `reserve` with a hold in memory (no write) and the shard epoch it holds
-- it under. The market actor journals each command with the reservation it holds (in the
-- payload) and the (shard, epoch) of that hold (below). A shard that restarts has lost
-- its holds: it bumps its epoch here first, so a batch whose holds died with the old
-- incarnation can no longer be journaled (SQLSTATE CL003: the market actor restarts and
-- its clients retry). A batch journaled before the bump is caught up by the new
-- incarnation, which re-applies its reservations from the journal. The row lock makes the
-- two orders exclusive: the journal's trigger locks the epoch rows FOR SHARE, the bump
-- waits for those appends to commit (and then reads them) or makes them fail.
SET LOCAL ROLE clob_owner;

CREATE TABLE ledger_shard_epochs (
    shard_id    INTEGER PRIMARY KEY CHECK (shard_id >= 0),
    epoch       BIGINT NOT NULL CHECK (epoch > 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger_shard_epochs IS 'Incarnation of each ledger shard, bumped when it starts (before it loads): fences journal appends that rely on holds of an older incarnation. System only.';
COMMENT ON COLUMN ledger_shard_epochs.shard_id IS 'Ledger shard.';
COMMENT ON COLUMN ledger_shard_epochs.epoch IS 'Current incarnation; holds are answered under it.';
COMMENT ON COLUMN ledger_shard_epochs.updated_at IS 'Last bump.';

ALTER TABLE journal
    ADD COLUMN ledger_shard INTEGER CHECK (ledger_shard >= 0),
    ADD COLUMN ledger_epoch BIGINT CHECK (ledger_epoch > 0),
    ADD CONSTRAINT journal_ledger_hold_pair CHECK ((ledger_shard IS NULL) = (ledger_epoch IS NULL));
COMMENT ON COLUMN journal.ledger_shard IS 'Ledger shard holding this command''s reservation (payload.reservation), NULL when it reserves nothing.';
COMMENT ON COLUMN journal.ledger_epoch IS 'Shard epoch the reservation was held under; must be the shard''s current epoch at insert time (trigger).';

CREATE FUNCTION clob_check_ledger_epochs() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        bad RECORD;
    BEGIN
        PERFORM 1 FROM ledger_shard_epochs e
         WHERE e.shard_id IN (SELECT DISTINCT ledger_shard FROM new_rows
                               WHERE ledger_shard IS NOT NULL)
         ORDER BY e.shard_id
           FOR SHARE;
        SELECT n.seq, n.ledger_shard, n.ledger_epoch, e.epoch AS current_epoch INTO bad
          FROM new_rows n LEFT JOIN ledger_shard_epochs e ON e.shard_id = n.ledger_shard
         WHERE n.ledger_shard IS NOT NULL AND e.epoch IS DISTINCT FROM n.ledger_epoch
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'journal seq % relies on a hold of ledger shard % epoch % (current epoch %)',
                  bad.seq, bad.ledger_shard, bad.ledger_epoch,
                  coalesce(bad.current_epoch::TEXT, 'none')
                  USING ERRCODE = 'CL003',
                        HINT = 'The ledger shard restarted and lost the hold: restart the market actor.';
        END IF;
        RETURN NULL;
    END
    $$;
COMMENT ON FUNCTION clob_check_ledger_epochs() IS
    'Statement trigger: reject journal rows whose reservation hold was made under a ledger shard epoch that is no longer current (SQLSTATE CL003).';

CREATE TRIGGER journal_ledger_epoch_fence
    AFTER INSERT ON journal REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION clob_check_ledger_epochs();

-- A shard takes over: bump (or create) its epoch and return it, committed on return.
CREATE FUNCTION clob_acquire_ledger_epoch(p_shard_id INTEGER) RETURNS BIGINT
    LANGUAGE sql
    AS $$
        INSERT INTO ledger_shard_epochs AS e (shard_id, epoch) VALUES (p_shard_id, 1)
        ON CONFLICT (shard_id) DO UPDATE SET epoch = e.epoch + 1, updated_at = now()
        RETURNING epoch;
    $$;
COMMENT ON FUNCTION clob_acquire_ledger_epoch IS
    'Start a new incarnation of a ledger shard: bump its epoch (waits for journal appends that locked it).';

GRANT SELECT, INSERT, UPDATE ON ledger_shard_epochs TO clob_system;
REVOKE EXECUTE ON FUNCTION clob_acquire_ledger_epoch FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clob_acquire_ledger_epoch TO clob_system;
