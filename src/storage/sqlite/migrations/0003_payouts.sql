-- Payouts: partners' payout details, payout runs, their payouts and the lock that keeps two
-- runs from overlapping. A program's threshold and schedule live in its JSON spec.
ALTER TABLE partners ADD COLUMN payout_method TEXT NOT NULL DEFAULT 'manual'
    CHECK (payout_method = 'stripe' OR payout_method = 'paypal' OR payout_method = 'wise' OR payout_method = 'manual');
ALTER TABLE partners ADD COLUMN stripe_account TEXT;
ALTER TABLE partners ADD COLUMN paypal_email TEXT;
-- One row per run. `running` holds the lock; `finished` has handled every payout it created
-- (a file or manual payout may still wait for its confirmation, a Stripe one for a retry).
CREATE TABLE payout_runs (
    id TEXT PRIMARY KEY,
    program TEXT,
    currency TEXT CHECK (currency IS NULL OR length(currency) = 3),
    trigger TEXT NOT NULL CHECK (trigger = 'cli' OR trigger = 'api' OR trigger = 'schedule'),
    status TEXT NOT NULL CHECK (status = 'running' OR status = 'finished'),
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER
) STRICT;
CREATE INDEX payout_runs_by_program ON payout_runs (program, started_ms);
-- One row per (run, partner, currency); the id derives from the three and is the provider's
-- idempotency key. `amount_minor` is fixed when the payout is created.
CREATE TABLE payouts (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES payout_runs(id),
    partner TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    method TEXT NOT NULL CHECK (method = 'stripe' OR method = 'paypal' OR method = 'wise' OR method = 'manual'),
    destination TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status = 'created' OR status = 'sent' OR status = 'paid' OR status = 'failed'),
    -- The provider's reference once paid (a `tr_…` id), or the export file.
    reference TEXT,
    failure TEXT,
    -- Failed because the provider's balance could not cover it: retried by the next run.
    insufficient INTEGER NOT NULL DEFAULT 0 CHECK (insufficient = 0 OR insufficient = 1),
    created_ms INTEGER NOT NULL,
    sent_ms INTEGER,
    settled_ms INTEGER,
    UNIQUE (run_id, partner, currency)
) STRICT;
CREATE INDEX payouts_by_partner ON payouts (partner, created_ms);
CREATE INDEX payouts_open ON payouts (status, method) WHERE status = 'created' OR status = 'sent';
-- The run lock: one row while a run holds it, until `expires_ms`; each step of the run moves
-- `expires_ms` on, so only a killed run's lock expires.
CREATE TABLE payout_lock (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    run_id TEXT NOT NULL,
    -- A random token of the process holding it: a resumed run is the same run in another one.
    holder TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
) STRICT;
-- The approved commissions not yet in a payout, by program: what a run sums.
CREATE INDEX commissions_unpaid ON commissions (program, partner, currency) WHERE status = 'approved' AND payout_id IS NULL;
