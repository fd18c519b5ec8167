//! The conversion writer's shape: one transaction per group, one savepoint per job. A job
//! rolled back takes its transfers with it; the others commit together.

use super::super::*;
use super::harness::{open_sqlite, Harness, Sqlite};
use super::single;

#[test]
fn a_rolled_back_savepoint_takes_its_transfers_with_it() {
    let mut h = Sqlite::new();
    let mut conn = open_sqlite(h.path());
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
    for (job, keep) in [("a", true), ("b", false), ("c", true)] {
        let sp = tx.savepoint().unwrap();
        let applied = apply(&mut SqliteLedger::new(&sp).unwrap(), &single(&format!("job:{job}"), 10)).unwrap();
        assert!(matches!(applied, Applied::Created(_)));
        if keep {
            sp.commit().unwrap();
        } else {
            drop(sp); // rolls back
        }
    }
    tx.commit().unwrap();
    let report = h.run(|tx| verify(tx)).unwrap_or_else(|e| panic!("verify: {e}"));
    assert_eq!((report.transfers, report.currencies[0].posted_minor), (2, 20));
    let stored = h.run(|tx| tx.transfers_after(0, 10).unwrap());
    let causes: Vec<_> = stored.iter().map(|t| (t.seq, t.transfer.cause.as_str())).collect();
    assert_eq!(causes, [(1, "job:a"), (2, "job:c")], "the chain continues from the last kept transfer");
}
