//! Core ingest. Skeleton: the implementation lands with the ingest work.

use std::path::Path;

use super::index::IndexedClick;
use crate::edge::checks::{Reason, Verdict};
use crate::edge::click_id::{ClickId, VisitorId};
use crate::events::ClickEvent;
use crate::metrics::CoreMetrics;

/// What one `ingest` call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Events appended, fsynced and indexed.
    pub written: usize,
    /// Events skipped because their click id was already held.
    pub duplicates: usize,
}

/// Which clicks a report counts.
#[derive(Debug, Clone, Copy)]
pub enum StatsScope<'a> {
    Partner(&'a str),
    Program(&'a str),
}

/// One UTC day of clicks for a report scope.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DayClicks {
    /// Days since the Unix epoch (UTC).
    pub day: u32,
    pub total: u64,
    /// Clicks that were not duplicates of an earlier one (the dedup check's view).
    pub unique: u64,
    /// Indexed by `Verdict as usize`.
    pub by_verdict: [u64; Verdict::ALL.len()],
    /// Indexed by `Reason as usize`.
    pub by_reason: [u64; Reason::ALL.len()],
}

/// The core's click store: the durable log, the index and the daily counters.
pub struct Ingest {}

impl Ingest {
    /// Opens (or creates) the click log in `dir` and replays it into the index and counters.
    pub fn open(dir: &Path, config: &crate::config::Core, metrics: CoreMetrics, now_ms: u64) -> std::io::Result<Ingest> {
        let _ = (dir, config, metrics, now_ms);
        unimplemented!()
    }

    /// Appends the events whose click ids are not yet held, fsyncs, then indexes them.
    /// Returns only after the fsync: an `Ok` is an acknowledgement.
    pub fn ingest(&self, batch: &[ClickEvent]) -> std::io::Result<IngestStats> {
        let _ = batch;
        unimplemented!()
    }

    /// One click by id.
    pub fn click(&self, id: &ClickId) -> Option<IndexedClick> {
        let _ = id;
        unimplemented!()
    }

    /// A visitor's touches with `since_ms <= ts_ms <= until_ms`, oldest first.
    pub fn visitor_touches(&self, visitor: &VisitorId, since_ms: u64, until_ms: u64) -> Vec<IndexedClick> {
        let _ = (visitor, since_ms, until_ms);
        unimplemented!()
    }

    /// Daily click counters for a scope, days `from_day..=to_day`, oldest first; days without
    /// clicks are left out.
    pub fn click_stats(&self, scope: StatsScope<'_>, from_day: u32, to_day: u32) -> Vec<DayClicks> {
        let _ = (scope, from_day, to_day);
        unimplemented!()
    }

    /// Retention and compaction; run on a timer.
    pub fn maintain(&self, now_ms: u64) -> std::io::Result<()> {
        let _ = now_ms;
        unimplemented!()
    }
}
