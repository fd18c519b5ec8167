//! The write gate: one first-come, first-served lock per store file and process, taken around
//! every write transaction of it in this process.
//!
//! SQLite's write lock is not fair. The conversion writer commits group after group, CPU-bound
//! (its fsync runs on the sync thread), so the lock is free for microseconds between two
//! groups, and another connection's busy handler, which polls, rarely wakes inside one of those
//! gaps: the webhook worker's fan-out waited seconds for its turn while conversions streamed
//! (benches/webhooks.rs). Taking this gate first queues each writer behind the ones that came
//! before it, so a short transaction waits for at most the group in progress, and the writer
//! for at most the short transactions queued ahead of its next group. Connections in other
//! processes (a CLI next to `serve`) still meet at SQLite's lock, with their busy handlers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use parking_lot::{FairMutex, FairMutexGuard};

/// The gate of one store file; clones share it.
#[derive(Clone)]
pub struct Gate(Arc<FairMutex<()>>);

/// Held while a write transaction is open; dropping it lets the next writer in.
pub type Turn<'a> = FairMutexGuard<'a, ()>;

impl Gate {
    /// The gate of the store file at `path`: the same one for every connection of this process
    /// to that file, however the path is spelled.
    pub fn of(path: &Path) -> Gate {
        static GATES: OnceLock<Mutex<HashMap<PathBuf, Weak<FairMutex<()>>>>> = OnceLock::new();
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut gates = GATES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gate) = gates.get(&key).and_then(Weak::upgrade) {
            return Gate(gate);
        }
        // Files closed since leave dead entries; a new one sweeps them, so the map stays as
        // small as the set of open store files.
        gates.retain(|_, g| g.strong_count() > 0);
        let gate = Arc::new(FairMutex::new(()));
        gates.insert(key, Arc::downgrade(&gate));
        Gate(gate)
    }

    /// Waits for this process's earlier writers of the file, then holds the turn.
    pub fn enter(&self) -> Turn<'_> {
        self.0.lock()
    }
}

/// A write transaction holding its turn at the gate. Its fields drop in order: the transaction
/// (rolled back unless committed), then the turn.
pub struct Write<'a> {
    tx: rusqlite::Transaction<'a>,
    _turn: Turn<'a>,
}

impl<'a> Write<'a> {
    /// Takes the turn, then SQLite's write lock (`BEGIN IMMEDIATE`).
    pub fn begin(gate: &'a Gate, conn: &'a mut rusqlite::Connection) -> rusqlite::Result<Write<'a>> {
        let turn = gate.enter();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Ok(Write { tx, _turn: turn })
    }

    /// Commits, then gives up the turn.
    pub fn commit(self) -> rusqlite::Result<()> {
        self.tx.commit()
    }
}

impl<'a> std::ops::Deref for Write<'a> {
    type Target = rusqlite::Transaction<'a>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_has_one_gate_however_it_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clickgate.db");
        std::fs::write(&file, b"").unwrap();
        let (a, b) = (Gate::of(&file), Gate::of(&dir.path().join(".").join("clickgate.db")));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        let other = dir.path().join("other.db");
        assert!(!Arc::ptr_eq(&a.0, &Gate::of(&other).0));
        let turn = a.enter();
        assert!(b.0.try_lock().is_none(), "a turn held through one handle holds the other");
        drop(turn);
        assert!(b.0.try_lock().is_some());
    }
}
