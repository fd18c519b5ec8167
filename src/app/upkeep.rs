//! The upkeep thread: everything that refreshes or trims state in the background, off the
//! async workers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{now_ms, LinkUpdater};
use crate::catalog::{CatalogStore, SharedCatalog};
use crate::config::Config;
use crate::edge::EdgeState;
use crate::ingest::Ingest;
use crate::storage::sqlite::SqliteCatalog;

/// What the upkeep thread looks after; each part is optional so edge-only and core-only
/// processes share it.
pub struct Upkeep {
    pub edge: Option<Arc<EdgeState>>,
    pub catalog: Option<Arc<SharedCatalog>>,
    pub ingest: Option<Arc<Ingest>>,
}

/// Background upkeep on its own OS thread, so file and database I/O never blocks the async
/// workers: rate-limiter trimming, GeoIP reloads when files change, link-table updates and
/// catalog reloads when the store changes (`CatalogStore::version`) or on SIGHUP, and
/// click-log retention and compaction.
pub fn spawn_upkeep(parts: Upkeep, config: &Config, data_dir: PathBuf, stop: watch::Receiver<bool>) {
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
    // Weak references: the thread must not keep the sink (and so the consumer) alive at shutdown.
    let weak_edge = parts.edge.as_ref().map(Arc::downgrade);
    let weak_ingest = parts.ingest.as_ref().map(Arc::downgrade);
    let catalog = parts.catalog;
    drop(parts.edge);
    drop(parts.ingest);
    let trim_every = Duration::from_millis(config.checks.rate_limit.trim_interval_ms);
    let geo_every = Duration::from_millis(config.checks.geoip.reload_interval_ms);
    let links_every = Duration::from_millis(config.edge.link_reload_interval_ms);
    let compact_every = Duration::from_millis(config.core.compact_interval_ms);
    let keep_changes = config.edge.link_change_log_len_max;
    let spawned = std::thread::Builder::new().name("clickgate-upkeep".into()).spawn(move || {
        let store = SqliteCatalog::connect(&data_dir).map_err(|e| tracing::error!(error = %e, "cannot open the store for reloads")).ok();
        let mut version = store.as_ref().and_then(|s| s.version().ok());
        let mut links = LinkUpdater::default();
        let start = std::time::Instant::now();
        let (mut next_trim, mut next_geo, mut next_links, mut next_compact) =
            (start + trim_every, start + geo_every, start + links_every, start + compact_every);
        while !*stop.borrow() {
            std::thread::sleep(Duration::from_millis(20));
            let edge = weak_edge.as_ref().and_then(|w| w.upgrade());
            if weak_edge.is_some() && edge.is_none() {
                break;
            }
            let now = std::time::Instant::now();
            let forced = hup.swap(false, std::sync::atomic::Ordering::AcqRel);
            if let Some(state) = &edge {
                if now >= next_trim {
                    state.pipeline.rate_limits.trim(now_ms());
                    next_trim = now + trim_every;
                }
                if forced || now >= next_geo {
                    state.pipeline.geo.reload_if_changed();
                    next_geo = now + geo_every;
                }
            }
            if now >= next_compact {
                next_compact = now + compact_every;
                if let Some(ingest) = weak_ingest.as_ref().and_then(|w| w.upgrade()) {
                    if let Err(e) = ingest.maintain(now_ms()) {
                        tracing::error!(error = %e, "click log retention or compaction failed; will retry");
                    }
                }
            }
            if !(forced || now >= next_links) {
                continue;
            }
            next_links = now + links_every;
            let Some(s) = store.as_ref() else { continue };
            if let Some(state) = &edge {
                refresh_links(state, &mut links, s, catalog.as_deref(), forced, keep_changes);
                continue;
            }
            // A core without an edge: its catalog reloads when the catalog's version moves.
            let v = s.version().ok();
            if !forced && v == version {
                continue;
            }
            version = v;
            if let Some(c) = &catalog {
                reload_catalog(c, s);
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the upkeep thread; links, GeoIP and rate-limit state will not refresh");
    }
}

/// Applies the store's changes to the edge's link table (or reads it whole: `LinkUpdater`),
/// swaps the result in whole, reloads the core's catalog when more than links changed, and
/// trims the store's change log.
fn refresh_links(
    state: &EdgeState,
    links: &mut LinkUpdater,
    store: &SqliteCatalog,
    catalog: Option<&SharedCatalog>,
    forced: bool,
    keep: u64,
) {
    let current = state.links.load_full();
    match links.refresh(store, &current, forced) {
        Ok(None) => return,
        Ok(Some((table, done))) => {
            if done.full {
                tracing::info!(links = table.len(), version = table.version(), forced, "link table reloaded");
                state.metrics.link_reloads.inc();
            } else {
                tracing::info!(changed = done.links, links = table.len(), version = table.version(), "link table updated");
                state.metrics.link_updates.inc();
            }
            state.links.store(Arc::new(table));
            if let Some(c) = catalog.filter(|_| done.others_changed) {
                reload_catalog(c, store);
            }
        }
        Err(e) => tracing::error!(error = %e, "link table refresh failed; keeping the current table"),
    }
    if let Err(e) = store.trim_changes(keep) {
        tracing::warn!(error = %e, "trimming the catalog's change log failed; will retry");
    }
}

fn reload_catalog(c: &SharedCatalog, store: &SqliteCatalog) {
    if let Err(e) = c.reload(store) {
        tracing::error!(error = %e, "catalog reload failed; keeping the current one");
    }
}
