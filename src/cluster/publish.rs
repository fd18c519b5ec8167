//! The edge's publisher: drains the spool to JetStream in batches.
//!
//! A message carries consecutive spool events in `batch`'s format: one spool read of up to
//! `publish_batch_len_max` events (or 512 KiB of them). A round reads up to
//! `PUBLISH_WINDOW_MESSAGES` such batches, sends them pipelined, awaits every acknowledgement
//! (each bounded by `publish_timeout_ms`), and only then commits the spool cursor past them. On
//! any failure the same round is offered again after `reconnect_delay_ms`. Once a round has read
//! everything in the spool, the next waits `publish_linger_ms` first, so under light traffic a
//! message carries a few milliseconds of clicks rather than one.
//!
//! Message ids. A message's `Nats-Msg-Id` is `<spool id>.<start>.<end>.<digest>`
//! (`batch::message_id`): the spool's random id (`Spool::id`), the spool positions of the
//! batch's first byte and one past its last, and a hash of its payload. The rule: one id names
//! one sequence of events, from one spool, for good. So:
//!
//! - A retry, and a republish after a crash, of the same events carry the same id, and the
//!   stream drops them inside its duplicate window. A retry sends the round's batches unchanged;
//!   after a crash the reader starts at the committed cursor, where a round began, so the first
//!   batch starts at the same position, and the spool's bytes there have not changed.
//! - Boundaries may differ after a restart (more clicks wait, so a batch that was short is now
//!   full). Then `end` differs, the id is new and the stream stores the batch; the events the
//!   earlier message carried reach the core twice, and it skips them by click id. A
//!   position-only id would be wrong here: the longer batch would be dropped as a repeat of the
//!   shorter one, and the clicks past it lost.
//! - Two edges never share an id: each spool has its own random id, and a new spool (positions
//!   from 0 again) gets a new one.
//! - The digest covers the one case where positions come back with other events: a machine
//!   crash that loses the spool's unsynced tail after it was published, after which new clicks
//!   are appended at the same positions. Their payload differs, so their id does.
//!
//! Order: batches leave in spool order, and a failed round is retried before anything after it.
//! Within one connection the broker stores messages in the order they were sent, so a retry on a
//! live connection lands behind whatever of the failed round was still on its way. What can
//! still land out of order is the part of one round that the broker refused or lost while later
//! messages of the same round got through. Two rules keep that rare:
//!
//! - After connecting, and after any failure, one message goes alone and must be acknowledged
//!   before the next ones are pipelined. That catches a missing stream (or one being created at
//!   that moment) before a whole round runs into it.
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

use super::batch::{self, MESSAGE_EVENT_BYTES_MAX};
use super::{server_list, ClusterError, PING_INTERVAL};
use crate::config::Cluster;
use crate::events::spool::{pause, stopped, with_reader, Position, Spool, SpoolBatch, SpoolError, SpoolReader};
use crate::metrics::ClusterMetrics;

/// Messages per round: enough to keep the link busy, few enough that a retry after a failure
/// repeats little.
pub const PUBLISH_WINDOW_MESSAGES: usize = 16;

/// What one `Publisher::publish` call did, in click events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Events in messages the stream stored.
    pub published: usize,
    /// Events in messages the stream acknowledged as repeats of a `Nats-Msg-Id` inside its
    /// duplicate window.
    pub duplicates: usize,
}

/// One batch, encoded.
struct Prepared {
    payload: bytes::Bytes,
    id: String,
    events: usize,
}

/// Publishes batches of spool events to JetStream, one message each.
pub struct Publisher {
    config: Cluster,
    /// The spool the batches come from (`Spool::id`), the first part of every message id.
    spool_id: u64,
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
    /// A publisher for `config` of the batches of spool `spool_id`; it connects on first use.
    pub fn new(config: &Cluster, spool_id: u64, metrics: ClusterMetrics) -> Publisher {
        metrics.broker_up.set(0);
        Publisher {
            config: config.clone(),
            spool_id,
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

    /// Publishes each batch as one message, in order, and waits for every acknowledgement. An
    /// error leaves no promise about which of them the stream holds; publishing the same
    /// batches again is safe. Batches without events send nothing.
    pub async fn publish(&mut self, batches: &[SpoolBatch]) -> Result<PublishStats, ClusterError> {
        let mut stats = PublishStats::default();
        let prepared = self.prepare(batches);
        let total: usize = batches.iter().map(|b| b.events.len()).sum();
        let result = match prepared {
            Ok(messages) => self.try_publish(&messages, &mut stats).await,
            Err(e) => Err(e),
        };
        self.metrics.published.inc_by(stats.published as u64 + stats.duplicates as u64);
        match result {
            Ok(()) => {
                self.mark_up();
                Ok(stats)
            }
            Err(e) => {
                self.metrics.publish_failures.inc_by((total - stats.published - stats.duplicates) as u64);
                self.mark_down(&e);
                Err(e)
            }
        }
    }

    fn prepare(&self, batches: &[SpoolBatch]) -> Result<Vec<Prepared>, ClusterError> {
        let mut out = Vec::with_capacity(batches.len());
        for b in batches.iter().filter(|b| !b.events.is_empty()) {
            let mut payload = Vec::with_capacity(b.events.len() * 320 + 2);
            batch::encode(&b.events, &mut payload)?;
            let id = batch::message_id(self.spool_id, b.start.0, b.end.0, &payload);
            out.push(Prepared { payload: payload.into(), id, events: b.events.len() });
        }
        Ok(out)
    }

    async fn try_publish(&mut self, messages: &[Prepared], stats: &mut PublishStats) -> Result<(), ClusterError> {
        let js = self.connection().await?;
        let mut rest = messages;
        if !self.probed {
            if let Some((first, tail)) = messages.split_first() {
                self.publish_on(&js, std::slice::from_ref(first), stats).await?;
                self.probed = true;
                rest = tail;
            }
        }
        self.publish_on(&js, rest, stats).await
    }

    /// Sends every message, then awaits every acknowledgement.
    async fn publish_on(&self, js: &Context, messages: &[Prepared], stats: &mut PublishStats) -> Result<(), ClusterError> {
        let mut acks = Vec::with_capacity(messages.len());
        for m in messages {
            let message = PublishMessage::build().payload(m.payload.clone()).message_id(m.id.as_str());
            acks.push((js.send_publish(self.subject.clone(), message).await?, m.events));
        }
        for (ack, events) in acks {
            if ack.await?.duplicate {
                stats.duplicates += events;
            } else {
                stats.published += events;
            }
        }
        Ok(())
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

/// One round's read: its batches, where it ended (past any damage skipped) and whether it
/// reached the end of the spool.
struct Round {
    batches: Vec<SpoolBatch>,
    end: Position,
    caught_up: bool,
}

fn read_round(reader: &mut SpoolReader, len_max: usize) -> Result<Round, SpoolError> {
    let mut batches = Vec::new();
    while batches.len() < PUBLISH_WINDOW_MESSAGES {
        let b = reader.next_batch_within(len_max, MESSAGE_EVENT_BYTES_MAX)?;
        if b.end == b.start {
            break;
        }
        // A read that found only damage still moves the cursor (the round's `end`).
        if !b.events.is_empty() {
            batches.push(b);
        }
        if reader.caught_up() {
            break;
        }
    }
    Ok(Round { batches, end: reader.position(), caught_up: reader.caught_up() })
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
    let mut publisher = Publisher::new(config, spool.id(), metrics);
    let retry_delay = Duration::from_millis(config.reconnect_delay_ms.max(1));
    let linger = Duration::from_millis(config.publish_linger_ms);
    let len_max = config.publish_batch_len_max.max(1);
    let mut stop = stop;
    let mut reader = spool.reader()?;
    let mut caught_up = false;
    loop {
        if stopped(&stop) {
            return Ok(());
        }
        if caught_up && !linger.is_zero() && pause(linger, &mut stop).await {
            return Ok(());
        }
        let (r, read) = with_reader(reader, move |r| read_round(r, len_max)).await?;
        reader = r;
        let round = match read {
            Ok(round) => round,
            Err(e) => {
                tracing::error!(error = %e, "could not read the spool; retrying");
                if pause(retry_delay, &mut stop).await {
                    return Ok(());
                }
                continue;
            }
        };
        caught_up = round.caught_up;
        if round.batches.is_empty() {
            // Nothing to send; commit past any damage the read stepped over.
            reader = commit(reader, round.end).await?;
            tokio::select! {
                _ = spool.appended() => {}
                _ = tokio::time::sleep(retry_delay) => publisher.idle().await,
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut failures = 0u64;
        loop {
            match publisher.publish(&round.batches).await {
                Ok(_) => break,
                Err(e) => {
                    failures += 1;
                    // One line per outage, not one per retry.
                    if failures == 1 {
                        let events: usize = round.batches.iter().map(|b| b.events.len()).sum();
                        tracing::warn!(error = %e, events, "could not publish spooled events; they stay in the spool and are retried");
                    } else {
                        tracing::debug!(error = %e, attempt = failures, "spooled events still not published");
                    }
                    if pause(retry_delay, &mut stop).await {
                        return Ok(());
                    }
                }
            }
        }
        if failures > 0 {
            tracing::info!(attempts = failures + 1, "spooled events published after failures");
        }
        reader = commit(reader, round.end).await?;
    }
}

/// Commits the cursor to `end` on the blocking pool. A failure is logged: the events are
/// published, and an uncommitted cursor only means they may be published again after a restart.
async fn commit(reader: SpoolReader, end: Position) -> Result<SpoolReader, SpoolError> {
    let (reader, committed) = with_reader(reader, move |r| r.commit(end)).await?;
    if let Err(e) = committed {
        tracing::error!(error = %e, "could not commit the spool cursor; published events may be published again after a restart");
    }
    Ok(reader)
}
