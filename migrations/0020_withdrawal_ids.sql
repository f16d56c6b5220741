-- 0020_withdrawal_ids: the custody actor may move the withdrawal id sequence forward.
-- Withdrawal ids are the program's replay keys on chain. A database that meets a chain
-- whose exchange has applied ids already (a restored backup, a second database on a test
-- chain) would reuse them, and the program would refuse them as replays; at its first sync
-- the chain actor moves the sequence past the program's replay window instead.
SET LOCAL ROLE clob_owner;

GRANT UPDATE ON SEQUENCE withdrawals_withdrawal_id_seq TO clob_system;
