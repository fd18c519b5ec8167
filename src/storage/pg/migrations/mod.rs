//! The PostgreSQL store's schema as numbered migrations (`NNNN_name.sql` beside this file), and
//! the one runner that applies them, in the first schema of the connection's search path.
//!
//! The versions applied are rows of `schema_migrations`, each inserted in the transaction of
//! its migration. Each transaction first takes an advisory lock, so cores starting together
//! apply each migration once: the second waits, then finds it recorded. A new step is a new
//! file and a line in `MIGRATIONS`; an applied file is never edited.

use ::postgres::{Client, GenericClient};

use crate::storage::migration::{self, Migration, SchemaError};

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "0001_initial", sql: include_str!("0001_initial.sql") },
    Migration { version: 2, name: "0002_webhook_outbox", sql: include_str!("0002_webhook_outbox.sql") },
    Migration { version: 3, name: "0003_payouts", sql: include_str!("0003_payouts.sql") },
    Migration { version: 4, name: "0004_webhook_endpoints", sql: include_str!("0004_webhook_endpoints.sql") },
    Migration { version: 5, name: "0005_delivery_replays", sql: include_str!("0005_delivery_replays.sql") },
    Migration { version: 6, name: "0006_catalog", sql: include_str!("0006_catalog.sql") },
    Migration { version: 7, name: "0007_audit", sql: include_str!("0007_audit.sql") },
    Migration { version: 8, name: "0008_data_at_rest", sql: include_str!("0008_data_at_rest.sql") },
    Migration { version: 9, name: "0009_link_days", sql: include_str!("0009_link_days.sql") },
    Migration { version: 10, name: "0010_link_inserts", sql: include_str!("0010_link_inserts.sql") },
];

/// The version this build's migrations reach.
pub const LATEST: u32 = migration::latest(MIGRATIONS);

/// The advisory lock every migration's transaction takes first.
const LOCK: i64 = 7_236_040_123;

/// The runner's own record, created with the first migration: not part of any migration, as
/// it is what tells which ones ran.
const RECORD: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY CHECK (version > 0),
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// Migrates the PostgreSQL store at `url` (its search path's first schema) to this build's
/// schema and returns the version it is at: what `clickgate migrate` runs. Migrating a store
/// already at that version changes nothing; a store a newer build migrated is refused
/// (`SchemaError::Newer`) and left as it is.
pub fn migrate(url: &str) -> Result<u32, SchemaError> {
    let out = super::conversions::off_runtime(|| {
        let mut client = super::conversions::connect_here(url)?;
        Ok(run(&mut client))
    });
    out.unwrap_or_else(|e| Err(SchemaError::Storage { at: "PostgreSQL".into(), why: e.to_string() }))
}

/// Applies the migrations the store lacks, each in its own transaction with its row of
/// `schema_migrations`, and returns the version reached.
pub fn run(client: &mut Client) -> Result<u32, SchemaError> {
    let at = describe(client)?;
    loop {
        let storage = |e: ::postgres::Error| SchemaError::Storage { at: at.clone(), why: message(&e) };
        let mut tx = client.transaction().map_err(storage)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).map_err(storage)?;
        tx.batch_execute(RECORD).map_err(storage)?;
        let found = recorded(&mut tx).map_err(storage)?;
        if found > LATEST {
            return Err(SchemaError::Newer { at, found, known: LATEST });
        }
        let Some(m) = MIGRATIONS.iter().find(|m| m.version > found) else {
            tx.commit().map_err(storage)?;
            return Ok(found);
        };
        debug_assert_eq!(found + 1, m.version, "migrations are numbered without a gap");
        let failed = |e: ::postgres::Error| SchemaError::Failed { at: at.clone(), version: m.version, name: m.name, why: message(&e) };
        tx.batch_execute(m.sql).map_err(failed)?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[&(m.version as i32), &m.name]).map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(store = %at, version = m.version, migration = m.name, "migrated the store");
    }
}

/// Checks that the store is at this build's version, and runs no DDL: what a reader and a
/// reconnection do.
pub fn check(client: &mut Client) -> Result<u32, SchemaError> {
    let at = describe(client)?;
    let storage = |e: ::postgres::Error| SchemaError::Storage { at: at.clone(), why: message(&e) };
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations')",
            &[],
        )
        .map_err(storage)?
        .get(0);
    let found = if exists { recorded(client).map_err(storage)? } else { 0 };
    migration::check(|| at.clone(), found, LATEST)
}

/// The highest version recorded.
fn recorded(client: &mut impl GenericClient) -> Result<u32, ::postgres::Error> {
    let v: i32 = client.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])?.get(0);
    Ok(v as u32)
}

/// The database and schema, for messages.
fn describe(client: &mut Client) -> Result<String, SchemaError> {
    let row = client
        .query_one("SELECT current_database()::text, current_schema()::text", &[])
        .map_err(|e| SchemaError::Storage { at: "PostgreSQL".into(), why: message(&e) })?;
    let (database, schema): (String, Option<String>) = (row.get(0), row.get(1));
    Ok(format!("PostgreSQL database {database:?}, schema {}", schema.map_or("(none on the search path)".into(), |s| format!("{s:?}"))))
}

/// The SQLSTATE and the server's message, as the ledger's PostgreSQL errors put them.
fn message(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        None => format!("PostgreSQL: {e}"),
    }
}
