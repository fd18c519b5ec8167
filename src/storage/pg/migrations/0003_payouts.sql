-- Payouts: payout runs, their payouts and the lock that keeps two runs from overlapping. The
-- partners' payout details and the programs' thresholds stay in each node's SQLite catalog.
CREATE TABLE payout_runs (
    id TEXT PRIMARY KEY,
    program TEXT,
    currency TEXT CHECK (currency IS NULL OR length(currency) = 3),
    trigger TEXT NOT NULL CHECK (trigger IN ('cli', 'api', 'schedule')),
    status TEXT NOT NULL CHECK (status IN ('running', 'finished')),
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT
);
CREATE INDEX payout_runs_by_program ON payout_runs (program, started_ms);
-- One row per (run, partner, currency); the id derives from the three and is the provider's
-- idempotency key.
CREATE TABLE payouts (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES payout_runs(id),
    partner TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    method TEXT NOT NULL CHECK (method IN ('stripe', 'paypal', 'wise', 'manual')),
    destination TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('created', 'sent', 'paid', 'failed')),
    reference TEXT,
    failure TEXT,
    insufficient BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms BIGINT NOT NULL,
    sent_ms BIGINT,
    settled_ms BIGINT,
    UNIQUE (run_id, partner, currency)
);
CREATE INDEX payouts_by_partner ON payouts (partner, created_ms);
CREATE INDEX payouts_open ON payouts (status, method) WHERE status IN ('created', 'sent');
-- The run lock: one row while a run holds it, until `expires_ms`.
CREATE TABLE payout_lock (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    run_id TEXT NOT NULL,
    -- A random token of the process holding it: a resumed run is the same run in another one.
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX commissions_unpaid ON commissions (program, partner, currency) WHERE status = 'approved' AND payout_id IS NULL;
