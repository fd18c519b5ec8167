//! The approval sweep and `ledger verify`, run from the command line against the store, beside
//! a running server or without one: SQLite serialises them with the writer's grouped commits (`BEGIN
//! IMMEDIATE`, with the store's busy timeout), PostgreSQL with the ledger head's row lock.
//! They run on a store the writer or `clickgate migrate` made, and refuse one at another schema
//! version than this build's: they never migrate, so an admin job cannot change the schema
//! under a running server.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};

use crate::conversions::jobs::{approve, revoke};
use crate::conversions::{Approval, ConversionError};
use crate::ledger::{self, VerifyReport};
use crate::lifecycle::{Commission, CommissionTx, ConversionRef, LifecycleError};
use crate::storage::pg::PgStatements;
use crate::storage::pg::PgTx;
use crate::storage::sqlite::schema;
use crate::storage::sqlite::SqliteTx;

/// Where the store is: the SQLite file under a data dir, or a PostgreSQL URL.
#[derive(Debug, Clone)]
pub enum StoreAt {
    File(PathBuf),
    Pg(String),
}

/// An open connection for admin jobs.
enum Open {
    File(Connection),
    Pg(Box<(::postgres::Client, PgStatements)>),
}

impl Open {
    fn new(at: &StoreAt) -> Result<Open, ConversionError> {
        Ok(match at {
            StoreAt::File(dir) => Open::File(schema::open(dir)?),
            StoreAt::Pg(url) => Open::Pg(Box::new((crate::storage::pg::conversions::connect(url)?, PgStatements::default()))),
        })
    }

    /// Runs one approval job of `limit` in its own transaction (SQLite: `BEGIN IMMEDIATE`,
    /// serialised with the writer's groups; PostgreSQL: the ledger head's lock serialises it
    /// with every writer).
    fn approve(&mut self, limit: usize, now_ms: u64) -> Result<Approval, ConversionError> {
        Ok(match self {
            Open::File(conn) => {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let answer = approve(&mut SqliteTx::new(&tx).map_err(LifecycleError::from)?, limit, now_ms)?;
                tx.commit()?;
                answer
            }
            Open::Pg(pg) => {
                let (client, statements) = &mut **pg;
                let mut tx = client.transaction()?;
                let answer = approve(&mut PgTx::with_statements(&mut tx, statements), limit, now_ms)?;
                tx.commit()?;
                answer
            }
        })
    }
}

impl Open {
    /// Runs one rescore take-back in its own transaction, serialised with the writers as
    /// `approve` is.
    fn revoke(&mut self, id: &str, partner: &str, audit: &str, now_ms: u64) -> Result<Vec<Commission>, ConversionError> {
        Ok(match self {
            Open::File(conn) => {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let answer = revoke(&mut SqliteTx::new(&tx).map_err(LifecycleError::from)?, id, partner, audit, now_ms)?;
                tx.commit()?;
                answer
            }
            Open::Pg(pg) => {
                let (client, statements) = &mut **pg;
                let mut tx = client.transaction()?;
                let answer = revoke(&mut PgTx::with_statements(&mut tx, statements), id, partner, audit, now_ms)?;
                tx.commit()?;
                answer
            }
        })
    }

    /// The commissions of each conversion, read in one transaction.
    fn commissions_of(&mut self, conversions: &[(String, u64)]) -> Result<Vec<Commission>, ConversionError> {
        let mut out = Vec::new();
        let mut each = |tx: &mut dyn CommissionTx| -> Result<(), LifecycleError> {
            for (id, occurred_at_ms) in conversions {
                out.extend(tx.commissions_of(&ConversionRef { id, occurred_at_ms: *occurred_at_ms })?);
            }
            Ok(())
        };
        match self {
            Open::File(conn) => {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
                each(&mut SqliteTx::new(&tx).map_err(LifecycleError::from)?)?;
            }
            Open::Pg(pg) => {
                let (client, statements) = &mut **pg;
                let mut tx = client.transaction()?;
                each(&mut PgTx::with_statements(&mut tx, statements))?;
            }
        }
        Ok(out)
    }

    /// Calls `each(id, occurred_at_ms, attribution)` for every conversion that occurred at or
    /// after `since_ms` and is neither cancelled nor fully refunded, in the order of its time.
    fn attributions_since(&mut self, since_ms: u64, each: &mut dyn FnMut(String, u64, String)) -> Result<(), ConversionError> {
        const SQL: &str = "SELECT id, occurred_at_ms, attribution FROM conversions \
                           WHERE occurred_at_ms >= $1 AND status IN ('pending', 'confirmed') ORDER BY occurred_at_ms, id";
        let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
        match self {
            Open::File(conn) => {
                let mut stmt = conn.prepare(&SQL.replace("$1", "?1"))?;
                let mut rows = stmt.query([since])?;
                while let Some(r) = rows.next()? {
                    each(r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?);
                }
            }
            Open::Pg(pg) => {
                for r in pg.0.query(SQL, &[&since])? {
                    each(r.get(0), r.get::<_, i64>(1) as u64, r.get(2));
                }
            }
        }
        Ok(())
    }
}

/// A rescore's store work: reading conversions' attributions and commissions, and taking
/// commissions back, each step its own transaction beside running writers.
pub struct Rescore(Open);

impl Rescore {
    pub fn open(at: &StoreAt) -> Result<Rescore, ConversionError> {
        Ok(Rescore(Open::new(at)?))
    }

    /// See `Open::attributions_since`.
    pub fn attributions_since(&mut self, since_ms: u64, mut each: impl FnMut(String, u64, String)) -> Result<(), ConversionError> {
        self.0.attributions_since(since_ms, &mut each)
    }

    /// The commissions of each (conversion id, occurred_at_ms).
    pub fn commissions_of(&mut self, conversions: &[(String, u64)]) -> Result<Vec<Commission>, ConversionError> {
        self.0.commissions_of(conversions)
    }

    /// Takes back what is left of `partner`'s commissions on conversion `id`
    /// (`lifecycle::revoke`), in one transaction; returns the commissions changed.
    pub fn revoke(&mut self, id: &str, partner: &str, audit: &str, now_ms: u64) -> Result<Vec<Commission>, ConversionError> {
        self.0.revoke(id, partner, audit, now_ms)
    }
}

/// Runs the approval sweep at `now_ms`: jobs of `limit` until one approves fewer. Returns the
/// commissions approved and their amount.
pub fn approve_all(at: &StoreAt, now_ms: u64, limit: usize) -> Result<(u64, i64), ConversionError> {
    let mut open = Open::new(at)?;
    let (mut approved, mut amount_minor) = (0u64, 0i64);
    loop {
        let a = open.approve(limit, now_ms)?;
        approved += a.approved as u64;
        amount_minor += a.amount_minor;
        if !a.more {
            return Ok((approved, amount_minor));
        }
    }
}

/// What `clickgate ledger verify` found in a store.
#[derive(Debug)]
pub struct FileCheck {
    /// `PRAGMA integrity_check`: `ok`, or SQLite's first complaints; `None` on PostgreSQL.
    pub integrity: Option<String>,
    /// The ledger's own checks.
    pub ledger: Result<VerifyReport, ledger::VerifyError>,
}

/// Checks the store file under `data_dir`: SQLite's integrity check, then the ledger's chain,
/// rules and balances inside one read transaction (a snapshot, so a running writer cannot
/// make it see half a group).
pub fn verify_file(data_dir: &Path) -> Result<FileCheck, ConversionError> {
    let path = schema::path(data_dir);
    if !path.exists() {
        return Err(ConversionError::NotFound(format!("no store file at {}", path.display())));
    }
    let mut conn = schema::open(data_dir)?;
    let integrity: Vec<String> =
        conn.prepare("PRAGMA integrity_check(20)")?.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let ledger = ledger::verify(&mut SqliteTx::new(&tx).map_err(crate::lifecycle::LifecycleError::from)?);
    Ok(FileCheck { integrity: Some(integrity.join("; ")), ledger })
}

/// Checks the ledger in a PostgreSQL store. It first takes the ledger head's lock, which every
/// writer's group takes first too, so no writer commits while it reads: what it checks is one
/// state, as a snapshot would be, without a snapshot's serialization failure when a writer
/// moved the head after it began.
pub fn verify_pg(url: &str) -> Result<FileCheck, ConversionError> {
    let mut client = crate::storage::pg::conversions::connect(url)?;
    let mut statements = PgStatements::default();
    let mut tx = client.transaction()?;
    let mut l = PgTx::with_statements(&mut tx, &mut statements);
    l.lock_head()?;
    let ledger = ledger::verify(&mut l);
    tx.commit()?;
    Ok(FileCheck { integrity: None, ledger })
}
