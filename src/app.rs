//! Process wiring for `clickgate serve`: build everything once, start the listeners and the
//! background tasks, and shut down cleanly on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::edge::checks::Pipeline;
use crate::edge::click_id::ClickSigner;
use crate::edge::links::LinkTable;
use crate::edge::server::{self, ListenerLimits};
use crate::edge::{handler, tls, EdgeState};
use crate::events::click_log::ClickLog;
use crate::events::sink;
use crate::metrics::Metrics;
use crate::store::Store;

/// Listener overrides from the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub edge_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub api_listen: Option<SocketAddr>,
}

/// Opens the store and seeds it from the config's demo section when empty.
pub fn open_store(config: &Config, data_dir: &Path) -> anyhow::Result<Store> {
    let mut store = Store::open(data_dir).with_context(|| format!("opening the store in {}", data_dir.display()))?;
    if store.seed(&config.demo).context("seeding the demo programs, partners and links")? {
        tracing::info!(data_dir = %data_dir.display(), "store was empty; seeded it from the config's demo section");
    }
    Ok(store)
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

/// Runs `clickgate serve` until SIGTERM or Ctrl-C.
pub async fn serve(config: Config, data_dir: PathBuf, overrides: Overrides) -> anyhow::Result<()> {
    tls::install_provider();
    let metrics = Metrics::new();
    let store = open_store(&config, &data_dir)?;
    let table = LinkTable::load(&store).context("loading links")?;
    tracing::info!(links = table.len(), "link table loaded");
    let pipeline = Pipeline::build(&config.checks).context("building the check pipeline")?;
    metrics.bot_patterns.set(pipeline.bots_status.patterns as i64);
    tracing::info!(source = %pipeline.bots_status.source, patterns = pipeline.bots_status.patterns, skipped = pipeline.bots_status.skipped, "bot list compiled");
    let log = Arc::new(ClickLog::open(&data_dir).with_context(|| format!("opening the click log in {}", data_dir.display()))?);
    let ev = &config.events;
    let batching = sink::Batching {
        len_max: ev.click_log_batch_len_max,
        linger: Duration::from_millis(ev.click_log_linger_ms),
        sync_every: Duration::from_millis(ev.click_log_fsync_interval_ms),
    };
    let (click_sink, consumer) = sink::channel(log, ev.click_queue_len_max, batching, metrics.sink.clone());
    let tls_acceptor = match (&config.tls.cert_path, &config.tls.key_path) {
        (Some(c), Some(k)) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(c, k)?)),
        _ => None,
    };
    let state = Arc::new(EdgeState {
        pipeline,
        links: ArcSwap::from_pointee(table),
        signer: click_signer(&config, &data_dir)?,
        sink: click_sink,
        metrics: metrics.clone(),
        cookie_suffix: crate::edge::handler::cookie_suffix(&config.edge, tls_acceptor.is_some()),
        edge: config.edge.clone(),
        privacy: config.privacy.ip,
        ip_hasher: hmac::Mac::new_from_slice(config.privacy.ip_hash_key.as_bytes()).expect("HMAC takes any key length"),
    });

    let edge_addr = overrides.edge_listen.unwrap_or(config.listen.edge);
    let admin_addr = overrides.admin_listen.unwrap_or(config.listen.admin);
    let edge_listener = TcpListener::bind(edge_addr).await.with_context(|| format!("binding the edge listener on {edge_addr}"))?;
    let admin_listener = TcpListener::bind(admin_addr).await.with_context(|| format!("binding the admin listener on {admin_addr}"))?;
    tracing::info!(edge = %edge_listener.local_addr()?, admin = %admin_listener.local_addr()?, tls = tls_acceptor.is_some(), data_dir = %data_dir.display(), "clickgate is serving");

    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = ListenerLimits::from_edge(&config.edge);
    let s = state.clone();
    let edge_task = tokio::spawn(server::serve(
        edge_listener,
        tls_acceptor.clone(),
        limits.clone(),
        Some(metrics.clone()),
        move |peer: SocketAddr, req| {
            let r = handler::handle(&s, peer.ip(), req);
            std::future::ready(r)
        },
        stop_rx.clone(),
    ));
    let s = state.clone();
    let admin_limits = ListenerLimits { connections_max: 64, ..limits };
    let admin_task = tokio::spawn(server::serve(
        admin_listener,
        tls_acceptor,
        admin_limits,
        None,
        move |_peer, req| std::future::ready(crate::admin::handle(&s, req)),
        stop_rx.clone(),
    ));
    let consumer_task = tokio::spawn(consumer.run(stop_rx.clone()));
    spawn_background(state.clone(), &config, data_dir.clone(), stop_rx.clone());

    shutdown_signal().await;
    tracing::info!("shutting down: no new connections, draining open ones");
    let _ = stop_tx.send(true);
    let _ = edge_task.await;
    let _ = admin_task.await;
    // The consumer closed its channel on the stop signal (connections still draining spill
    // straight to the log) and returns once the queue is written and fsynced.
    drop(state);
    if tokio::time::timeout(Duration::from_millis(config.edge.shutdown_drain_ms.max(1000)), consumer_task).await.is_err() {
        tracing::error!("the click log consumer did not finish in time; queued events may not be fsynced");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Background upkeep on its own OS thread, so file and database I/O never blocks the async
/// workers: rate-limiter trimming, GeoIP reloads when files change, and link-table reloads when
/// the store changes (`PRAGMA data_version`) or on SIGHUP.
fn spawn_background(state: Arc<EdgeState>, config: &Config, data_dir: PathBuf, stop: watch::Receiver<bool>) {
    let hup = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = hup.clone();
    let mut stop_signal = stop.clone();
    tokio::spawn(async move {
        let Ok(mut sig) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        loop {
            tokio::select! {
                Some(_) = sig.recv() => flag.store(true, std::sync::atomic::Ordering::Release),
                _ = stop_signal.changed() => return,
            }
        }
    });
    // A weak reference: the thread must not keep the sink (and so the consumer) alive at shutdown.
    let weak = Arc::downgrade(&state);
    drop(state);
    let trim_every = Duration::from_millis(config.checks.rate_limit.trim_interval_ms);
    let geo_every = Duration::from_millis(config.checks.geoip.reload_interval_ms);
    let links_every = Duration::from_millis(config.edge.link_reload_interval_ms);
    let spawned = std::thread::Builder::new().name("clickgate-upkeep".into()).spawn(move || {
        let store = Store::open(&data_dir).map_err(|e| tracing::error!(error = %e, "cannot open the store for link reloads")).ok();
        let mut version = store.as_ref().and_then(|s| s.data_version().ok());
        let start = std::time::Instant::now();
        let (mut next_trim, mut next_geo, mut next_links) = (start + trim_every, start + geo_every, start + links_every);
        while !*stop.borrow() {
            std::thread::sleep(Duration::from_millis(20));
            let Some(state) = weak.upgrade() else { break };
            let now = std::time::Instant::now();
            let forced = hup.swap(false, std::sync::atomic::Ordering::AcqRel);
            if now >= next_trim {
                state.pipeline.rate_limits.trim(now_ms());
                next_trim = now + trim_every;
            }
            if forced || now >= next_geo {
                state.pipeline.geo.reload_if_changed();
                next_geo = now + geo_every;
            }
            if !(forced || now >= next_links) {
                continue;
            }
            next_links = now + links_every;
            let Some(s) = store.as_ref() else { continue };
            let v = s.data_version().ok();
            if !forced && v == version {
                continue;
            }
            version = v;
            match LinkTable::load(s) {
                Ok(t) => {
                    tracing::info!(links = t.len(), forced, "link table reloaded");
                    state.links.store(Arc::new(t));
                    state.metrics.link_reloads.inc();
                }
                Err(e) => tracing::error!(error = %e, "link table reload failed; keeping the current table"),
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the upkeep thread; links, GeoIP and rate-limit state will not refresh");
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
