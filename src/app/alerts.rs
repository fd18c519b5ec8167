//! The core's ingest paths in `serve` and the fraud alerts they feed: every ingested batch
//! passes through the watcher (`crate::fraud`), and each alert it raises becomes a
//! `fraud.alert` event, written to the outbox by the conversion writer on a task of its own,
//! so ingest never waits on the writer.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::config::FraudAlerts;
use crate::conversions::{Conversions, EmitEvent, Op};
use crate::events::sink::BatchWriter;
use crate::events::spool::SpoolSink;
use crate::events::ClickEvent;
use crate::fraud::{Alert, FraudWatch};
use crate::ingest::Ingest;
use crate::metrics::CoreMetrics;
use crate::webhooks::EventType;

/// The core's ingest as the edge queue's writer: append, fsync, index.
pub struct IngestWriter(pub Arc<Ingest>, pub Option<Arc<Alerts>>);

impl BatchWriter for IngestWriter {
    fn write_batch(&self, batch: &[ClickEvent]) -> std::io::Result<()> {
        self.0.ingest(batch)?;
        if let Some(a) = &self.1 {
            a.observe(batch);
        }
        Ok(())
    }
}

/// The core's ingest as the spool's downstream in `serve`: spilled clicks are ingested (and
/// fsynced) off the request path, in spool order.
pub struct IngestSink(pub Arc<Ingest>, pub Option<Arc<Alerts>>);

impl SpoolSink for IngestSink {
    type Error = std::io::Error;

    async fn deliver(&mut self, events: &[ClickEvent]) -> std::io::Result<()> {
        let (ingest, alerts, events) = (self.0.clone(), self.1.clone(), events.to_vec());
        tokio::task::spawn_blocking(move || {
            ingest.ingest(&events)?;
            if let Some(a) = alerts {
                a.observe(&events);
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("the ingest task failed: {e}"))))
    }
}

/// Alerts waiting for the writer; more are dropped and counted.
const QUEUE_LEN: usize = 1024;

/// The watcher, shared by the paths that ingest clicks.
pub struct Alerts {
    watch: Mutex<FraudWatch>,
    tx: mpsc::Sender<Alert>,
    metrics: CoreMetrics,
}

/// Where alerts wait until the writer exists: `spawn_writer` drains them.
pub struct AlertQueue(mpsc::Receiver<Alert>);

impl Alerts {
    /// The watcher, or `None` when alerts are off.
    pub fn new(cfg: &FraudAlerts, metrics: &CoreMetrics) -> (Option<Arc<Alerts>>, AlertQueue) {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let alerts = cfg.enabled.then(|| Arc::new(Alerts { watch: Mutex::new(FraudWatch::new(cfg)), tx, metrics: metrics.clone() }));
        (alerts, AlertQueue(rx))
    }

    /// Counts an ingested batch; queues what fires.
    pub fn observe(&self, batch: &[ClickEvent]) {
        let mut fired = Vec::new();
        {
            let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
            for e in batch {
                watch.observe(e, &mut fired);
            }
        }
        for a in fired {
            let kind = crate::fraud::AlertKind::ALL.iter().position(|k| *k == a.kind).unwrap_or(0);
            self.metrics.fraud_alerts[kind].inc();
            tracing::warn!(kind = a.kind.as_str(), partner = %a.partner, link = a.link.as_deref().unwrap_or(""), clicks = a.clicks,
                not_valid = a.not_valid, surging = a.surging, "fraud alert");
            if self.tx.try_send(a).is_err() {
                self.metrics.fraud_alerts_dropped.inc();
            }
        }
    }
}

impl AlertQueue {
    /// Writes each queued alert to the outbox through the writer until the watcher is gone.
    pub fn spawn_writer(self, conversions: Conversions) {
        let mut rx = self.0;
        tokio::spawn(async move {
            while let Some(a) = rx.recv().await {
                let data = match serde_json::to_string(&a) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(error = %e, "a fraud alert could not be rendered");
                        continue;
                    }
                };
                // Ops' endpoints get it; a partner's endpoint never hears of alerts about it.
                let event = EmitEvent { kind: EventType::FraudAlert, cause: a.cause(), partner: None, occurred_ms: now_ms(), data };
                if let Err(e) = conversions.write(Op::Emit(event), None, now_ms() as u64).await {
                    tracing::error!(error = %e, cause = %a.cause(), "a fraud alert could not be written to the outbox");
                }
            }
        });
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
