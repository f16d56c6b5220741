-- 0018_custody_records: what 0003's custody tables lack for the flows of issue 15.
--   * withdrawals: the lifecycle of actors/custody/withdrawals.py (requested ->
--     pending_confirmation -> debited -> sent -> confirmed | failed, or cancelled before
--     any debit); the CHECK lists exactly its STATUSES (a unit test compares them). The
--     ledger is debited with the reference withdrawal:<id>, and a failed withdrawal is
--     re-credited once with withdrawal-refund:<id> (refunded_at). Every transaction sent
--     is kept (withdrawal_sends): a dropped one may still land before its blockhash
--     expires, and the program's replay window lets only one of them move the funds.
--   * deposits: one row per (transaction, deposit address): the listener credits the net
--     change of a vault's token balance in a transaction, with the reference
--     deposit:<signature>:<address>; the per-instruction key of 0003 goes.
--   * deposit_cursors: per vault, the newest signature the listener has seen (it catches
--     up from the chain's history after a restart or a missed poll).
SET LOCAL ROLE clob_owner;

-- ---------------------------------------------------------------------------------------
ALTER TABLE withdrawals DROP CONSTRAINT withdrawals_status_check;
UPDATE withdrawals SET status = CASE status
    WHEN 'confirmed' THEN 'pending_confirmation'  -- 0003's user-confirmed, not yet debited
    WHEN 'submitted' THEN 'sent'
    WHEN 'completed' THEN 'confirmed'
    WHEN 'rejected' THEN 'cancelled'
    ELSE status END;
ALTER TABLE withdrawals ADD CONSTRAINT withdrawals_status_check
    CHECK (status IN ('requested', 'pending_confirmation', 'debited', 'sent', 'confirmed',
                      'failed', 'cancelled'));
ALTER TABLE withdrawals
    ADD COLUMN confirm_expires_at       TIMESTAMPTZ,
    ADD COLUMN debited_at               TIMESTAMPTZ,
    ADD COLUMN sent_at                  TIMESTAMPTZ,
    ADD COLUMN last_valid_block_height  BIGINT CHECK (last_valid_block_height >= 0),
    ADD COLUMN lease_until              TIMESTAMPTZ,
    ADD COLUMN refunded_at              TIMESTAMPTZ,
    ADD CONSTRAINT withdrawals_refund_only_failed
        CHECK (refunded_at IS NULL OR status = 'failed'),
    ADD CONSTRAINT withdrawals_second_step_has_code
        CHECK (status <> 'pending_confirmation'
               OR (confirm_code_sha256 IS NOT NULL AND confirm_expires_at IS NOT NULL));
COMMENT ON COLUMN withdrawals.status IS 'requested, pending_confirmation (second step), debited (ledger moved), sent (transaction sent), confirmed (landed), failed (re-credited, see refunded_at) or cancelled (never debited). Transitions: actors/custody/withdrawals.py.';
COMMENT ON COLUMN withdrawals.completed_at IS 'When the transaction reached the confirmation depth (status confirmed).';
COMMENT ON COLUMN withdrawals.confirm_code_sha256 IS 'SHA-256 of the one-time code of the second step (the code is answered once, to the requester).';
COMMENT ON COLUMN withdrawals.confirm_expires_at IS 'The second step must be confirmed before this time, else the request is cancelled.';
COMMENT ON COLUMN withdrawals.debited_at IS 'When the ledger debited it (reference withdrawal:<id>).';
COMMENT ON COLUMN withdrawals.sent_at IS 'When its last transaction was sent.';
COMMENT ON COLUMN withdrawals.tx_signature IS 'Signature of its last transaction (every one sent: withdrawal_sends).';
COMMENT ON COLUMN withdrawals.last_valid_block_height IS 'Last block height at which the last transaction''s blockhash is valid (getLatestBlockhash lastValidBlockHeight).';
COMMENT ON COLUMN withdrawals.lease_until IS 'The custody actor claimed it until this time (a sender that dies lets the claim lapse).';
COMMENT ON COLUMN withdrawals.refunded_at IS 'When a failed withdrawal was re-credited (reference withdrawal-refund:<id>); NULL while the refund is owed.';
COMMENT ON COLUMN withdrawals.fee_atoms IS 'Withdrawal fee, atoms; always 0 today (no withdrawal fee is charged).';

DROP INDEX withdrawals_in_flight_idx;
CREATE INDEX withdrawals_in_flight_idx ON withdrawals (withdrawal_id)
    WHERE status IN ('requested', 'debited', 'sent')
       OR (status = 'failed' AND refunded_at IS NULL);

-- The API takes the user's steps only: record a request, hold it for the second step,
-- cancel it before any debit. Debits, sends, outcomes and refunds are clob_system's.
DROP POLICY withdrawals_api_steps ON withdrawals;
CREATE POLICY withdrawals_api_steps ON withdrawals AS RESTRICTIVE FOR UPDATE TO clob_api
    USING (status IN ('requested', 'pending_confirmation'))
    WITH CHECK (status IN ('requested', 'pending_confirmation', 'cancelled'));

-- What those steps write besides the status: the second step's code and deadline, and why
-- a request was cancelled.
GRANT UPDATE (confirm_code_sha256, confirm_expires_at, last_error) ON withdrawals TO clob_api;

CREATE TABLE withdrawal_sends (
    tx_signature             TEXT PRIMARY KEY CHECK (length(tx_signature) BETWEEN 64 AND 100),
    withdrawal_id            BIGINT NOT NULL REFERENCES withdrawals,
    last_valid_block_height  BIGINT NOT NULL CHECK (last_valid_block_height >= 0),
    sent_at                  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX withdrawal_sends_withdrawal_idx ON withdrawal_sends (withdrawal_id, sent_at);
COMMENT ON TABLE withdrawal_sends IS 'Every transaction sent for a withdrawal (any of them may land; the program refuses a second one). System only.';
COMMENT ON COLUMN withdrawal_sends.tx_signature IS 'Transaction signature (base58).';
COMMENT ON COLUMN withdrawal_sends.withdrawal_id IS 'Withdrawal.';
COMMENT ON COLUMN withdrawal_sends.last_valid_block_height IS 'Last block height at which its blockhash is valid.';
COMMENT ON COLUMN withdrawal_sends.sent_at IS 'When it was sent.';

-- ---------------------------------------------------------------------------------------
ALTER TABLE deposits DROP COLUMN instruction_index;  -- and its UNIQUE with tx_signature
ALTER TABLE deposits ADD CONSTRAINT deposits_signature_address_key
    UNIQUE (tx_signature, address);
COMMENT ON TABLE deposits IS 'On-chain deposits, one per (transaction, deposit address); credited to balances once (reference deposit:<signature>:<address>), after the confirmation depth. RLS: own rows only.';
COMMENT ON COLUMN deposits.amount_atoms IS 'Net increase of the deposit address''s token balance in the transaction, atoms.';

CREATE TABLE deposit_cursors (
    address         TEXT PRIMARY KEY CHECK (length(address) BETWEEN 32 AND 44),
    last_signature  TEXT NOT NULL CHECK (length(last_signature) BETWEEN 64 AND 100),
    last_slot       BIGINT NOT NULL CHECK (last_slot >= 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE deposit_cursors IS 'Per deposit address, the newest transaction the deposit listener has recorded: it asks the chain for the signatures after it. System only.';
COMMENT ON COLUMN deposit_cursors.address IS 'Deposit address (the vault token account, base58).';
COMMENT ON COLUMN deposit_cursors.last_signature IS 'Newest signature seen and recorded.';
COMMENT ON COLUMN deposit_cursors.last_slot IS 'Its slot.';
COMMENT ON COLUMN deposit_cursors.updated_at IS 'Last change.';

GRANT SELECT, INSERT ON withdrawal_sends TO clob_system;
GRANT SELECT, INSERT, UPDATE, DELETE ON deposit_cursors TO clob_system;
