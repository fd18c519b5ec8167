//! Webhook wiring: the store each part opens (the data dir's file, or PostgreSQL when
//! `core.database_url` is set), the SSRF policy from `[webhooks]`, the operators' `Admin`, and
//! the delivery worker that `serve` and `core` start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::storage::pg::PgWebhooks;
use crate::storage::sqlite::SqliteWebhooks;
use crate::webhooks::delivery::{Limits, SystemClock, Transport, Worker};
use crate::webhooks::{Admin, Policy, WebhookStore};

/// A connection of its own to the store's webhook tables.
pub fn open_webhook_store(config: &Config, data_dir: &Path) -> anyhow::Result<Box<dyn WebhookStore>> {
    Ok(match config.core.database_url()? {
        Some(url) => Box::new(PgWebhooks::open(&url).context("connecting to PostgreSQL for webhooks")?),
        None => Box::new(SqliteWebhooks::open(data_dir).context("opening the store for webhooks")?),
    })
}

/// The SSRF guard's policy from `[webhooks]`.
pub fn webhook_policy(config: &Config) -> anyhow::Result<Policy> {
    Policy::new(config.webhooks.allow_http, &config.webhooks.allow_private_cidrs).context("webhooks.allow_private_cidrs")
}

/// The operators' webhook calls, on a connection of their own.
pub fn webhook_admin(config: &Config, data_dir: &Path) -> anyhow::Result<Arc<Admin>> {
    Ok(Arc::new(Admin::new(open_webhook_store(config, data_dir)?, webhook_policy(config)?)))
}

/// Starts the delivery worker, unless `webhooks.delivery_enabled` is false. It stops with
/// `stop`; attempts in flight then are made again at the next start.
pub fn spawn_webhook_worker(
    config: &Config,
    data_dir: &Path,
    metrics: &Metrics,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let c = &config.webhooks;
    if !c.delivery_enabled {
        tracing::info!("webhook delivery is off (webhooks.delivery_enabled = false)");
        return Ok(None);
    }
    let store = open_webhook_store(config, data_dir)?;
    let transport =
        Transport::new(webhook_policy(config)?, Duration::from_millis(c.attempt_timeout_ms)).context("building the webhook TLS client")?;
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no OS randomness for webhook jitter: {e}"))?;
    let worker =
        Worker::new(store, transport, Limits::from_config(c), Arc::new(SystemClock), metrics.webhooks.clone(), u64::from_le_bytes(seed));
    tracing::info!(
        endpoint_concurrency_max = c.endpoint_concurrency_max,
        in_flight_max = c.in_flight_max,
        "the webhook delivery worker is running"
    );
    Ok(Some(tokio::spawn(worker.run(stop))))
}
