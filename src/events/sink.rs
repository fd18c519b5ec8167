//! The bounded queue between the edge and whatever takes its events next.
//!
//! The edge calls `ClickSink::send`, which never waits: `try_send` into a bounded channel, and
//! when that is full the event goes to the overflow writer (a spill). Only if that write fails
//! is the event counted as dropped. A consumer task drains the channel in batches into the main
//! writer: the core's ingest in `serve`, the local spool in front of the broker in `edge`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::mpsc;

use super::ClickEvent;

/// Where batches of click events go. Called off the async workers (`spawn_blocking`) by the
/// consumer, and directly by the edge for a spill, so a spill writer must be quick.
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
    pub queue_depth: IntGauge,
    pub written: IntCounter,
    pub spilled: IntCounter,
    pub dropped: IntCounter,
}

/// The sending side, held by the edge.
#[derive(Clone)]
pub struct ClickSink {
    tx: mpsc::Sender<ClickEvent>,
    overflow: Arc<dyn BatchWriter>,
    metrics: SinkMetrics,
}

/// The receiving side, run by `consume`.
pub struct ClickConsumer {
    rx: mpsc::Receiver<ClickEvent>,
    writer: Arc<dyn BatchWriter>,
    metrics: SinkMetrics,
    batch_len_max: usize,
    linger: Duration,
}

/// How the consumer batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub len_max: usize,
    /// How long a batch waits for more events after its first (bounds the latency added).
    pub linger: Duration,
}

/// A queue of `len_max` events in front of `writer`; a full queue spills to `overflow`.
pub fn channel(
    writer: Arc<dyn BatchWriter>,
    overflow: Arc<dyn BatchWriter>,
    len_max: usize,
    batching: Batching,
    metrics: SinkMetrics,
) -> (ClickSink, ClickConsumer) {
    let (tx, rx) = mpsc::channel(len_max);
    (
        ClickSink { tx, overflow, metrics: metrics.clone() },
        ClickConsumer { rx, writer, metrics, batch_len_max: batching.len_max, linger: batching.linger },
    )
}

impl ClickSink {
    /// Hands an event over without waiting.
    pub fn send(&self, ev: ClickEvent) {
        let ev = match self.tx.try_send(ev) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev)) => ev,
        };
        match self.overflow.write_batch(std::slice::from_ref(&ev)) {
            Ok(()) => self.metrics.spilled.inc(),
            Err(e) => {
                self.metrics.dropped.inc();
                if should_log_error() {
                    tracing::error!(error = %e, "click event could not be queued or spilled; counted as dropped");
                }
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
    /// syncs. After `stop`, the channel is closed: later sends spill to the overflow writer,
    /// and what is still queued is written before returning.
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
            self.metrics.queue_depth.set((n + self.rx.len()) as i64);
            let writer = self.writer.clone();
            // File I/O runs off the async workers; the batch comes back for reuse.
            let (result, returned) = tokio::task::spawn_blocking(move || {
                let r = writer.write_batch(&batch);
                (r, batch)
            })
            .await
            .unwrap_or_else(|e| (Err(std::io::Error::other(e.to_string())), Vec::new()));
            batch = returned;
            match result {
                Ok(()) => self.metrics.written.inc_by(n as u64),
                Err(e) => {
                    self.metrics.dropped.inc_by(n as u64);
                    if should_log_error() {
                        tracing::error!(error = %e, events = n, "click event write failed; events counted as dropped");
                    }
                }
            }
            batch.clear();
        }
        if let Err(e) = self.writer.sync() {
            tracing::error!(error = %e, "click event fsync at shutdown failed");
        }
    }
}
