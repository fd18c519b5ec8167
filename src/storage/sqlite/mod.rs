//! The SQLite backend: the data dir's `clickgate.db` in WAL mode. `SqliteTx` is one open
//! transaction (or savepoint) of it, on which every domain store trait is implemented; the
//! conversion writer's grouped commits, the WAL's sync and checkpoint threads and the API's
//! readers live here too. The schema is `migrations`, applied by the writer at its start and
//! by `migrate`; the readers only check its version.

pub mod api_keys;
pub mod catalog;
pub mod checkpoint;
pub(crate) mod conversions;
pub mod gate;
mod groups;
pub mod ledger;
pub mod lifecycle;
pub mod migrations;
pub mod payouts;
pub mod reader;
mod reader_commissions;
mod reader_ledger;
pub mod schema;
pub mod walsync;
pub mod webhooks;

pub use catalog::SqliteCatalog;
pub use groups::start;
pub use ledger::SqliteTx;
pub use reader::SqliteReader;
pub use schema::{migrate, path};
pub use webhooks::SqliteWebhooks;

impl From<rusqlite::Error> for crate::conversions::ConversionError {
    fn from(e: rusqlite::Error) -> Self {
        crate::conversions::ConversionError::Storage(e.to_string())
    }
}
