//! The upkeep thread: everything that refreshes or trims state in the background, off the
//! async workers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{follow, now_ms, snapshot, LinkUpdater};
use crate::catalog::{CatalogStore, SharedCatalog};
use crate::config::Config;
use crate::edge::EdgeState;
use crate::ingest::Ingest;
use crate::metrics::CatalogSource;
use crate::storage::pg::PgCatalog;
use crate::storage::sqlite::SqliteCatalog;
use crate::storage::CatalogDb;

/// What the upkeep thread looks after; each part is optional so edge-only and core-only
/// processes share it.
pub struct Upkeep {
    pub edge: Option<Arc<EdgeState>>,
    pub catalog: Option<Arc<SharedCatalog>>,
    pub ingest: Option<Arc<Ingest>>,
    /// A cluster edge following the PostgreSQL catalog: it listens for its notifications,
    /// keeps its snapshot on disk, and leaves the change log's trimming to the cores.
    pub follow: bool,
}

/// Background upkeep on its own OS thread, so file and database I/O never blocks the async
/// workers: rate-limiter trimming, GeoIP reloads when files change, link-table updates and
/// catalog reloads when the store changes (`CatalogStore::version`, or a notification from the
/// PostgreSQL catalog: `follow`) or on SIGHUP, and click-log retention and compaction.
pub fn spawn_upkeep(parts: Upkeep, config: &Config, data_dir: PathBuf, stop: watch::Receiver<bool>) {
    // The catalog the config names: the database connects when it first answers, so an edge
    // that started from its snapshot picks it up then.
    let database_url = config.core.database_url().ok().flatten();
    let wake = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follow = parts.follow && database_url.is_some();
    if let Some(url) = database_url.clone().filter(|_| follow) {
        follow::spawn_listener(url, wake.clone(), stop.clone());
    }
    let snapshot_every = Duration::from_millis(config.edge.catalog_snapshot_interval_ms);
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
        let store = match &database_url {
            Some(url) => Some(CatalogDb::Pg(Box::new(PgCatalog::lazy(url)))),
            None => SqliteCatalog::connect(&data_dir)
                .map(CatalogDb::File)
                .map_err(|e| tracing::error!(error = %e, "cannot open the store for reloads"))
                .ok(),
        };
        let mut version = store.as_ref().and_then(|s| s.version().ok());
        let mut links = LinkUpdater::default();
        let mut watch = Watch { source: if follow { CatalogSource::Database } else { CatalogSource::File }, down: false, trim: !follow };
        let snapshot_path = snapshot::path(&data_dir);
        let mut snapshot_due = false;
        let start = std::time::Instant::now();
        let (mut next_trim, mut next_geo, mut next_links, mut next_compact, mut next_snapshot) =
            (start + trim_every, start + geo_every, start + links_every, start + compact_every, start + snapshot_every);
        while !*stop.borrow() {
            std::thread::sleep(Duration::from_millis(20));
            let edge = weak_edge.as_ref().and_then(|w| w.upgrade());
            if weak_edge.is_some() && edge.is_none() {
                break;
            }
            let now = std::time::Instant::now();
            let forced = hup.swap(false, std::sync::atomic::Ordering::AcqRel);
            let woken = wake.swap(false, std::sync::atomic::Ordering::AcqRel);
            if let Some(state) = &edge {
                state.metrics.catalog.tick(now_ms());
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
            if let (true, Some(s), true) = (snapshot_due, store.as_ref(), now >= next_snapshot) {
                next_snapshot = now + snapshot_every;
                match follow::write_snapshot(s, &snapshot_path) {
                    Ok(n) => {
                        snapshot_due = false;
                        tracing::debug!(links = n, snapshot = %snapshot_path.display(), "catalog snapshot written");
                    }
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot write the catalog snapshot; will retry"),
                }
            }
            if !(forced || woken || now >= next_links) {
                continue;
            }
            next_links = now + links_every;
            let Some(s) = store.as_ref() else { continue };
            if let Some(state) = &edge {
                let changed = refresh_links(state, &mut links, s, catalog.as_deref(), forced, &mut watch, keep_changes);
                snapshot_due |= follow && changed;
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
            // The cores trim the database's change log; the edges only read it.
            if s.is_shared() {
                if let Err(e) = s.trim_changes(keep_changes) {
                    tracing::warn!(error = %e, "trimming the catalog's change log failed; will retry");
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the upkeep thread; links, GeoIP and rate-limit state will not refresh");
    }
}

/// Where the edge's table comes from, and whether its source answered last time (so an
/// outage is logged once, not at every interval).
struct Watch {
    source: CatalogSource,
    down: bool,
    /// Whether this process trims the store's change log (not a cluster edge).
    trim: bool,
}

/// Applies the store's changes to the edge's link table (or reads it whole: `LinkUpdater`),
/// swaps the result in whole, reloads the core's catalog when more than links changed, and
/// trims the store's change log; answers whether the table changed.
fn refresh_links(
    state: &EdgeState,
    links: &mut LinkUpdater,
    store: &CatalogDb,
    catalog: Option<&SharedCatalog>,
    forced: bool,
    watch: &mut Watch,
    keep: u64,
) -> bool {
    let current = state.links.load_full();
    let changed = match links.refresh(store, &current, forced) {
        Ok(None) => false,
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
            true
        }
        Err(e) => {
            if !watch.down {
                tracing::error!(error = %e, "link table refresh failed; keeping the current table and retrying");
                watch.down = true;
            }
            return false;
        }
    };
    if watch.down {
        tracing::info!("the catalog answers again; the link table is current");
        watch.down = false;
    }
    state.metrics.catalog.current(watch.source, now_ms());
    if watch.trim {
        if let Err(e) = store.trim_changes(keep) {
            tracing::warn!(error = %e, "trimming the catalog's change log failed; will retry");
        }
    }
    changed
}

fn reload_catalog(c: &SharedCatalog, store: &CatalogDb) {
    if let Err(e) = c.reload(store) {
        tracing::error!(error = %e, "catalog reload failed; keeping the current one");
    }
}
