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
//! work-queue retention (a message is deleted once the core acked it, so the stream holds only
//! the backlog) and the duplicate window. An existing stream is used as it is, so operators may
//! create it beforehand (replicas, limits) with the NATS tools. Only fields that nats-server 2.9
//! knows are sent.
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
        retention: RetentionPolicy::WorkQueue,
        duplicate_window: Duration::from_millis(config.duplicate_window_ms),
        ..Default::default()
    }
}

/// The server URLs in `nats_url`: one, or several separated by commas (a cluster).
pub(crate) fn server_list(nats_url: &str) -> Vec<String> {
    nats_url.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Looks the stream up, creating it when it does not exist. Only the core calls this (see the
/// module docs).
pub(crate) async fn ensure_stream(js: &Context, config: &Cluster) -> Result<async_nats::jetstream::stream::Stream, ClusterError> {
    js.get_or_create_stream(stream_config(config)).await.map_err(|source| ClusterError::Stream { stream: config.stream.clone(), source })
}

#[cfg(test)]
mod tests;
