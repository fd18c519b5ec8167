//! How a cluster edge follows the one catalog in PostgreSQL.
//!
//! At start the edge reads every link from the database into its table and, in the same read,
//! into its snapshot on disk (`snapshot`). When the database does not answer, it builds the
//! table from that snapshot instead, says so in its log and in `clickgate_catalog_source`, and
//! carries on. Then the upkeep thread keeps the table current: a notification from the
//! catalog's triggers (`listen`) wakes it to read the changes since the table's version, and
//! its periodic version comparison catches any notification missed while the connection was
//! down. The snapshot is written again, at most once per `edge.catalog_snapshot_interval_ms`,
//! after the table changed. No request ever waits on any of it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::links::LinkUpdater;
use super::now_ms;
use super::snapshot::{self, SnapshotWriter, Tee};
use crate::catalog::{CatalogError, CatalogStore};
use crate::edge::links::LinkTable;
use crate::metrics::{CatalogMetrics, CatalogSource};
use crate::storage::pg::PgCatalog;

/// How long the listener waits for a notification before it looks at the stop signal.
const LISTEN_WAIT: Duration = Duration::from_secs(1);

/// How long the listener waits before connecting again after its connection failed.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// The edge's first table, from the database at `url` when it answers (writing the snapshot in
/// the same read), else from the data dir's snapshot; an error only when neither is there.
pub fn first_table(url: &str, data_dir: &Path, metrics: &CatalogMetrics) -> anyhow::Result<LinkTable> {
    let path = snapshot::path(data_dir);
    let from_db = PgCatalog::connect(url).and_then(|store| {
        let table = LinkUpdater::default().load_with(|reader| read_and_snapshot(&store, &path, reader))?;
        Ok(table)
    });
    let why = match from_db {
        Ok(table) => {
            metrics.current(CatalogSource::Database, now_ms());
            tracing::info!(links = table.len(), version = table.version(), "link table loaded from the catalog database");
            return Ok(table);
        }
        Err(e) => e,
    };
    let mut info = None;
    let table = LinkUpdater::default()
        .load_with(|reader| {
            info = Some(snapshot::read(&path, reader).map_err(|e| CatalogError::Storage(e.to_string()))?);
            Ok(())
        })
        .with_context(|| format!("the catalog database does not answer ({why}), and there is no usable snapshot"))?;
    let written_ms = info.map_or(0, |i| i.written_ms);
    metrics.current(CatalogSource::Snapshot, written_ms);
    tracing::warn!(
        error = %why,
        snapshot = %path.display(),
        links = table.len(),
        version = table.version(),
        age_s = now_ms().saturating_sub(written_ms) / 1000,
        "the catalog database does not answer; serving the links of the last snapshot until it does"
    );
    Ok(table)
}

/// One full read of `store`, handed to `reader` and written to the snapshot at `path`. A
/// snapshot that cannot be written is logged; the read still counts.
fn read_and_snapshot(store: &dyn CatalogStore, path: &Path, reader: &mut dyn crate::catalog::LinkReader) -> Result<(), CatalogError> {
    let mut writer = match SnapshotWriter::create(path, now_ms()) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, snapshot = %path.display(), "cannot write the catalog snapshot");
            return store.read_links(None, 0, reader).map(|_| ());
        }
    };
    store.read_links(None, 0, &mut Tee { first: reader, second: &mut writer })?;
    if let Err(e) = writer.finish() {
        tracing::warn!(error = %e, snapshot = %path.display(), "cannot write the catalog snapshot");
    }
    Ok(())
}

/// Writes the snapshot at `path` from one full read of `store`.
pub fn write_snapshot(store: &dyn CatalogStore, path: &Path) -> anyhow::Result<usize> {
    let mut writer = SnapshotWriter::create(path, now_ms()).with_context(|| format!("creating {}", path.display()))?;
    store.read_links(None, 0, &mut writer)?;
    writer.finish().with_context(|| format!("writing {}", path.display()))
}

/// Listens for the catalog's change notifications on a thread of its own and raises `wake` at
/// each (and at each new connection, for what it may have missed), until `stop`.
pub fn spawn_listener(url: String, wake: Arc<AtomicBool>, stop: watch::Receiver<bool>) {
    let spawned = std::thread::Builder::new().name("clickgate-catalog-listen".into()).spawn(move || {
        let store = PgCatalog::lazy(&url);
        let mut down = false;
        while !*stop.borrow() {
            let mut listener = match store.listen() {
                Ok(l) => l,
                Err(e) => {
                    if !down {
                        tracing::warn!(error = %e, "cannot listen for catalog changes; the periodic check keeps the links current");
                        down = true;
                    }
                    std::thread::sleep(LISTEN_RETRY);
                    continue;
                }
            };
            if down {
                tracing::info!("listening for catalog changes again");
                down = false;
            }
            wake.store(true, Ordering::Release);
            while !*stop.borrow() {
                match listener.wait(LISTEN_WAIT) {
                    Ok(true) => wake.store(true, Ordering::Release),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the connection listening for catalog changes dropped; connecting again");
                        down = true;
                        break;
                    }
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the catalog listener; the periodic check keeps the links current");
    }
}
