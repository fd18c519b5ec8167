//! The sync thread of the SQLite store's WAL: it makes committed groups durable, then answers
//! them.
//!
//! With `synchronous=FULL`, SQLite fsyncs the WAL inside each commit, on the writer's thread:
//! the writer waits for the disk, then answers, then starts the next group. The writer's
//! connection runs `synchronous=NORMAL` instead (commits append to the WAL without an fsync;
//! SQLite still syncs the WAL before each checkpoint and the database file after it) and hands
//! each committed group's answers here. This thread runs one `fdatasync` of the WAL file for
//! every group that committed since its last one, and only then sends their answers, while the
//! writer already works on the next group. An answer is still an acknowledgement of what is on
//! disk: the WAL holds the group's frames, recovery replays them, and frames are only ever
//! appended or, after a checkpoint has copied and synced them, started over.
//!
//! The `wal_checkpoint(RESTART)` the writer runs between groups syncs the WAL before it copies
//! it (SQLite does so at every checkpoint unless `synchronous=OFF`), so groups committed but not
//! yet synced here are in the database file before the WAL starts over.
//!
//! Committed groups are visible to readers before their sync; a power loss in that window
//! loses the unsynced groups, never a prefix with a gap (the WAL is replayed in order up to its
//! last valid commit), and none of them was acknowledged.
//!
//! A failed fdatasync is final: the kernel may have dropped the pages it could not write and
//! report the next sync clean, so every answer from then on is `NotStored` until the server is
//! restarted and SQLite recovers the file. So is a WAL path that no longer names the file this
//! thread syncs (removed or replaced behind the server's back).

use std::path::PathBuf;
use std::sync::mpsc;

use crate::conversions::{Acks, ConversionError};
use crate::metrics::ApiMetrics;

/// The handle: dropping it lets the thread answer what it holds and stop.
pub(super) struct WalSync {
    tx: mpsc::Sender<Acks>,
}

impl WalSync {
    /// Starts the thread for the store file `db`, whose WAL is `<db>-wal`. The WAL is opened
    /// once, here: an error of a write-back to it from then on is reported to this descriptor's
    /// next sync, whoever else saw it first (Linux reports a file's write-back errors to every
    /// descriptor open when they happened, not to one opened later).
    pub(crate) fn start(db: &std::path::Path, metrics: ApiMetrics) -> std::io::Result<WalSync> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        // Created if missing, as SQLite would at its first transaction: an empty WAL is a valid one.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&wal)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", wal.display())))?;
        let (tx, rx) = mpsc::channel::<Acks>();
        std::thread::Builder::new().name("clickgate-walsync".into()).spawn(move || run(&file, &wal, &rx, &metrics))?;
        Ok(WalSync { tx })
    }

    /// Answers a committed group once the WAL is synced.
    pub(crate) fn acknowledge(&self, acks: Acks) {
        if let Err(mpsc::SendError(acks)) = self.tx.send(acks) {
            crate::conversions::answer_all(acks, |_| Err(ConversionError::NotStored("the WAL sync thread stopped".into())));
        }
    }
}

fn run(file: &std::fs::File, wal: &std::path::Path, rx: &mpsc::Receiver<Acks>, metrics: &ApiMetrics) {
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        groups.extend(rx.try_iter());
        if failed.is_none() {
            // The file must still be the WAL: SQLite only deletes it when the last connection
            // closes, and the writer's stays open as long as this thread has work.
            let synced = match std::fs::metadata(wal) {
                Ok(now) if same_file(&now, file) => file.sync_data(),
                Ok(_) => Err(std::io::Error::other("the WAL was replaced")),
                Err(e) => Err(e),
            };
            if let Err(e) = synced {
                tracing::error!(error = %e, wal = %wal.display(), "fdatasync of the conversion store's WAL failed; \
                    no write is acknowledged until the server restarts");
                failed = Some(format!("the commit could not be made durable (fdatasync of the WAL: {e}); restart the server"));
            }
            metrics.wal_syncs.inc();
        }
        for acks in groups {
            match &failed {
                None => crate::conversions::answer_all(acks, |r| r),
                Some(why) => crate::conversions::answer_all(acks, |_| Err(ConversionError::NotStored(why.clone()))),
            }
        }
    }
}

/// Whether `now` (the path's metadata) is the open file's inode.
fn same_file(now: &std::fs::Metadata, file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata().is_ok_and(|open| open.dev() == now.dev() && open.ino() == now.ino())
}
