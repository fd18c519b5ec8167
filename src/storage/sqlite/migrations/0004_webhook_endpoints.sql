-- Webhook endpoints, how far fan-out has read the outbox, one delivery per (endpoint, event)
-- with its retry state, and every attempt of each.
CREATE TABLE webhook_endpoints (
    -- `we_` and 24 hex digits from the OS's generator.
    id TEXT PRIMARY KEY CHECK (length(id) = 27 AND substr(id, 1, 3) = 'we_'),
    url TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    -- The subscribed types, space-separated, each of the closed set (parsed strictly on read).
    event_types TEXT NOT NULL CHECK (length(event_types) > 0),
    -- An endpoint with a partner gets only that partner's events.
    partner TEXT,
    secret TEXT NOT NULL CHECK (substr(secret, 1, 6) = 'whsec_'),
    -- After a rotation the previous secret signs too, until `previous_until_ms`.
    previous_secret TEXT CHECK (previous_secret IS NULL OR substr(previous_secret, 1, 6) = 'whsec_'),
    previous_until_ms INTEGER,
    status TEXT NOT NULL CHECK (status = 'enabled' OR status = 'disabled'),
    disabled_reason TEXT CHECK (disabled_reason IS NULL OR disabled_reason = 'gone' OR disabled_reason = 'failing'),
    status_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    -- The first failure after the last success; NULL while the endpoint succeeds.
    failing_since_ms INTEGER,
    CHECK ((status = 'enabled') = (disabled_reason IS NULL)),
    CHECK ((previous_secret IS NULL) = (previous_until_ms IS NULL))
);

-- The last `webhook_events.seq` fan-out has read: one row. It starts at the outbox's end, since
-- no endpoint existed before this table.
CREATE TABLE webhook_cursor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL
);
INSERT INTO webhook_cursor (one, seq) SELECT 1, coalesce(max(seq), 0) FROM webhook_events;

-- One event for one endpoint. `id` grows with time (fan-out reads the outbox in order), so a
-- poll's inserts touch the last pages of the b-tree.
CREATE TABLE webhook_deliveries (
    -- AUTOINCREMENT: an id is never reused after its row is deleted, so an attempt in flight
    -- for a removed endpoint can never be recorded against a newer delivery.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    -- `msg_…`, the event's `webhook-id`, derived from its type and cause.
    event_id TEXT NOT NULL CHECK (length(event_id) = 36),
    type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status = 'pending' OR status = 'delivered' OR status = 'failed'),
    -- Attempts in all, and since the last replay (the schedule's place).
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    tries INTEGER NOT NULL CHECK (tries BETWEEN 0 AND attempts),
    next_attempt_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    CHECK ((status = 'pending') = (next_attempt_ms IS NOT NULL)),
    UNIQUE (endpoint_id, seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_ms) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    at_ms INTEGER NOT NULL,
    -- The HTTP status, or the failure when there was none (`timeout`, `connect`).
    http_status INTEGER CHECK (http_status IS NULL OR http_status BETWEEN 100 AND 999),
    error TEXT,
    latency_ms INTEGER NOT NULL CHECK (latency_ms >= 0),
    -- The response body's first KiB (cut on a character boundary) or the error's text.
    excerpt TEXT NOT NULL CHECK (length(CAST(excerpt AS BLOB)) <= 1024),
    CHECK ((http_status IS NULL) != (error IS NULL)),
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
