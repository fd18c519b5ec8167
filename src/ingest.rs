//! Core ingest: batches of click events into the durable click log, the attribution index and
//! the daily counters.
//!
//! One batch: under the log's mutex, drop the events whose click id the index already holds
//! (and repeats inside the batch), append the rest with one write and one fdatasync, then take
//! the index's write lock, a slice of the batch at a time, only to insert them. Writers are
//! serialized by the log mutex and only writers change the index, so an id checked absent
//! stays absent until it is indexed: two concurrent batches carrying one id write it once.
//! Readers take the index's read lock and so never wait on an fsync.
//!
//! On open the whole log is replayed through the same `ClickIndex` insert decisions, in log
//! order, so the index and the counters come back as they were. What this does not cover:
//! - idempotency reaches as far back as the index: a click id redelivered after its click was
//!   evicted (`core.index_clicks_max` newer clicks later) is written and counted again;
//! - counters keep only the UTC days that retention has not cut into (see `stats`), so that a
//!   restart, which counts what is left in the log, agrees with them;
//! - compaction drops a repeated id that the live counters had counted (only possible for the
//!   redelivery-after-eviction case above, within one merged group).

mod stats;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use super::click_log::{merge_segments, Erased, SegmentLog, SegmentMeta};
use super::index::{ClickIndex, IndexedClick};
use crate::events::ClickEvent;
use crate::metrics::CoreMetrics;
use crate::model::{ClickId, VisitorId};
use crate::model::{Reason, Verdict};

pub use stats::DAY_MS;
use stats::{first_kept_day, DailyCounts};

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
    /// A link, by code.
    Link(&'a str),
    /// A channel's clicks, all of them or those of one program or one partner.
    Channel(crate::model::Channel, ChannelFilter<'a>),
}

/// Which of a channel's clicks a report counts.
#[derive(Debug, Clone, Copy)]
pub enum ChannelFilter<'a> {
    All,
    Program(&'a str),
    Partner(&'a str),
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
pub struct Ingest {
    dir: PathBuf,
    log: Mutex<SegmentLog>,
    index: RwLock<ClickIndex>,
    counts: RwLock<DailyCounts>,
    /// One `maintain` at a time: compaction merges sealed segments outside the log's mutex.
    maintaining: Mutex<()>,
    metrics: CoreMetrics,
    retention_days: u32,
    compact_segment_bytes_min: u64,
    batch_len_max: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Ingest {
    /// The click log's directory: `config.click_log_dir`, inside `data_dir` when relative.
    pub fn log_dir(data_dir: &Path, config: &crate::config::Core) -> PathBuf {
        data_dir.join(&config.click_log_dir)
    }

    /// Opens (or creates) the click log in `dir` (see `log_dir`) and replays it into the index
    /// and counters. Counters keep the days that retention at `now_ms` leaves whole.
    pub fn open(dir: &Path, config: &crate::config::Core, metrics: CoreMetrics, now_ms: u64) -> std::io::Result<Ingest> {
        let started = Instant::now();
        let mut counts = DailyCounts::default();
        counts.keep_from(first_kept_day(now_ms, config.retention_days));
        let mut rebuild = Rebuild {
            index: ClickIndex::new(config.index_clicks_max, config.index_visitor_touches_max),
            counts,
            pending: Vec::with_capacity(REPLAY_BATCH_LEN),
            events: 0,
            repeats: 0,
        };
        let log = SegmentLog::open(dir, config.segment_bytes_max, |ev| rebuild.push(ev))?;
        rebuild.flush();
        let Rebuild { index, counts, events, repeats, .. } = rebuild;
        tracing::info!(
            dir = %dir.display(),
            events,
            repeats,
            clicks = index.len(),
            visitors = index.visitors(),
            segments = log.segment_count(),
            seconds = started.elapsed().as_secs_f64(),
            "click log replayed into the attribution index"
        );
        metrics.index_evictions.inc_by(index.evictions());
        let ingest = Ingest {
            dir: dir.to_path_buf(),
            log: Mutex::new(log),
            index: RwLock::new(index),
            counts: RwLock::new(counts),
            maintaining: Mutex::new(()),
            metrics,
            retention_days: config.retention_days,
            compact_segment_bytes_min: config.compact_segment_bytes_min,
            batch_len_max: config.ingest_batch_len_max.max(1),
        };
        ingest.set_log_gauges(&lock(&ingest.log));
        ingest.set_index_gauges(&read(&ingest.index));
        Ok(ingest)
    }

    fn set_log_gauges(&self, log: &SegmentLog) {
        self.metrics.log_bytes.set(log.bytes() as i64);
        self.metrics.log_segments.set(log.segment_count() as i64);
    }

    fn set_index_gauges(&self, index: &ClickIndex) {
        self.metrics.index_clicks.set(index.len() as i64);
        self.metrics.index_visitors.set(index.visitors() as i64);
    }

    /// Appends the events whose click ids are not yet held, fsyncs, then indexes them.
    /// Returns only after the fsync: an `Ok` is an acknowledgement. A batch longer than
    /// `ingest_batch_len_max` is written as several; on `Err` some of them may be durable,
    /// and sending the whole batch again writes only the rest. After a failed fsync every
    /// later call fails until the store is reopened (what reached the disk is then unknown).
    pub fn ingest(&self, batch: &[ClickEvent]) -> std::io::Result<IngestStats> {
        let mut total = IngestStats::default();
        for chunk in batch.chunks(self.batch_len_max) {
            let s = self.ingest_chunk(chunk)?;
            total.written += s.written;
            total.duplicates += s.duplicates;
        }
        Ok(total)
    }

    fn ingest_chunk(&self, chunk: &[ClickEvent]) -> std::io::Result<IngestStats> {
        let started = Instant::now();
        let mut log = lock(&self.log);
        let fresh: Vec<&ClickEvent> = {
            let index = read(&self.index);
            let mut in_batch: HashSet<ClickId, foldhash::fast::RandomState> =
                HashSet::with_capacity_and_hasher(chunk.len(), Default::default());
            chunk.iter().filter(|ev| !index.contains(&ev.click_id) && in_batch.insert(ev.click_id)).collect()
        };
        let stats = IngestStats { written: fresh.len(), duplicates: chunk.len() - fresh.len() };
        if fresh.is_empty() {
            self.metrics.duplicates.inc_by(stats.duplicates as u64);
            return Ok(stats);
        }
        log.append_batch(fresh.iter().copied())?;
        self.metrics.duplicates.inc_by(stats.duplicates as u64);
        self.set_log_gauges(&log);
        // Indexed a slice at a time, so a reader waits for at most one slice: every click here
        // is durable already, so a reader seeing part of the batch sees nothing unacknowledged.
        for part in fresh.chunks(INDEX_LOCK_LEN) {
            let mut index = write(&self.index);
            let evictions = index.evictions();
            let mut counts = write(&self.counts);
            index.insert_batch(part, |ev, inserted| {
                debug_assert!(inserted, "checked absent under the same log lock");
                if inserted {
                    counts.add(ev);
                }
            });
            self.metrics.index_evictions.inc_by(index.evictions() - evictions);
            self.set_index_gauges(&index);
        }
        drop(log);
        self.metrics.ingested.inc_by(stats.written as u64);
        self.metrics.batches.inc();
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        Ok(stats)
    }

    /// One click by id.
    pub fn click(&self, id: &ClickId) -> Option<IndexedClick> {
        read(&self.index).click(id)
    }

    /// Whether a click id is held.
    pub fn contains(&self, id: &ClickId) -> bool {
        read(&self.index).contains(id)
    }

    /// The click log's segments, oldest first; the last is the one being appended to.
    pub fn segments(&self) -> Vec<SegmentMeta> {
        lock(&self.log).segments().cloned().collect()
    }

    /// Clicks the index holds.
    pub fn clicks_held(&self) -> usize {
        read(&self.index).len()
    }

    /// A visitor's touches with `since_ms <= ts_ms <= until_ms`, oldest first.
    pub fn visitor_touches(&self, visitor: &VisitorId, since_ms: u64, until_ms: u64) -> Vec<IndexedClick> {
        read(&self.index).visitor_touches(visitor, since_ms, until_ms)
    }

    /// Daily click counters for a scope, days `from_day..=to_day`, oldest first; days without
    /// clicks are left out.
    pub fn click_stats(&self, scope: StatsScope<'_>, from_day: u32, to_day: u32) -> Vec<DayClicks> {
        read(&self.counts).get(scope, from_day, to_day)
    }

    /// Retention and compaction; run on a timer. Compaction merges sealed (immutable) segments
    /// without the log's mutex, so ingest waits only for the swap.
    pub fn maintain(&self, now_ms: u64) -> std::io::Result<()> {
        let _one = lock(&self.maintaining);
        let horizon_ms = now_ms.saturating_sub(u64::from(self.retention_days) * DAY_MS);
        let plan = {
            let mut log = lock(&self.log);
            let expired = log.expire(horizon_ms);
            self.set_log_gauges(&log);
            self.metrics.segments_expired.inc_by(expired? as u64);
            log.compaction_plan(self.compact_segment_bytes_min)
        };
        // Days that retention may have cut into are no longer reported, as after a restart.
        write(&self.counts).keep_from(first_kept_day(now_ms, self.retention_days));
        for group in plan {
            let merged = merge_segments(&self.dir, &group)?;
            let mut log = lock(&self.log);
            log.install_merged(&group, merged)?;
            self.metrics.segments_compacted.inc_by(group.len() as u64);
            self.set_log_gauges(&log);
        }
        Ok(())
    }
}

impl Ingest {
    /// Privacy erase of one visitor: the log's segments holding its clicks are rewritten with
    /// them anonymised (`anonymise`), then the index is rebuilt from the log, so neither holds
    /// its id, address, agent or client tag. The clicks stay, with their verdicts, times and
    /// links, so counts and attributions already made do not change. Holds the log's lock (and
    /// keeps `maintain` out) throughout: clicks arriving meanwhile wait.
    pub fn erase_visitor(&self, visitor: &VisitorId) -> std::io::Result<Erased> {
        let _one = lock(&self.maintaining);
        let mut log = lock(&self.log);
        // A fresh id per erase: the anonymised clicks are nobody's journey, not one shared one.
        let anon = VisitorId::random();
        let erased = log.erase(|ev| ev.visitor_id == *visitor, |ev| anonymise(ev, anon))?;
        self.set_log_gauges(&log);
        if erased.clicks > 0 {
            let mut index = read(&self.index).empty_like();
            let mut pending: Vec<ClickEvent> = Vec::with_capacity(REPLAY_BATCH_LEN);
            let flush = |index: &mut ClickIndex, pending: &mut Vec<ClickEvent>| {
                let refs: Vec<&ClickEvent> = pending.iter().collect();
                index.insert_batch(&refs, |_, _| {});
                pending.clear();
            };
            log.replay(|ev| {
                pending.push(ev);
                if pending.len() == REPLAY_BATCH_LEN {
                    flush(&mut index, &mut pending);
                }
            })?;
            flush(&mut index, &mut pending);
            *write(&self.index) = index;
        }
        Ok(erased)
    }
}

/// A click with nothing left that tells who made it: the visitor id replaced, and the address,
/// its hash, the agent, the keyed client tag, the sub-ids, country and network cleared.
pub fn anonymise(ev: &mut ClickEvent, anon: VisitorId) {
    ev.visitor_id = anon;
    ev.ip = None;
    ev.ip_hash = None;
    ev.ua = None;
    ev.ua_hash = 0;
    ev.client_tag = None;
    ev.sub_ids = None;
    ev.country = None;
    ev.asn = 0;
}

/// Clicks indexed per hold of the index's write lock (well under a millisecond).
const INDEX_LOCK_LEN: usize = 512;

/// Events replayed into the index at a time on open.
const REPLAY_BATCH_LEN: usize = 1024;

/// The index and counters being rebuilt from the log, fed in batches so that
/// `ClickIndex::insert_batch` can overlap its cache misses.
struct Rebuild {
    index: ClickIndex,
    counts: DailyCounts,
    pending: Vec<ClickEvent>,
    events: u64,
    /// Events whose id was already held: only a log written by something else has them.
    repeats: u64,
}

impl Rebuild {
    fn push(&mut self, ev: ClickEvent) {
        self.pending.push(ev);
        if self.pending.len() == REPLAY_BATCH_LEN {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let Rebuild { index, counts, pending, events, repeats } = self;
        let refs: Vec<&ClickEvent> = pending.iter().collect();
        index.insert_batch(&refs, |ev, inserted| {
            *events += 1;
            if inserted {
                counts.add(ev);
            } else {
                *repeats += 1;
            }
        });
        pending.clear();
    }
}

#[cfg(test)]
mod tests;
