//! The bounded queue between the edge and the click log.
//!
//! The edge calls `ClickSink::send`, which never waits: `try_send` into a bounded channel, and
//! when that is full the event is written straight to the click log (a spill). Only if that
//! write fails is the event counted as dropped. A consumer task drains the channel in batches.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::mpsc;

use super::click_log::ClickLog;
use super::ClickEvent;

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
    log: Arc<ClickLog>,
    metrics: SinkMetrics,
}

/// The receiving side, run by `consume`.
pub struct ClickConsumer {
    rx: mpsc::Receiver<ClickEvent>,
    log: Arc<ClickLog>,
    metrics: SinkMetrics,
    batch_len_max: usize,
    linger: Duration,
    sync_every: Duration,
}

/// How the consumer batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub len_max: usize,
    /// How long a batch waits for more events after its first (bounds the latency added).
    pub linger: Duration,
    pub sync_every: Duration,
}

/// A queue of `len_max` events in front of `log`.
pub fn channel(log: Arc<ClickLog>, len_max: usize, batching: Batching, metrics: SinkMetrics) -> (ClickSink, ClickConsumer) {
    let (tx, rx) = mpsc::channel(len_max);
    (
        ClickSink { tx, log: log.clone(), metrics: metrics.clone() },
        ClickConsumer { rx, log, metrics, batch_len_max: batching.len_max, linger: batching.linger, sync_every: batching.sync_every },
    )
}

impl ClickSink {
    /// Hands an event over without waiting.
    pub fn send(&self, ev: ClickEvent) {
        let ev = match self.tx.try_send(ev) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev)) => ev,
        };
        // No fsync here: the consumer's interval covers spilled frames too, and a request
        // must not wait on the disk's flush.
        match self.log.append(std::slice::from_ref(&ev), Duration::MAX) {
            Ok(()) => self.metrics.spilled.inc(),
            Err(e) => {
                self.metrics.dropped.inc();
                if should_log_error() {
                    tracing::error!(error = %e, "click event could not be queued or spilled to the click log; counted as dropped");
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
    /// Drains the queue into the log until every sender is gone or `stop` flips, then syncs.
    /// After `stop`, the channel is closed: later sends spill straight to the log, and what is
    /// still queued is written before returning.
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
            let log = self.log.clone();
            let sync_every = self.sync_every;
            // File I/O runs off the async workers; the batch comes back for reuse.
            let (result, returned) = tokio::task::spawn_blocking(move || {
                let r = log.append(&batch, sync_every);
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
                        tracing::error!(error = %e, events = n, "click log write failed; events counted as dropped");
                    }
                }
            }
            batch.clear();
        }
        if let Err(e) = self.log.sync() {
            tracing::error!(error = %e, "click log fsync at shutdown failed");
        }
    }
}
