-- The webhook outbox: every event is written in the transaction of the change that caused it,
-- so an event exists exactly when its change committed. The delivery worker reads it in `seq`
-- order; writer groups take the ledger head's lock before they write, so `seq` values commit
-- in order. An event's id derives from its cause and each cause is written once, by the job
-- that made the change.
CREATE TABLE webhook_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL CHECK (length(id) = 36 AND substr(id, 1, 4) = 'msg_'),
    type TEXT NOT NULL CHECK (type IN ('conversion.attributed', 'commission.created', 'commission.approved',
        'commission.reversed', 'payout.sent', 'payout.paid', 'payout.failed', 'fraud.alert')),
    partner TEXT,
    occurred_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
