//! Personal data in the data dir: the data key that seals it at rest (`sealed`, `keys`) and
//! what an erase asks of the stores that hold it (`erase`).
//!
//! - `sealed`: AES-256-GCM of one value, bound to its table, column and row; the keyed hash a
//!   lookup by customer reference uses.
//! - `keys`: the process's data key: `CLICKGATE_DATA_KEY`, else the data dir's `data.key`,
//!   else (a store that holds no sealed value yet) a new key written there.
//!
//! **Invariant:** a store never holds one of these values in clear once it has a key:
//! partners' `email`, `stripe_account` and `paypal_email`, conversions' `customer_ref`, and
//! the stored answers that may carry them. The store records its key's id; a process with
//! another key is refused at start.

pub mod erase;
pub mod keys;
pub mod sealed;

pub use erase::{ErasedRows, Erasure, ErasureReport};
pub use keys::{current, install};
pub use sealed::{DataKey, Field};

/// Why a value cannot be sealed or opened, or a key loaded.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("the data key is not usable: {0}")]
    BadKey(String),
    #[error("no OS randomness for a data key or nonce: {0}")]
    Random(String),
    #[error("sealing {table}.{column} failed")]
    Sealing { table: &'static str, column: &'static str },
    #[error("{table}.{column} of {row:?} does not open: {why}")]
    Opening { table: &'static str, column: &'static str, row: String, why: String },
    #[error("no data key is loaded in this process; the store's open loads it first")]
    NotLoaded,
    #[error(
        "this store's values are sealed under data key id {recorded}, and no key was given: set CLICKGATE_DATA_KEY \
         (64 hex digits or base64 of 32 bytes), or put the key back in {file}"
    )]
    NoKey { recorded: String, file: String },
    #[error("the data key {file}: {why}")]
    KeyFile { file: String, why: String },
    #[error("{0}")]
    Target(String),
    #[error("a data key other than id {installed} is already loaded in this process")]
    Conflict { installed: String },
}

#[cfg(test)]
mod tests;
