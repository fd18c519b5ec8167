-- How many times each delivery was replayed. A worker records its attempt's outcome only when
-- the count has not moved since it took the delivery, so a replay that lands while the attempt
-- is in flight (or finished but not yet recorded) stays pending instead of being overwritten.
ALTER TABLE webhook_deliveries ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;
