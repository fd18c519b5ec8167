//! Payout runs against the store, from the CLI or the server, on either backend: each step in
//! its own transaction, serialised with the conversion writer's groups (SQLite: `BEGIN
//! IMMEDIATE` with the store's busy timeout; PostgreSQL: the ledger head's row lock first).
//! As `offline`, it never migrates: it refuses a store at another schema version.

use rusqlite::{Connection, TransactionBehavior};

use crate::payouts::{PayoutError, PayoutStore, PayoutTx};
use crate::storage::offline::StoreAt;
use crate::storage::pg::{PgStatements, PgTx};
use crate::storage::sqlite::{schema, SqliteTx};

/// An open connection for payout runs, confirmations and listings.
pub struct PayoutDb(Open);

enum Open {
    File(Connection),
    Pg(Box<(::postgres::Client, PgStatements)>),
}

fn sqlite(e: rusqlite::Error) -> PayoutError {
    PayoutError::Storage(format!("sqlite: {e}"))
}

fn pg(e: ::postgres::Error) -> PayoutError {
    PayoutError::Storage(format!("PostgreSQL: {e}"))
}

impl PayoutDb {
    /// Opens the store; call it off any async runtime's threads (a blocking thread is fine).
    pub fn open(at: &StoreAt) -> Result<PayoutDb, PayoutError> {
        Ok(PayoutDb(match at {
            StoreAt::File(dir) => Open::File(schema::open(dir).map_err(|e| PayoutError::Storage(e.to_string()))?),
            StoreAt::Pg(url) => {
                let client = crate::storage::pg::conversions::connect(url).map_err(|e| PayoutError::Storage(e.to_string()))?;
                Open::Pg(Box::new((client, PgStatements::default())))
            }
        }))
    }

    fn within<R>(&mut self, commit: bool, f: impl FnOnce(&mut dyn PayoutTx) -> Result<R, PayoutError>) -> Result<R, PayoutError> {
        match &mut self.0 {
            Open::File(conn) => {
                let behavior = if commit { TransactionBehavior::Immediate } else { TransactionBehavior::Deferred };
                let tx = conn.transaction_with_behavior(behavior).map_err(sqlite)?;
                let out = f(&mut SqliteTx::new(&tx)?)?;
                if commit {
                    tx.commit().map_err(sqlite)?;
                }
                Ok(out)
            }
            Open::Pg(b) => {
                let (client, statements) = &mut **b;
                let mut tx = client.transaction().map_err(pg)?;
                let out = {
                    let mut t = PgTx::with_statements(&mut tx, statements);
                    t.lock_head()?;
                    f(&mut t)?
                };
                if commit {
                    tx.commit().map_err(pg)?;
                }
                Ok(out)
            }
        }
    }
}

impl PayoutStore for PayoutDb {
    fn write<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> Result<R, PayoutError>) -> Result<R, PayoutError> {
        self.within(true, f)
    }

    fn read<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> Result<R, PayoutError>) -> Result<R, PayoutError> {
        self.within(false, f)
    }
}
