-- 0002_trading: the market actors' journal and snapshots with epoch fencing, orders,
-- trades and on-chain settlement batches.
SET LOCAL ROLE clob_owner;

-- ---------------------------------------------------------------------------------------
-- Fencing. Each incarnation of a market actor first calls clob_acquire_market_epoch(),
-- which bumps the market's epoch in its own committed transaction and returns it; only
-- then does it load the latest snapshot and replay the journal. Every journal append and
-- snapshot carries that epoch. A statement trigger takes a FOR SHARE lock on the market's
-- epoch row and rejects (SQLSTATE CL001 stale_epoch) rows whose epoch is not the current
-- one. Why this is race-free: an in-flight append holds the share lock until it commits,
-- so a takeover's UPDATE waits for it, and the new incarnation (which reads the journal
-- after its takeover committed) sees that append. An append that starts after the takeover
-- committed sees the new epoch and is rejected. Two incarnations can therefore never both
-- write, and nothing the old one acknowledged is lost.
CREATE TABLE market_epochs (
    market_id    INTEGER PRIMARY KEY REFERENCES markets,
    epoch        BIGINT NOT NULL CHECK (epoch > 0),
    holder       TEXT NOT NULL DEFAULT '',
    acquired_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE market_epochs IS 'Fencing token per market: only the writer holding the current epoch may append to journal/engine_snapshots.';
COMMENT ON COLUMN market_epochs.market_id IS 'Market.';
COMMENT ON COLUMN market_epochs.epoch IS 'Current epoch; bumped by every new incarnation of the market actor.';
COMMENT ON COLUMN market_epochs.holder IS 'Free-form identity of the incarnation (node, actor id, pid), for operators.';
COMMENT ON COLUMN market_epochs.acquired_at IS 'When the current epoch was taken.';

CREATE FUNCTION clob_acquire_market_epoch(p_market_id INTEGER, p_holder TEXT DEFAULT '')
    RETURNS BIGINT
    LANGUAGE sql VOLATILE
    AS $$
        INSERT INTO market_epochs AS e (market_id, epoch, holder)
        VALUES (p_market_id, 1, p_holder)
        ON CONFLICT (market_id) DO UPDATE
            SET epoch = e.epoch + 1, holder = EXCLUDED.holder, acquired_at = now()
        RETURNING epoch
    $$;
COMMENT ON FUNCTION clob_acquire_market_epoch(INTEGER, TEXT) IS
    'Take over a market: bump and return its epoch. Commit before reading the journal; older epochs are fenced from then on.';

CREATE FUNCTION clob_check_epoch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        bad RECORD;
    BEGIN
        -- Lock the epoch rows of every market in the statement (FOR SHARE, so appends of
        -- different markets and group-committed batches do not block each other).
        PERFORM 1 FROM market_epochs e
         WHERE e.market_id IN (SELECT DISTINCT market_id FROM new_rows)
         ORDER BY e.market_id
           FOR SHARE;
        SELECT n.market_id, n.epoch, e.epoch AS current_epoch INTO bad
          FROM new_rows n LEFT JOIN market_epochs e USING (market_id)
         WHERE e.epoch IS DISTINCT FROM n.epoch
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'stale epoch % for market % (current epoch %)',
                  bad.epoch, bad.market_id, coalesce(bad.current_epoch::TEXT, 'none')
                  USING ERRCODE = 'CL001',
                        HINT = 'Another incarnation of this market actor took over; stop writing.';
        END IF;
        RETURN NULL;
    END
    $$;
COMMENT ON FUNCTION clob_check_epoch() IS
    'Statement trigger: reject appended rows whose epoch is not the market''s current epoch (SQLSTATE CL001).';

-- ---------------------------------------------------------------------------------------
-- The journal is the system of record of each market: the commands in the order the
-- engine processed them (the engine is a pure function of it, so events are recomputed on
-- replay). One transaction per batch (group commit, multi-row INSERT or COPY); the actor
-- acknowledges a command only after its batch committed.
CREATE TABLE journal (
    market_id   INTEGER NOT NULL REFERENCES markets,
    seq         BIGINT NOT NULL CHECK (seq > 0),
    epoch       BIGINT NOT NULL CHECK (epoch > 0),
    kind        TEXT NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,31}$'),
    payload     JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, seq)
);
CREATE TRIGGER journal_epoch_fence
    AFTER INSERT ON journal REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION clob_check_epoch();
COMMENT ON TABLE journal IS 'Per-market command journal (append-only by convention, fenced by epoch). Replay = snapshot + rows with seq > snapshot.seq.';
COMMENT ON COLUMN journal.market_id IS 'Market.';
COMMENT ON COLUMN journal.seq IS 'Journal position, per market, assigned by the actor (1, 2, 3, ...). Not the engine event seq.';
COMMENT ON COLUMN journal.epoch IS 'Epoch of the writer; must equal market_epochs.epoch at insert time (trigger).';
COMMENT ON COLUMN journal.kind IS 'Entry kind: the command type (new, cancel, amend, cancel_all, halt, resume, tick) or another lower-case tag.';
COMMENT ON COLUMN journal.payload IS 'The command (or event batch) as JSON, integers only on money fields.';
COMMENT ON COLUMN journal.created_at IS 'Commit-batch time.';

CREATE TABLE engine_snapshots (
    market_id   INTEGER NOT NULL REFERENCES markets,
    seq         BIGINT NOT NULL CHECK (seq >= 0),
    epoch       BIGINT NOT NULL CHECK (epoch > 0),
    event_seq   BIGINT NOT NULL CHECK (event_seq >= 0),
    format      TEXT NOT NULL DEFAULT 'json' CHECK (format ~ '^[a-z0-9+._-]{1,32}$'),
    state       BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, seq)
);
CREATE TRIGGER engine_snapshots_epoch_fence
    AFTER INSERT ON engine_snapshots REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION clob_check_epoch();
COMMENT ON TABLE engine_snapshots IS 'Full engine state dumps; the latest one plus the journal tail restores a market. Fenced by epoch like the journal.';
COMMENT ON COLUMN engine_snapshots.market_id IS 'Market.';
COMMENT ON COLUMN engine_snapshots.seq IS 'Last journal seq included in the state (0 = empty book).';
COMMENT ON COLUMN engine_snapshots.epoch IS 'Epoch of the writer (trigger-checked).';
COMMENT ON COLUMN engine_snapshots.event_seq IS 'Last engine event seq produced by that state; the restored engine continues at event_seq + 1.';
COMMENT ON COLUMN engine_snapshots.format IS 'Encoding of state, e.g. json or json+zlib.';
COMMENT ON COLUMN engine_snapshots.state IS 'Encoded engine state (bytes, restored verbatim).';
COMMENT ON COLUMN engine_snapshots.created_at IS 'When taken.';

-- ---------------------------------------------------------------------------------------
-- Orders: the queryable projection of the order lifecycle (the engine's memory is the
-- truth for the live book). The gateway inserts the row (status pending_new) before routing
-- so that client_order_id is unique per account; the market actor updates it from events.
CREATE TABLE orders (
    order_id                TEXT PRIMARY KEY CHECK (length(order_id) BETWEEN 1 AND 64),
    account_id              BIGINT NOT NULL REFERENCES accounts,
    market_id               INTEGER NOT NULL REFERENCES markets,
    client_order_id         TEXT CHECK (length(client_order_id) BETWEEN 1 AND 64),
    side                    TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    kind                    TEXT NOT NULL CHECK (kind IN ('limit', 'market', 'stop_limit', 'stop_market')),
    tif                     TEXT NOT NULL DEFAULT 'gtc' CHECK (tif IN ('gtc', 'ioc', 'fok', 'gtd')),
    post_only               TEXT CHECK (post_only IN ('reject', 'slide')),
    stp                     TEXT NOT NULL DEFAULT 'none'
                            CHECK (stp IN ('none', 'cancel_newest', 'cancel_oldest', 'cancel_both',
                                           'decrement_and_cancel')),
    price_ticks             BIGINT CHECK (price_ticks > 0),
    stop_price_ticks        BIGINT CHECK (stop_price_ticks > 0),
    qty_lots                BIGINT CHECK (qty_lots > 0),
    quote_qty_tick_lots     BIGINT CHECK (quote_qty_tick_lots > 0),
    display_qty_lots        BIGINT CHECK (display_qty_lots > 0),
    expire_at               TIMESTAMPTZ,
    open_qty_lots           BIGINT NOT NULL DEFAULT 0 CHECK (open_qty_lots >= 0),
    filled_qty_lots         BIGINT NOT NULL DEFAULT 0 CHECK (filled_qty_lots >= 0),
    filled_quote_atoms      NUMERIC(38,0) NOT NULL DEFAULT 0 CHECK (filled_quote_atoms >= 0),
    fee_atoms               NUMERIC(38,0) NOT NULL DEFAULT 0,
    reserved_atoms          NUMERIC(38,0) NOT NULL DEFAULT 0 CHECK (reserved_atoms >= 0),
    status                  TEXT NOT NULL DEFAULT 'pending_new'
                            CHECK (status IN ('pending_new', 'open', 'untriggered', 'partially_filled',
                                              'filled', 'cancelled', 'expired', 'rejected')),
    reason                  TEXT CHECK (reason ~ '^[a-z_]{1,32}$'),
    last_event_seq          BIGINT NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0),
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (account_id, client_order_id),
    CHECK ((price_ticks IS NOT NULL) = (kind IN ('limit', 'stop_limit'))),
    CHECK ((stop_price_ticks IS NOT NULL) = (kind IN ('stop_limit', 'stop_market'))),
    CHECK ((qty_lots IS NULL) <> (quote_qty_tick_lots IS NULL)),
    CHECK (quote_qty_tick_lots IS NULL OR (kind = 'market' AND side = 'buy')),
    CHECK ((expire_at IS NOT NULL) = (tif = 'gtd')),
    CHECK (display_qty_lots IS NULL OR display_qty_lots < qty_lots)
);
-- GET /orders (own, newest first, keyset on (created_at, order_id)), optionally by market.
CREATE INDEX orders_account_created_idx ON orders (account_id, created_at DESC, order_id DESC);
CREATE INDEX orders_account_market_created_idx
    ON orders (account_id, market_id, created_at DESC, order_id DESC);
-- GET /orders?status=open (the hot query; small partial index).
CREATE INDEX orders_account_live_idx ON orders (account_id, market_id, created_at DESC, order_id DESC)
    WHERE status IN ('pending_new', 'open', 'untriggered', 'partially_filled');
-- GET /orders?status=filled|cancelled|... (closed orders by status).
CREATE INDEX orders_account_status_created_idx
    ON orders (account_id, status, created_at DESC, order_id DESC);
-- Recovery and reconciliation: live orders of one market.
CREATE INDEX orders_market_live_idx ON orders (market_id)
    WHERE status IN ('pending_new', 'open', 'untriggered', 'partially_filled');
COMMENT ON TABLE orders IS 'Orders and their lifecycle (projection of engine events). RLS: own orders only.';
COMMENT ON COLUMN orders.order_id IS 'Exchange order id assigned by the gateway (UUID string); the engine''s order id.';
COMMENT ON COLUMN orders.account_id IS 'Owner (the engine''s owner is this id as a string).';
COMMENT ON COLUMN orders.market_id IS 'Market.';
COMMENT ON COLUMN orders.client_order_id IS 'Client-chosen id, unique per account (NULL allowed, never duplicated).';
COMMENT ON COLUMN orders.side IS 'buy or sell.';
COMMENT ON COLUMN orders.kind IS 'limit, market, stop_limit or stop_market.';
COMMENT ON COLUMN orders.tif IS 'Time in force: gtc, ioc, fok, gtd.';
COMMENT ON COLUMN orders.post_only IS 'NULL, reject or slide.';
COMMENT ON COLUMN orders.stp IS 'Self-trade prevention mode.';
COMMENT ON COLUMN orders.price_ticks IS 'Limit price, ticks (limit and stop_limit only; after a slide or amend, the current price).';
COMMENT ON COLUMN orders.stop_price_ticks IS 'Trigger price, ticks (stops only).';
COMMENT ON COLUMN orders.qty_lots IS 'Ordered quantity, lots (NULL for a quote_qty market buy).';
COMMENT ON COLUMN orders.quote_qty_tick_lots IS 'Market buy budget, tick-lots of notional (instead of qty_lots).';
COMMENT ON COLUMN orders.display_qty_lots IS 'Iceberg visible slice, lots.';
COMMENT ON COLUMN orders.expire_at IS 'GTD expiry.';
COMMENT ON COLUMN orders.open_qty_lots IS 'Quantity still working in the book (incl. iceberg reserve), lots.';
COMMENT ON COLUMN orders.filled_qty_lots IS 'Executed quantity, lots.';
COMMENT ON COLUMN orders.filled_quote_atoms IS 'Executed notional, quote atoms (average price = this / filled base).';
COMMENT ON COLUMN orders.fee_atoms IS 'Fees paid, quote atoms; negative = rebate received.';
COMMENT ON COLUMN orders.reserved_atoms IS 'Funds the ledger still holds locked for this order (quote for buys, base for sells), atoms.';
COMMENT ON COLUMN orders.status IS 'pending_new, open, untriggered (pending stop), partially_filled, filled, cancelled, expired, rejected.';
COMMENT ON COLUMN orders.reason IS 'Engine reject or cancel reason code (ENGINE_SPEC), when rejected or cancelled.';
COMMENT ON COLUMN orders.last_event_seq IS 'Engine event seq last applied to this row; events with seq <= it are ignored (idempotent projection).';
COMMENT ON COLUMN orders.created_at IS 'Received by the gateway.';
COMMENT ON COLUMN orders.updated_at IS 'Last change.';

-- ---------------------------------------------------------------------------------------
CREATE TABLE settlements (
    settlement_id                BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    market_id                    INTEGER NOT NULL REFERENCES markets,
    status                       TEXT NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'submitted', 'confirmed', 'failed')),
    trade_count                  INTEGER NOT NULL DEFAULT 0 CHECK (trade_count >= 0),
    signature                    TEXT UNIQUE CHECK (length(signature) BETWEEN 64 AND 100),
    attempts                     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    priority_fee_micro_lamports  BIGINT NOT NULL DEFAULT 0 CHECK (priority_fee_micro_lamports >= 0),
    slot                         BIGINT CHECK (slot >= 0),
    last_error                   TEXT,
    created_at                   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                   TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirmed_at                 TIMESTAMPTZ,
    CHECK ((status = 'confirmed') = (confirmed_at IS NOT NULL))
);
-- The batcher resumes unfinished batches after a restart.
CREATE INDEX settlements_unfinished_idx ON settlements (market_id, settlement_id)
    WHERE status IN ('pending', 'submitted');
COMMENT ON TABLE settlements IS 'On-chain settlement batches (one Solana transaction each, retried). Holds no account data: readable by the API.';
COMMENT ON COLUMN settlements.settlement_id IS 'Batch id (GET /settlements/{id}).';
COMMENT ON COLUMN settlements.market_id IS 'Market whose fills the batch settles.';
COMMENT ON COLUMN settlements.status IS 'pending, submitted, confirmed or failed (after the last retry).';
COMMENT ON COLUMN settlements.trade_count IS 'Number of trades in the batch.';
COMMENT ON COLUMN settlements.signature IS 'Signature of the transaction that landed (or the latest sent); every attempt is in settlement_attempts.';
COMMENT ON COLUMN settlements.attempts IS 'Transactions sent so far.';
COMMENT ON COLUMN settlements.priority_fee_micro_lamports IS 'Compute-unit price of the latest attempt, micro-lamports per CU.';
COMMENT ON COLUMN settlements.slot IS 'Slot the transaction landed in.';
COMMENT ON COLUMN settlements.last_error IS 'Last error seen (for operators).';
COMMENT ON COLUMN settlements.created_at IS 'Batch creation.';
COMMENT ON COLUMN settlements.updated_at IS 'Last change.';
COMMENT ON COLUMN settlements.confirmed_at IS 'Confirmation time (set iff status = confirmed).';

-- Every transaction sent for a batch: a dropped-looking attempt may still land, so the
-- batcher checks all of a batch's signatures before re-sending.
CREATE TABLE settlement_attempts (
    settlement_id                BIGINT NOT NULL REFERENCES settlements,
    attempt                      INTEGER NOT NULL CHECK (attempt > 0),
    signature                    TEXT NOT NULL UNIQUE CHECK (length(signature) BETWEEN 64 AND 100),
    priority_fee_micro_lamports  BIGINT NOT NULL DEFAULT 0 CHECK (priority_fee_micro_lamports >= 0),
    last_valid_block_height      BIGINT CHECK (last_valid_block_height >= 0),
    status                       TEXT NOT NULL DEFAULT 'sent'
                                 CHECK (status IN ('sent', 'landed', 'expired', 'error')),
    error                        TEXT,
    sent_at                      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (settlement_id, attempt)
);
COMMENT ON TABLE settlement_attempts IS 'Each Solana transaction sent for a settlement batch.';
COMMENT ON COLUMN settlement_attempts.settlement_id IS 'Batch.';
COMMENT ON COLUMN settlement_attempts.attempt IS '1, 2, ... per batch.';
COMMENT ON COLUMN settlement_attempts.signature IS 'Transaction signature (base58).';
COMMENT ON COLUMN settlement_attempts.priority_fee_micro_lamports IS 'Compute-unit price used, micro-lamports per CU.';
COMMENT ON COLUMN settlement_attempts.last_valid_block_height IS 'Blockhash expiry: after it the attempt can no longer land.';
COMMENT ON COLUMN settlement_attempts.status IS 'sent, landed, expired or error.';
COMMENT ON COLUMN settlement_attempts.error IS 'Error returned, if any.';
COMMENT ON COLUMN settlement_attempts.sent_at IS 'Send time.';

-- ---------------------------------------------------------------------------------------
-- Trades: one row per engine fill event, unique per (market_id, seq) so the writer can
-- insert with ON CONFLICT DO NOTHING on redelivery. No foreign keys to orders: the order
-- projection and the trade rows may be written by different transactions in any order.
CREATE TABLE trades (
    trade_id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    market_id         INTEGER NOT NULL REFERENCES markets,
    seq               BIGINT NOT NULL CHECK (seq > 0),
    maker_order_id    TEXT NOT NULL,
    taker_order_id    TEXT NOT NULL,
    maker_account_id  BIGINT NOT NULL REFERENCES accounts,
    taker_account_id  BIGINT NOT NULL REFERENCES accounts,
    taker_side        TEXT NOT NULL CHECK (taker_side IN ('buy', 'sell')),
    price_ticks       BIGINT NOT NULL CHECK (price_ticks > 0),
    qty_lots          BIGINT NOT NULL CHECK (qty_lots > 0),
    quote_qty_atoms   NUMERIC(38,0) NOT NULL CHECK (quote_qty_atoms > 0),
    maker_fee_atoms   NUMERIC(38,0) NOT NULL,
    taker_fee_atoms   NUMERIC(38,0) NOT NULL CHECK (taker_fee_atoms >= 0),
    settlement_id     BIGINT REFERENCES settlements,
    executed_at       TIMESTAMPTZ NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (market_id, seq),
    CHECK (maker_order_id <> taker_order_id)
);
-- GET /trades/{market}: recent, paginated by seq -> the unique (market_id, seq) index.
-- Market 24h stats and time-filtered public trades:
CREATE INDEX trades_market_executed_idx ON trades (market_id, executed_at);
-- GET /trades (own fills as maker or taker, optional market and time filters). Query each
-- side on its own index and merge, e.g.
--   (SELECT ... WHERE maker_account_id = $1 AND executed_at < $2 ORDER BY executed_at DESC, trade_id DESC LIMIT $3)
--   UNION ALL
--   (SELECT ... WHERE taker_account_id = $1 AND maker_account_id <> $1 AND ... LIMIT $3)
--   ORDER BY executed_at DESC, trade_id DESC LIMIT $3
-- (the "<>" keeps a self-trade from appearing twice).
CREATE INDEX trades_maker_executed_idx ON trades (maker_account_id, executed_at DESC, trade_id DESC);
CREATE INDEX trades_taker_executed_idx ON trades (taker_account_id, executed_at DESC, trade_id DESC);
-- Trades of a settlement batch; fills not yet batched.
CREATE INDEX trades_settlement_idx ON trades (settlement_id) WHERE settlement_id IS NOT NULL;
CREATE INDEX trades_unsettled_idx ON trades (market_id, seq) WHERE settlement_id IS NULL;
COMMENT ON TABLE trades IS 'Fills. RLS: visible to the maker and the taker; public data without account ids via public_trades.';
COMMENT ON COLUMN trades.trade_id IS 'Trade id (settlement batches key on it).';
COMMENT ON COLUMN trades.market_id IS 'Market.';
COMMENT ON COLUMN trades.seq IS 'Engine event seq of the fill event (unique per market).';
COMMENT ON COLUMN trades.maker_order_id IS 'Resting order.';
COMMENT ON COLUMN trades.taker_order_id IS 'Incoming order.';
COMMENT ON COLUMN trades.maker_account_id IS 'Owner of the resting order.';
COMMENT ON COLUMN trades.taker_account_id IS 'Owner of the incoming order.';
COMMENT ON COLUMN trades.taker_side IS 'Side of the taker (buy = price went up into the asks).';
COMMENT ON COLUMN trades.price_ticks IS 'Execution price (the maker''s), ticks.';
COMMENT ON COLUMN trades.qty_lots IS 'Executed quantity, lots.';
COMMENT ON COLUMN trades.quote_qty_atoms IS 'Notional, quote atoms = price_ticks * qty_lots * quote atoms per tick-lot of the market (exact).';
COMMENT ON COLUMN trades.maker_fee_atoms IS 'Maker fee, quote atoms; negative = rebate.';
COMMENT ON COLUMN trades.taker_fee_atoms IS 'Taker fee, quote atoms, rounded up.';
COMMENT ON COLUMN trades.settlement_id IS 'On-chain settlement batch, NULL until batched.';
COMMENT ON COLUMN trades.executed_at IS 'Engine time of the fill (the command''s ts).';
COMMENT ON COLUMN trades.created_at IS 'Row insert time.';
