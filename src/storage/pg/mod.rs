//! The PostgreSQL backend (cluster mode): `PgTx` is one open transaction, on which every domain
//! store trait is implemented, with the conversion writer's grouped commits, the reconnecting
//! connection and the API's reader; `PgCatalog` holds the catalog and the API keys, the one
//! catalog every node follows. The schema is `migrations`, applied by the writer at its start,
//! by `PgCatalog::open` and by `migrate`; the reader and every reconnection only check its version.

pub mod api_keys;
pub(crate) mod audit;
mod batch;
pub mod catalog;
pub mod conversions;
pub mod ledger;
pub mod lifecycle;
pub mod migrations;
pub mod payouts;
pub mod reader;
mod walflush;
pub mod webhooks;

pub use catalog::{CatalogListener, PgCatalog};
pub use conversions::start;
pub use ledger::{PgStatements, PgTx};
pub use migrations::migrate;
pub use reader::PgReader;
pub use webhooks::PgWebhooks;

impl From<::postgres::Error> for crate::conversions::ConversionError {
    /// With the cause of a column that does not decode (a stored currency that is not a code
    /// names the column), which the error's own text leaves out.
    fn from(e: ::postgres::Error) -> Self {
        match std::error::Error::source(&e) {
            Some(cause) if e.as_db_error().is_none() => crate::conversions::ConversionError::Storage(format!("{e}: {cause}")),
            _ => crate::conversions::ConversionError::Storage(e.to_string()),
        }
    }
}
