//! The conversion writer on SQLite: grouped transactions on the store file, answered after the
//! WAL's sync, with checkpoints on a thread of their own.

use std::path::Path;

use rusqlite::Connection;

use super::gate::Gate;
use super::{checkpoint, schema, walsync, SqliteTx};
use crate::conversions::{store, Acks, Attributor, ConversionError, Conversions, GroupTx, Groups, Job, WriterConfig};
use crate::lifecycle::LifecycleError;
use crate::metrics::ApiMetrics;

/// Opens the store file under `data_dir`, migrating it to this build's schema first (the
/// writer is the schema's owner; a file a newer build migrated is refused), and starts the
/// writer thread.
pub fn start(
    data_dir: &Path,
    config: WriterConfig,
    attributor: Box<dyn Attributor>,
    metrics: ApiMetrics,
) -> Result<Conversions, ConversionError> {
    let conn = schema::open_migrated(data_dir)?;
    // Checkpoints run on a thread of their own (see `checkpoint`), not inside the
    // writer's commits.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // The WAL's fsync runs on the sync thread, which answers a group only after it (see
    // `walsync`); the writer's commits only append.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let db = Path::new(conn.path().unwrap_or_default()).to_path_buf();
    let checkpointer = checkpoint::start(&db)?;
    let wal_sync = walsync::WalSync::start(&db, metrics.clone())
        .map_err(|e| ConversionError::Invalid { field: "writer", why: format!("starting the WAL sync thread: {e}") })?;
    let gate = Gate::of(&db);
    Conversions::spawn(SqliteGroups { conn, checkpointer, wal_sync, gate }, config, attributor, metrics)
}

/// The SQLite store file's grouped transactions.
struct SqliteGroups {
    conn: Connection,
    /// Dropped with the writer, which stops the checkpoint thread.
    checkpointer: checkpoint::Checkpointer,
    /// Syncs the WAL and then answers each committed group.
    wal_sync: walsync::WalSync,
    /// Taken around each group, so the process's other writers of the file get their turns.
    gate: Gate,
}

impl Groups for SqliteGroups {
    fn run_group(
        &mut self,
        jobs: &[Job],
        savepoints: bool,
        purge: Option<crate::conversions::Purge>,
        run: &mut dyn FnMut(&mut dyn GroupTx, &Job) -> bool,
    ) -> Result<bool, ConversionError> {
        let _turn = self.gate.enter();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The ledger head and balances are written once per group (or per job with savepoints).
        let mut ledger = SqliteTx::grouped(&tx).map_err(LifecycleError::from)?;
        for job in jobs {
            if savepoints {
                // Its statements prepared once; the sub-journal lives in memory (`temp_store`).
                tx.prepare_cached("SAVEPOINT job")?.execute([])?;
            }
            let failed = run(&mut ledger, job);
            if failed && !savepoints {
                return Ok(false);
            }
            if savepoints {
                if failed {
                    // A failed step may have written part of the job: none of it stays.
                    tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
                    ledger.forget();
                } else {
                    ledger.flush().map_err(LifecycleError::from)?;
                }
                tx.prepare_cached("RELEASE job")?.execute([])?;
            }
        }
        if let Some(purge) = purge {
            store::ConversionTx::purge(&mut ledger, &purge)?;
        }
        ledger.flush().map_err(LifecycleError::from)?;
        tx.commit()?;
        Ok(true)
    }

    fn acknowledge(&mut self, acks: Acks) {
        self.wal_sync.acknowledge(acks);
    }

    fn idle(&mut self) {
        if self.checkpointer.restart.swap(false, std::sync::atomic::Ordering::Relaxed) {
            let _turn = self.gate.enter();
            if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL restart failed; the checkpoint thread asks again");
            }
        }
    }
}
