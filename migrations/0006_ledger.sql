-- 0006_ledger: what the ledger shards need beyond balances and fee_balances (0001): the
-- reservation of every open order, the credit history (deposits, exactly once) and the
-- per-shard journal high-water marks. All three are system tables (ledger shards only):
-- no RLS, no grant to clob_api.
SET LOCAL ROLE clob_owner;

-- ---------------------------------------------------------------------------------------
-- Funds a shard holds locked for one open order, and what the order may still need. Written
-- in the same transaction as the balances it moves (reserve before matching, settle and
-- release after). The row goes when the order ends (filled, cancelled, expired, rejected).
CREATE TABLE ledger_reservations (
    market_id               INTEGER NOT NULL REFERENCES markets,
    order_id                TEXT NOT NULL CHECK (length(order_id) BETWEEN 1 AND 64),
    account_id              BIGINT NOT NULL REFERENCES accounts,
    asset_id                INTEGER NOT NULL REFERENCES assets,
    side                    TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    reserved_atoms          NUMERIC(38,0) NOT NULL CHECK (reserved_atoms >= 0),
    pending_atoms           NUMERIC(38,0) NOT NULL DEFAULT 0 CHECK (pending_atoms >= 0),
    limit_price_ticks       BIGINT CHECK (limit_price_ticks > 0),
    open_qty_lots           BIGINT CHECK (open_qty_lots >= 0),
    quote_budget_tick_lots  BIGINT,
    fee_numerator           NUMERIC(38,0) NOT NULL DEFAULT 0,
    accepted                BOOLEAN NOT NULL DEFAULT false,
    request_key             TEXT NOT NULL DEFAULT '',
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, order_id)
);
-- A shard loads the reservations of its accounts (account_id % shard_count = shard_id).
CREATE INDEX ledger_reservations_account_idx ON ledger_reservations (account_id);
COMMENT ON TABLE ledger_reservations IS 'Locked funds per open order (ledger shards only). Sum of an account''s rows in an asset = its locked balance, minus locks of pending withdrawals.';
COMMENT ON COLUMN ledger_reservations.market_id IS 'Market of the order.';
COMMENT ON COLUMN ledger_reservations.order_id IS 'The engine''s order id.';
COMMENT ON COLUMN ledger_reservations.account_id IS 'Owner of the locked funds.';
COMMENT ON COLUMN ledger_reservations.asset_id IS 'Asset locked: quote for buys, base for sells.';
COMMENT ON COLUMN ledger_reservations.side IS 'buy or sell.';
COMMENT ON COLUMN ledger_reservations.reserved_atoms IS 'Atoms locked for the order''s current terms.';
COMMENT ON COLUMN ledger_reservations.pending_atoms IS 'Atoms locked ahead of an amend that raises the requirement, until its amended (or rejected) event.';
COMMENT ON COLUMN ledger_reservations.limit_price_ticks IS 'Limit price, ticks; NULL for market and stop-market orders.';
COMMENT ON COLUMN ledger_reservations.open_qty_lots IS 'Open quantity incl. iceberg reserve, lots; NULL for a quote-budget market buy.';
COMMENT ON COLUMN ledger_reservations.quote_budget_tick_lots IS 'Unspent market-buy (protection) budget, tick-lots; NULL if none.';
COMMENT ON COLUMN ledger_reservations.fee_numerator IS 'Sum over the order''s fills of notional (quote atoms) times fee bps; fees charged so far = ceil(fee_numerator / 10000).';
COMMENT ON COLUMN ledger_reservations.accepted IS 'True once the engine accepted the order (a reject then only releases an amend''s pending atoms).';
COMMENT ON COLUMN ledger_reservations.request_key IS 'Terms of the last reservation applied (amount:price:qty:budget): a retried identical reservation is a no-op.';
COMMENT ON COLUMN ledger_reservations.updated_at IS 'Last change.';

-- ---------------------------------------------------------------------------------------
-- Every credit (deposit) to the ledger, exactly once per reference. Conservation per asset:
-- sum(balances) + sum(fee_balances) = sum(ledger_credits) - debited withdrawals.
CREATE TABLE ledger_credits (
    reference     TEXT PRIMARY KEY CHECK (length(reference) BETWEEN 1 AND 200),
    account_id    BIGINT NOT NULL REFERENCES accounts,
    asset_id      INTEGER NOT NULL REFERENCES assets,
    amount_atoms  NUMERIC(38,0) NOT NULL CHECK (amount_atoms > 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ledger_credits_account_idx ON ledger_credits (account_id, asset_id);
COMMENT ON TABLE ledger_credits IS 'Credits applied to the ledger, exactly once per reference (e.g. a deposit''s transaction signature and instruction index). System only.';
COMMENT ON COLUMN ledger_credits.reference IS 'Idempotency key of the credit: a repeat with the same reference changes nothing.';
COMMENT ON COLUMN ledger_credits.account_id IS 'Account credited.';
COMMENT ON COLUMN ledger_credits.asset_id IS 'Asset credited.';
COMMENT ON COLUMN ledger_credits.amount_atoms IS 'Amount credited to available, atoms (> 0).';
COMMENT ON COLUMN ledger_credits.created_at IS 'When it was applied.';

-- ---------------------------------------------------------------------------------------
-- Journal high-water marks per (shard, market), raised in the same transaction as the
-- balance moves of the entries they cover. Why not the per-account ledger_marks (0001):
-- an account that did not trade in a market keeps an old mark there, so a recovering shard
-- would have to rescan the journal from the oldest mark of any of its accounts (from 0 for
-- quiet accounts). One mark per shard and market makes catch-up exactly the tail after it.
-- The marks (and the balances) belong to one shard layout: changing shard_count needs a
-- migration of balances and marks together, which does not exist yet.
CREATE TABLE ledger_shard_marks (
    shard_id             INTEGER NOT NULL CHECK (shard_id >= 0),
    shard_count          INTEGER NOT NULL CHECK (shard_count > shard_id),
    market_id            INTEGER NOT NULL REFERENCES markets,
    applied_journal_seq  BIGINT NOT NULL CHECK (applied_journal_seq >= 0),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (shard_id, shard_count, market_id)
);
COMMENT ON TABLE ledger_shard_marks IS 'Ledger idempotency: last journal seq of a market whose events a shard has applied. System only.';
COMMENT ON COLUMN ledger_shard_marks.shard_id IS 'Ledger shard (owns accounts with account_id % shard_count = shard_id).';
COMMENT ON COLUMN ledger_shard_marks.shard_count IS 'Number of shards of the layout the mark belongs to.';
COMMENT ON COLUMN ledger_shard_marks.market_id IS 'Market whose journal is applied.';
COMMENT ON COLUMN ledger_shard_marks.applied_journal_seq IS 'Every journal entry with seq <= this has been applied by the shard, exactly once.';
COMMENT ON COLUMN ledger_shard_marks.updated_at IS 'Last change.';

-- ---------------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON ledger_reservations, ledger_shard_marks TO clob_system;
-- Credits are history: insert and read, never rewrite.
GRANT SELECT, INSERT ON ledger_credits TO clob_system;
