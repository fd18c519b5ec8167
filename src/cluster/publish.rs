//! The edge's publisher: drains the spool to JetStream.
//!
//! Each spooled event becomes one message on the configured subject, its payload the event's
//! rmp-serde encoding and its `Nats-Msg-Id` header the click id, so JetStream drops a repeat
//! inside the stream's duplicate window. A batch is pipelined — every publish sent, then every
//! acknowledgement awaited, each bounded by `publish_timeout_ms` — and the spool cursor moves
//! only once the whole batch is acknowledged. On any failure the batch is offered again from the
//! cursor after `reconnect_delay_ms`.
//!
//! Order: events leave in spool order, and a failed batch is retried before anything after it.
//! Within one connection the broker stores messages in the order they were sent, so a retry on a
//! live connection lands behind whatever of the failed batch was still on its way. What can
//! still land out of order is the part of one batch that the broker refused or lost while later
//! messages of the same batch got through. Two rules keep that rare:
//!
//! - After connecting, and after any failure, one message goes alone and must be acknowledged
//!   before the next batch is pipelined. That catches a missing stream (or one being created at
//!   that moment) before a whole batch runs into it.
//! - A connection that dropped is never resumed: its client makes at most one immediate reconnect
//!   attempt of its own, and a failure on a connection that is not up opens a fresh one, so
//!   messages queued on the dead connection are not sent later, behind their retry.
//!
//! Nothing is ever lost, and the core drops repeats by click id; arrival order at the core is a
//! courtesy, not something it relies on (with several edges it interleaves anyway).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::{ContextBuilder, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use async_nats::{ConnectOptions, Event, Subject};
use tokio::sync::watch;

use super::{server_list, ClusterError, PING_INTERVAL};
use crate::config::Cluster;
use crate::events::spool::{drain, Spool, SpoolError, SpoolSink};
use crate::events::ClickEvent;
use crate::metrics::ClusterMetrics;
use crate::model::CLICK_ID_CHARS;

/// Events per pipelined publish batch: enough to keep the link busy, few enough that a retry
/// after a failure repeats little.
pub const PUBLISH_BATCH_LEN_MAX: usize = 512;

/// What one `Publisher::publish` call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Messages the stream stored.
    pub published: usize,
    /// Messages the stream acknowledged as repeats of a `Nats-Msg-Id` inside its duplicate window.
    pub duplicates: usize,
}

/// Publishes click events to JetStream; the `SpoolSink` that `run_publisher` drains into.
pub struct Publisher {
    config: Cluster,
    subject: Subject,
    timeout: Duration,
    metrics: ClusterMetrics,
    js: Option<Context>,
    /// A message went alone and was acknowledged on this connection since the last failure.
    probed: bool,
    /// Numbers connections, so a discarded one's late events leave `broker_up` alone.
    connection_id: Arc<AtomicU64>,
    /// Whether the broker is known to be unreachable; logs say so once per outage.
    down: bool,
}

impl Publisher {
    /// A publisher for `config`; it connects on first use.
    pub fn new(config: &Cluster, metrics: ClusterMetrics) -> Publisher {
        metrics.broker_up.set(0);
        Publisher {
            config: config.clone(),
            subject: Subject::from(config.subject.as_str()),
            timeout: Duration::from_millis(config.publish_timeout_ms.max(1)),
            metrics,
            js: None,
            probed: false,
            connection_id: Arc::new(AtomicU64::new(0)),
            down: false,
        }
    }

    /// The current connection if it is up, else a new one.
    async fn connection(&mut self) -> Result<Context, ClusterError> {
        if let Some(js) = &self.js {
            if js.client().connection_state() == State::Connected {
                return Ok(js.clone());
            }
            // Dropped (and maybe trying its one reconnect): start over on a fresh client, so
            // what was queued on this one is never sent (see the module docs on order).
            self.js = None;
        }
        self.probed = false;
        let id = self.connection_id.fetch_add(1, Ordering::AcqRel) + 1;
        let current = self.connection_id.clone();
        let broker_up = self.metrics.broker_up.clone();
        let client = ConnectOptions::new()
            .name("clickgate-edge")
            // A dead link is noticed within a few pings rather than the default minutes.
            .ping_interval(PING_INTERVAL)
            .connection_timeout(self.timeout)
            .max_reconnects(1)
            .reconnect_delay_callback(|_| Duration::ZERO)
            .event_callback(move |event| {
                let (current, broker_up) = (current.clone(), broker_up.clone());
                async move {
                    if current.load(Ordering::Acquire) == id {
                        match event {
                            Event::Connected => broker_up.set(1),
                            Event::Disconnected | Event::Closed => broker_up.set(0),
                            _ => {}
                        }
                    }
                }
            })
            .connect(server_list(&self.config.nats_url))
            .await
            .map_err(|source| ClusterError::Connect { url: self.config.nats_url.clone(), source })?;
        let js = ContextBuilder::new().timeout(self.timeout).ack_timeout(self.timeout).build(client);
        self.js = Some(js.clone());
        Ok(js)
    }

    fn mark_up(&mut self) {
        self.metrics.broker_up.set(1);
        if self.down {
            self.down = false;
            tracing::info!(url = %self.config.nats_url, stream = %self.config.stream, "NATS is reachable again; publishing the spool");
        }
    }

    fn mark_down(&mut self, error: &ClusterError) {
        self.probed = false;
        if self.js.as_ref().is_some_and(|js| js.client().connection_state() != State::Connected) {
            self.js = None;
        }
        self.metrics.broker_up.set(0);
        if !self.down {
            self.down = true;
            if matches!(error, ClusterError::Publish(e) if e.kind() == PublishErrorKind::StreamNotFound) {
                tracing::warn!(subject = %self.config.subject, stream = %self.config.stream, "no JetStream stream takes the click subject yet (clickgate core creates it when it starts); clicks stay in the spool and are retried");
            } else {
                tracing::warn!(url = %self.config.nats_url, error = %error, "cannot publish to NATS; clicks stay in the spool and are retried");
            }
        }
    }

    /// Publishes `events` in order and waits for every acknowledgement. An error leaves no
    /// promise about which of them the stream holds; publishing them again is safe.
    pub async fn publish(&mut self, events: &[ClickEvent]) -> Result<PublishStats, ClusterError> {
        let mut stats = PublishStats::default();
        let result = self.try_publish(events, &mut stats).await;
        self.metrics.published.inc_by(stats.published as u64 + stats.duplicates as u64);
        match result {
            Ok(()) => {
                self.mark_up();
                Ok(stats)
            }
            Err(e) => {
                self.metrics.publish_failures.inc_by((events.len() - stats.published - stats.duplicates) as u64);
                self.mark_down(&e);
                Err(e)
            }
        }
    }

    async fn try_publish(&mut self, events: &[ClickEvent], stats: &mut PublishStats) -> Result<(), ClusterError> {
        let js = self.connection().await?;
        let mut rest = events;
        if !self.probed {
            if let Some((first, tail)) = events.split_first() {
                self.publish_on(&js, std::slice::from_ref(first), stats).await?;
                self.probed = true;
                rest = tail;
            }
        }
        self.publish_on(&js, rest, stats).await
    }

    /// Sends every event, then awaits every acknowledgement.
    async fn publish_on(&self, js: &Context, events: &[ClickEvent], stats: &mut PublishStats) -> Result<(), ClusterError> {
        let mut acks = Vec::with_capacity(events.len());
        let mut id = [0u8; CLICK_ID_CHARS];
        for ev in events {
            let mut payload = Vec::with_capacity(256);
            ev.encode_into(&mut payload)?;
            let message = PublishMessage::build().payload(payload.into()).message_id(ev.click_id.encode(&mut id));
            acks.push(js.send_publish(self.subject.clone(), message).await?);
        }
        for ack in acks {
            if ack.await?.duplicate {
                stats.duplicates += 1;
            } else {
                stats.published += 1;
            }
        }
        Ok(())
    }
}

impl SpoolSink for Publisher {
    type Error = ClusterError;

    async fn deliver(&mut self, events: &[ClickEvent]) -> Result<(), ClusterError> {
        self.publish(events).await.map(|_| ())
    }

    /// Reconnects while idle, so `broker_up` is true and the connection ready before the next
    /// click.
    async fn idle(&mut self) {
        match self.connection().await {
            Ok(_) => self.mark_up(),
            Err(e) => self.mark_down(&e),
        }
    }
}

/// Publishes everything in `spool` to JetStream, in order, until `stop` turns true; run it as
/// its own task beside the edge. It starts and keeps running whether or not the broker is up:
/// while it is down, clicks wait in the spool and it retries every `reconnect_delay_ms`.
/// Fails only if the spool already has a reader.
pub async fn run_publisher(
    config: &Cluster,
    spool: Arc<Spool>,
    metrics: ClusterMetrics,
    stop: watch::Receiver<bool>,
) -> Result<(), SpoolError> {
    let mut publisher = Publisher::new(config, metrics);
    let retry_delay = Duration::from_millis(config.reconnect_delay_ms.max(1));
    drain(spool, PUBLISH_BATCH_LEN_MAX, retry_delay, &mut publisher, stop).await
}
