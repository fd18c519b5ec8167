-- The audit log: one row per write made through the API or the CLI, inserted in the write's own
-- transaction, so a write and its record commit together or neither does. `actor` is a stored
-- key's id, `admin` (the configured bootstrap key) or `cli`; `before` and `after` are the
-- object's JSON with its sensitive fields redacted (`audit::redact`), NULL for a creation.
-- The triggers refuse any change to a stored row or the deletion of one: the log is append-only.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY CHECK (seq > 0),
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL CHECK (actor = 'admin' OR actor = 'cli' OR actor LIKE 'ak\_%' ESCAPE '\'),
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_at ON audit_log (at_ms, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- A coupon's status, as a program's, partner's or link's: attribution ignores a paused or
-- expired coupon. The change log's trigger on coupons records the update.
ALTER TABLE coupons ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status = 'active' OR status = 'paused' OR status = 'expired');
