//! Where the edge's link table comes from, and how long since it was known to match it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

/// What the edge's link table was last read from; a closed set of label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogSource {
    /// The data dir's store file (embedded).
    File,
    /// The cluster's PostgreSQL catalog.
    Database,
    /// The snapshot on local disk, while the database is unreachable.
    Snapshot,
}

impl CatalogSource {
    pub const ALL: [CatalogSource; 3] = [CatalogSource::File, CatalogSource::Database, CatalogSource::Snapshot];

    pub fn as_str(self) -> &'static str {
        match self {
            CatalogSource::File => "file",
            CatalogSource::Database => "database",
            CatalogSource::Snapshot => "snapshot",
        }
    }
}

/// Catalog metric handles.
#[derive(Clone)]
pub struct CatalogMetrics {
    source: Vec<IntGauge>,
    age_seconds: IntGauge,
    /// When the table was last known to match its source (Unix ms), which the age counts from.
    current_ms: Arc<AtomicU64>,
}

impl CatalogMetrics {
    pub fn register(r: &Registry) -> CatalogMetrics {
        let sources = IntGaugeVec::new(
            Opts::new("clickgate_catalog_source", "1 for where the edge's link table was last read from, 0 for the others."),
            &["source"],
        )
        .expect("valid metric");
        r.register(Box::new(sources.clone())).expect("registered once");
        let age_seconds = IntGauge::new(
            "clickgate_catalog_age_seconds",
            "Seconds since the edge's link table was last known to match the catalog (a snapshot's: since it was written).",
        )
        .expect("valid metric");
        r.register(Box::new(age_seconds.clone())).expect("registered once");
        CatalogMetrics {
            source: CatalogSource::ALL.iter().map(|s| sources.with_label_values(&[s.as_str()])).collect(),
            age_seconds,
            current_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The table matches `source` as it was at `at_ms`.
    pub fn current(&self, source: CatalogSource, at_ms: u64) {
        for (i, g) in self.source.iter().enumerate() {
            g.set(i64::from(i == source as usize));
        }
        self.current_ms.store(at_ms, Ordering::Release);
        self.tick(at_ms);
    }

    /// Moves the age on to `now_ms`.
    pub fn tick(&self, now_ms: u64) {
        let age_s = now_ms.saturating_sub(self.current_ms.load(Ordering::Acquire)) / 1000;
        self.age_seconds.set(i64::try_from(age_s).unwrap_or(i64::MAX));
    }
}
