//! A privacy erase's rows in the store, on either backend: the conversions' visitor id or
//! customer reference (and its keyed hash) cleared, and the stored answers that carry either
//! deleted. Amounts, commissions and the ledger are not touched: `ledger verify` stays clean.
//!
//! On SQLite the erase's connection turns `secure_delete` on, so the cells and pages it frees
//! are overwritten with zeros, and checkpoints the WAL with `TRUNCATE` after its commit, so
//! neither the file nor the WAL keeps the old values (the WAL is truncated when no reader
//! holds it; the store's close removes it).

use rusqlite::{params, Connection, TransactionBehavior};

use crate::privacy::{ErasedRows, Erasure};
use crate::storage::data_key;
use crate::storage::offline::StoreAt;
use crate::storage::sqlite::gate::Gate;
use crate::storage::sqlite::schema;

/// Why an erase's rows could not be changed.
#[derive(Debug, thiserror::Error)]
#[error("privacy erase in the store: {0}")]
pub struct EraseError(String);

impl From<rusqlite::Error> for EraseError {
    fn from(e: rusqlite::Error) -> Self {
        EraseError(format!("sqlite: {e}"))
    }
}

impl From<::postgres::Error> for EraseError {
    fn from(e: ::postgres::Error) -> Self {
        EraseError(format!("PostgreSQL: {e}"))
    }
}

impl From<crate::privacy::PrivacyError> for EraseError {
    fn from(e: crate::privacy::PrivacyError) -> Self {
        EraseError(e.to_string())
    }
}

/// Erases `what` from the store at `at`, in one transaction, and says how many rows changed.
/// Blocking: run it on a thread of its own or a blocking one.
pub fn erase_rows(at: &StoreAt, what: &Erasure) -> Result<ErasedRows, EraseError> {
    let hash = match what {
        Erasure::CustomerRef(r) => Some(crate::privacy::current()?.lookup_hash(r)),
        Erasure::Visitor(_) => None,
    };
    match at {
        StoreAt::File(dir) => {
            let mut conn = schema::open(dir).map_err(|e| EraseError(e.to_string()))?;
            let gate = Gate::of(&schema::path(dir));
            let out = {
                let _turn = gate.enter();
                sqlite(&mut conn, what, hash.as_deref())?
            };
            // Best effort: a reader holding the WAL keeps it from being truncated now; the
            // store's close (or the next checkpoint) removes it.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            Ok(out)
        }
        StoreAt::Pg(url) => {
            let url = url.clone();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut client = crate::storage::pg::conversions::connect(&url).map_err(|e| EraseError(e.to_string()))?;
                    pg(&mut client, what, hash.as_deref())
                })
                .join()
            })
            .unwrap_or_else(|_| Err(EraseError("the erase's PostgreSQL thread panicked".into())))
        }
    }
}

/// The text a stored answer would carry: the visitor id or the customer reference.
fn needle(what: &Erasure) -> &str {
    match what {
        Erasure::Visitor(v) | Erasure::CustomerRef(v) => v,
    }
}

fn sqlite(conn: &mut Connection, what: &Erasure, hash: Option<&str>) -> Result<ErasedRows, EraseError> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let conversions = match (what, hash) {
        (Erasure::Visitor(v), _) => tx.execute(
            "UPDATE conversions SET visitor_id = NULL, customer_ref = NULL, customer_ref_hash = NULL WHERE visitor_id = ?1",
            [v],
        )?,
        (Erasure::CustomerRef(_), Some(h)) => {
            tx.execute("UPDATE conversions SET customer_ref = NULL, customer_ref_hash = NULL WHERE customer_ref_hash = ?1", [h])?
        }
        (Erasure::CustomerRef(_), None) => 0,
    };
    let stored: Vec<(String, String)> = {
        let mut st = tx.prepare("SELECT key, body FROM idempotency_keys")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        rows
    };
    let mut answers = 0;
    for key in carrying(&stored, needle(what))? {
        answers += tx.execute("DELETE FROM idempotency_keys WHERE key = ?1", params![key])?;
    }
    tx.commit()?;
    Ok(ErasedRows { conversions: conversions as u64, answers: answers as u64 })
}

fn pg(client: &mut ::postgres::Client, what: &Erasure, hash: Option<&str>) -> Result<ErasedRows, EraseError> {
    let mut tx = client.transaction()?;
    let conversions = match (what, hash) {
        (Erasure::Visitor(v), _) => tx.execute(
            "UPDATE conversions SET visitor_id = NULL, customer_ref = NULL, customer_ref_hash = NULL WHERE visitor_id = $1",
            &[v],
        )?,
        (Erasure::CustomerRef(_), Some(h)) => {
            tx.execute("UPDATE conversions SET customer_ref = NULL, customer_ref_hash = NULL WHERE customer_ref_hash = $1", &[&h])?
        }
        (Erasure::CustomerRef(_), None) => 0,
    };
    let stored: Vec<(String, String)> =
        tx.query("SELECT key, body FROM idempotency_keys", &[])?.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut answers = 0;
    for key in carrying(&stored, needle(what))? {
        answers += tx.execute("DELETE FROM idempotency_keys WHERE key = $1", &[&key])?;
    }
    tx.commit()?;
    Ok(ErasedRows { conversions, answers })
}

/// The keys of the stored answers whose body, opened, carries `needle`.
fn carrying(stored: &[(String, String)], needle: &str) -> Result<Vec<String>, EraseError> {
    let mut out = Vec::new();
    for (key, body) in stored {
        if data_key::open("idempotency_keys", "body", key, body)?.contains(needle) {
            out.push(key.clone());
        }
    }
    Ok(out)
}
