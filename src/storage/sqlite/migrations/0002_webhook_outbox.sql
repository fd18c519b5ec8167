-- The webhook outbox: every event is written in the transaction of the change that caused it,
-- so an event exists exactly when its change committed. The delivery worker reads it in `seq`
-- order. `seq` grows with time (the table's only key), so a group's events touch the last
-- pages of one b-tree. An event's id derives from its cause and each cause is written once,
-- by the job that made the change, so the id needs no index of its own.
CREATE TABLE webhook_events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL CHECK (length(id) = 36 AND substr(id, 1, 4) = 'msg_'),
    type TEXT NOT NULL CHECK (type IN ('conversion.attributed', 'commission.created', 'commission.approved',
        'commission.reversed', 'payout.sent', 'payout.paid', 'payout.failed', 'fraud.alert')),
    -- The partner the event concerns; an endpoint registered for a partner gets only these.
    partner TEXT,
    occurred_ms INTEGER NOT NULL,
    -- The envelope every attempt sends, byte for byte: `{"type","timestamp","data"}`.
    body TEXT NOT NULL
);
