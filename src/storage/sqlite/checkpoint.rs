//! The checkpoint thread of the conversion store's WAL.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

/// How often the checkpoint thread copies the WAL into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// WAL frames (pages) past which the writer is asked to start the WAL over.
const WAL_FRAMES_RESTART: i64 = 16_384;

/// The checkpoint thread's handle: dropping `stop` stops it; `restart` is its request to the
/// writer.
pub(crate) struct Checkpointer {
    _stop: std::sync::mpsc::Sender<()>,
    pub(super) restart: Arc<std::sync::atomic::AtomicBool>,
}

/// Starts the thread that checkpoints the store's WAL, so the writer's commits only append to
/// it. A `PASSIVE` checkpoint every `CHECKPOINT_INTERVAL` copies what no reader still needs
/// and never blocks the writer. SQLite starts the WAL over only when a write begins with all
/// of it copied, which a writer committing back to back never gives it, and another
/// connection's `RESTART` would wait for a gap between the writer's groups that its busy
/// handler rarely hits. So past `WAL_FRAMES_RESTART` frames the thread asks the writer, which
/// between two groups runs the `RESTART` itself: only the few frames the passive checkpoints
/// left are copied, and the next group writes the WAL from its start. The thread stops when
/// the handle is dropped, after a last checkpoint.
pub(crate) fn start(path: &Path) -> rusqlite::Result<Checkpointer> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ask = restart.clone();
    let checkpoint = move || match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
        Ok(frames) if frames > WAL_FRAMES_RESTART => ask.store(true, std::sync::atomic::Ordering::Relaxed),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries"),
    };
    std::thread::Builder::new()
        .name("clickgate-checkpoint".into())
        .spawn(move || loop {
            match stopped.recv_timeout(CHECKPOINT_INTERVAL) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => checkpoint(),
                _ => {
                    checkpoint();
                    return;
                }
            }
        })
        .map_err(|e| rusqlite::Error::InvalidPath(path.join(e.to_string())))?;
    Ok(Checkpointer { _stop: stop, restart })
}
