//! The store file's schema as numbered migrations (`NNNN_name.sql` beside this file), and the
//! one runner that applies them.
//!
//! The version reached is `PRAGMA user_version`, which SQLite keeps in the file's header and
//! writes in the same transaction as the migration: a migration and its version commit
//! together, or neither does. A new step is a new file and a line in `MIGRATIONS`; an applied
//! file is never edited.

use rusqlite::{Connection, TransactionBehavior};

use crate::storage::migration::{self, Migration, SchemaError};

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "0001_initial", sql: include_str!("0001_initial.sql") },
    Migration { version: 2, name: "0002_webhook_outbox", sql: include_str!("0002_webhook_outbox.sql") },
    Migration { version: 3, name: "0003_payouts", sql: include_str!("0003_payouts.sql") },
    Migration { version: 4, name: "0004_webhook_endpoints", sql: include_str!("0004_webhook_endpoints.sql") },
    Migration { version: 5, name: "0005_catalog_changes", sql: include_str!("0005_catalog_changes.sql") },
    Migration { version: 6, name: "0006_delivery_replays", sql: include_str!("0006_delivery_replays.sql") },
    Migration { version: 7, name: "0007_api_keys", sql: include_str!("0007_api_keys.sql") },
    Migration { version: 8, name: "0008_audit", sql: include_str!("0008_audit.sql") },
    Migration { version: 9, name: "0009_data_at_rest", sql: include_str!("0009_data_at_rest.sql") },
    Migration { version: 10, name: "0010_link_days", sql: include_str!("0010_link_days.sql") },
];

/// The version this build's migrations reach.
pub const LATEST: u32 = migration::latest(MIGRATIONS);

/// Applies the migrations the file lacks, each in its own `BEGIN IMMEDIATE` transaction with
/// its version, and returns the version reached. The version is read again once the write lock
/// is held, so two processes opening a fresh file at once apply each migration once. A file a
/// newer build migrated is refused, and left as it is.
pub fn run(conn: &mut Connection) -> Result<u32, SchemaError> {
    let at = describe(conn);
    let storage = |e: rusqlite::Error| SchemaError::Storage { at: at.clone(), why: e.to_string() };
    let mut found = version(conn).map_err(storage)?;
    let first = found;
    for m in MIGRATIONS.iter().filter(|m| m.version > first) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage)?;
        found = version(&tx).map_err(storage)?;
        if found >= m.version {
            continue;
        }
        debug_assert_eq!(found + 1, m.version, "migrations are numbered without a gap");
        let failed = |e: rusqlite::Error| SchemaError::Failed { at: at.clone(), version: m.version, name: m.name, why: e.to_string() };
        tx.execute_batch(m.sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", m.version).map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(store = %at, version = m.version, migration = m.name, "migrated the store");
        found = m.version;
    }
    if found > LATEST {
        return Err(SchemaError::Newer { at, found, known: LATEST });
    }
    Ok(found)
}

/// Checks that the file is at this build's version, and runs no DDL: what a reader does.
pub fn check(conn: &Connection) -> Result<u32, SchemaError> {
    let found = version(conn).map_err(|e| SchemaError::Storage { at: describe(conn), why: e.to_string() })?;
    migration::check(|| describe(conn), found, LATEST)
}

/// The version recorded in the file: 0 for a file no migration ran on.
pub fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// The file's path, for messages.
fn describe(conn: &Connection) -> String {
    conn.path().filter(|p| !p.is_empty()).unwrap_or("(in memory)").to_string()
}
