//! The spool: a local, append-only, checksummed queue of click events on disk, with one durable
//! read cursor.
//!
//! It keeps clicks while whatever is downstream — JetStream for `clickgate edge`, the click log
//! when the embedded queue is full — cannot take them, and gives them back in order once it can.
//!
//! On disk it is a directory of segments named by the spool offset of their first byte
//! (`00000000000000000000.seg`, ...), each a run of frames `len:u32le | crc32(payload):u32le |
//! payload` (the click log's framing), plus a `cursor` file holding the committed read offset.
//! Offsets are global: they keep growing across segments, so a position names one byte of the
//! spool's whole history.
//!
//! - `Spool::append` writes a batch with one `write` and never waits on anything but the local
//!   disk; it fsyncs only when `sync_every` has passed. It refuses a batch that would push the
//!   bytes waiting past `bytes_max`, so disk use is bounded.
//! - `SpoolReader::next_batch` reads from the cursor on; `SpoolReader::commit` writes the cursor
//!   durably (temp file, fsync, rename) and then deletes segments read to their end.
//! - After a restart, reading resumes at the committed cursor, so events read but not committed
//!   are delivered again: at-least-once. Downstream drops repeats by click id.
//! - Opening cuts a torn tail (a crash mid-write) off the newest segment. A corrupt region
//!   anywhere else is logged and skipped frame by frame; it never stops the reader or panics.
//!
//! `drain` is the loop both users run: read a batch, hand it to a `SpoolSink`, commit, and wait
//! for the next append.
//!
//! One process owns a spool directory; two opening the same one would interleave their writes.
//!
//! A spool has an identity: 64 random bits written to the `id` file when the directory is first
//! opened (temp file, fsync, rename). Positions restart at 0 only in a new directory, which gets
//! a new id, so (id, position) names one event of one spool for good: the cluster publisher
//! builds its message ids from it. Copying a spool directory to a second edge copies its id.

mod drain;
mod files;
mod frames;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use tokio::sync::Notify;

use self::files::{create_segment, cut_torn_tail, read_cursor, read_or_create_id, remove_segment, write_cursor};
use self::frames::{walk, Step};
use super::ClickEvent;
use super::FRAME_BYTES_MAX;

pub use self::drain::{drain, SpoolSink};
pub(crate) use self::drain::{pause, stopped, with_reader};

const FRAME_HEADER_BYTES: usize = 8;
const SEGMENT_SUFFIX: &str = ".seg";
const CURSOR_FILE: &str = "cursor";
const CURSOR_TMP_FILE: &str = "cursor.tmp";
const ID_FILE: &str = "id";
const ID_TMP_FILE: &str = "id.tmp";
/// Bytes read per disk read. At least one whole frame, so a valid frame at the start of a read
/// always fits in it.
const READ_CHUNK_BYTES: usize = 256 * 1024;
const _: () = assert!(READ_CHUNK_BYTES >= FRAME_HEADER_BYTES + FRAME_BYTES_MAX);

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool I/O failed on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool is full: {pending_bytes} bytes waiting plus a {batch_bytes}-byte batch would pass bytes_max = {bytes_max}")]
    Full { pending_bytes: u64, batch_bytes: u64, bytes_max: u64 },
    #[error("click event could not be encoded: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("click event encodes to {0} bytes, more than a frame holds")]
    TooLarge(usize),
    #[error("the spool already has a reader; it has one cursor, so only one reader at a time")]
    ReaderTaken,
    #[error("the spool reader task panicked")]
    ReaderPanicked,
    #[error("spool id file {0} is corrupt; a spool's id must never change while its events are on their way")]
    BadId(PathBuf),
    #[error("no OS randomness for a new spool id: {0}")]
    NoRandomness(getrandom::Error),
}

impl From<SpoolError> for io::Error {
    fn from(e: SpoolError) -> io::Error {
        match e {
            SpoolError::Io { source, .. } => source,
            SpoolError::Full { .. } => io::Error::new(io::ErrorKind::StorageFull, e.to_string()),
            other => io::Error::other(other.to_string()),
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// A place in the spool: the offset just past an event's frame. Committing it means every event
/// up to and including that one is done with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position(pub u64);

/// Limits and durability.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// Appends are refused while the bytes waiting (after the cursor) plus the batch would pass
    /// this. Disk use stays under it plus one segment (the partly read oldest one).
    pub bytes_max: u64,
    /// A segment is closed and a new one started once it would pass this size.
    pub segment_bytes_max: u64,
    /// Appends fsync when this much time has passed since the last fsync; `Duration::MAX` leaves
    /// it to explicit `sync` calls.
    pub sync_every: Duration,
}

impl SpoolOptions {
    /// Segments of a sixteenth of `bytes_max` (64 KiB to 64 MiB), fsync every second.
    pub fn new(bytes_max: u64) -> SpoolOptions {
        SpoolOptions {
            bytes_max,
            segment_bytes_max: (bytes_max / 16).clamp(64 * 1024, 64 * 1024 * 1024),
            sync_every: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    start: u64,
    /// One past the last byte of complete frames in it.
    end: u64,
}

/// Segment bounds and the cursor, shared by the writer and the reader.
struct Shared {
    /// Oldest first; never empty. The last one is the one being appended to.
    segments: VecDeque<Segment>,
    committed: u64,
}

impl Shared {
    fn pending_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.end.saturating_sub(s.start.max(self.committed))).sum()
    }
}

struct Writer {
    file: File,
    start: u64,
    len: u64,
    /// Set after a failed write: the file may hold a partial batch past `len`, so the next append
    /// starts a fresh segment instead of appending after it.
    roll_next: bool,
    scratch: Vec<u8>,
    last_sync: Instant,
}

/// An open spool directory. Share it as `Arc<Spool>`: appends come from any thread, reads from
/// the one `SpoolReader`.
pub struct Spool {
    dir: PathBuf,
    id: u64,
    options: SpoolOptions,
    writer: Mutex<Writer>,
    shared: Mutex<Shared>,
    appended: Notify,
    reader_taken: AtomicBool,
    pending_gauge: Option<IntGauge>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves the data consistent (every update is a
    // plain store), so the spool keeps working.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}{SEGMENT_SUFFIX}"))
}

impl Spool {
    /// Opens (or creates) the spool in `dir` with default segment size and fsync interval.
    pub fn open(dir: &Path, bytes_max: u64) -> Result<Spool, SpoolError> {
        Spool::open_with(dir, SpoolOptions::new(bytes_max))
    }

    /// Opens (or creates) the spool in `dir`, cutting a torn tail off the newest segment.
    pub fn open_with(dir: &Path, options: SpoolOptions) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let mut starts = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else { continue };
            match stem.parse::<u64>() {
                Ok(start) if stem.len() == 20 => starts.push(start),
                _ => tracing::warn!(dir = %dir.display(), file = ?name, "spool directory holds a file that is not a segment; ignoring it"),
            }
        }
        starts.sort_unstable();
        let id = read_or_create_id(dir)?;
        let mut committed = read_cursor(dir)?;

        let mut segments = VecDeque::with_capacity(starts.len() + 1);
        for (i, &start) in starts.iter().enumerate() {
            let path = segment_path(dir, start);
            let file_len = std::fs::metadata(&path).map_err(io_at(&path))?.len();
            let end = match starts.get(i + 1) {
                // A closed segment: its frames stop where the next one starts. Bytes past that
                // (left by a failed write) are never read.
                Some(&next) => (start + file_len).min(next),
                None => start + cut_torn_tail(&path, file_len)?,
            };
            segments.push_back(Segment { start, end });
        }

        let last_end = segments.back().map_or(0, |s| s.end);
        if let Some(first) = segments.front() {
            committed = committed.max(first.start);
        }
        if segments.is_empty() || committed > last_end {
            if committed > last_end && !segments.is_empty() {
                // The cursor is past what survived: the tail was published, then lost with a
                // crash before its fsync. Appending resumes at the cursor so nothing new hides
                // behind it.
                tracing::warn!(dir = %dir.display(), cursor = committed, end = last_end, "spool cursor is past the end of the spool (its tail was lost in a crash); starting a new segment at the cursor");
            }
            let start = committed.max(last_end);
            create_segment(dir, start)?;
            segments.push_back(Segment { start, end: start });
        }
        // Segments read to their end whose deletion a crash interrupted.
        while segments.len() > 1 && segments[0].end <= committed {
            let s = segments.pop_front().expect("len > 1");
            remove_segment(dir, s.start);
        }

        let last = *segments.back().expect("at least one segment");
        let path = segment_path(dir, last.start);
        let file = OpenOptions::new().append(true).open(&path).map_err(io_at(&path))?;
        let spool = Spool {
            dir: dir.to_path_buf(),
            id,
            options,
            writer: Mutex::new(Writer {
                file,
                start: last.start,
                len: last.end - last.start,
                roll_next: false,
                scratch: Vec::with_capacity(64 * 1024),
                last_sync: Instant::now(),
            }),
            shared: Mutex::new(Shared { segments, committed }),
            appended: Notify::new(),
            reader_taken: AtomicBool::new(false),
            pending_gauge: None,
        };
        Ok(spool)
    }

    /// Keeps `gauge` set to `pending_bytes` after every append and commit.
    pub fn with_pending_gauge(mut self, gauge: IntGauge) -> Spool {
        gauge.set(self.pending_bytes() as i64);
        self.pending_gauge = Some(gauge);
        self
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The spool's identity, fixed when its directory was created (see the module docs).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes of events after the committed cursor.
    pub fn pending_bytes(&self) -> u64 {
        lock(&self.shared).pending_bytes()
    }

    fn update_gauge(&self, pending: u64) {
        if let Some(g) = &self.pending_gauge {
            g.set(pending as i64);
        }
    }

    /// Appends `events` in order with one write, flushed to the OS; fsyncs when `sync_every`
    /// has passed. Never touches the network. Refuses the whole batch with `SpoolError::Full`
    /// when it would pass `bytes_max`.
    pub fn append(&self, events: &[ClickEvent]) -> Result<(), SpoolError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut guard = lock(&self.writer);
        let w = &mut *guard;
        w.scratch.clear();
        for ev in events {
            // Each frame is assembled whole, so the one write never splits a header from its
            // payload except at a crash, which opening cuts off.
            let at = w.scratch.len();
            w.scratch.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
            ev.encode_into(&mut w.scratch)?;
            let len = w.scratch.len() - at - FRAME_HEADER_BYTES;
            if len > FRAME_BYTES_MAX {
                return Err(SpoolError::TooLarge(len));
            }
            let crc = crc32fast::hash(&w.scratch[at + FRAME_HEADER_BYTES..]);
            w.scratch[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
            w.scratch[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        }
        let batch = w.scratch.len() as u64;
        let pending = self.pending_bytes();
        if pending + batch > self.options.bytes_max {
            return Err(SpoolError::Full { pending_bytes: pending, batch_bytes: batch, bytes_max: self.options.bytes_max });
        }
        if w.roll_next || (w.len > 0 && w.len + batch > self.options.segment_bytes_max) {
            self.roll(w)?;
        }
        if let Err(source) = w.file.write_all(&w.scratch) {
            // A partial batch may sit past `len`. Cut it if we can; either way the next append
            // starts a new segment, and readers never look past `len` of this one.
            let _ = w.file.set_len(w.len);
            w.roll_next = true;
            return Err(SpoolError::Io { path: segment_path(&self.dir, w.start), source });
        }
        w.len += batch;
        let pending = {
            let mut shared = lock(&self.shared);
            if let Some(last) = shared.segments.back_mut() {
                last.end = w.start + w.len;
            }
            shared.pending_bytes()
        };
        if w.last_sync.elapsed() >= self.options.sync_every {
            // The batch is already with the OS, so a failed fsync does not refuse it: it is
            // logged, and the next segment starts clean.
            if let Err(e) = w.file.sync_data() {
                tracing::error!(dir = %self.dir.display(), error = %e, "spool fsync failed; events are with the OS but may not survive a power loss");
                w.roll_next = true;
            }
            w.last_sync = Instant::now();
        }
        drop(guard);
        self.update_gauge(pending);
        self.appended.notify_one();
        Ok(())
    }

    /// Fsyncs the segment being appended to.
    pub fn sync(&self) -> Result<(), SpoolError> {
        let mut w = lock(&self.writer);
        w.file.sync_data().map_err(io_at(&segment_path(&self.dir, w.start)))?;
        w.last_sync = Instant::now();
        Ok(())
    }

    /// Closes the current segment (fsynced) and starts a new one where it ends.
    fn roll(&self, w: &mut Writer) -> Result<(), SpoolError> {
        let old = segment_path(&self.dir, w.start);
        if w.len == 0 {
            // Nothing of the old segment is readable; start it over rather than leave an empty file.
            w.file.set_len(0).map_err(io_at(&old))?;
            w.roll_next = false;
            return Ok(());
        }
        w.file.sync_data().map_err(io_at(&old))?;
        let start = w.start + w.len;
        let file = create_segment(&self.dir, start)?;
        *w = Writer { file, start, len: 0, roll_next: false, scratch: std::mem::take(&mut w.scratch), last_sync: Instant::now() };
        let mut shared = lock(&self.shared);
        shared.segments.push_back(Segment { start, end: start });
        self.drop_consumed(&mut shared);
        Ok(())
    }

    /// Deletes closed segments wholly before the cursor.
    fn drop_consumed(&self, shared: &mut Shared) {
        while shared.segments.len() > 1 && shared.segments[0].end <= shared.committed {
            let s = shared.segments.pop_front().expect("len > 1");
            remove_segment(&self.dir, s.start);
        }
    }

    /// The reader, starting at the committed cursor. There is one cursor, so only one reader
    /// may exist at a time; dropping it frees the place.
    pub fn reader(self: &Arc<Self>) -> Result<SpoolReader, SpoolError> {
        if self.reader_taken.swap(true, Ordering::AcqRel) {
            return Err(SpoolError::ReaderTaken);
        }
        let pos = lock(&self.shared).committed;
        Ok(SpoolReader { spool: self.clone(), pos, file: None, buf: Vec::new() })
    }

    /// Resolves after an append made since the last call (or at once if there was one).
    pub async fn appended(&self) {
        self.appended.notified().await
    }
}

/// Events read from the spool, in order: the spool's bytes from `start` to `end`, the position
/// to commit once they are delivered.
#[derive(Debug, Default)]
pub struct SpoolBatch {
    pub events: Vec<ClickEvent>,
    pub start: Position,
    pub end: Position,
}

/// The spool's one reader.
pub struct SpoolReader {
    spool: Arc<Spool>,
    pos: u64,
    /// The segment being read, kept open between batches.
    file: Option<(u64, File)>,
    buf: Vec<u8>,
}

impl SpoolReader {
    /// Where the next read starts.
    pub fn position(&self) -> Position {
        Position(self.pos)
    }

    /// Whether this reader has read everything appended so far.
    pub fn caught_up(&self) -> bool {
        lock(&self.spool.shared).segments.back().is_none_or(|s| self.pos >= s.end)
    }

    /// Up to `len_max` events after the last read, in append order; empty when caught up.
    pub fn next_batch(&mut self, len_max: usize) -> Result<SpoolBatch, SpoolError> {
        self.next_batch_within(len_max, usize::MAX)
    }

    /// Like `next_batch`, and stops once the events' encoded bytes reach `bytes_max`, so a batch
    /// holds at most `bytes_max` plus one event (`FRAME_BYTES_MAX`).
    pub fn next_batch_within(&mut self, len_max: usize, bytes_max: usize) -> Result<SpoolBatch, SpoolError> {
        let mut events = Vec::new();
        let start = Position(self.pos);
        let mut bytes = 0usize;
        let mut full = false;
        while events.len() < len_max && !full {
            let seg = {
                let shared = lock(&self.spool.shared);
                shared.segments.iter().find(|s| s.end > self.pos).copied()
            };
            let Some(seg) = seg else { break };
            // Skips a gap left by a cursor that outran a lost tail.
            self.pos = self.pos.max(seg.start);
            let dir = &self.spool.dir;
            if self.file.as_ref().is_none_or(|(start, _)| *start != seg.start) {
                let path = segment_path(dir, seg.start);
                self.file = Some((seg.start, File::open(&path).map_err(io_at(&path))?));
            }
            let (_, file) = self.file.as_mut().expect("opened above");
            let path = || segment_path(dir, seg.start);
            self.pos = walk(file, seg.start, self.pos, seg.end, &mut self.buf, &mut |step| {
                match step {
                    Step::Frame { payload, end } => match ClickEvent::decode(payload) {
                        Ok(ev) => {
                            bytes += payload.len();
                            full = bytes >= bytes_max;
                            events.push(ev);
                        }
                        Err(e) => {
                            tracing::error!(path = %path().display(), offset = end, error = %e, "spool frame has a valid checksum but is not a click event; skipping it");
                        }
                    },
                    Step::Skipped { from, to } => {
                        tracing::error!(path = %path().display(), offset = from, bytes = to - from, "spool segment has a damaged region; skipping it");
                    }
                }
                events.len() < len_max && !full
            })
            .map_err(io_at(&path()))?;
        }
        // A batch starts where the last one ended, so the next read's `start` is this `end`.
        Ok(SpoolBatch { events, start, end: Position(self.pos) })
    }

    /// Durably moves the cursor to `to` (a position this reader has reached), then deletes the
    /// segments wholly before it. Positions at or before the cursor are a no-op.
    pub fn commit(&mut self, to: Position) -> Result<(), SpoolError> {
        debug_assert!(to.0 <= self.pos, "commit past what was read");
        let to = to.0.min(self.pos);
        if to <= lock(&self.spool.shared).committed {
            return Ok(());
        }
        // The cursor file is written outside the lock: appends must not wait on this fsync.
        // There is one reader, so nothing else moves the cursor meanwhile.
        write_cursor(&self.spool.dir, to)?;
        let pending = {
            let mut shared = lock(&self.spool.shared);
            shared.committed = to;
            self.spool.drop_consumed(&mut shared);
            shared.pending_bytes()
        };
        self.spool.update_gauge(pending);
        Ok(())
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        self.spool.reader_taken.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
