//! The conversion tables, in the store file beside programs, partners and links.

use std::path::Path;

use rusqlite::Connection;

/// Small rows found by their primary key (shares, events) are `WITHOUT ROWID`: one b-tree
/// insert per row instead of a table and its key index.
///
/// A key that is a hash (a conversion id) sends each insert to a random leaf page, which the
/// group's commit then writes whole to the WAL and again at the checkpoint; past the page
/// cache that dominates the writer. So only `conversions.id` is keyed by the hash (retries and
/// `GET` find a conversion by it; it derives from (program, order id), so it is also what makes
/// an order unique in its program). Shares are keyed by (partner, day) first, which grows with
/// time within each partner and is what the reports read by. A conversion's creation is its
/// row (`received_at_ms`), not a `recorded` event row; events are the later steps. Store files
/// made before keep their older shapes (a unique (program, order id), a shares key on the
/// conversion, `recorded` rows), which the same statements read and write.
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
    refunded_minor INTEGER NOT NULL CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    -- The first answer as files made before kept it; new rows leave it empty and a retry
    -- rebuilds it from the rows (`view::render_first`).
    first_answer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversions_program_day ON conversions (program, day);
CREATE TABLE IF NOT EXISTS conversion_shares (
    partner TEXT NOT NULL,
    day INTEGER NOT NULL,
    conversion_id TEXT NOT NULL REFERENCES conversions(id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
    PRIMARY KEY (partner, day, conversion_id)
) WITHOUT ROWID;
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
/// disk before it is answered).
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
    // without spilling dirty pages to the WAL before the commit.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.execute_batch(SCHEMA)?;
    crate::core::lifecycle::sqlite::migrate(&conn).map_err(|e| {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR), Some(format!("migrating the ledger: {e}")))
    })?;
    Ok(conn)
}
