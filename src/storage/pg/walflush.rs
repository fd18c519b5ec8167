//! The flush thread of the PostgreSQL writer: it makes committed groups durable, then answers
//! them, while the writer already runs the next group.
//!
//! With `synchronous_commit = on`, a group's `COMMIT` waits for the server's WAL flush, and
//! PostgreSQL releases the transaction's locks only after it. Every group takes the ledger
//! head's lock first, so the next group (of this core or of any other) waited out each flush,
//! and the writer sat idle through it: a few milliseconds of an fdatasync in every group.
//!
//! Instead a group commits with `synchronous_commit = off` (set for that transaction alone): the
//! commit record is in the WAL and the locks are released at once, and the group's answers come
//! here. This thread, on a connection of its own, commits one tiny transaction that writes WAL
//! (a transactional logical message, which every role may emit and nothing stores) with
//! `synchronous_commit = on`. Its commit flushes the WAL up to its own commit record, which lies
//! after the commit record of every group handed here before it started: those groups are then
//! durable, and only then are they answered. One flush covers every group that arrived since the
//! last, so under load the flushes merge as the SQLite store's syncs do (`sqlite::walsync`).
//!
//! Committed groups are visible to readers before their flush; a server crash in that window
//! loses the unflushed groups, never a prefix with a gap (the WAL is replayed in order), and
//! none of them was acknowledged; each client's retry under the same `Idempotency-Key` then
//! runs it again. The window is that of any asynchronous commit in PostgreSQL.
//!
//! What this thread must never do is flush on a server that restarted after a group committed:
//! the group may be gone, and the flush would vouch for it. A restart closes every connection,
//! so a flush counts only for groups whose `COMMIT` was sent after this thread's connection had
//! opened. After any failure the connection is dropped, the groups in hand are answered
//! `NotStored` (the retry is safe either way), and the next connection covers only groups that
//! commit after it opened.

use std::sync::mpsc;
use std::time::Instant;

use crate::conversions::{answer_all, Acks, ConversionError};
use crate::metrics::ApiMetrics;

/// The statement whose commit makes the WAL durable up to it: it writes a WAL record (so the
/// transaction has one to flush) without touching any table.
const FLUSH: &str = "SELECT pg_logical_emit_message(true, 'clickgate-flush', '')";

/// The handle: dropping it lets the thread answer what it holds and stop.
pub(super) struct WalFlush {
    tx: mpsc::Sender<(Instant, Acks)>,
}

impl WalFlush {
    /// Starts the thread and waits for its first connection, so the writer's first group finds
    /// it open.
    pub(super) fn start(url: &str, metrics: ApiMetrics) -> Result<WalFlush, ConversionError> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let mut flusher = Flusher { url: url.to_string(), live: None };
        std::thread::Builder::new()
            .name("clickgate-walflush".into())
            .spawn(move || {
                let _ = ready_tx.send(flusher.connect());
                run(&mut flusher, &rx, &metrics);
            })
            .map_err(|e| ConversionError::NotStored(format!("starting the WAL flush thread: {e}")))?;
        ready.recv().map_err(|_| ConversionError::NotStored("the WAL flush thread stopped".into()))??;
        Ok(WalFlush { tx })
    }

    /// Answers a group once the WAL holding it is flushed; `commit_sent` is when its `COMMIT`
    /// was sent.
    pub(super) fn acknowledge(&self, commit_sent: Instant, acks: Acks) {
        if let Err(mpsc::SendError((_, acks))) = self.tx.send((commit_sent, acks)) {
            answer_all(acks, |_| Err(ConversionError::NotStored("the WAL flush thread stopped".into())));
        }
    }
}

/// A connection and when it was opened (measured once it answered, so never early).
struct Flusher {
    url: String,
    live: Option<(::postgres::Client, Instant)>,
}

impl Flusher {
    fn connect(&mut self) -> Result<(), ConversionError> {
        self.live = None;
        let mut client = super::conversions::connect_here(&self.url)?;
        client.batch_execute("SET synchronous_commit = on")?;
        self.live = Some((client, Instant::now()));
        Ok(())
    }

    /// Flushes the WAL; `Ok(opened)` with when the connection that did it was opened.
    fn flush(&mut self) -> Result<Instant, String> {
        if self.live.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            self.connect().map_err(|e| e.to_string())?;
        }
        let (client, opened) = self.live.as_mut().expect("connected above");
        let flushed = client.transaction().and_then(|mut tx| {
            tx.execute(FLUSH, &[])?;
            tx.commit()
        });
        match flushed {
            Ok(()) => Ok(*opened),
            Err(e) => {
                // Connected again at once, so groups that commit from now on can be vouched for.
                if let Err(again) = self.connect() {
                    tracing::debug!(error = %again, "connecting the WAL flush thread again failed; the next group tries again");
                }
                Err(e.to_string())
            }
        }
    }
}

fn run(flusher: &mut Flusher, rx: &mpsc::Receiver<(Instant, Acks)>, metrics: &ApiMetrics) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        groups.extend(rx.try_iter());
        let flushed = flusher.flush();
        metrics.wal_syncs.inc();
        if let Err(e) = &flushed {
            tracing::warn!(error = %e, groups = groups.len(), "flushing PostgreSQL's WAL failed; the groups committed before it are \
                answered as not stored, and their clients' retries run them again or replay them");
        }
        for (commit_sent, acks) in groups {
            match &flushed {
                // The connection was open before the group's commit was sent and is open still:
                // the server has not restarted in between.
                Ok(opened) if *opened < commit_sent => answer_all(acks, |r| r),
                Ok(_) => answer_all(acks, |_| {
                    Err(ConversionError::NotStored(
                        "the connection to PostgreSQL was made again after this write committed, so its durability is unknown; \
                         retry with the same Idempotency-Key"
                            .into(),
                    ))
                }),
                Err(e) => answer_all(acks, |_| {
                    Err(ConversionError::NotStored(format!(
                        "the commit could not be confirmed durable ({e}); retry with the same Idempotency-Key"
                    )))
                }),
            }
        }
    }
}
