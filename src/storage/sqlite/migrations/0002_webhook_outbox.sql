-- The webhook outbox: every event is written in the transaction of the change that caused it,
-- so an event exists exactly when its change committed. The delivery worker reads it in `seq`
-- order. `seq` grows with time (the table's only key), so a group's events touch the last
-- pages of one b-tree. Each cause is written once, by the job that made the change, so the
-- cause needs no index of its own; retention walks `seq` from the start.
CREATE TABLE webhook_events (
    seq INTEGER PRIMARY KEY,
    -- Comparisons, not `IN (…)`: SQLite builds an ephemeral table for an IN list on every insert.
    type TEXT NOT NULL CHECK (type = 'conversion.attributed' OR type = 'commission.created'
        OR type = 'commission.approved' OR type = 'commission.reversed' OR type = 'payout.sent'
        OR type = 'payout.paid' OR type = 'payout.failed' OR type = 'fraud.alert'),
    -- What caused the event; its id (`webhook-id`) derives from the type and the cause.
    cause TEXT NOT NULL CHECK (length(cause) BETWEEN 1 AND 512),
    -- The partner the event concerns; an endpoint registered for a partner gets only these.
    partner TEXT,
    occurred_ms INTEGER NOT NULL,
    -- The event's data, a JSON object. The envelope every attempt sends,
    -- `{"type","timestamp","data"}`, is rendered from the type, the time and this.
    data TEXT NOT NULL
);
