-- The webhook outbox: every event is written in the transaction of the change that caused it,
-- so an event exists exactly when its change committed. The delivery worker reads it in `seq`
-- order; writer groups take the ledger head's lock before they write, so `seq` values commit
-- in order. Each cause is written once, by the job that made the change; retention walks
-- `seq` from the start.
CREATE TABLE webhook_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('conversion.attributed', 'commission.created', 'commission.approved',
        'commission.reversed', 'payout.sent', 'payout.paid', 'payout.failed', 'fraud.alert')),
    -- What caused the event; its id (`webhook-id`) derives from the type and the cause.
    cause TEXT NOT NULL CHECK (length(cause) BETWEEN 1 AND 512),
    partner TEXT,
    occurred_ms BIGINT NOT NULL,
    -- The event's data, a JSON object; the envelope is rendered from the type, the time and this.
    data TEXT NOT NULL
);
