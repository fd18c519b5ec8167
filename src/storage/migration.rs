//! What the two backends' migrations share: a numbered migration, and why a store's schema
//! cannot be used or migrated.
//!
//! Each backend owns its schema as numbered migrations (`sqlite::migrations`,
//! `pg::migrations`), applied in order, one transaction each, and records the version it
//! reached in the store. Only the conversion writer at its start and `clickgate migrate` (and,
//! on SQLite, `SqliteCatalog::open`, which the app opens at start) migrate; readers and reconnections
//! check the recorded version and run no DDL.

/// One step of a backend's schema: applied once, in one transaction with the version it
/// records.
pub struct Migration {
    /// The version the store is at once this step is applied: 1, 2, 3… with no gap.
    pub version: u32,
    /// The file's name without `.sql`, e.g. `0001_initial`.
    pub name: &'static str,
    /// The file's SQL.
    pub sql: &'static str,
}

/// The version a list of migrations reaches: its last one's.
pub(crate) const fn latest(migrations: &[Migration]) -> u32 {
    migrations[migrations.len() - 1].version
}

/// Why a store's schema cannot be used or migrated. `at` names the store: the SQLite file's
/// path, or the PostgreSQL database and schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A newer build migrated the store past every version this one knows.
    #[error("the store at {at} is at schema version {found}; this build knows 1..={known}; run a newer clickgate")]
    Newer { at: String, found: u32, known: u32 },
    /// The store has no schema yet; only the writer and `clickgate migrate` create it.
    #[error(
        "the store at {at} has no schema yet (version 0; this build knows 1..={known}); start the conversion writer \
         (clickgate serve or clickgate core) or run `clickgate migrate` first"
    )]
    Unmigrated { at: String, known: u32 },
    /// The store is at an older version than this build's; the writer or `clickgate migrate`
    /// brings it up to date.
    #[error(
        "the store at {at} is at schema version {found}; this build needs {known}; start the conversion writer \
         (clickgate serve or clickgate core) or run `clickgate migrate` first"
    )]
    Behind { at: String, found: u32, known: u32 },
    /// A migration failed; its transaction rolled back, so the store is still at the version
    /// before it.
    #[error("migrating the store at {at} to schema version {version} ({name}) failed, and nothing of it was kept: {why}")]
    Failed { at: String, version: u32, name: &'static str, why: String },
    /// The store could not be opened, or its version read or recorded.
    #[error("the store at {at}: {why}")]
    Storage { at: String, why: String },
}

/// What a reader accepts: exactly the version this build's migrations reach.
pub(crate) fn check(at: impl FnOnce() -> String, found: u32, known: u32) -> Result<u32, SchemaError> {
    match found {
        0 => Err(SchemaError::Unmigrated { at: at(), known }),
        f if f > known => Err(SchemaError::Newer { at: at(), found, known }),
        f if f < known => Err(SchemaError::Behind { at: at(), found, known }),
        _ => Ok(found),
    }
}

impl From<SchemaError> for crate::conversions::ConversionError {
    fn from(e: SchemaError) -> Self {
        crate::conversions::ConversionError::Storage(e.to_string())
    }
}
