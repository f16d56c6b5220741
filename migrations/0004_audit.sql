-- 0004_audit: the append-only audit log and the triggers that feed it.
--
-- Append-only is enforced three ways: a statement-level BEFORE UPDATE OR DELETE OR
-- TRUNCATE trigger raises SQLSTATE CL002 for everyone (superusers included, and even
-- when no row matches); UPDATE, DELETE and TRUNCATE are revoked from every role (the owner
-- too, so a non-superuser gets a permission error before the trigger); and the owner role
-- clob_owner cannot log in. Known limit: a superuser can still disable triggers (ALTER
-- TABLE ... DISABLE TRIGGER, session_replication_role = replica) or drop the table; the
-- database cannot protect itself from its superuser, so ship the log off-box as well.
SET LOCAL ROLE clob_owner;

CREATE TABLE audit_log (
    audit_id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    db_role            TEXT NOT NULL DEFAULT current_user,
    acting_account_id  BIGINT DEFAULT clob_current_account_id(),
    account_id         BIGINT,
    actor              TEXT NOT NULL DEFAULT '',
    action             TEXT NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]{0,63}$'),
    entity             TEXT NOT NULL DEFAULT '',
    entity_id          TEXT,
    request_id         TEXT,
    details            JSONB NOT NULL DEFAULT '{}'
);
-- No foreign keys on purpose: the log must accept (and keep) entries about anything.
CREATE INDEX audit_log_account_idx ON audit_log (account_id, occurred_at DESC) WHERE account_id IS NOT NULL;
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, occurred_at DESC);
CREATE INDEX audit_log_occurred_idx ON audit_log USING brin (occurred_at);
COMMENT ON TABLE audit_log IS 'Append-only audit trail: UPDATE/DELETE/TRUNCATE are refused by trigger (SQLSTATE CL002) and revoked.';
COMMENT ON COLUMN audit_log.audit_id IS 'Entry id, increasing.';
COMMENT ON COLUMN audit_log.occurred_at IS 'Transaction time of the entry.';
COMMENT ON COLUMN audit_log.db_role IS 'Database role that wrote it (current_user).';
COMMENT ON COLUMN audit_log.acting_account_id IS 'Account the connection was acting for (clob.account_id), if any.';
COMMENT ON COLUMN audit_log.account_id IS 'Account the entry is about, if any.';
COMMENT ON COLUMN audit_log.actor IS 'Service or principal that caused it (e.g. gateway, ledger-3, admin:alice).';
COMMENT ON COLUMN audit_log.action IS 'What happened, lower-case dotted (insert, update, delete, order.place, withdrawal.confirm, ...).';
COMMENT ON COLUMN audit_log.entity IS 'Kind of object (a table name for row changes).';
COMMENT ON COLUMN audit_log.entity_id IS 'Id of the object, as text.';
COMMENT ON COLUMN audit_log.request_id IS 'Request or correlation id, if any.';
COMMENT ON COLUMN audit_log.details IS 'Details; for row changes {"old": ..., "new": ...} with secrets left out.';

CREATE FUNCTION clob_refuse_audit_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
              USING ERRCODE = 'CL002';
    END
    $$;
COMMENT ON FUNCTION clob_refuse_audit_change() IS 'Trigger: refuse UPDATE, DELETE and TRUNCATE on audit_log (SQLSTATE CL002).';

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION clob_refuse_audit_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM clob_owner;

-- Row changes of the security-relevant, low-volume tables are logged automatically.
-- Arguments: the column used as entity_id, then columns to leave out of the log (secrets,
-- noise). An UPDATE that changes only left-out columns is not logged. SECURITY INVOKER, so
-- db_role names the real writer; writers therefore need INSERT on audit_log (0005).
CREATE FUNCTION clob_audit_row_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        skip     TEXT[] := TG_ARGV[1:];
        old_doc  JSONB;
        new_doc  JSONB;
        doc      JSONB;
    BEGIN
        IF TG_OP <> 'INSERT' THEN old_doc := to_jsonb(OLD) - skip; END IF;
        IF TG_OP <> 'DELETE' THEN new_doc := to_jsonb(NEW) - skip; END IF;
        IF TG_OP = 'UPDATE' AND old_doc = new_doc THEN
            RETURN NULL;
        END IF;
        doc := coalesce(new_doc, old_doc);
        INSERT INTO audit_log (account_id, actor, action, entity, entity_id, details)
        VALUES ((doc ->> 'account_id')::BIGINT, 'db-trigger', lower(TG_OP), TG_TABLE_NAME,
                doc ->> TG_ARGV[0], jsonb_build_object('old', old_doc, 'new', new_doc));
        RETURN NULL;
    END
    $$;
COMMENT ON FUNCTION clob_audit_row_change() IS
    'Trigger: append a row change to audit_log. Args: entity id column, then columns to omit.';

CREATE TRIGGER accounts_audit AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION clob_audit_row_change('account_id');
CREATE TRIGGER api_keys_audit AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION clob_audit_row_change('key_id', 'secret_sha256', 'last_used_at');
CREATE TRIGGER assets_audit AFTER INSERT OR UPDATE OR DELETE ON assets
    FOR EACH ROW EXECUTE FUNCTION clob_audit_row_change('asset_id');
CREATE TRIGGER markets_audit AFTER INSERT OR UPDATE OR DELETE ON markets
    FOR EACH ROW EXECUTE FUNCTION clob_audit_row_change('market_id');
CREATE TRIGGER market_epochs_audit AFTER INSERT OR UPDATE OR DELETE ON market_epochs
    FOR EACH ROW EXECUTE FUNCTION clob_audit_row_change('market_id');
CREATE TRIGGER deposit_addresses_audit AFTER INSERT OR UPDATE OR DELETE ON deposit_addresses
    FOR EACH ROW EXECUTE FUNCTION clob_audit_row_change('address');
CREATE TRIGGER withdrawal_addresses_audit AFTER INSERT OR UPDATE OR DELETE ON withdrawal_addresses
    FOR EACH ROW EXECUTE FUNCTION clob_audit_row_change('address');
CREATE TRIGGER withdrawals_audit AFTER INSERT OR UPDATE OR DELETE ON withdrawals
    FOR EACH ROW EXECUTE FUNCTION clob_audit_row_change('withdrawal_id', 'confirm_code_sha256');
