-- The whole PostgreSQL store's schema (cluster mode): the conversions and their partners'
-- days, the commissions and the ledger, in the first schema of the connection's search path.
-- The same tables, constraints and rules as SQLite's migration 0001, typed for PostgreSQL; the
-- catalog (programs, partners, links, coupons) stays in each node's local SQLite file. Every
-- stored enum carries a check, so an unknown value is refused here as well as by the code
-- that parses it.

-- The conversion tables. There is no kept first answer: a retry rebuilds it from the rows
-- (`view::render_first`).
CREATE TABLE conversions (
    id TEXT PRIMARY KEY,
    program TEXT NOT NULL,
    order_id TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    day BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    click_id TEXT,
    visitor_id TEXT,
    coupon_code TEXT,
    customer_ref TEXT,
    origin TEXT NOT NULL CHECK (origin IN ('api', 'postback', 'import')),
    fingerprint BYTEA NOT NULL,
    method TEXT NOT NULL CHECK (method IN ('click_id', 'visitor', 'coupon', 'none')),
    attribution TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled', 'refunded')),
    refunded_minor BIGINT NOT NULL CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor)
);
CREATE INDEX conversions_program_day ON conversions (program, day);
CREATE TABLE partner_days (
    partner TEXT NOT NULL,
    day BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- Credited conversions not cancelled, and the partner's shares of them.
    conversions BIGINT NOT NULL,
    revenue_minor BIGINT NOT NULL,
    -- The sum over credited conversions of share * refunded / amount, rounded down each.
    refunded_minor BIGINT NOT NULL,
    cancelled BIGINT NOT NULL,
    PRIMARY KEY (day, partner, currency)
);
CREATE INDEX partner_days_by_partner ON partner_days (partner, day, currency);
CREATE TABLE conversion_events (
    conversion_id TEXT NOT NULL REFERENCES conversions(id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('confirmed', 'cancelled', 'refunded')),
    amount_minor BIGINT,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (conversion_id, seq)
);
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    request_hash BYTEA NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ms);

-- The ledger. Uniqueness of ids, of a pending's resolution and of a commission's posting is
-- enforced by the schema too, so a bug above cannot store a duplicate. A trigger makes
-- transfers append-only: no update, delete or truncate.
CREATE TABLE ledger_transfers (
    seq BIGINT PRIMARY KEY CHECK (seq > 0),
    id BYTEA NOT NULL UNIQUE CHECK (length(id) = 16),
    cause TEXT NOT NULL,
    debit_kind TEXT NOT NULL CHECK (debit_kind IN ('program_expense', 'partner_pending', 'partner_payable', 'partner_paid')),
    debit_owner TEXT NOT NULL,
    credit_kind TEXT NOT NULL CHECK (credit_kind IN ('program_expense', 'partner_pending', 'partner_payable', 'partner_paid')),
    credit_owner TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    kind TEXT NOT NULL CHECK (kind IN ('pending', 'post', 'void', 'single')),
    subject TEXT,
    pending_id BYTEA CHECK (pending_id IS NULL OR length(pending_id) = 16),
    at_ms BIGINT NOT NULL,
    prev_hash BYTEA NOT NULL CHECK (length(prev_hash) = 32),
    hash BYTEA NOT NULL CHECK (length(hash) = 32)
);
CREATE UNIQUE INDEX ledger_transfers_resolution ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_transfers_subject ON ledger_transfers (subject, kind)
    WHERE subject IS NOT NULL AND kind IN ('post', 'single');
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'ledger transfers are append-only'; END $$;
CREATE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TABLE ledger_balances (
    kind TEXT NOT NULL CHECK (kind IN ('program_expense', 'partner_pending', 'partner_payable', 'partner_paid')),
    owner TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    debits_pending BIGINT NOT NULL,
    credits_pending BIGINT NOT NULL,
    debits_posted BIGINT NOT NULL,
    credits_posted BIGINT NOT NULL,
    PRIMARY KEY (kind, owner, currency)
);
-- Every step of every writer locks this row first (`FOR UPDATE`), so appends from several
-- processes form one chain.
CREATE TABLE ledger_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO ledger_head (singleton, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- The commission tables. A trigger makes `commission_events` append-only, as the ledger's makes
-- its transfers.
CREATE TABLE commissions (
    id TEXT PRIMARY KEY,
    conversion_id TEXT NOT NULL,
    program TEXT NOT NULL,
    partner TEXT NOT NULL,
    item TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    voided_minor BIGINT NOT NULL CHECK (voided_minor >= 0),
    reversed_minor BIGINT NOT NULL CHECK (reversed_minor >= 0),
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'paid', 'voided', 'reversed')),
    rule_version TEXT NOT NULL,
    period TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    lock_until_ms BIGINT NOT NULL,
    approved_at_ms BIGINT,
    paid_at_ms BIGINT,
    payout_id TEXT,
    reserve_seq BIGINT NOT NULL,
    -- The order commissions were stored in: the API lists by (created_at_ms, seq), as SQLite
    -- lists by (created_at_ms, rowid).
    seq BIGSERIAL,
    CHECK (voided_minor + reversed_minor <= amount_minor),
    UNIQUE (conversion_id, partner, item)
);
CREATE INDEX commissions_due ON commissions (lock_until_ms) WHERE status = 'pending';
CREATE INDEX commissions_listed ON commissions (created_at_ms, seq);
CREATE INDEX commissions_partner_listed ON commissions (partner, created_at_ms, seq);
CREATE INDEX commissions_approved ON commissions (partner, currency, created_at_ms, id) WHERE status = 'approved';
CREATE INDEX commissions_payout_listed ON commissions (payout_id, created_at_ms, seq) WHERE payout_id IS NOT NULL;
CREATE TABLE commission_events (
    commission_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('created', 'voided', 'approved', 'paid', 'reversed', 'clawed_back')),
    amount_minor BIGINT NOT NULL,
    transfer_id BYTEA NOT NULL CHECK (length(transfer_id) = 16),
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (commission_id, seq)
);
CREATE FUNCTION commission_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'commission events are append-only'; END $$;
CREATE TRIGGER commission_events_append_only BEFORE UPDATE OR DELETE ON commission_events
    FOR EACH ROW EXECUTE FUNCTION commission_events_append_only();
CREATE TRIGGER commission_events_no_truncate BEFORE TRUNCATE ON commission_events
    FOR EACH STATEMENT EXECUTE FUNCTION commission_events_append_only();
CREATE TABLE commission_periods (
    program TEXT NOT NULL,
    partner TEXT NOT NULL,
    currency TEXT NOT NULL,
    period TEXT NOT NULL,
    volume_minor BIGINT NOT NULL,
    conversions BIGINT NOT NULL,
    commission_minor BIGINT NOT NULL,
    bonuses_paid BIGINT NOT NULL,
    PRIMARY KEY (program, partner, currency, period)
);
CREATE TABLE commission_rules (
    version TEXT PRIMARY KEY,
    rules TEXT NOT NULL
);
-- A conversion is accrued once: its id here is the key every writer's accrual conflicts on.
CREATE TABLE commission_accruals (
    conversion_id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL
);
