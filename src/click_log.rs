//! The core's durable click log: a directory of segment files of checksummed frames.
//!
//! A frame is `len:u32le | crc32(payload):u32le | payload`, the payload one `ClickEvent` in
//! rmp-serde with field names. `append_batch` encodes a whole batch into one buffer and makes
//! one `write` and one `fdatasync`: when it returns `Ok`, the batch is on disk.
//!
//! Segments are named by number, `{n:020}.log`; a segment made by compaction names the range
//! it replaced, `{first:020}-{last:020}.log`. Only the last segment is appended to; it is
//! sealed and a new one started when a batch would take it past `segment_bytes_max`.
//!
//! Recovery on `open`:
//! - the last segment may end in a torn frame (a crash mid-write, after the last fsync): it is
//!   cut off, since nothing after the last fsync was acknowledged;
//! - a bad frame in a sealed segment is corruption: it is logged with file and offset, and
//!   reading that segment stops there (the segment is kept for forensics, never compacted);
//! - `*.tmp` files are compactions that never finished and are deleted;
//! - a segment whose range lies inside a compacted segment's range is an original that a
//!   compaction had replaced but not yet deleted, and is deleted now.
//!
//! Every step of compaction leaves a state that `open` recovers without loss or duplicates:
//! the merged file is written as `.tmp`, fsynced, renamed to its final name, the directory
//! fsynced, and only then are the originals deleted. A privacy erase (`erase`) rewrites a
//! segment in place the same way: `.tmp`, fsync, rename over it, directory fsync.

mod compact;
mod erase;
mod frames;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::events::ClickEvent;

pub use compact::merge_segments;
pub use erase::Erased;

/// What the log knows about one segment without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    /// The first segment number this file covers.
    pub first: u64,
    /// The last segment number it covers: `first` unless compaction merged several.
    pub last: u64,
    /// Bytes of intact frames.
    pub bytes: u64,
    /// Events in those frames.
    pub events: u64,
    /// Oldest and newest event timestamps; both 0 while the segment holds no event.
    pub min_ts_ms: u64,
    pub max_ts_ms: u64,
    /// A bad frame was found here on open; what follows it is not read.
    pub corrupt: bool,
}

impl SegmentMeta {
    fn new(n: u64) -> SegmentMeta {
        SegmentMeta { first: n, last: n, bytes: 0, events: 0, min_ts_ms: 0, max_ts_ms: 0, corrupt: false }
    }

    /// The segment's file name.
    pub fn file_name(&self) -> String {
        if self.first == self.last {
            format!("{:020}.log", self.first)
        } else {
            format!("{:020}-{:020}.log", self.first, self.last)
        }
    }

    /// Parses a segment file name into (first, last).
    fn parse_name(name: &str) -> Option<(u64, u64)> {
        let stem = name.strip_suffix(".log")?;
        let digits = |s: &str| (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
        match stem.split_once('-') {
            None => digits(stem).map(|n| (n, n)),
            Some((a, b)) => Some((digits(a)?, digits(b)?)).filter(|(a, b)| a < b),
        }
    }

    /// Widens the timestamp range by one event.
    fn add_ts(&mut self, ts_ms: u64) {
        if self.events == 0 {
            (self.min_ts_ms, self.max_ts_ms) = (ts_ms, ts_ms);
        } else {
            (self.min_ts_ms, self.max_ts_ms) = (self.min_ts_ms.min(ts_ms), self.max_ts_ms.max(ts_ms));
        }
    }
}

/// What `SegmentLog::read` read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    pub segments: u64,
    pub events: u64,
    /// Frames that passed their checksum but did not decode.
    pub undecodable: u64,
    /// Segments whose reading stopped at a bad frame (the active one's torn tail, or corruption).
    pub cut_short: u64,
}

/// The open click log. Not shared: callers put it behind a lock.
pub struct SegmentLog {
    dir: PathBuf,
    segment_bytes_max: u64,
    /// Sealed segments, oldest first.
    sealed: Vec<SegmentMeta>,
    active: SegmentMeta,
    file: File,
    /// The encoded batch, reused.
    buf: Vec<u8>,
    /// Set when an fsync failed or a failed write could not be undone: what is on disk is then
    /// unknown, so nothing more is acknowledged until the log is reopened.
    failed: bool,
    /// The directory's lock file, held exclusively while the log is open: a second owner (a
    /// `clickgate privacy erase` beside a running server) is refused instead of writing
    /// behind the first one's back.
    _lock: File,
}

/// The lock file's name in the log's directory.
pub const LOCK_FILE: &str = "LOCK";

/// Takes the directory's lock, or says who holds it.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("the click log in {} is open in another process (a running clickgate serve or core?)", dir.display()),
        )),
        Err(e) => Err(e.into()),
    }
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir`, recovers it (see the module docs) and calls `each`
    /// with every intact event, oldest segment first, in file order.
    pub fn open(dir: &Path, segment_bytes_max: u64, mut each: impl FnMut(ClickEvent)) -> io::Result<SegmentLog> {
        fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let mut found = Vec::new();
        let mut removed = false;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                tracing::warn!(path = %entry.path().display(), "removing an unfinished compaction of the click log");
                fs::remove_file(entry.path())?;
                removed = true;
            } else if let Some((first, last)) = SegmentMeta::parse_name(name) {
                found.push(SegmentMeta { first, last, ..SegmentMeta::new(first) });
            }
        }
        // Widest range first among equal starts, so originals come after the merged file.
        found.sort_by_key(|s| (s.first, std::cmp::Reverse(s.last)));
        let mut segments: Vec<SegmentMeta> = Vec::with_capacity(found.len());
        for seg in found {
            match segments.last() {
                Some(prev) if seg.last <= prev.last => {
                    let path = dir.join(seg.file_name());
                    tracing::warn!(path = %path.display(), merged_into = %prev.file_name(), "removing a click log segment that a compaction replaced before a restart");
                    fs::remove_file(path)?;
                    removed = true;
                }
                Some(prev) if seg.first <= prev.last => {
                    // Cannot come from compaction, which merges whole segments; keep both so
                    // nothing is lost, and let the reader's id check drop the repeats.
                    tracing::error!(a = %prev.file_name(), b = %seg.file_name(), "click log segments overlap; keeping both");
                    segments.push(seg);
                }
                _ => segments.push(seg),
            }
        }
        if removed {
            sync_dir(dir)?;
        }
        let last = segments.len().checked_sub(1);
        for (i, seg) in segments.iter_mut().enumerate() {
            let path = dir.join(seg.file_name());
            let scan = frames::scan(&path, |_, ev| {
                if let Some(ev) = ev {
                    each(ev);
                }
            })?;
            (seg.bytes, seg.events, seg.min_ts_ms, seg.max_ts_ms) = (scan.intact_bytes, scan.events, scan.min_ts_ms, scan.max_ts_ms);
            if let Some((offset, why)) = scan.bad {
                if Some(i) == last {
                    tracing::warn!(path = %path.display(), offset, torn_bytes = scan.file_bytes - offset, why, "click log ends in a torn frame (a crash mid-write); cutting it off");
                    let f = OpenOptions::new().write(true).open(&path)?;
                    f.set_len(offset)?;
                    f.sync_all()?;
                } else {
                    tracing::error!(path = %path.display(), offset, why, "click log segment is corrupt; reading of it stops at this offset");
                    seg.corrupt = true;
                }
            }
        }
        let (sealed, active, file) = match segments.pop() {
            Some(seg) if seg.bytes < segment_bytes_max => {
                let file = OpenOptions::new().append(true).open(dir.join(seg.file_name()))?;
                (segments, seg, file)
            }
            Some(seg) => {
                let next = seg.last + 1;
                segments.push(seg);
                (segments, SegmentMeta::new(next), create_segment(dir, next)?)
            }
            None => (segments, SegmentMeta::new(0), create_segment(dir, 0)?),
        };
        Ok(SegmentLog {
            dir: dir.to_path_buf(),
            segment_bytes_max,
            sealed,
            active,
            file,
            buf: Vec::with_capacity(1 << 20),
            failed: false,
            _lock: lock,
        })
    }

    /// Reads the log in `dir` without changing it, beside a running writer: every intact
    /// event, oldest segment first, in file order. A torn tail is where reading of that segment
    /// ends; a segment a compaction replaced is skipped as `open` would delete it. A compaction
    /// that deletes a segment between listing and reading is an error: read again.
    pub fn read(dir: &Path, mut each: impl FnMut(ClickEvent)) -> io::Result<ReadReport> {
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            if let Some((first, last)) = name.to_str().and_then(SegmentMeta::parse_name) {
                found.push((first, last));
            }
        }
        found.sort_by_key(|&(first, last)| (first, std::cmp::Reverse(last)));
        let mut report = ReadReport::default();
        let mut covered: Option<u64> = None;
        for (first, last) in found {
            if covered.is_some_and(|c| last <= c) {
                continue;
            }
            covered = Some(last);
            let path = dir.join(SegmentMeta { first, last, ..SegmentMeta::new(first) }.file_name());
            let scan = frames::scan(&path, |_, ev| {
                if let Some(ev) = ev {
                    each(ev);
                }
            })
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => {
                    io::Error::new(e.kind(), format!("{} went while the log was read (a compaction); read again", path.display()))
                }
                _ => e,
            })?;
            report.segments += 1;
            report.events += scan.events;
            report.undecodable += scan.undecodable;
            report.cut_short += u64::from(scan.bad.is_some());
        }
        Ok(report)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a batch with one write and one fdatasync. `Ok` means every event is durable;
    /// on `Err` none is acknowledged (some may still be found after a restart). An event that
    /// does not encode fails the whole batch before anything is written.
    pub fn append_batch<'a>(&mut self, events: impl IntoIterator<Item = &'a ClickEvent>) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("click log failed after an earlier I/O error; reopen it to recover"));
        }
        self.buf.clear();
        let mut added = SegmentMeta::new(0);
        for ev in events {
            frames::encode(ev, &mut self.buf)?;
            added.add_ts(ev.ts_ms);
            added.events += 1;
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.active.bytes > 0 && self.active.bytes + self.buf.len() as u64 > self.segment_bytes_max {
            self.roll()?;
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            // Undo a partial write, so later batches never sit behind garbage that the next
            // open would cut off together with them.
            if self.file.set_len(self.active.bytes).is_err() {
                self.failed = true;
            }
            return Err(e);
        }
        if let Err(e) = self.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages: nothing written
            // since the last good fsync can be trusted, so stop acknowledging.
            self.failed = true;
            return Err(e);
        }
        let a = &mut self.active;
        if a.events == 0 {
            (a.min_ts_ms, a.max_ts_ms) = (added.min_ts_ms, added.max_ts_ms);
        } else {
            (a.min_ts_ms, a.max_ts_ms) = (a.min_ts_ms.min(added.min_ts_ms), a.max_ts_ms.max(added.max_ts_ms));
        }
        a.events += added.events;
        a.bytes += self.buf.len() as u64;
        Ok(())
    }

    /// Seals the active segment and starts the next.
    fn roll(&mut self) -> io::Result<()> {
        let next = self.active.last + 1;
        let file = create_segment(&self.dir, next)?;
        let sealed = std::mem::replace(&mut self.active, SegmentMeta::new(next));
        self.sealed.push(sealed);
        self.file = file;
        Ok(())
    }

    /// Calls `each` with every intact event, oldest first (reads the files again).
    pub fn replay(&self, mut each: impl FnMut(ClickEvent)) -> io::Result<()> {
        for seg in self.segments() {
            let path = self.dir.join(seg.file_name());
            frames::scan(&path, |_, ev| {
                if let Some(ev) = ev {
                    each(ev);
                }
            })?;
        }
        Ok(())
    }

    /// Every segment, oldest first; the last is the active one.
    pub fn segments(&self) -> impl Iterator<Item = &SegmentMeta> {
        self.sealed.iter().chain(std::iter::once(&self.active))
    }

    /// Bytes of intact frames in all segments.
    pub fn bytes(&self) -> u64 {
        self.segments().map(|s| s.bytes).sum()
    }

    /// Segment files.
    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Retention: deletes the sealed segments whose newest event is older than `before_ms`
    /// (never the active one). Returns how many were deleted.
    pub fn expire(&mut self, before_ms: u64) -> io::Result<usize> {
        let mut deleted = 0;
        let mut result = Ok(());
        self.sealed.retain(|seg| {
            if result.is_err() || seg.max_ts_ms >= before_ms {
                return true;
            }
            match fs::remove_file(self.dir.join(seg.file_name())) {
                Ok(()) => {
                    tracing::info!(segment = %seg.file_name(), events = seg.events, newest_ts_ms = seg.max_ts_ms, "click log segment expired");
                    deleted += 1;
                    false
                }
                Err(e) => {
                    result = Err(e);
                    true
                }
            }
        });
        if deleted > 0 {
            sync_dir(&self.dir)?;
        }
        result.map(|()| deleted)
    }

    /// Groups of adjacent sealed segments, each smaller than `bytes_min`, that compaction
    /// would merge: at least two per group, together at most `segment_bytes_max`.
    pub fn compaction_plan(&self, bytes_min: u64) -> Vec<Vec<SegmentMeta>> {
        let mut groups = Vec::new();
        let mut run: Vec<SegmentMeta> = Vec::new();
        let mut run_bytes = 0;
        for seg in &self.sealed {
            let fits = !seg.corrupt && seg.bytes < bytes_min;
            if !fits || run_bytes + seg.bytes > self.segment_bytes_max {
                if run.len() >= 2 {
                    groups.push(std::mem::take(&mut run));
                }
                run.clear();
                run_bytes = 0;
            }
            if fits {
                run_bytes += seg.bytes;
                run.push(seg.clone());
            }
        }
        if run.len() >= 2 {
            groups.push(run);
        }
        groups
    }

    /// Puts a segment made by `merge_segments` in place of the group it merged and deletes
    /// the originals. The merged file is already durable under its final name, so a crash
    /// here leaves originals that `open` recognises and removes.
    pub fn install_merged(&mut self, group: &[SegmentMeta], merged: SegmentMeta) -> io::Result<()> {
        let at = self.sealed.iter().position(|s| Some(s) == group.first());
        let Some(at) = at.filter(|&at| self.sealed.get(at..at + group.len()) == Some(group)) else {
            return Err(io::Error::other("compacted segments are no longer in the click log"));
        };
        debug_assert_eq!((merged.first, merged.last), (group[0].first, group[group.len() - 1].last));
        self.sealed.splice(at..at + group.len(), [merged]);
        for seg in group {
            fs::remove_file(self.dir.join(seg.file_name()))?;
        }
        sync_dir(&self.dir)
    }

    /// Compaction in one call: plans, merges and installs every group. Returns how many
    /// segments were rewritten. (`Ingest` merges outside its lock with the three steps.)
    pub fn compact(&mut self, bytes_min: u64) -> io::Result<usize> {
        let mut rewritten = 0;
        for group in self.compaction_plan(bytes_min) {
            let merged = merge_segments(&self.dir, &group)?;
            self.install_merged(&group, merged)?;
            rewritten += group.len();
        }
        Ok(rewritten)
    }
}

/// Creates an empty segment file and makes its directory entry durable. An empty file of that
/// name is taken over: a roll whose directory fsync failed leaves one behind.
fn create_segment(dir: &Path, n: u64) -> io::Result<File> {
    let path = dir.join(SegmentMeta::new(n).file_name());
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    if file.metadata()?.len() > 0 {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("click log segment {} already holds data", path.display())));
    }
    sync_dir(dir)?;
    Ok(file)
}

/// fsyncs a directory, so created, renamed and deleted entries survive a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
