//! The storage layer: one module per backend, each owning its transaction type, its schema and
//! its grouped-commit buffers, and implementing the domain's store traits (`ledger::LedgerTx`,
//! `lifecycle::CommissionTx`, `conversions::ConversionTx` and `ViewSource`) on it.
//!
//! - `sqlite`: the data dir's SQLite file, the embedded default.
//! - `pg`: a PostgreSQL database, cluster mode.
//! - `catalog`: `CatalogDb`, the catalog and API keys on whichever of the two the config names.
//! - `row`: the ledger transfer's columns and their decoding, shared by both.
//! - `offline`: approval, payouts and `ledger verify` from the CLI, on either backend.
//! - `payouts`: payout runs, confirmations and listings, each step in its own transaction.
//! - `migration`: what the backends' numbered migrations share, and `SchemaError`.
//!
//! **Architecture invariant:** each backend's schema is its numbered migrations, and the store
//! records the version they reached. One owner migrates (the conversion writer at its start,
//! `clickgate migrate` through `sqlite::migrate` and `pg::migrate`, and on SQLite the app's
//! `SqliteCatalog::open` at start, all through the backend's one runner); a reader checks the version,
//! refuses one it does not know, and never runs DDL.
//!
//! **Architecture invariant:** dependencies point one way, domain ← storage ← app. The domain
//! modules hold types, traits and pure logic and never import `storage`.

pub mod catalog;
pub mod data_key;
pub mod erase;
pub(crate) mod group;
pub mod migration;
pub mod offline;
pub mod payouts;
pub mod pg;
pub mod pool;
pub(crate) mod row;
pub mod sqlite;

pub use catalog::CatalogDb;
pub use migration::SchemaError;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod tests;
