//! `clickgate migrate`: brings the stores to this build's schema and prints the versions. The
//! conversion writer migrates at start too; readers and admin jobs only check the version, so
//! this is how an operator upgrades a store before starting readers against it.

use std::process::ExitCode;

use super::Setup;
use crate::storage;
use crate::storage::offline::StoreAt;

/// Migrates the data dir's SQLite file (the catalog, and in embedded mode everything else) and,
/// when a database URL is set, the PostgreSQL store.
pub(super) fn run(setup: &Setup) -> anyhow::Result<ExitCode> {
    let version = storage::sqlite::migrate(&setup.data_dir)?;
    println!("sqlite {}: schema version {version}", storage::sqlite::path(&setup.data_dir).display());
    if let StoreAt::Pg(url) = setup.store_at()? {
        let version = storage::pg::migrate(&url)?;
        println!("postgres {}: schema version {version}", crate::app::redact_url(&url));
    }
    Ok(ExitCode::SUCCESS)
}
