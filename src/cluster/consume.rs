//! The core's consumer: pulls click messages from JetStream and acks them only after the core's
//! durable write.
//!
//! A durable pull consumer (explicit acks, `ack_wait_ms`, deliver all) is created on first use,
//! or bound and brought to the configured settings if it exists. Each round takes what is
//! waiting, up to `fetch_batch_len_max` messages; when nothing is, it parks one pull so the next
//! message is picked up as soon as it lands. A message is a batch of click events (`batch`), or
//! one event alone from an edge that predates batching. The events of a pull, decoded on the
//! blocking pool, go to the caller's `write` — the core's `Ingest::ingest`, which appends,
//! fsyncs, indexes and skips click ids it already holds — and only once that returned `Ok` is
//! every message of the pull acked.
//!
//! Writes are pipelined with pulls: while one pull's events are being written, the next pull
//! (only what is already waiting, never a parked one) is fetched and decoded. Writes themselves
//! run one at a time, in stream order, and each pull's acks go out after its own write.
//!
//! While `write` fails, the batch is kept and offered again every `reconnect_delay_ms`, with
//! in-progress acks (for the pull behind it too) so the broker does not hand them out again
//! meanwhile; if the core stops or dies instead, nothing of it was acked and JetStream
//! redelivers it after `ack_wait_ms`.
//!
//! A message that holds no click event is counted as poison, logged, and terminated, so it is
//! never delivered again; an event of a batch that does not decode is counted and skipped.

use std::io;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Batch, Config as PullConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ContextBuilder;
use async_nats::jetstream::{AckKind, Context, Message};
use async_nats::{ConnectOptions, Event};
use futures_util::TryStreamExt;
use tokio::sync::watch;

use super::batch;
use super::{ensure_stream, finish_stream, server_list, ClusterError, PING_INTERVAL};
use crate::config::Cluster;
use crate::events::spool::{pause, stopped};
use crate::events::ClickEvent;
use crate::metrics::ClusterMetrics;

/// How long an idle pull waits on the server for the next message. Short, so a broker restart
/// is noticed soon; long enough that an idle core sends a pull only every few seconds.
const IDLE_PULL_EXPIRES: Duration = Duration::from_secs(2);

/// The durable consumer `config` asks for, as created when it does not exist yet.
pub fn consumer_config(config: &Cluster) -> PullConfig {
    PullConfig {
        durable_name: Some(config.durable.clone()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_millis(config.ack_wait_ms),
        deliver_policy: DeliverPolicy::All,
        // Room for the batches a killed core held (unacked until `ack_wait_ms`) plus the
        // batches of the core that replaced it; nats-server's default is 1000, less than
        // one default fetch.
        max_ack_pending: (config.fetch_batch_len_max.max(1) * 4) as i64,
        ..Default::default()
    }
}

/// Consumes click events until `stop` turns true, handing each pull's events to `write` and
/// acking its messages only after `write` returned `Ok`.
///
/// `write` is blocking (it fsyncs), so it runs on tokio's blocking pool, one pull at a time, in
/// stream order, while the next pull is fetched and decoded. It must skip click ids it already holds: a message can arrive more than once
/// (a redelivery after a lost ack, a crash between write and ack). It returns how many events
/// it newly wrote, for the logs.
///
/// Keeps going through broker outages, reconnecting every `reconnect_delay_ms`. Fails only on a
/// `nats_url` that does not parse, or if `write` panics.
pub async fn run_consumer<W>(
    config: &Cluster,
    metrics: ClusterMetrics,
    write: W,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ClusterError>
where
    W: FnMut(&[ClickEvent]) -> io::Result<usize> + Send + 'static,
{
    let timeout = Duration::from_millis(config.publish_timeout_ms.max(1));
    let retry_delay = Duration::from_millis(config.reconnect_delay_ms.max(1));
    let broker_up = metrics.broker_up.clone();
    broker_up.set(0);
    // Unlike the publisher, the consumer lets the client reconnect by itself: a pull or an ack
    // sent late, on the next connection, does no harm.
    let client = ConnectOptions::new()
        .name("clickgate-core")
        // A dead link is noticed within a few pings rather than the default minutes.
        .ping_interval(PING_INTERVAL)
        .connection_timeout(timeout)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempt| if attempt <= 1 { Duration::ZERO } else { retry_delay })
        .event_callback(move |event| {
            let broker_up = broker_up.clone();
            async move {
                match event {
                    Event::Connected => broker_up.set(1),
                    Event::Disconnected | Event::Closed => broker_up.set(0),
                    _ => {}
                }
            }
        })
        .connect(server_list(&config.nats_url))
        .await
        .map_err(|source| ClusterError::Connect { url: config.nats_url.clone(), source })?;
    let js = ContextBuilder::new().timeout(timeout).build(client);
    let batch_len_max = config.fetch_batch_len_max.max(1);

    let mut idle_write = Some(write);
    let mut inflight: Option<InFlight<W>> = None;
    let mut consumer: Option<PullConsumer> = None;
    let mut down = false;
    loop {
        if stopped(&stop) {
            if let Some(f) = inflight.take() {
                // Stopping: the write under way is finished and acked; nothing else is.
                let _ = finish(f, &[], retry_delay, &mut stop, &metrics).await?;
            }
            return Ok(());
        }
        let Some(bound) = &consumer else {
            // The consumer is dropped only after the write under way was finished.
            debug_assert!(inflight.is_none());
            match bind(&js, config).await {
                Ok(c) => consumer = Some(c),
                Err(e) => {
                    note_down(&mut down, config, &e);
                    if pause(retry_delay, &mut stop).await {
                        return Ok(());
                    }
                }
            }
            continue;
        };
        let pulled = if inflight.is_some() {
            // Only what is waiting: a parked pull would hold back the acks of the write under way.
            fetch_waiting(bound, batch_len_max, timeout).await
        } else {
            next_messages(bound, batch_len_max, timeout, &mut stop).await
        };
        let messages = match pulled {
            Ok(m) => {
                if down {
                    down = false;
                    tracing::info!(url = %config.nats_url, stream = %config.stream, durable = %config.durable, "consuming click events from NATS again");
                }
                m
            }
            Err(e) => {
                note_down(&mut down, config, &e);
                // Bind again: the stream or consumer may be gone with a broker that lost its store.
                consumer = None;
                if let Some(f) = inflight.take() {
                    match finish(f, &[], retry_delay, &mut stop, &metrics).await? {
                        Some(w) => idle_write = Some(w),
                        None => return Ok(()),
                    }
                }
                if pause(retry_delay, &mut stop).await {
                    return Ok(());
                }
                continue;
            }
        };
        let pull = decode(messages, &metrics).await?;
        if let Some(f) = inflight.take() {
            match finish(f, &pull.held, retry_delay, &mut stop, &metrics).await? {
                Some(w) => idle_write = Some(w),
                // Stopped before the write succeeded: nothing is acked, so JetStream redelivers.
                None => return Ok(()),
            }
        }
        if pull.events.is_empty() {
            continue;
        }
        let mut write = idle_write.take().expect("no write under way, so the writer is here");
        let Pull { events, held } = pull;
        let task = tokio::task::spawn_blocking(move || {
            let result = write(&events);
            (write, events, result)
        });
        inflight = Some(InFlight { task, held });
    }
}

/// A pull's write under way on the blocking pool, and the messages to ack once it succeeded.
struct InFlight<W> {
    task: tokio::task::JoinHandle<(W, Vec<ClickEvent>, io::Result<usize>)>,
    held: Vec<Message>,
}

/// Waits for the write under way, retrying it until it succeeds (see `write_durably`), then acks
/// its messages; gives the writer back, or `None` when `stop` turned true before it succeeded.
/// `behind` is the pull already fetched after it, kept from redelivery during retries.
async fn finish<W>(
    f: InFlight<W>,
    behind: &[Message],
    retry_delay: Duration,
    stop: &mut watch::Receiver<bool>,
    metrics: &ClusterMetrics,
) -> Result<Option<W>, ClusterError>
where
    W: FnMut(&[ClickEvent]) -> io::Result<usize> + Send + 'static,
{
    let (write, events, result) = f.task.await.map_err(|_| ClusterError::WriterPanicked)?;
    let write = match result {
        Ok(written) => {
            tracing::debug!(events = events.len(), written, "click events written; acking them");
            write
        }
        Err(e) => {
            tracing::error!(error = %e, events = events.len(), "could not write consumed click events; not acking them, retrying");
            match write_durably(write, events, &f.held, behind, retry_delay, stop, metrics).await? {
                Some(w) => return Ok(Some(w)),
                None => return Ok(None),
            }
        }
    };
    ack_all(&f.held, events.len(), metrics).await;
    Ok(Some(write))
}

/// Logs the first failure of an outage; the rest are retried quietly.
fn note_down(down: &mut bool, config: &Cluster, error: &ClusterError) {
    if !*down {
        *down = true;
        tracing::warn!(url = %config.nats_url, error = %error, "cannot consume click events from NATS; retrying");
    }
}

/// Binds the durable consumer, creating the stream and the consumer when missing. An existing
/// consumer is updated to the configured settings (a changed `ack_wait_ms` takes effect at the
/// next start); when the broker refuses the change, it is used as it is, with a warning.
async fn bind(js: &Context, config: &Cluster) -> Result<PullConsumer, ClusterError> {
    let (stream, created) = ensure_stream(js, config).await?;
    let refused = match stream.create_consumer(consumer_config(config)).await {
        Ok(consumer) => {
            if created {
                finish_stream(js, config).await?;
            }
            return Ok(consumer);
        }
        Err(e) => e,
    };
    match stream.get_consumer(&config.durable).await {
        Ok(consumer) => {
            if created {
                finish_stream(js, config).await?;
            }
            tracing::warn!(durable = %config.durable, error = %refused, "the durable consumer exists with settings that cannot be changed to the configured ones; using it as it is");
            Ok(consumer)
        }
        Err(_) => Err(ClusterError::Consumer { stream: config.stream.clone(), durable: config.durable.clone(), source: refused }),
    }
}

/// The next messages, up to `len_max`: what is waiting, or else the first to arrive within
/// `IDLE_PULL_EXPIRES` and whatever came with it. Empty when none came or `stop` turned true.
///
/// Messages in hand are never thrown away: a pull that fails after delivering some (a `409`
/// when the consumer's unacked messages reach `max_ack_pending`, a connection lost mid-pull)
/// still hands those over, to be written and acked. Dropping them would leave them unacked
/// until `ack_wait_ms`, holding `max_ack_pending` full, so the next pull fails the same way.
async fn next_messages(
    consumer: &PullConsumer,
    len_max: usize,
    timeout: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<Vec<Message>, ClusterError> {
    let out = fetch_waiting(consumer, len_max, timeout).await?;
    if !out.is_empty() {
        return Ok(out);
    }
    let parked = consumer.batch().max_messages(1).expires(IDLE_PULL_EXPIRES).messages().await.map_err(|e| ClusterError::Fetch(e.into()))?;
    let mut out = tokio::select! {
        got = collect(parked, IDLE_PULL_EXPIRES + timeout) => got.into_result()?,
        _ = stop.changed() => return Ok(Vec::new()),
    };
    if !out.is_empty() && len_max > 1 {
        match consumer.fetch().max_messages(len_max - 1).messages().await {
            Ok(more) => {
                let more = collect(more, timeout).await;
                if let Some(e) = &more.error {
                    tracing::debug!(error = %e, "a follow-up pull ended early; writing what arrived");
                }
                out.extend(more.messages);
            }
            Err(e) => tracing::debug!(error = %e, "a follow-up pull failed; writing what arrived"),
        }
    }
    Ok(out)
}

/// The messages waiting, up to `len_max`; empty when none are.
async fn fetch_waiting(consumer: &PullConsumer, len_max: usize, timeout: Duration) -> Result<Vec<Message>, ClusterError> {
    // No `expires` on a no-wait fetch: with one, nats-server holds the pull open until it
    // expires whenever fewer than `len_max` messages are waiting.
    let waiting = consumer.fetch().max_messages(len_max).messages().await.map_err(|e| ClusterError::Fetch(e.into()))?;
    collect(waiting, timeout).await.into_result()
}

/// What one pull delivered, and the error that ended it early, if any.
struct Pulled {
    messages: Vec<Message>,
    error: Option<ClusterError>,
}

impl Pulled {
    /// The messages if there are any (an error after them only ended the pull), else the error.
    fn into_result(self) -> Result<Vec<Message>, ClusterError> {
        match self.error {
            Some(e) if self.messages.is_empty() => Err(e),
            Some(e) => {
                tracing::debug!(error = %e, messages = self.messages.len(), "a pull ended early; writing what arrived");
                Ok(self.messages)
            }
            None => Ok(self.messages),
        }
    }
}

/// Reads a pull to its end. The deadline guards against a pull whose end the server never sends
/// (the connection died under it).
async fn collect(mut batch: Batch, within: Duration) -> Pulled {
    let mut messages = Vec::new();
    let read = tokio::time::timeout(within, async {
        while let Some(m) = batch.try_next().await.map_err(ClusterError::Fetch)? {
            messages.push(m);
        }
        Ok(())
    })
    .await;
    let error = match read {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(ClusterError::FetchTimeout(within)),
    };
    Pulled { messages, error }
}

/// A decoded pull: its events in stream order, and the messages that carried them.
struct Pull {
    events: Vec<ClickEvent>,
    held: Vec<Message>,
}

/// Decodes a pull on the blocking pool; messages holding no click event are terminated.
async fn decode(messages: Vec<Message>, metrics: &ClusterMetrics) -> Result<Pull, ClusterError> {
    if messages.is_empty() {
        return Ok(Pull { events: Vec::new(), held: Vec::new() });
    }
    let (pull, poison, bad_events) = tokio::task::spawn_blocking(move || {
        let mut events = Vec::with_capacity(messages.len() * 64);
        let mut held = Vec::with_capacity(messages.len());
        let mut poison = Vec::new();
        let mut bad_events = 0usize;
        for m in messages {
            match batch::decode(&m.payload, &mut events) {
                Ok(d) if d.events > 0 => {
                    bad_events += d.bad_events;
                    held.push(m);
                }
                Ok(d) => poison.push((m, format!("none of its {} events decodes", d.bad_events))),
                Err(e) => poison.push((m, e.to_string())),
            }
        }
        (Pull { events, held }, poison, bad_events)
    })
    .await
    .map_err(|_| ClusterError::WriterPanicked)?;
    if bad_events > 0 {
        metrics.poison.inc_by(bad_events as u64);
        tracing::warn!(events = bad_events, "click batches held events that do not decode; skipping those events");
    }
    for (m, error) in poison {
        metrics.poison.inc();
        let stream_seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
        tracing::warn!(stream_seq, error = %error, "message on the click stream holds no click event; terminating it so it is not delivered again");
        if let Err(e) = m.ack_with(AckKind::Term).await {
            tracing::debug!(stream_seq, error = %e, "could not terminate a poison message; it will come back and be terminated then");
        }
    }
    Ok(pull)
}

/// Runs `write` on the blocking pool until it succeeds, then acks `held`; gives the writer back,
/// or `None` when `stop` turned true first. Called after a failed attempt, so it pauses first.
async fn write_durably<W>(
    mut write: W,
    mut events: Vec<ClickEvent>,
    held: &[Message],
    behind: &[Message],
    retry_delay: Duration,
    stop: &mut watch::Receiver<bool>,
    metrics: &ClusterMetrics,
) -> Result<Option<W>, ClusterError>
where
    W: FnMut(&[ClickEvent]) -> io::Result<usize> + Send + 'static,
{
    let mut failures = 1u64;
    loop {
        // Still working on them: the broker must not hand them to another core meanwhile.
        for m in held.iter().chain(behind) {
            let _ = m.ack_with(AckKind::Progress).await;
        }
        if pause(retry_delay, stop).await {
            return Ok(None);
        }
        let (w, evs, result) = tokio::task::spawn_blocking(move || {
            let result = write(&events);
            (write, events, result)
        })
        .await
        .map_err(|_| ClusterError::WriterPanicked)?;
        write = w;
        events = evs;
        match result {
            Ok(written) => {
                tracing::info!(attempts = failures + 1, events = events.len(), written, "click events written after failed attempts");
                ack_all(held, events.len(), metrics).await;
                return Ok(Some(write));
            }
            Err(e) => {
                failures += 1;
                tracing::debug!(error = %e, attempt = failures, "consumed click events still not written");
            }
        }
    }
}

/// Acks a written pull of `events` click events. All but the last go without a reply; the last
/// waits for the broker's reply, and as one connection's messages are handled in order, that
/// reply follows the others. A lost ack only means a redelivery, which the writer skips by
/// click id.
async fn ack_all(held: &[Message], events: usize, metrics: &ClusterMetrics) {
    let Some((last, rest)) = held.split_last() else { return };
    for m in rest {
        if let Err(e) = m.ack().await {
            tracing::debug!(error = %e, "could not send an ack; the message will be redelivered and skipped");
        }
    }
    match last.double_ack().await {
        Ok(()) => metrics.consumed.inc_by(events as u64),
        Err(e) => {
            tracing::warn!(error = %e, messages = held.len(), "acks were not confirmed; unacked messages will be redelivered and skipped by click id")
        }
    }
}
