//! The lifecycle's admin steps run from the command line against the store file, beside a
//! running server or without one: SQLite serialises them with the writer's grouped commits
//! (`BEGIN IMMEDIATE`, with the store's busy timeout).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};
use serde_json::Value;

use super::jobs::{approve, pay};
use super::{schema, Answer, ConversionError};
use crate::ledger::{self, SqliteLedger, VerifyReport};

/// Runs the approval sweep at `now_ms`: jobs of `limit` until one approves fewer. Returns the
/// commissions approved and their amount.
pub fn approve_all(data_dir: &Path, now_ms: u64, limit: usize) -> Result<(u64, i64), ConversionError> {
    let mut conn = schema::open(data_dir)?;
    let (mut approved, mut amount_minor) = (0u64, 0i64);
    loop {
        let v = in_transaction(&mut conn, |tx| approve(tx, limit, now_ms))?;
        approved += v["approved"].as_u64().unwrap_or(0);
        amount_minor += v["amount_minor"].as_i64().unwrap_or(0);
        if v["more"] != Value::Bool(true) {
            return Ok((approved, amount_minor));
        }
    }
}

/// Marks a partner's approved commissions in `currency` paid by `payout_id`; the JSON answer
/// of each job, in order.
pub fn pay_all(
    data_dir: &Path,
    partner: &str,
    currency: &str,
    payout_id: &str,
    now_ms: u64,
    limit: usize,
) -> Result<Vec<Value>, ConversionError> {
    let mut conn = schema::open(data_dir)?;
    let mut answers = Vec::new();
    loop {
        let v = in_transaction(&mut conn, |tx| pay(tx, partner, currency, payout_id, limit, now_ms))?;
        let more = v["more"] == Value::Bool(true);
        answers.push(v);
        if !more {
            return Ok(answers);
        }
    }
}

fn in_transaction(conn: &mut Connection, f: impl FnOnce(&Connection) -> Result<Answer, ConversionError>) -> Result<Value, ConversionError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let answer = f(&tx)?;
    tx.commit()?;
    Ok(serde_json::from_str(&answer.body).unwrap_or_default())
}

/// What `clickgate ledger verify` found in a store file.
#[derive(Debug)]
pub struct FileCheck {
    /// `PRAGMA integrity_check`: `ok`, or SQLite's first complaints.
    pub integrity: String,
    /// The ledger's own checks.
    pub ledger: Result<VerifyReport, ledger::VerifyError>,
}

/// Checks the store file under `data_dir`: SQLite's integrity check, then the ledger's chain,
/// rules and balances inside one read transaction (a snapshot, so a running writer cannot
/// make it see half a group).
pub fn verify_file(data_dir: &Path) -> Result<FileCheck, ConversionError> {
    let path = crate::store::Store::path(data_dir);
    if !path.exists() {
        return Err(ConversionError::NotFound(format!("no store file at {}", path.display())));
    }
    let mut conn = schema::open(data_dir)?;
    let integrity: Vec<String> =
        conn.prepare("PRAGMA integrity_check(20)")?.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let ledger = ledger::verify(&mut SqliteLedger::new(&tx).map_err(crate::core::lifecycle::LifecycleError::from)?);
    Ok(FileCheck { integrity: integrity.join("; "), ledger })
}
