//! Process wiring: build everything once, start the listeners and the background tasks, and
//! shut down cleanly on SIGTERM or Ctrl-C. `serve` composes the parts below; cluster mode's
//! `edge` and `core` (in `cluster`) compose them differently.

mod alerts;
mod catalog;
mod cluster;
mod follow;
mod links;
pub mod payouts;
pub mod rescore;
pub mod snapshot;
mod upkeep;
mod webhooks;

pub use catalog::{demo_seed, open_store, seed_demo};
pub use cluster::{core, edge};
pub use links::{load_links, LinkUpdater, Refreshed};
pub use upkeep::{spawn_upkeep, Upkeep};
pub use webhooks::{open_webhook_store, spawn_webhook_worker, webhook_admin, webhook_policy};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::alerts::{Alerts, IngestSink, IngestWriter};
use crate::api::{ApiState, CoreAttributor};
use crate::catalog::{Catalog, SharedCatalog};
use crate::config::Config;
use crate::conversions::{Approval, Conversions, Reader, WriterConfig};
use crate::edge::checks::Pipeline;
use crate::edge::links::LinkTable;
use crate::edge::server::{self, ListenerLimits};
use crate::edge::{handler, tls, EdgeState};
use crate::events::sink::{self, BatchWriter};
use crate::events::spool::{drain, Spool};
use crate::events::ClickEvent;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::model::ClickSigner;
use crate::storage;
use crate::storage::CatalogDb;

/// Listener overrides from the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub edge_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub api_listen: Option<SocketAddr>,
}

/// The click-id keys: from config, else `CLICKGATE_CLICK_KEY`, else a random key kept in the
/// data dir so ids stay verifiable across restarts.
pub fn click_signer(config: &Config, data_dir: &Path) -> anyhow::Result<ClickSigner> {
    if !config.click_id.keys.is_empty() {
        let keys: Vec<(u8, Vec<u8>)> = config.click_id.keys.iter().map(|k| (k.id, k.secret.clone().into_bytes())).collect();
        return Ok(ClickSigner::new(&keys));
    }
    if let Ok(secret) = std::env::var("CLICKGATE_CLICK_KEY") {
        anyhow::ensure!(secret.len() >= 16, "CLICKGATE_CLICK_KEY must be at least 16 bytes");
        return Ok(ClickSigner::new(&[(1, secret.into_bytes())]));
    }
    let path = data_dir.join("click-id.key");
    let secret = match std::fs::read(&path) {
        Ok(s) if s.len() >= 16 => s,
        _ => {
            let mut s = vec![0u8; 32];
            getrandom::fill(&mut s).map_err(|e| anyhow::anyhow!("no OS randomness for the click-id key: {e}"))?;
            write_private(&path, &s).with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a click-id signing key");
            s
        }
    };
    Ok(ClickSigner::new(&[(1, secret)]))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Opens the core's click log and index under the data dir.
pub fn open_ingest(config: &Config, data_dir: &Path, metrics: &Metrics) -> anyhow::Result<Arc<Ingest>> {
    let dir = data_dir.join(&config.core.click_log_dir);
    let ingest = Ingest::open(&dir, &config.core, metrics.core.clone(), now_ms())
        .with_context(|| format!("opening the click log in {}", dir.display()))?;
    Ok(Arc::new(ingest))
}

/// Builds the edge's state once around its first link table: check pipeline, signer, and the
/// queue in front of `writer` (spilling to `overflow`, through the spill thread, when full).
pub fn build_edge(
    config: &Config,
    table: LinkTable,
    signer: Arc<ClickSigner>,
    writer: Arc<dyn BatchWriter>,
    overflow: Arc<dyn BatchWriter>,
    metrics: &Metrics,
    tls: bool,
) -> anyhow::Result<(Arc<EdgeState>, sink::ClickConsumer)> {
    let pipeline = Pipeline::build(&config.checks).context("building the check pipeline")?;
    metrics.bot_patterns.set(pipeline.bots_status.patterns as i64);
    tracing::info!(source = %pipeline.bots_status.source, patterns = pipeline.bots_status.patterns, skipped = pipeline.bots_status.skipped, "bot list compiled");
    let (datacenter, listed) = pipeline.datacenter_asns;
    metrics.datacenter_asns.set(datacenter as i64);
    tracing::info!(asns = datacenter, from_list = listed, "datacenter ASNs loaded");
    let ev = &config.events;
    let batching = sink::Batching { len_max: ev.click_log_batch_len_max, linger: Duration::from_millis(ev.click_log_linger_ms) };
    let (click_sink, consumer) =
        sink::channel(writer, overflow, ev.click_queue_len_max, ev.spill_queue_len_max, batching, metrics.sink.clone())
            .context("starting the spill thread")?;
    let state = Arc::new(EdgeState {
        pipeline,
        links: ArcSwap::from_pointee(table),
        signer: signer.clone(),
        sink: click_sink,
        metrics: metrics.clone(),
        cookie_suffix: crate::edge::handler::cookie_suffix(&config.edge, tls),
        edge: config.edge.clone(),
        privacy: config.privacy.ip,
        ip_hasher: hmac::Mac::new_from_slice(config.privacy.ip_hash_key.as_bytes()).expect("HMAC takes any key length"),
        client_tag_key: signer.derive_key(b"client tag"),
    });
    Ok((state, consumer))
}

/// The edge's first link table, read from the store the process opened (the data dir's file,
/// or the catalog database when `serve` runs over one).
pub fn initial_links(store: &CatalogDb, metrics: &Metrics) -> anyhow::Result<LinkTable> {
    let started = std::time::Instant::now();
    let table = load_links(store).context("loading links")?;
    let source = if store.is_shared() { crate::metrics::CatalogSource::Database } else { crate::metrics::CatalogSource::File };
    metrics.catalog.current(source, now_ms());
    tracing::info!(links = table.len(), version = table.version(), ms = started.elapsed().as_millis() as u64, "link table loaded");
    Ok(table)
}

/// The demo config's admin key: fine on loopback, a hazard anywhere else.
pub const DEMO_ADMIN_KEY: &str = "demo-admin-key";

/// The admin key's SHA-256: env `CLICKGATE_ADMIN_KEY`, else `api.admin_key`, else
/// `api.admin_key_sha256`. Only the hash is kept.
pub fn admin_key_hash(config: &Config, api_addr: SocketAddr) -> anyhow::Result<Option<[u8; 32]>> {
    use sha2::Digest;
    let plain = std::env::var("CLICKGATE_ADMIN_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .or_else(|| Some(config.api.admin_key.clone()).filter(|k| !k.is_empty()));
    if let Some(k) = plain {
        anyhow::ensure!(k.len() >= 12, "the admin key must be at least 12 bytes");
        if k == DEMO_ADMIN_KEY && !api_addr.ip().is_loopback() {
            tracing::warn!(listen = %api_addr, "THE DEMO ADMIN KEY IS IN USE ON A NON-LOOPBACK ADDRESS: anyone who read the README can write conversions. Set CLICKGATE_ADMIN_KEY or api.admin_key_sha256.");
            eprintln!(
                "WARNING: the demo admin key {DEMO_ADMIN_KEY:?} is in use on {api_addr}, which is not loopback. Set CLICKGATE_ADMIN_KEY."
            );
        }
        return Ok(Some(sha2::Sha256::digest(k.as_bytes()).into()));
    }
    let hex = &config.api.admin_key_sha256;
    if hex.is_empty() {
        tracing::warn!("no admin key is configured: only stored API keys (clickgate api-key create) will authenticate");
        return Ok(None);
    }
    Ok(Some(crate::api::hex32(hex).context("api.admin_key_sha256 is not 64 hex digits")?))
}

/// Builds the API's state: the conversion writer and reader, the catalog and the attributor.
pub fn build_api(
    config: &Config,
    data_dir: &Path,
    store: &CatalogDb,
    ingest: Arc<Ingest>,
    signer: Arc<ClickSigner>,
    metrics: &Metrics,
    api_addr: SocketAddr,
) -> anyhow::Result<(Arc<ApiState>, Arc<SharedCatalog>)> {
    let catalog = Arc::new(SharedCatalog::new(Catalog::load(store).context("loading programs, partners and coupons")?));
    let click_max_age_ms = u64::from(config.click_id.max_age_days) * 86_400_000;
    let attributor = CoreAttributor { ingest: ingest.clone(), catalog: catalog.clone(), signer: signer.clone(), click_max_age_ms };
    let writer_config = WriterConfig {
        commit_batch_len_max: config.api.commit_batch_len_max,
        queue_len_max: config.api.writer_queue_len_max,
        idempotency_ttl_ms: config.api.idempotency_ttl_hours * 3_600_000,
        event_retention_ms: config.webhooks.event_retention_ms(),
    };
    let url = config.core.database_url()?;
    let (conversions, reader) = match url.clone() {
        Some(url) => {
            tracing::info!(database = %redact_url(&url), "conversions, commissions and the ledger are in PostgreSQL");
            let conversions = storage::pg::start(&url, writer_config, Box::new(attributor), metrics.api.clone())
                .context("connecting the conversion store to PostgreSQL (core.database_url)")?;
            let reader: Arc<dyn Reader> = Arc::new(
                storage::pg::PgReader::open_with(&url, config.api.read_connections_max).context("connecting to PostgreSQL for reads")?,
            );
            (conversions, reader)
        }
        None => {
            let conversions = storage::sqlite::start(data_dir, writer_config, Box::new(attributor), metrics.api.clone())
                .context("opening the conversion store")?;
            let reader: Arc<dyn Reader> = Arc::new(
                storage::sqlite::SqliteReader::open_with(data_dir, config.api.read_connections_max)
                    .context("opening the conversion store for reads")?,
            );
            (conversions, reader)
        }
    };
    let state = Arc::new(ApiState {
        conversions,
        reader,
        ingest,
        catalog: catalog.clone(),
        signer,
        admin_key_sha256: admin_key_hash(config, api_addr)?,
        config: config.api.clone(),
        metrics: metrics.api.clone(),
        now_ms,
        store: std::sync::Mutex::new(Box::new(
            CatalogDb::connect(url.as_deref(), data_dir).context("opening the store for commission rules")?,
        )),
        commission: config.commission.clone(),
        payouts: Some(payouts::desk(config, data_dir, metrics.payouts.clone())?),
        webhooks: webhook_admin(config, data_dir)?,
        keys: Arc::new(crate::access::Keys::new(Box::new(
            CatalogDb::connect(url.as_deref(), data_dir).context("opening the store for API keys")?,
        ))),
        limits: crate::api::keys::Limits::new(&config.api),
        dashboard: crate::api::dashboard::Sessions::new(&config.api, config.tls.cert_path.is_some() && config.tls.key_path.is_some()),
        store_at: match &url {
            Some(url) => crate::storage::offline::StoreAt::Pg(url.clone()),
            None => crate::storage::offline::StoreAt::File(data_dir.to_path_buf()),
        },
    });
    Ok((state, catalog))
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Binds a listener, naming it in the error.
pub async fn bind(what: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("binding the {what} listener on {addr}"))
}

pub(crate) fn tls_acceptor(config: &Config) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    Ok(match (&config.tls.cert_path, &config.tls.key_path) {
        (Some(c), Some(k)) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(c, k)?)),
        _ => None,
    })
}

/// Serves the admin listener.
pub fn spawn_admin(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: &ListenerLimits,
    metrics: Metrics,
    edge: Option<Arc<EdgeState>>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let admin_limits = ListenerLimits { connections_max: 64, ..limits.clone() };
    tokio::spawn(server::serve(
        listener,
        tls,
        admin_limits,
        None,
        move |_peer, req| std::future::ready(crate::admin::handle(&metrics, edge.as_ref(), req)),
        stop,
    ))
}

/// Serves the API listener.
pub fn spawn_api(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: &ListenerLimits,
    api: Arc<ApiState>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let api_limits = ListenerLimits { connections_max: api.config.connections_max, ..limits.clone() };
    tokio::spawn(server::serve(
        listener,
        tls,
        api_limits,
        None,
        move |peer, req| crate::api::handle(api.clone(), Some(peer.ip()), req),
        stop,
    ))
}

/// Runs the approval sweep on a timer through the conversion writer, so approvals share its
/// grouped commits: jobs of `approve_batch_len_max` until one approves fewer.
pub fn spawn_approval_sweep(conversions: Conversions, config: &crate::config::Commission, mut stop: watch::Receiver<bool>) {
    if config.approve_interval_ms == 0 {
        return;
    }
    let (every, limit) = (Duration::from_millis(config.approve_interval_ms), config.approve_batch_len_max);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let mut total = Approval::default();
            if let Err(e) = conversions.approve_all(limit, now_ms, &mut total).await {
                tracing::error!(error = %e, "the approval sweep failed; it runs again at the next tick");
            }
            let Approval { approved, amount_minor, .. } = total;
            if approved > 0 {
                tracing::info!(approved, amount_minor, "approval sweep approved commissions whose lock ended");
            }
        }
    });
}

/// Serves the edge listener: one `handler::handle` per request.
pub fn spawn_edge(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: &ListenerLimits,
    state: Arc<EdgeState>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let metrics = state.metrics.clone();
    tokio::spawn(server::serve(
        listener,
        tls,
        limits.clone(),
        Some(metrics),
        move |peer: SocketAddr, req| std::future::ready(handler::handle(&state, peer.ip(), req)),
        stop,
    ))
}

/// Opens the local spool under the data dir (`cluster.spool_dir`): the queue in front of the
/// broker in `clickgate edge`, the overflow in front of the ingest in `serve`.
pub fn open_spool(config: &Config, data_dir: &Path, metrics: &Metrics) -> anyhow::Result<Arc<Spool>> {
    let dir = data_dir.join(&config.cluster.spool_dir);
    let spool = Spool::open(&dir, config.cluster.spool_bytes_max)
        .with_context(|| format!("opening the spool in {}", dir.display()))?
        .with_pending_gauge(metrics.cluster.spool_bytes.clone());
    let waiting = spool.pending_bytes();
    if waiting > 0 {
        tracing::info!(dir = %dir.display(), bytes = waiting, "the spool holds clicks from an earlier run; delivering them first");
    }
    Ok(Arc::new(spool))
}

/// The spool as a `BatchWriter`: one write, no network, an fsync at most once a second.
pub struct SpoolWriter {
    pub spool: Arc<Spool>,
    pub spooled: prometheus::IntCounter,
}

impl BatchWriter for SpoolWriter {
    fn write_batch(&self, batch: &[ClickEvent]) -> std::io::Result<()> {
        self.spool.append(batch)?;
        self.spooled.inc_by(batch.len() as u64);
        Ok(())
    }

    fn sync(&self) -> std::io::Result<()> {
        Ok(self.spool.sync()?)
    }
}

/// Waits until the spool is delivered (or `give_up` says to stop waiting, or `deadline`
/// passes), then stops its reader. What is left stays in the spool for the next start.
pub async fn finish_spool(spool: &Spool, reader_stop: watch::Sender<bool>, deadline: Duration, give_up: impl Fn() -> bool) {
    let until = tokio::time::Instant::now() + deadline;
    while spool.pending_bytes() > 0 && !give_up() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = spool.pending_bytes();
    if left > 0 {
        tracing::warn!(bytes = left, dir = %spool.dir().display(), "clicks remain in the spool; they are delivered at the next start");
    }
    let _ = reader_stop.send(true);
}

/// Runs `clickgate serve` until SIGTERM or Ctrl-C: edge, core and API in one process.
///
/// The edge's queue feeds the ingest; when it is full, clicks go to the spill queue, whose
/// thread writes them to the local spool, which a task drains into the ingest.
pub async fn serve(config: Config, data_dir: PathBuf, overrides: Overrides) -> anyhow::Result<()> {
    tls::install_provider();
    let metrics = Metrics::new();
    let store = open_store(&config, &data_dir)?;
    let signer = Arc::new(click_signer(&config, &data_dir)?);
    let ingest = open_ingest(&config, &data_dir, &metrics)?;
    let spool = open_spool(&config, &data_dir, &metrics)?;
    let tls_acceptor = tls_acceptor(&config)?;
    let (alerts, alert_queue) = Alerts::new(&config.fraud_alerts, &metrics.core);
    let writer: Arc<dyn BatchWriter> = Arc::new(IngestWriter(ingest.clone(), alerts.clone()));
    let overflow: Arc<dyn BatchWriter> = Arc::new(SpoolWriter { spool: spool.clone(), spooled: metrics.cluster.spooled.clone() });
    let table = initial_links(&store, &metrics)?;
    let (state, consumer) = build_edge(&config, table, signer.clone(), writer, overflow, &metrics, tls_acceptor.is_some())?;

    let edge_addr = overrides.edge_listen.unwrap_or(config.listen.edge);
    let admin_addr = overrides.admin_listen.unwrap_or(config.listen.admin);
    let api_addr = overrides.api_listen.unwrap_or(config.listen.api);
    let (api, catalog) = build_api(&config, &data_dir, &store, ingest.clone(), signer, &metrics, api_addr)?;
    let edge_listener = bind("edge", edge_addr).await?;
    let admin_listener = bind("admin", admin_addr).await?;
    let api_listener = bind("API", api_addr).await?;
    tracing::info!(
        edge = %edge_listener.local_addr()?,
        admin = %admin_listener.local_addr()?,
        api = %api_listener.local_addr()?,
        tls = tls_acceptor.is_some(),
        data_dir = %data_dir.display(),
        "clickgate is serving"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let (spool_stop_tx, spool_stop_rx) = watch::channel(false);
    let limits = ListenerLimits::from_edge(&config.edge);
    let edge_task = spawn_edge(edge_listener, tls_acceptor.clone(), &limits, state.clone(), stop_rx.clone());
    let admin_task = spawn_admin(admin_listener, tls_acceptor.clone(), &limits, metrics.clone(), Some(state.clone()), stop_rx.clone());
    spawn_approval_sweep(api.conversions.clone(), &config.commission, stop_rx.clone());
    payouts::spawn_schedule(api.payouts.clone(), &config.payouts, stop_rx.clone());
    alert_queue.spawn_writer(api.conversions.clone());
    let webhook_task = spawn_webhook_worker(&config, &data_dir, &metrics, stop_rx.clone())?;
    let api_task = spawn_api(api_listener, tls_acceptor, &limits, api, stop_rx.clone());
    let consumer_task = tokio::spawn(consumer.run(stop_rx.clone()));
    let spill_drain = {
        let (spool, ingest) = (spool.clone(), ingest.clone());
        let batch = config.events.click_log_batch_len_max;
        tokio::spawn(async move {
            let mut sink = IngestSink(ingest, alerts);
            if let Err(e) = drain(spool, batch, Duration::from_millis(100), &mut sink, spool_stop_rx).await {
                tracing::error!(error = %e, "the spill drain stopped; spilled clicks wait in the spool for the next start");
            }
        })
    };
    spawn_upkeep(
        Upkeep { edge: Some(state.clone()), catalog: Some(catalog), ingest: Some(ingest), follow: false },
        &config,
        data_dir.clone(),
        stop_rx.clone(),
    );

    shutdown_signal().await;
    tracing::info!("shutting down: no new connections, draining open ones");
    let _ = stop_tx.send(true);
    let _ = edge_task.await;
    let _ = admin_task.await;
    let _ = api_task.await;
    if let Some(t) = webhook_task {
        let _ = t.await;
    }
    let drain_for = Duration::from_millis(config.edge.shutdown_drain_ms.max(1000));
    // The consumer closed its channel on the stop signal (connections still draining spill)
    // and returns once the queue is written and fsynced and the spill thread, which ends with
    // the last sender (`state`), has written the spill queue to the spool.
    drop(state);
    if tokio::time::timeout(drain_for, consumer_task).await.is_err() {
        tracing::error!("the click consumer did not finish in time; queued events may not be written");
    }
    if let Err(e) = spool.sync() {
        tracing::error!(error = %e, "spool fsync at shutdown failed");
    }
    finish_spool(&spool, spool_stop_tx, drain_for, || false).await;
    let _ = spill_drain.await;
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn a_database_url_is_logged_without_its_password() {
        assert_eq!(redact_url("postgres://app:s3cr:et@db.internal:5432/x"), "postgres://app@db.internal:5432/x");
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("postgres:///x?host=/run/pg"), "postgres:///x?host=/run/pg");
    }
}
