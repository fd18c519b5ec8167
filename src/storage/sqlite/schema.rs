//! The conversion tables, in the store file beside programs, partners and links.

use std::path::Path;

use rusqlite::Connection;

/// Small rows found by their primary key (events, partner days) are `WITHOUT ROWID`: one
/// b-tree insert per row instead of a table and its key index.
///
/// Each b-tree page an insert lands on is written whole to the WAL at the group's commit and
/// again at the checkpoint, so what costs is how many distinct pages a group touches. A key
/// that is a hash (a conversion id) sends each insert to a page of its own; so does a key that
/// starts with the partner, one page per partner in the group. So only `conversions.id` is
/// keyed by the hash (retries and `GET` find a conversion by it; it derives from (program, order
/// id), so it is also what makes an order unique in its program), and a partner's report reads
/// `partner_days`, one row per (partner, day, currency) kept up to date by the writer and keyed
/// by the day first, so a day's rows sit together on a few pages, not one row per credited
/// conversion. A conversion's creation is its row (`received_at_ms`), not an event row; events
/// are the later steps. No answer is kept in the row: a retry rebuilds the first answer from
/// the rows (`view::render_first`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversions (
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
    origin TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    method TEXT NOT NULL,
    attribution TEXT NOT NULL,
    status TEXT NOT NULL,
    refunded_minor INTEGER NOT NULL CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor)
);
CREATE INDEX IF NOT EXISTS conversions_program_day ON conversions (program, day);
CREATE TABLE IF NOT EXISTS partner_days (
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
CREATE INDEX IF NOT EXISTS partner_days_by_partner ON partner_days (partner, day, currency);
CREATE TABLE IF NOT EXISTS conversion_events (
    conversion_id TEXT NOT NULL REFERENCES conversions(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    amount_minor INTEGER,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (conversion_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    request_hash BLOB NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_ms);
";

/// Opens the store file for the conversion tables: WAL, `synchronous=FULL` (a commit is on
/// disk when it returns). The writer turns its connection to `synchronous=NORMAL` and has the
/// WAL synced by its sync thread before it answers (`walsync`).
pub fn open(data_dir: &Path) -> rusqlite::Result<Connection> {
    if let Err(e) = std::fs::create_dir_all(data_dir) {
        return Err(rusqlite::Error::InvalidPath(data_dir.join(e.to_string())));
    }
    let conn = Connection::open(crate::store::Store::path(data_dir))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The writer's statement cache holds every statement of a job (about 40 across the
    // conversion, commission and ledger steps); the default 16 would re-parse most of them.
    conn.set_prepared_statement_cache_capacity(256);
    // Savepoint sub-journals in memory, and a page cache that holds a group's working set
    // (about 420 dirty pages of 4 KiB in the bench's groups of 256) without spilling dirty
    // pages to the WAL before the commit. Not larger: with 64 MiB the writer took 41-43 us per
    // conversion against 39 us with these 16 MiB (benches/README.md, run 14); the profile
    // shows the cache's per-commit truncation walking its hash table (`pcache1TruncateUnsafe`)
    // among the costs that grow with it.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -16_384)?;
    conn.execute_batch(SCHEMA)?;
    crate::storage::sqlite::lifecycle::migrate(&conn).map_err(|e| {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR), Some(format!("migrating the ledger: {e}")))
    })?;
    Ok(conn)
}
