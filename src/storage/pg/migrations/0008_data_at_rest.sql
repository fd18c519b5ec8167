-- Personal data at rest: partners' e-mail and payout details, conversions' customer reference
-- and the stored answers are sealed under the data key by the application (privacy::sealed);
-- the columns stay TEXT and hold `enc1.` values. Rows written before this migration are
-- sealed by the store's first open with a key (storage::data_key::adopt), in batches.

-- The keyed hash (HMAC-SHA256 under a key derived from the data key) that a lookup by
-- customer reference uses instead of the clear value.
ALTER TABLE conversions ADD COLUMN customer_ref_hash TEXT;
CREATE INDEX conversions_customer_ref_hash ON conversions (customer_ref_hash) WHERE customer_ref_hash IS NOT NULL;

-- The id of the key the store's values are sealed under (one row), and the key a rotation
-- under way is moving them to: a process with another key is refused at start.
CREATE TABLE data_key (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    key_id TEXT NOT NULL,
    rotating_to TEXT
);
