-- 0012_ledger_layout: the number of ledger shards is fixed once the ledger holds state.
-- An account belongs to shard `account_id % shard_count`, and each shard keeps its own
-- high-water marks of the market journals (`ledger_shard_marks`) and its own epoch. Starting
-- with another count would hand accounts to shards whose marks never covered them: entries
-- would be applied twice or skipped. The controller records the count on first start and
-- refuses another one (`actors/ledger/store.py`, `claim_shard_count`).
SET LOCAL ROLE clob_owner;

CREATE TABLE ledger_layout (
    singleton    BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    shard_count  INTEGER NOT NULL CHECK (shard_count > 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger_layout IS 'One row: the number of ledger shards the ledger state is partitioned over, recorded on first start. System only.';
COMMENT ON COLUMN ledger_layout.singleton IS 'Always true: the table has at most one row.';
COMMENT ON COLUMN ledger_layout.shard_count IS 'Ledger shards; account a belongs to shard a % shard_count.';
COMMENT ON COLUMN ledger_layout.created_at IS 'When the count was recorded.';

-- A ledger that already ran: every shard bumps its epoch when it starts, so the epochs
-- table names every shard there was.
INSERT INTO ledger_layout (shard_count)
SELECT max(shard_id) + 1 FROM ledger_shard_epochs HAVING count(*) > 0;

GRANT SELECT, INSERT ON ledger_layout TO clob_system;
