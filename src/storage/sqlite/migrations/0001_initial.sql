-- The whole store file's schema: the catalog (programs, partners, coupons, links), the
-- conversions and their partners' days, the commissions and the ledger. One file, so a
-- conversion, its commissions and their transfers commit in one transaction.
--
-- A check on a list of values is written as `=` comparisons joined by `OR`: SQLite evaluates an
-- `IN` list of more than two constants through a temporary b-tree that it builds and drops for
-- every row inserted, which costs about as much as the row itself. Every stored enum carries
-- such a check, so an unknown value is refused here as well as by the code that parses it.

-- The catalog. The edge loads it whole at start and on reloads, never per request.
CREATE TABLE programs (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status = 'active' OR status = 'paused' OR status = 'expired')
);
CREATE TABLE partners (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status = 'active' OR status = 'paused' OR status = 'expired')
);
CREATE TABLE coupons (
    code TEXT NOT NULL,
    program_id INTEGER NOT NULL REFERENCES programs(id),
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    PRIMARY KEY (program_id, code)
);
CREATE TABLE links (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    program_id INTEGER NOT NULL REFERENCES programs(id),
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    destination TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel = 'web' OR channel = 'social' OR channel = 'email' OR channel = 'qr'
        OR channel = 'offline' OR channel = 'marketplace'),
    utm_source TEXT NOT NULL,
    utm_medium TEXT NOT NULL,
    utm_campaign TEXT NOT NULL,
    expires_at INTEGER,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status = 'active' OR status = 'paused' OR status = 'expired')
);

-- The conversion tables.
--
-- Small rows found by their primary key (events, partner days) are `WITHOUT ROWID`: one
-- b-tree insert per row instead of a table and its key index.
--
-- Each b-tree page an insert lands on is written whole to the WAL at the group's commit and
-- again at the checkpoint, so what costs is how many distinct pages a group touches. A key
-- that is a hash (a conversion id) sends each insert to a page of its own; so does a key that
-- starts with the partner, one page per partner in the group. So only `conversions.id` is
-- keyed by the hash (retries and `GET` find a conversion by it; it derives from (program, order
-- id), so it is also what makes an order unique in its program), and a partner's report reads
-- `partner_days`, one row per (partner, day, currency) kept up to date by the writer and keyed
-- by the day first, so a day's rows sit together on a few pages, not one row per credited
-- conversion. A conversion's creation is its row (`received_at_ms`), not an event row; events
-- are the later steps. No answer is kept in the row: a retry rebuilds the first answer from
-- the rows (`view::render_first`).
CREATE TABLE conversions (
    id TEXT PRIMARY KEY,
    program TEXT NOT NULL,
    order_id TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency TEXT NOT NULL,
    occurred_at_ms INTEGER NOT NULL,
    day INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    click_id TEXT,
    visitor_id TEXT,
    coupon_code TEXT,
    customer_ref TEXT,
    origin TEXT NOT NULL CHECK (origin = 'api' OR origin = 'postback' OR origin = 'import'),
    fingerprint BLOB NOT NULL,
    method TEXT NOT NULL CHECK (method = 'click_id' OR method = 'visitor' OR method = 'coupon' OR method = 'none'),
    attribution TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status = 'pending' OR status = 'confirmed' OR status = 'cancelled' OR status = 'refunded'),
    refunded_minor INTEGER NOT NULL CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor)
);
CREATE INDEX conversions_program_day ON conversions (program, day);
CREATE TABLE partner_days (
    partner TEXT NOT NULL,
    day INTEGER NOT NULL,
    currency TEXT NOT NULL,
    -- Credited conversions not cancelled, and the partner's shares of them.
    conversions INTEGER NOT NULL,
    revenue_minor INTEGER NOT NULL,
    -- The sum over credited conversions of share * refunded / amount, rounded down each.
    refunded_minor INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    PRIMARY KEY (day, partner, currency)
) WITHOUT ROWID;
-- A row is inserted once per partner, day and currency, and then only its counts change, which
-- leaves this index alone: the writer's updates stay on the current day's few pages.
CREATE INDEX partner_days_by_partner ON partner_days (partner, day, currency);
CREATE TABLE conversion_events (
    conversion_id TEXT NOT NULL REFERENCES conversions(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind = 'confirmed' OR kind = 'cancelled' OR kind = 'refunded'),
    amount_minor INTEGER,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (conversion_id, seq)
) WITHOUT ROWID;
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    request_hash BLOB NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ms);

-- The ledger. Uniqueness of ids, of a pending's resolution and of a commission's posting is
-- enforced by the schema too, so a bug above cannot store a duplicate. The triggers refuse any
-- change to a stored transfer or the deletion of one: the table is append-only.
CREATE TABLE ledger_transfers (
    seq INTEGER PRIMARY KEY CHECK (seq > 0),
    id BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
    cause TEXT NOT NULL,
    debit_kind TEXT NOT NULL CHECK (debit_kind = 'program_expense' OR debit_kind = 'partner_pending'
        OR debit_kind = 'partner_payable' OR debit_kind = 'partner_paid'),
    debit_owner TEXT NOT NULL,
    credit_kind TEXT NOT NULL CHECK (credit_kind = 'program_expense' OR credit_kind = 'partner_pending'
        OR credit_kind = 'partner_payable' OR credit_kind = 'partner_paid'),
    credit_owner TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    kind TEXT NOT NULL CHECK (kind = 'pending' OR kind = 'post' OR kind = 'void' OR kind = 'single'),
    subject TEXT,
    pending_id BLOB CHECK (pending_id IS NULL OR length(pending_id) = 16),
    at_ms INTEGER NOT NULL,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
CREATE UNIQUE INDEX ledger_transfers_resolution ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_transfers_subject ON ledger_transfers (subject, kind)
    WHERE subject IS NOT NULL AND kind IN ('post', 'single');
CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
    BEGIN SELECT RAISE(ABORT, 'ledger transfers are append-only'); END;
CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
    BEGIN SELECT RAISE(ABORT, 'ledger transfers are append-only'); END;
CREATE TABLE ledger_balances (
    kind TEXT NOT NULL CHECK (kind = 'program_expense' OR kind = 'partner_pending' OR kind = 'partner_payable'
        OR kind = 'partner_paid'),
    owner TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    debits_pending INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    debits_posted INTEGER NOT NULL,
    credits_posted INTEGER NOT NULL,
    PRIMARY KEY (kind, owner, currency)
) STRICT, WITHOUT ROWID;
CREATE TABLE ledger_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
INSERT INTO ledger_head (singleton, seq, hash) VALUES (1, 0, zeroblob(32));

-- The commission tables. `commission_events` is append-only like the ledger's transfers; a
-- commission row holds the current state, which its events and transfers explain.
--
-- No key here is a hash alone: commission ids start with their conversion's second
-- (`lifecycle::commission_id`), accruals are keyed by the conversion's time first, so inserts
-- land at the end of each b-tree and a grouped commit writes few pages. (conversion, partner,
-- item) needs no unique index of its own: the commission id derives from it, and a conversion
-- is accrued once (`commission_accrued`). A conversion's commissions are one range of the id.
--
-- The API lists commissions in `(created_at_ms, rowid)` order: an index on `created_at_ms`
-- holds the rowid after it already, so the listing's indexes (by time, by partner and time, by
-- payout and time) carry no 27-byte id, and their entries are about a third of the size they
-- would be with it: fewer pages for a group to write. The approved index keeps `id`: a payout
-- run pays in `(created_at_ms, id)` order on both backends.
CREATE TABLE commissions (
    id TEXT PRIMARY KEY,
    conversion_id TEXT NOT NULL,
    program TEXT NOT NULL,
    partner TEXT NOT NULL,
    item TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    voided_minor INTEGER NOT NULL CHECK (voided_minor >= 0),
    reversed_minor INTEGER NOT NULL CHECK (reversed_minor >= 0),
    status TEXT NOT NULL
        CHECK (status = 'pending' OR status = 'approved' OR status = 'paid' OR status = 'voided' OR status = 'reversed'),
    rule_version TEXT NOT NULL,
    period TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    lock_until_ms INTEGER NOT NULL,
    approved_at_ms INTEGER,
    paid_at_ms INTEGER,
    payout_id TEXT,
    reserve_seq INTEGER NOT NULL,
    CHECK (voided_minor + reversed_minor <= amount_minor)
) STRICT;
CREATE INDEX commissions_due ON commissions (lock_until_ms) WHERE status = 'pending';
CREATE INDEX commissions_by_time ON commissions (created_at_ms);
CREATE INDEX commissions_by_partner_time ON commissions (partner, created_at_ms);
CREATE INDEX commissions_approved ON commissions (partner, currency, created_at_ms, id) WHERE status = 'approved';
CREATE INDEX commissions_by_payout_time ON commissions (payout_id, created_at_ms) WHERE payout_id IS NOT NULL;
CREATE TABLE commission_events (
    commission_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind = 'created' OR kind = 'voided' OR kind = 'approved' OR kind = 'paid' OR kind = 'reversed'
        OR kind = 'clawed_back'),
    amount_minor INTEGER NOT NULL,
    transfer_id BLOB NOT NULL CHECK (length(transfer_id) = 16),
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (commission_id, seq)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER commission_events_no_update BEFORE UPDATE ON commission_events
    BEGIN SELECT RAISE(ABORT, 'commission events are append-only'); END;
CREATE TRIGGER commission_events_no_delete BEFORE DELETE ON commission_events
    BEGIN SELECT RAISE(ABORT, 'commission events are append-only'); END;
CREATE TABLE commission_periods (
    program TEXT NOT NULL,
    partner TEXT NOT NULL,
    currency TEXT NOT NULL,
    period TEXT NOT NULL,
    volume_minor INTEGER NOT NULL,
    conversions INTEGER NOT NULL,
    commission_minor INTEGER NOT NULL,
    bonuses_paid INTEGER NOT NULL,
    PRIMARY KEY (program, partner, currency, period)
) STRICT, WITHOUT ROWID;
CREATE TABLE commission_rules (
    version TEXT PRIMARY KEY,
    rules TEXT NOT NULL
) STRICT;
CREATE TABLE commission_accrued (
    occurred_at_ms INTEGER NOT NULL,
    conversion_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (occurred_at_ms, conversion_id)
) STRICT, WITHOUT ROWID;
