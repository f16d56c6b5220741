-- 0019_withdrawal_wire: the signed bytes of every transaction sent for a withdrawal. While
-- its blockhash is valid, a dropped transaction is sent again byte for byte (the same
-- signature, so it can land at most once), also by a custody actor that restarted.
SET LOCAL ROLE clob_owner;

ALTER TABLE withdrawal_sends ADD COLUMN tx_wire BYTEA
    CHECK (tx_wire IS NULL OR octet_length(tx_wire) BETWEEN 1 AND 1232);
COMMENT ON COLUMN withdrawal_sends.tx_wire IS 'The signed transaction as sent (at most 1,232 bytes), to send again while its blockhash is valid.';
