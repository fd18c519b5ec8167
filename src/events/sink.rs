//! The bounded queues between the edge and whatever takes its events next.
//!
//! The edge calls `ClickSink::send`, which never waits, locks or writes: `try_send` into the
//! main queue and, when that is full (or closed, at shutdown), `try_send` into the spill queue.
//! Only a click that fits in neither is counted as dropped. A consumer task drains the main
//! queue in batches and hands them to its writer thread, which writes them to the main writer:
//! the core's ingest in `serve`, the local spool in front of the broker in `edge`. A second
//! thread, the spill thread, drains the spill queue in batches into the overflow writer (the
//! spool). No writer ever runs on a request.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{mpsc, oneshot};

use super::ClickEvent;

/// Where batches of click events go. Called off the async workers: by the consumer's writer
/// thread, and by the spill thread.
pub trait BatchWriter: Send + Sync + 'static {
    /// Writes a batch; `Ok` means the writer has taken responsibility for every event.
    fn write_batch(&self, batch: &[ClickEvent]) -> std::io::Result<()>;
    /// Makes everything written so far durable (at shutdown).
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counters the sink moves.
#[derive(Clone)]
pub struct SinkMetrics {
    /// Events waiting in the main queue, read when the metrics are scraped.
    pub queue_depth: IntGauge,
    /// Events waiting in the spill queue.
    pub spill_depth: IntGauge,
    /// Events the consumer wrote to the main writer.
    pub written: IntCounter,
    /// Events the spill thread wrote to the overflow writer.
    pub spilled: IntCounter,
    /// Events lost: both queues full, or a writer refused them.
    pub dropped: IntCounter,
}

/// The sending side, held by the edge.
#[derive(Clone)]
pub struct ClickSink {
    tx: mpsc::Sender<ClickEvent>,
    /// std's bounded channel: with a receiver that only ever calls `try_recv`, `try_send` is a
    /// few atomics and never takes a lock (tokio's may park-and-notify through a mutex).
    spill: std_mpsc::SyncSender<ClickEvent>,
    /// Set while the spill thread is parked (or about to park): only then does a spill wake it.
    spill_asleep: Arc<AtomicBool>,
    /// Declared after `spill`, so the last sink to go drops the last spill sender before this
    /// wakes the spill thread to find its queue disconnected.
    spill_thread: Arc<WakeOnDrop>,
    metrics: SinkMetrics,
}

/// Wakes the spill thread when the last sink is gone.
struct WakeOnDrop(std::thread::Thread);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.unpark();
    }
}

/// A batch for the writer thread, and where its result and the emptied buffer go back.
type Job = (Vec<ClickEvent>, oneshot::Sender<(std::io::Result<()>, Vec<ClickEvent>)>);

/// The receiving side, run by `consume`.
pub struct ClickConsumer {
    rx: mpsc::Receiver<ClickEvent>,
    writer: Arc<dyn BatchWriter>,
    /// The writer thread's queue: one batch at a time, as the consumer awaits each.
    jobs: std_mpsc::SyncSender<Job>,
    metrics: SinkMetrics,
    batch_len_max: usize,
    linger: Duration,
    /// Resolves when the spill thread has written its last event and synced the overflow writer.
    spill_done: oneshot::Receiver<()>,
}

/// How the consumer and the spill thread batch.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub len_max: usize,
    /// How long a consumer's batch waits for more events after its first, and the spill thread
    /// (at most `SPILL_LINGER_MAX`) after each write before it looks again. Bounds the latency
    /// added.
    pub linger: Duration,
}

/// The spill thread's linger is capped here: this is enough to turn a steady spill into
/// batches and spare its senders a wake-up each, and no more latency than that is added.
pub const SPILL_LINGER_MAX: Duration = Duration::from_millis(1);

/// A queue of `len_max` events in front of `writer`, and a spill queue of `spill_len_max` in
/// front of `overflow`, drained by a thread started here.
pub fn channel(
    writer: Arc<dyn BatchWriter>,
    overflow: Arc<dyn BatchWriter>,
    len_max: usize,
    spill_len_max: usize,
    batching: Batching,
    metrics: SinkMetrics,
) -> std::io::Result<(ClickSink, ClickConsumer)> {
    let (tx, rx) = mpsc::channel(len_max);
    // A zero bound would make a rendezvous channel, whose `try_send` succeeds only while the
    // thread is waiting in `recv`.
    let (spill, spill_rx) = std_mpsc::sync_channel(spill_len_max.max(1));
    let (done_tx, spill_done) = oneshot::channel();
    let spill_asleep = Arc::new(AtomicBool::new(false));
    let spill_thread = {
        let (metrics, asleep) = (metrics.clone(), spill_asleep.clone());
        let batching = Batching { len_max: batching.len_max.max(1), linger: batching.linger.min(SPILL_LINGER_MAX) };
        std::thread::Builder::new().name("clickgate-spill".into()).spawn(move || {
            lower_priority("clickgate-spill");
            run_spill(spill_rx, &asleep, &*overflow, &metrics, batching);
            let _ = done_tx.send(());
        })?
    };
    let spill_thread = Arc::new(WakeOnDrop(spill_thread.thread().clone()));
    let (jobs, jobs_rx) = std_mpsc::sync_channel::<Job>(1);
    {
        let writer = writer.clone();
        // Ends when the consumer, and with it the queue's only sender, is gone.
        std::thread::Builder::new().name("clickgate-clicks".into()).spawn(move || {
            lower_priority("clickgate-clicks");
            while let Ok((batch, back)) = jobs_rx.recv() {
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| writer.write_batch(&batch)))
                    .unwrap_or_else(|_| Err(std::io::Error::other("the click writer panicked")));
                let _ = back.send((result, batch));
            }
        })?;
    }
    let sink = ClickSink { tx, spill, spill_asleep, spill_thread, metrics: metrics.clone() };
    let consumer = ClickConsumer { rx, writer, jobs, metrics, batch_len_max: batching.len_max, linger: batching.linger, spill_done };
    Ok((sink, consumer))
}

impl ClickSink {
    /// Hands an event over without waiting: to the main queue, else to the spill queue, else
    /// it is counted as dropped.
    pub fn send(&self, ev: ClickEvent) {
        let ev = match self.tx.try_send(ev) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev)) => ev,
        };
        // Counted before the send, so the thread's decrement never comes first.
        self.metrics.spill_depth.inc();
        match self.spill.try_send(ev) {
            Ok(()) => {
                // Pairs with the fence in `run_spill`: either this load sees the thread's flag,
                // or the thread's last look at the queue sees this click.
                fence(Ordering::SeqCst);
                if self.spill_asleep.load(Ordering::Relaxed) {
                    self.spill_thread.0.unpark();
                }
            }
            Err(_) => {
                self.metrics.spill_depth.dec();
                self.metrics.dropped.inc();
                if should_log_error() {
                    tracing::error!("the click queue and the spill queue are both full; click events are counted as dropped");
                }
            }
        }
    }

    /// Events waiting in the main queue.
    pub fn queue_len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// The spill thread: takes what the spill queue holds, up to a batch, and writes it. If more
/// came in meanwhile it lingers before it looks again, so under a steady spill batches grow and
/// no sender pays for a wake-up; when the queue is empty it parks until a sender wakes it.
/// Returns once every sender is gone and the queue is empty, after syncing `overflow`.
fn run_spill(
    rx: std_mpsc::Receiver<ClickEvent>,
    asleep: &AtomicBool,
    overflow: &dyn BatchWriter,
    metrics: &SinkMetrics,
    batching: Batching,
) {
    let mut batch = Vec::with_capacity(batching.len_max);
    loop {
        let open = take(&rx, &mut batch, batching.len_max);
        if !batch.is_empty() {
            metrics.spill_depth.sub(batch.len() as i64);
            // A panicking writer must not take the thread down with it: later spills would all drop.
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| overflow.write_batch(&batch)))
                .unwrap_or_else(|_| Err(std::io::Error::other("the overflow writer panicked")));
            count(result, batch.len(), &metrics.spilled, &metrics.dropped, "spilled");
            batch.clear();
            // A click that came in during the write means a steady spill: linger, so the next
            // batch gathers while senders find this thread awake. A lone spill is written at once.
            if open && !batching.linger.is_zero() && take(&rx, &mut batch, 1) && !batch.is_empty() {
                std::thread::sleep(batching.linger);
            }
            continue;
        }
        if !open {
            break;
        }
        // Say so before one last look: a click sent meanwhile is either seen by that look or
        // its sender sees the flag and unparks this thread (a token, so `park` returns at once).
        asleep.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if take(&rx, &mut batch, batching.len_max) && batch.is_empty() {
            std::thread::park();
        }
        asleep.store(false, Ordering::Relaxed);
    }
    if let Err(e) = overflow.sync() {
        tracing::error!(error = %e, "spilled click events could not be synced at shutdown");
    }
}

/// Moves up to `len_max` events from `rx` into `batch`; false once every sender is gone and
/// the queue is empty.
fn take(rx: &std_mpsc::Receiver<ClickEvent>, batch: &mut Vec<ClickEvent>, len_max: usize) -> bool {
    while batch.len() < len_max {
        match rx.try_recv() {
            Ok(ev) => batch.push(ev),
            Err(std_mpsc::TryRecvError::Empty) => return true,
            Err(std_mpsc::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

/// How far below the request threads' priority the click writers run (a nice value).
///
/// On a core shared with the request runtime (one worker, as in `config/loadtest.toml`), a
/// writer at the same priority held the core while answers waited: half-load p99 of up to
/// 20.6 ms on a fresh server at nice 0, against 0.27–0.31 ms at nice 5 (benches/RESULTS.md).
/// At nice 5 the scheduler's weights (335 against 1,024) still give it a quarter of a
/// contended core; ingest took 15 % at a core's full request rate, and fell behind at nice 19.
pub const WRITER_NICE: i32 = 5;

/// Lowers the calling thread's priority to `WRITER_NICE`, never raising it: a process started
/// nicer keeps its own value. A refusal (a sandbox without `setpriority`) only costs latency,
/// so it is logged and the thread goes on.
fn lower_priority(name: &str) {
    let tid = Some(rustix::thread::gettid());
    let lowered = rustix::process::getpriority_process(tid).and_then(|nice| {
        if nice < WRITER_NICE {
            rustix::process::setpriority_process(tid, WRITER_NICE)
        } else {
            Ok(())
        }
    });
    if let Err(e) = lowered {
        tracing::warn!(thread = name, error = %e, "could not lower the thread's priority; answers may wait behind its writes");
    }
}

/// Counts a batch's write as `done` or, on an error, as dropped.
fn count(result: std::io::Result<()>, n: usize, done: &IntCounter, dropped: &IntCounter, what: &'static str) {
    match result {
        Ok(()) => done.inc_by(n as u64),
        Err(e) => {
            dropped.inc_by(n as u64);
            if should_log_error() {
                tracing::error!(error = %e, events = n, what, "click event write failed; events counted as dropped");
            }
        }
    }
}

/// At most one error line per second, however many clicks fail: the counters carry the rest.
fn should_log_error() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_S: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST_S.swap(now, Ordering::Relaxed) != now
}

impl ClickConsumer {
    /// Drains the queue into the writer until every sender is gone or `stop` flips, then
    /// syncs. After `stop`, the channel is closed: later sends go to the spill queue, and what
    /// is still queued is written. Then it waits for the spill thread, which ends once every
    /// sender is gone (so clicks from connections still draining are kept) and has synced the
    /// overflow writer.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(self.batch_len_max);
        loop {
            let got = tokio::select! {
                n = self.rx.recv_many(&mut batch, self.batch_len_max) => n,
                _ = stop.changed() => {
                    self.rx.close();
                    self.rx.recv_many(&mut batch, self.batch_len_max).await
                }
            };
            if got == 0 {
                break;
            }
            // Linger: one write per few thousand events, not one per wake-up, is what keeps the
            // consumer's share of CPU per click small under load.
            if batch.len() < self.batch_len_max && !self.linger.is_zero() {
                tokio::time::sleep(self.linger).await;
                while batch.len() < self.batch_len_max {
                    match self.rx.try_recv() {
                        Ok(ev) => batch.push(ev),
                        Err(_) => break,
                    }
                }
            }
            let n = batch.len();
            // File I/O runs on the writer thread, off the async workers; the batch comes back
            // for reuse.
            let (back, answer) = oneshot::channel();
            let gone = || (Err(std::io::Error::other("the click writer thread is gone")), Vec::with_capacity(self.batch_len_max));
            let (result, returned) = match self.jobs.send((batch, back)) {
                Ok(()) => answer.await.unwrap_or_else(|_| gone()),
                Err(std_mpsc::SendError((returned, _))) => (gone().0, returned),
            };
            batch = returned;
            count(result, n, &self.metrics.written, &self.metrics.dropped, "queued");
            batch.clear();
        }
        if let Err(e) = self.writer.sync() {
            tracing::error!(error = %e, "click event fsync at shutdown failed");
        }
        // An error means the thread is gone without a word (it panicked): nothing to wait for.
        let _ = self.spill_done.await;
    }
}

#[cfg(test)]
mod tests;
