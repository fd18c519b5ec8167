//! Opening the store file: where it is, the connection's settings, and its schema version. The
//! schema itself is `migrations`; only `open_migrated` (the conversion writer), `migrate` (the
//! CLI) and `SqliteCatalog::open` apply it, while `open` (the readers and the command line's admin
//! jobs) only checks the version.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::migrations;
use crate::storage::migration::SchemaError;

/// The store file inside `data_dir`: the catalog, the conversions, the commissions and the
/// ledger.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("clickgate.db")
}

/// Migrates the store file under `data_dir` (created with the directory if missing) to this
/// build's schema and returns the version it is at: what `clickgate migrate` runs. Migrating a
/// file already at that version changes nothing; a file a newer build migrated is refused
/// (`SchemaError::Newer`) and left as it is.
pub fn migrate(data_dir: &Path) -> Result<u32, SchemaError> {
    let mut conn = create(data_dir)?;
    migrations::run(&mut conn)
}

/// Opens the store file, creating it and migrating it to this build's schema first: the
/// conversion writer's open.
pub fn open_migrated(data_dir: &Path) -> Result<Connection, SchemaError> {
    let mut conn = create(data_dir)?;
    migrations::run(&mut conn)?;
    Ok(conn)
}

/// Opens a store file that the writer or `clickgate migrate` made, and refuses one at any
/// other version than this build's, or none (`SchemaError`). Runs no DDL, and creates no file.
pub fn open(data_dir: &Path) -> Result<Connection, SchemaError> {
    let path = path(data_dir);
    let at = || path.display().to_string();
    if !path.exists() {
        return Err(SchemaError::Unmigrated { at: at(), known: migrations::LATEST });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let storage = |e: rusqlite::Error| SchemaError::Storage { at: at(), why: e.to_string() };
    let conn = Connection::open_with_flags(&path, flags).map_err(storage)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(storage)?;
    migrations::check(&conn)?;
    configure(&conn).map_err(storage)?;
    Ok(conn)
}

/// Opens (creating) the store file under `data_dir`, configured.
fn create(data_dir: &Path) -> Result<Connection, SchemaError> {
    let path = path(data_dir);
    let storage = |why: String| SchemaError::Storage { at: path.display().to_string(), why };
    std::fs::create_dir_all(data_dir).map_err(|e| storage(format!("cannot create {}: {e}", data_dir.display())))?;
    let conn = Connection::open(&path).map_err(|e| storage(e.to_string()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| storage(e.to_string()))?;
    configure(&conn).map_err(|e| storage(e.to_string()))?;
    Ok(conn)
}

/// WAL, `synchronous=FULL` (a commit is on disk when it returns). The writer turns its
/// connection to `synchronous=NORMAL` and has the WAL synced by its sync thread before it
/// answers (`walsync`).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // Turning a fresh file to WAL takes an exclusive lock, and SQLite answers `database is
    // locked` at once, without the busy handler, while another connection (a second process
    // opening the same fresh data dir) holds the file: so this waits as the busy timeout would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            done => break done?,
        }
    }
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
    Ok(())
}
