//! The storage layer: one module per backend, each owning its transaction type, its schema and
//! its grouped-commit buffers, and implementing the domain's store traits (`ledger::LedgerTx`,
//! `lifecycle::CommissionTx`, `conversions::ConversionTx` and `ViewSource`) on it.
//!
//! - `sqlite`: the data dir's SQLite file, the embedded default.
//! - `pg`: a PostgreSQL database, cluster mode.
//! - `row`: the ledger transfer's columns and their decoding, shared by both.
//! - `offline`: approval, payouts and `ledger verify` from the CLI, on either backend.
//!
//! **Architecture invariant:** dependencies point one way, domain ← storage ← app. The domain
//! modules hold types, traits and pure logic and never import `storage`.

pub(crate) mod group;
pub mod offline;
pub mod pg;
pub(crate) mod row;
pub mod sqlite;
