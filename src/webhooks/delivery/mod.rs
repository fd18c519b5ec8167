//! The delivery worker: follows the outbox by `seq` from a durable cursor, fans each event out
//! to the enabled endpoints that want it, and sends each delivery until it is delivered, its
//! schedule is spent, or its endpoint is disabled.
//!
//! One `step` does, in order: record the attempts that finished and fan out up to
//! `fanout_batch_len_max` new events (one transaction, with the cursor), and start the due
//! attempts, at most `endpoint_concurrency_max` per endpoint and `in_flight_max` in all, each on
//! a task of its own, so a slow endpoint only ever holds its own slots. A finished attempt
//! frees its slot at once; between steps, the freed slots take new due attempts without a
//! write. Time comes from a
//! `Clock`, and jitter from a seeded generator, so the tests walk the whole schedule in
//! milliseconds of real time. The store is the worker's own connection; every call runs on
//! tokio's blocking pool.
//!
//! Delivery is at least once: an attempt whose result was not recorded before a crash is made
//! again, under the same `webhook-id`.

pub mod http;
mod outage;
mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::endpoint::{Endpoint, Status};
use super::signature::headers;
use super::store::{AttemptRecord, Due, StoreError, WebhookStore};
use crate::metrics::WebhookMetrics;
pub use http::{Resolver, Sent, SystemResolver, Transport};
pub use plan::{decide, fan_out, Decision};

/// Where the worker reads the time, in Unix milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// The worker's limits (`[webhooks]`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub poll_interval: Duration,
    pub endpoint_concurrency_max: usize,
    pub in_flight_max: usize,
    pub fanout_batch_len_max: usize,
    /// The delays before retries (`schedule::RETRY_DELAYS_MS` unless configured).
    pub retry_delays_ms: Vec<u64>,
}

impl Limits {
    /// The limits of a `[webhooks]` section.
    pub fn from_config(c: &crate::config::Webhooks) -> Limits {
        Limits {
            poll_interval: Duration::from_millis(c.poll_interval_ms),
            endpoint_concurrency_max: c.endpoint_concurrency_max,
            in_flight_max: c.in_flight_max,
            fanout_batch_len_max: c.fanout_batch_len_max,
            retry_delays_ms: if c.retry_delays_ms.is_empty() {
                super::schedule::RETRY_DELAYS_MS.to_vec()
            } else {
                c.retry_delays_ms.clone()
            },
        }
    }
}

/// A finished attempt, on its way to the store.
struct Finished {
    due: Due,
    at_ms: u64,
    latency_ms: u64,
    sent: Sent,
}

/// How often the worker writes while attempts finish: each write (the finished attempts'
/// records and the fan-out of new events, in one transaction) is a turn at the store's write
/// lock that the conversion writer waits through, so they come at most this often. An
/// endpoint's slot is free as soon as its attempt finishes, not when it is recorded, so this
/// costs no delivery rate; it only delays the records.
const WRITE_INTERVAL: Duration = Duration::from_millis(25);

/// Outbox batches fan-out reads in one step before it starts attempts.
const FANOUT_BATCHES_MAX: usize = 16;

/// Shared with the blocking pool.
type SharedStore = Arc<Mutex<Box<dyn WebhookStore>>>;

/// The worker's state between steps.
pub struct Worker {
    store: SharedStore,
    transport: Arc<Transport>,
    limits: Limits,
    clock: Arc<dyn Clock>,
    metrics: WebhookMetrics,
    rng: fastrand::Rng,
    /// Delivery ids in flight, per endpoint.
    in_flight: HashMap<String, HashSet<i64>>,
    /// Attempts finished and not yet recorded: their deliveries still read as due, and are
    /// never started again before the record.
    finished: Vec<Finished>,
    unrecorded: HashSet<i64>,
    finished_tx: mpsc::UnboundedSender<Finished>,
    finished_rx: mpsc::UnboundedReceiver<Finished>,
    endpoints: Vec<Endpoint>,
    steps: u64,
    /// Whether the last step found this worker the one that delivers (`WebhookStore::lead`).
    leading: bool,
}

impl Worker {
    /// A worker over `store` (a connection of its own).
    pub fn new(
        store: Box<dyn WebhookStore>,
        transport: Transport,
        limits: Limits,
        clock: Arc<dyn Clock>,
        metrics: WebhookMetrics,
        seed: u64,
    ) -> Worker {
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        Worker {
            store: Arc::new(Mutex::new(store)),
            transport: Arc::new(transport),
            limits,
            clock,
            metrics,
            rng: fastrand::Rng::with_seed(seed),
            in_flight: HashMap::new(),
            finished: Vec::new(),
            unrecorded: HashSet::new(),
            finished_tx,
            finished_rx,
            endpoints: Vec::new(),
            steps: 0,
            leading: true,
        }
    }

    /// Runs until `stop`: a full step (record, fan out, start) every `poll_interval`, or every
    /// `WRITE_INTERVAL` while attempts finish, and between those, attempts started in the
    /// slots finished ones free.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut last_step = tokio::time::Instant::now();
        let mut full = true;
        let mut outage = outage::Outage::default();
        loop {
            let outcome = if full {
                last_step = tokio::time::Instant::now();
                self.step().await
            } else {
                self.start_due().await
            };
            let now = std::time::Instant::now();
            let say = if outcome.is_err() { outage.failed(now) } else { outage.succeeded(now) };
            match (&outcome, say) {
                (Err(e), outage::Say::Failed) => {
                    tracing::error!(error = %e, "a webhook delivery step failed; it runs again at each poll, and this is logged again once a minute while it fails")
                }
                (Err(e), outage::Say::StillFailing { failures, for_s }) => {
                    tracing::error!(error = %e, failures, for_s, "webhook delivery steps still fail")
                }
                (_, outage::Say::Recovered { failures, for_s }) => {
                    tracing::info!(failures, for_s, "webhook delivery steps succeed again")
                }
                _ => {}
            }
            let next_step = last_step + if self.finished.is_empty() { self.limits.poll_interval } else { WRITE_INTERVAL };
            tokio::select! {
                _ = tokio::time::sleep_until(next_step) => full = true,
                f = self.finished_rx.recv() => {
                    if let Some(f) = f {
                        self.finish(f);
                    }
                    while let Ok(f) = self.finished_rx.try_recv() {
                        self.finish(f);
                    }
                    full = tokio::time::Instant::now() >= next_step;
                }
                _ = stop.changed() => break,
            }
        }
        // What finished is recorded now, so a restart (a deploy) sends none of it again;
        // attempts still in flight are made again at the next start.
        while let Ok(f) = self.finished_rx.try_recv() {
            self.finish(f);
        }
        if let Err(e) = self.record_finished().await {
            tracing::error!(error = %e, "recording the finished webhook attempts failed; they are made again at the next start");
        }
        tracing::info!(in_flight = self.in_flight_len(), "the webhook delivery worker stopped");
    }

    /// One round: record what finished and fan out new events (one transaction), then start
    /// what is due.
    pub async fn step(&mut self) -> Result<(), StoreError> {
        while let Ok(f) = self.finished_rx.try_recv() {
            self.finish(f);
        }
        let lead = self.blocking(|s| s.lead()).await?;
        if lead != self.leading {
            self.leading = lead;
            match lead {
                true => tracing::info!("this process delivers webhooks"),
                false => tracing::info!("another process delivers webhooks; this one stands by"),
            }
        }
        if !lead {
            // What finished while it led is still recorded; nothing new starts.
            return self.record_finished().await;
        }
        self.endpoints = self.blocking(|s| s.endpoints()).await?;
        let disabled = self.endpoints.iter().filter(|e| e.status != Status::Enabled).count();
        self.metrics.disabled_endpoints.set(disabled as i64);
        let records = self.decide_finished();
        self.fan_out(records).await?;
        self.steps += 1;
        if self.steps % 1000 == 1 {
            self.purge().await?;
        }
        self.start_due().await
    }

    /// Waits for every attempt in flight and records it: the tests' way to finish a step.
    pub async fn settle(&mut self) -> Result<(), StoreError> {
        while self.in_flight_len() > 0 {
            match self.finished_rx.recv().await {
                Some(f) => self.finish(f),
                None => break,
            }
        }
        self.record_finished().await
    }

    /// Records the finished attempts on their own (without fan-out). Recorded or not, they are
    /// no longer held back: one whose record failed is made again.
    async fn record_finished(&mut self) -> Result<(), StoreError> {
        let records = self.decide_finished();
        let recorded = self.blocking(move |s| s.record(&records)).await;
        self.unrecorded.clear();
        recorded
    }

    /// Attempts in flight.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.values().map(HashSet::len).sum()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn WebhookStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(|e| e.into_inner());
            f(guard.as_mut())
        })
        .await
        .map_err(|e| StoreError::Storage(format!("the webhook store task failed: {e}")))?
    }

    /// An attempt finished: its slot is free, its record waits for the next step.
    fn finish(&mut self, f: Finished) {
        if let Some(slots) = self.in_flight.get_mut(&f.due.endpoint_id) {
            slots.remove(&f.due.delivery_id);
        }
        self.unrecorded.insert(f.due.delivery_id);
        self.finished.push(f);
    }

    /// Fan-out, with the finished attempts' records in its first transaction.
    async fn fan_out(&mut self, records: Vec<AttemptRecord>) -> Result<(), StoreError> {
        let batch = self.limits.fanout_batch_len_max;
        let enabled: Vec<Endpoint> = self.endpoints.iter().filter(|e| e.status == Status::Enabled).cloned().collect();
        let now_ms = self.clock.now_ms();
        let metrics = self.metrics.clone();
        let lag_ms = self
            .blocking(move |s| {
                // Batches until caught up (or `FANOUT_BATCHES_MAX`), one transaction each, so a
                // burst of events is read at once rather than one batch per poll.
                let mut records = Some(records);
                let mut lag = 0;
                for _ in 0..FANOUT_BATCHES_MAX {
                    let cursor = s.cursor()?;
                    let events = s.events_after(cursor, batch)?;
                    let attempts = records.take().unwrap_or_default();
                    let Some(last) = events.last().map(|e| e.seq) else {
                        s.record(&attempts)?;
                        return Ok(0);
                    };
                    s.record_and_fan_out(&attempts, Some((&fan_out(&enabled, &events), last)), now_ms)?;
                    // Counted once the cursor has moved past them, so a failed round counts nothing.
                    for e in &events {
                        metrics.outbox_event(e.kind as usize);
                    }
                    if events.len() < batch {
                        return Ok(0);
                    }
                    // A full batch leaves more behind, none older than its newest: that age bounds the lag.
                    lag = now_ms.saturating_sub(events.last().map_or(0, |e| e.occurred_ms.max(0) as u64));
                }
                Ok(lag)
            })
            .await;
        // Recorded or not, they are no longer held back: one whose record failed is made again.
        self.unrecorded.clear();
        self.metrics.outbox_lag_seconds.set(lag_ms? as f64 / 1000.0);
        Ok(())
    }

    /// Deletes deliveries of events retention purged.
    async fn purge(&mut self) -> Result<(), StoreError> {
        let ids: Vec<String> = self.endpoints.iter().map(|e| e.id.clone()).collect();
        self.blocking(move |s| {
            let Some(first) = s.first_event_seq()? else { return Ok(()) };
            for id in &ids {
                s.purge_deliveries(id, first)?;
            }
            Ok(())
        })
        .await
    }

    async fn start_due(&mut self) -> Result<(), StoreError> {
        if !self.leading {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        let cap = self.limits.endpoint_concurrency_max;
        let mut wanted: Vec<(String, usize)> = Vec::new();
        for e in self.endpoints.iter().filter(|e| e.status == Status::Enabled) {
            let busy = self.in_flight.get(&e.id).map_or(0, HashSet::len);
            if busy < cap {
                // Ask for the busy and the unrecorded ones too: they still read as due, and
                // are skipped below.
                wanted.push((e.id.clone(), cap + self.unrecorded.len()));
            }
        }
        if wanted.is_empty() || self.in_flight_len() >= self.limits.in_flight_max {
            return Ok(());
        }
        let due: Vec<Due> = self
            .blocking(move |s| {
                let mut all = Vec::new();
                for (id, limit) in &wanted {
                    all.extend(s.due(id, now_ms, *limit)?);
                }
                Ok(all)
            })
            .await?;
        for d in due {
            if self.in_flight_len() >= self.limits.in_flight_max {
                break;
            }
            if self.unrecorded.contains(&d.delivery_id) {
                continue;
            }
            let slots = self.in_flight.entry(d.endpoint_id.clone()).or_default();
            if slots.len() >= cap || slots.contains(&d.delivery_id) {
                continue;
            }
            let Some(endpoint) = self.endpoints.iter().find(|e| e.id == d.endpoint_id) else { continue };
            slots.insert(d.delivery_id);
            self.spawn_attempt(endpoint.clone(), d);
        }
        Ok(())
    }

    fn spawn_attempt(&self, endpoint: Endpoint, due: Due) {
        let (transport, clock, tx) = (self.transport.clone(), self.clock.clone(), self.finished_tx.clone());
        self.metrics.attempts.inc();
        tokio::spawn(async move {
            let at_ms = clock.now_ms();
            let started = std::time::Instant::now();
            let event = due.event.outbox();
            let sent = match (event.id(), event.envelope()) {
                (Ok(id), Ok(body)) => match headers(&endpoint.signing_secrets(at_ms), &id.to_string(), at_ms, body.as_bytes()) {
                    Ok(h) => http::send(&transport, &endpoint.url, &h, Bytes::from(body)).await,
                    Err(e) => Sent::NotConnected(format!("signing: {e}")),
                },
                (Err(e), _) | (_, Err(e)) => Sent::NotConnected(format!("rendering the event: {e}")),
            };
            let latency_ms = started.elapsed().as_millis() as u64;
            let _ = tx.send(Finished { due, at_ms, latency_ms, sent });
        });
    }

    /// What the finished attempts did, decided against their endpoints (whose failure state
    /// each decision moves): the records the next write stores.
    fn decide_finished(&mut self) -> Vec<AttemptRecord> {
        let now_ms = self.clock.now_ms();
        let mut records = Vec::with_capacity(self.finished.len());
        for f in std::mem::take(&mut self.finished) {
            let Some(endpoint) = self.endpoints.iter_mut().find(|e| e.id == f.due.endpoint_id) else { continue };
            let random = self.rng.u64(..);
            let mut d = decide(endpoint, &f.due, &f.sent, f.at_ms.max(now_ms), f.latency_ms, random, &self.limits.retry_delays_ms);
            // The attempt is recorded at the time it was made; its consequences date from now.
            d.record.at_ms = f.at_ms;
            self.metrics.delivery(d.outcome);
            if d.alert {
                self.metrics.failing_alerts.inc();
                tracing::error!(
                    endpoint = %endpoint.id, url = %endpoint.url, failing_since_ms = ?endpoint.failing_since_ms,
                    "ALERT: a webhook endpoint failed every attempt for 5 days and is disabled"
                );
            }
            d.apply(endpoint);
            records.push(d.record);
        }
        records
    }
}

#[cfg(test)]
mod tests;
