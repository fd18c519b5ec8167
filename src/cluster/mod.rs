//! Cluster mode: click events travel from `clickgate edge` to `clickgate core` through NATS
//! JetStream.
//!
//! - `batch`: the wire format. A message carries a batch of consecutive spool events, and its
//!   `Nats-Msg-Id` names the spool, the span of positions and the content.
//! - `publish`: the edge side. Every click is first appended to the local spool
//!   (`events::spool`); `run_publisher` drains the spool to JetStream in order, in batches, and
//!   moves the spool cursor only after the broker acknowledged them. A broker outage only makes
//!   the spool grow; a redirect never waits on the broker.
//! - `consume`: the core side. `run_consumer` pulls from a durable consumer, hands each pull's
//!   events to the core's durable, idempotent write, and acks only after that write returned.
//!
//! Delivery is at-least-once end to end. Repeats are dropped twice over: by JetStream, for a
//! `Nats-Msg-Id` seen inside the stream's duplicate window (a batch published again), and by
//! the core, by click id (whatever else repeats).
//!
//! The core creates the stream when it is missing, with the configured subject, file storage,
//! interest retention and the duplicate window. Every core has a durable consumer of its own
//! (`cluster.durable`, one name per core), so every core ingests every click: a conversion
//! reaches whichever core the load balancer picks, and that core's index must hold the click it
//! names. A message is deleted once every core's consumer has acked it, so the stream holds only
//! the backlog of the slowest core. A fresh stream is created on a subject no edge publishes to,
//! then the core's consumer, and only then is the stream moved to `cluster.subject`: interest
//! retention drops a message no consumer is there to want, so nothing an edge publishes falls
//! into the moment between the two. An existing stream is used as it is, so operators may create
//! it beforehand (replicas, limits) with the NATS tools. Only fields that nats-server 2.9 knows
//! are sent.
//!
//! The edge never creates the stream. nats-server 2.9 can end up with a broken stream when two
//! clients create the same one at the same moment (seen in this crate's tests: both creations
//! succeed, and the consumer is then never delivered anything). So there is one creator, the
//! core; until it has run, the edge's publishes find no stream and the clicks wait in its spool.
//! Several cores starting at once on a fresh broker could still race each other: create the
//! stream beforehand, or start one core first.

pub mod batch;
pub mod consume;
pub mod publish;

use std::time::Duration;

use async_nats::jetstream::stream::{Config as StreamConfig, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;

use crate::config::Cluster;

pub use consume::run_consumer;
pub use publish::{run_publisher, PublishStats, Publisher, PUBLISH_WINDOW_MESSAGES};

/// How often a connection is pinged; the client gives it up after three unanswered pings.
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Why a broker operation failed. Every one of them is retried by the loops in this module;
/// the error is for logs and for direct callers of `Publisher`.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect { url: String, source: async_nats::ConnectError },
    #[error("the connection to NATS is down")]
    Disconnected,
    #[error("cannot create or look up JetStream stream {stream}: {source}")]
    Stream { stream: String, source: async_nats::jetstream::context::CreateStreamError },
    #[error("cannot move the new JetStream stream {stream} to its subject: {why}")]
    StreamUpdate { stream: String, why: String },
    #[error("cannot create or look up durable consumer {durable} on stream {stream}: {source}")]
    Consumer { stream: String, durable: String, source: async_nats::jetstream::stream::ConsumerError },
    #[error("JetStream publish failed: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
    #[error("click batch could not be encoded: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("JetStream fetch failed: {0}")]
    Fetch(async_nats::Error),
    #[error("JetStream fetch got no answer within {0:?}")]
    FetchTimeout(Duration),
    #[error("the click writer panicked")]
    WriterPanicked,
}

/// The stream `config` asks for, as created when it does not exist yet.
pub fn stream_config(config: &Cluster) -> StreamConfig {
    StreamConfig {
        name: config.stream.clone(),
        subjects: vec![config.subject.clone()],
        storage: StorageType::File,
        retention: RetentionPolicy::Interest,
        duplicate_window: Duration::from_millis(config.duplicate_window_ms),
        ..Default::default()
    }
}

/// The server URLs in `nats_url`: one, or several separated by commas (a cluster).
pub(crate) fn server_list(nats_url: &str) -> Vec<String> {
    nats_url.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// The subject a stream the core creates listens on until the core's consumer exists.
fn setup_subject(config: &Cluster) -> String {
    format!("{}._clickgate_setup", config.subject)
}

/// Looks the stream up, creating it when it does not exist, and says whether this call created
/// it: then it listens on `setup_subject` until `finish_stream` moves it to `cluster.subject`,
/// once the caller's consumer exists. Only the core calls this (see the module docs).
pub(crate) async fn ensure_stream(js: &Context, config: &Cluster) -> Result<(async_nats::jetstream::stream::Stream, bool), ClusterError> {
    let stream_error = |source| ClusterError::Stream { stream: config.stream.clone(), source };
    if let Ok(mut stream) = js.get_stream(&config.stream).await {
        // One this function created whose consumer was never made (the broker went away in
        // between) is still on the setup subject, and still ours to finish.
        let unfinished = stream.info().await.is_ok_and(|info| info.config.subjects == [setup_subject(config)]);
        return Ok((stream, unfinished));
    }
    let setup = StreamConfig { subjects: vec![setup_subject(config)], ..stream_config(config) };
    let mut stream = js.get_or_create_stream(setup).await.map_err(stream_error)?;
    // Another core may have created it between the look-up and here: then it is not ours to move.
    let created = match stream.info().await {
        Ok(info) => info.config.subjects == [setup_subject(config)],
        Err(_) => false,
    };
    Ok((stream, created))
}

/// Moves a stream `ensure_stream` created to `cluster.subject`, now that a consumer wants its
/// messages.
pub(crate) async fn finish_stream(js: &Context, config: &Cluster) -> Result<(), ClusterError> {
    js.update_stream(stream_config(config))
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::StreamUpdate { stream: config.stream.clone(), why: e.to_string() })
}

#[cfg(test)]
mod tests;
