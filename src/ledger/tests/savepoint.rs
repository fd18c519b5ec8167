//! The conversion writer's shape: one transaction per group, one savepoint per job. A job
//! rolled back takes its transfers with it; the others commit together.

use super::super::*;
use super::harness::{open_sqlite, Harness, Sqlite};
use super::single;
use crate::storage::sqlite::SqliteTx;

#[test]
fn a_rolled_back_savepoint_takes_its_transfers_with_it() {
    let mut h = Sqlite::new();
    let mut conn = open_sqlite(h.path());
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    for (job, keep) in [("a", true), ("b", false), ("c", true)] {
        let sp = tx.savepoint().unwrap();
        let applied = apply(&mut SqliteTx::new(&sp).unwrap(), &single(&format!("job:{job}"), 10)).unwrap();
        assert!(matches!(applied, Applied::Created(_)));
        if keep {
            sp.commit().unwrap();
        } else {
            drop(sp); // rolls back
        }
    }
    tx.commit().unwrap();
    let report = kept_a_and_c(&mut h);
    assert_eq!((report.transfers, report.currencies[0].posted_minor), (2, 20));
}

/// Verifies the store and checks that the kept jobs `a` and `c` are the chain, in order;
/// returns the report.
fn kept_a_and_c(h: &mut Sqlite) -> VerifyReport {
    let report = h.run(|tx| verify(tx)).unwrap_or_else(|e| panic!("verify: {e}"));
    let stored = h.run(|tx| tx.transfers_after(0, 10).unwrap());
    let causes: Vec<_> = stored.iter().map(|t| (t.seq, t.transfer.cause.as_str())).collect();
    assert_eq!(causes, [(1, "job:a"), (2, "job:c")], "the chain continues from the last kept transfer");
    report
}

/// The writer's grouped mode with a savepoint per job: the rolled-back job's deferred head and
/// balances are forgotten, the kept jobs' are flushed before each release, and what commits is
/// what `apply` in plain mode would have stored.
#[test]
fn a_rolled_back_savepoint_in_grouped_mode_forgets_what_it_deferred() {
    let mut h = Sqlite::new();
    let mut conn = open_sqlite(h.path());
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    let mut ledger = SqliteTx::grouped(&tx).unwrap();
    for (job, keep) in [("a", true), ("b", false), ("c", true), ("d", false)] {
        tx.execute_batch("SAVEPOINT job").unwrap();
        let applied = apply(&mut ledger, &single(&format!("job:{job}"), 10)).unwrap();
        assert!(matches!(applied, Applied::Created(_)));
        let payable = ledger.balance(&super::payable("alice")).unwrap();
        assert!(payable.credits_posted >= 10, "a read inside the group sees the deferred delta: {payable:?}");
        if keep {
            ledger.flush().unwrap();
        } else {
            tx.execute_batch("ROLLBACK TO job").unwrap();
            ledger.forget();
        }
        tx.execute_batch("RELEASE job").unwrap();
    }
    ledger.flush().unwrap();
    drop(ledger);
    tx.commit().unwrap();
    let report = kept_a_and_c(&mut h);
    assert_eq!((report.transfers, report.head_seq, report.currencies[0].posted_minor), (2, 2, 20));
    let balance = h.run(|tx| tx.balance(&super::payable("alice")).unwrap());
    assert_eq!(balance, super::bal(0, 0, 0, 20), "each kept job's delta written once, the rolled-back ones' never");
}

/// Without a flush, a grouped transaction's head and balances are not written: the commit
/// would leave a chain whose head lags its rows, which `verify` reports.
#[test]
fn a_grouped_commit_without_its_flush_is_caught_by_verify() {
    let mut h = Sqlite::new();
    let mut conn = open_sqlite(h.path());
    let tx = conn.transaction().unwrap();
    apply(&mut SqliteTx::grouped(&tx).unwrap(), &single("job:a", 10)).unwrap();
    tx.commit().unwrap();
    assert!(h.run(|tx| verify(tx)).is_err(), "a head that lags its transfers is reported");
}
