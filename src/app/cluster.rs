//! Cluster mode's two processes.
//!
//! - `edge`: the redirect listener and the admin listener. Clicks go from the edge's queue into
//!   the local spool, and `cluster::run_publisher` drains the spool to JetStream. Nothing on the
//!   request path touches the network or waits on the broker.
//! - `core`: the click consumer, the ingest, the API and the admin listener. `cluster::run_consumer`
//!   hands each pulled batch to `Ingest::ingest` (append, fsync, index, repeats skipped by click
//!   id) and acks only after it returned.
//!
//! Both need the same click-id keys (`click_id.keys`, or `CLICKGATE_CLICK_KEY`), so the core can
//! verify the `cgid`s the edge minted. With `core.database_url` set, both read the one catalog in
//! PostgreSQL: the core (and the CLI) write it, and each edge follows it (`follow`), serving
//! from its snapshot on disk while the database does not answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use anyhow::Context;

use super::{
    bind, build_api, build_edge, click_signer, finish_spool, initial_links, open_ingest, open_spool, open_store, shutdown_signal,
    spawn_admin, spawn_api, spawn_approval_sweep, spawn_edge, spawn_upkeep, tls_acceptor, Overrides, SpoolWriter, Upkeep,
};
use crate::config::Config;
use crate::edge::server::ListenerLimits;
use crate::edge::tls;
use crate::events::sink::BatchWriter;
use crate::metrics::Metrics;

/// Runs `clickgate edge` until SIGTERM or Ctrl-C.
///
/// At shutdown the queue is written to the spool and fsynced; then the publisher gets up to
/// `edge.shutdown_drain_ms` to empty the spool while the broker is up. Whatever is left is
/// published at the next start.
pub async fn edge(config: Config, data_dir: PathBuf, overrides: Overrides) -> anyhow::Result<()> {
    tls::install_provider();
    let metrics = Metrics::new();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let database_url = config.core.database_url()?;
    let table = match &database_url {
        // The edge only reads the catalog database; the core and the CLI write it. The read
        // runs on a thread of its own, off the async runtime.
        Some(url) => std::thread::scope(|s| s.spawn(|| super::follow::first_table(url, &data_dir, &metrics.catalog)).join())
            .map_err(|_| anyhow::anyhow!("loading the link table panicked"))??,
        None => initial_links(&open_store(&config, &data_dir)?, &metrics)?,
    };
    let signer = Arc::new(click_signer(&config, &data_dir)?);
    let spool = open_spool(&config, &data_dir, &metrics)?;
    let tls_acceptor = tls_acceptor(&config)?;
    let writer: Arc<dyn BatchWriter> = Arc::new(SpoolWriter { spool: spool.clone(), spooled: metrics.cluster.spooled.clone() });
    let (state, consumer) = build_edge(&config, table, signer, writer.clone(), writer, &metrics, tls_acceptor.is_some())?;

    let edge_listener = bind("edge", overrides.edge_listen.unwrap_or(config.listen.edge)).await?;
    let admin_listener = bind("admin", overrides.admin_listen.unwrap_or(config.listen.admin)).await?;
    tracing::info!(
        edge = %edge_listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        nats = %config.cluster.nats_url,
        subject = %config.cluster.subject,
        spool = %spool.dir().display(),
        tls = tls_acceptor.is_some(),
        "clickgate edge is serving"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let (publisher_stop_tx, publisher_stop_rx) = watch::channel(false);
    let limits = ListenerLimits::from_edge(&config.edge);
    let edge_task = spawn_edge(edge_listener, tls_acceptor.clone(), &limits, state.clone(), stop_rx.clone());
    let admin_task = spawn_admin(admin_listener, tls_acceptor, &limits, metrics.clone(), Some(state.clone()), stop_rx.clone());
    let consumer_task = tokio::spawn(consumer.run(stop_rx.clone()));
    let publisher_task = {
        let (cluster, spool, m) = (config.cluster.clone(), spool.clone(), metrics.cluster.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::cluster::run_publisher(&cluster, spool, m, publisher_stop_rx).await {
                tracing::error!(error = %e, "the publisher stopped; clicks wait in the spool for the next start");
            }
        })
    };
    let follow = database_url.is_some();
    spawn_upkeep(Upkeep { edge: Some(state.clone()), catalog: None, ingest: None, follow }, &config, data_dir, stop_rx.clone());

    shutdown_signal().await;
    tracing::info!("shutting down: no new connections, draining open ones");
    let _ = stop_tx.send(true);
    let _ = edge_task.await;
    let _ = admin_task.await;
    drop(state);
    let drain_for = Duration::from_millis(config.edge.shutdown_drain_ms.max(1000));
    if tokio::time::timeout(drain_for, consumer_task).await.is_err() {
        tracing::error!("the click queue did not finish in time; queued events may not be spooled");
    }
    let broker_up = metrics.cluster.broker_up.clone();
    finish_spool(&spool, publisher_stop_tx, drain_for, move || broker_up.get() == 0).await;
    let _ = publisher_task.await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs `clickgate core` until SIGTERM or Ctrl-C.
///
/// At shutdown the consumer stops pulling; a batch being written is finished and acked, and
/// anything pulled but not yet written is redelivered by JetStream to the next run.
pub async fn core(config: Config, data_dir: PathBuf, overrides: Overrides) -> anyhow::Result<()> {
    tls::install_provider();
    let metrics = Metrics::new();
    let store = open_store(&config, &data_dir)?;
    let signer = Arc::new(click_signer(&config, &data_dir)?);
    let ingest = open_ingest(&config, &data_dir, &metrics)?;
    let tls_acceptor = tls_acceptor(&config)?;
    let api_addr = overrides.api_listen.unwrap_or(config.listen.api);
    let (api, catalog) = build_api(&config, &data_dir, &store, ingest.clone(), signer, &metrics, api_addr)?;
    drop(store);
    let api_listener = bind("API", api_addr).await?;
    let admin_listener = bind("admin", overrides.admin_listen.unwrap_or(config.listen.admin)).await?;
    tracing::info!(
        api = %api_listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        nats = %config.cluster.nats_url,
        stream = %config.cluster.stream,
        durable = %config.cluster.durable,
        data_dir = %data_dir.display(),
        "clickgate core is serving"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = ListenerLimits::from_edge(&config.edge);
    spawn_approval_sweep(api.conversions.clone(), &config.commission, stop_rx.clone());
    let (alerts, alert_queue) = super::alerts::Alerts::new(&config.fraud_alerts, &metrics.core);
    alert_queue.spawn_writer(api.conversions.clone());
    super::payouts::spawn_schedule(api.payouts.clone(), &config.payouts, stop_rx.clone());
    let _webhook_task = super::spawn_webhook_worker(&config, &data_dir, &metrics, stop_rx.clone())?;
    let api_task = spawn_api(api_listener, tls_acceptor.clone(), &limits, api, stop_rx.clone());
    let admin_task = spawn_admin(admin_listener, tls_acceptor, &limits, metrics.clone(), None, stop_rx.clone());
    let consumer_task = {
        let (cluster, m, ingest, stop) = (config.cluster.clone(), metrics.cluster.clone(), ingest.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let write = move |batch: &[crate::events::ClickEvent]| {
                let written = ingest.ingest(batch)?.written;
                if let Some(a) = &alerts {
                    a.observe(batch);
                }
                Ok(written)
            };
            crate::cluster::run_consumer(&cluster, m, write, stop).await
        })
    };
    spawn_upkeep(Upkeep { edge: None, catalog: Some(catalog), ingest: Some(ingest), follow: false }, &config, data_dir, stop_rx.clone());

    let mut consumer_task = consumer_task;
    // The consumer returns early only when it cannot work at all (a `nats_url` that does not
    // parse, a panicking writer); then the process stops with its error.
    let early = tokio::select! {
        _ = shutdown_signal() => None,
        r = &mut consumer_task => Some(r),
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = api_task.await;
    let _ = admin_task.await;
    let result = match early {
        Some(r) => r,
        None => match tokio::time::timeout(Duration::from_millis(config.edge.shutdown_drain_ms.max(1000)), consumer_task).await {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("the click consumer did not stop in time; unacked clicks are redelivered to the next run");
                Ok(Ok(()))
            }
        },
    };
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => anyhow::bail!("the click consumer stopped: {e}"),
        Err(e) => anyhow::bail!("the click consumer task failed: {e}"),
    }
    tracing::info!("stopped");
    Ok(())
}
