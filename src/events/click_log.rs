//! The click log: an append-only file of framed, checksummed events under the data dir.
//!
//! Each frame is `len:u32le | crc32(payload):u32le | payload`, written with one `write_all`.
//! A reader stops at the first frame that is short or fails its checksum: a torn write from a
//! crash. Opening the log cuts such a tail off before appending, so what is written after a
//! restart is never hidden behind it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use super::ClickEvent;

/// Frames larger than this are corrupt by definition.
pub const FRAME_BYTES_MAX: usize = 64 * 1024;

struct Inner {
    out: BufWriter<File>,
    scratch: Vec<u8>,
    last_sync: Instant,
}

/// An open click log, shared by the queue consumer and the overflow path.
pub struct ClickLog {
    inner: Mutex<Inner>,
}

impl ClickLog {
    /// The log file inside `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("clicks.log")
    }

    /// Opens the log for appending, creating it if needed and cutting off a torn tail.
    pub fn open(data_dir: &Path) -> io::Result<ClickLog> {
        let path = Self::path(data_dir);
        if path.exists() {
            let (good, torn) = intact_len(&path)?;
            if torn > 0 {
                tracing::warn!(path = %path.display(), torn_bytes = torn, "click log ends in a torn frame (a crash mid-write); cutting it off");
                OpenOptions::new().write(true).open(&path)?.set_len(good as u64)?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(ClickLog {
            inner: Mutex::new(Inner {
                out: BufWriter::with_capacity(256 * 1024, file),
                scratch: Vec::with_capacity(512),
                last_sync: Instant::now(),
            }),
        })
    }

    /// Appends events and flushes them to the OS; fsyncs when `sync_every` has passed.
    pub fn append(&self, events: &[ClickEvent], sync_every: std::time::Duration) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *g;
        for ev in events {
            // The frame is assembled whole, so a flush of the buffer never splits a header from
            // its payload in the file.
            inner.scratch.clear();
            inner.scratch.extend_from_slice(&[0u8; 8]);
            ev.encode_into(&mut inner.scratch).map_err(io::Error::other)?;
            let len = inner.scratch.len() - 8;
            if len > FRAME_BYTES_MAX {
                return Err(io::Error::other("click event larger than a frame"));
            }
            let crc = crc32fast::hash(&inner.scratch[8..]);
            inner.scratch[..4].copy_from_slice(&(len as u32).to_le_bytes());
            inner.scratch[4..8].copy_from_slice(&crc.to_le_bytes());
            inner.out.write_all(&inner.scratch)?;
        }
        inner.out.flush()?;
        if inner.last_sync.elapsed() >= sync_every {
            inner.out.get_ref().sync_data()?;
            inner.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Flushes and fsyncs.
    pub fn sync(&self) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.out.flush()?;
        g.out.get_ref().sync_data()
    }
}

/// Walks the intact frames of `bytes`, calling `each` with every payload; returns the length
/// of the intact prefix.
fn walk(bytes: &[u8], mut each: impl FnMut(&[u8]) -> bool) -> usize {
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + 8 + len;
        if len > FRAME_BYTES_MAX || end > bytes.len() || crc32fast::hash(&bytes[at + 8..end]) != crc || !each(&bytes[at + 8..end]) {
            break;
        }
        at = end;
    }
    at
}

/// (bytes of intact frames, bytes of torn tail after them).
fn intact_len(path: &Path) -> io::Result<(usize, usize)> {
    let bytes = std::fs::read(path)?;
    let good = walk(&bytes, |payload| ClickEvent::decode(payload).is_ok());
    Ok((good, bytes.len() - good))
}

/// Reads every intact event of a log, and how many bytes of torn tail follow them.
pub fn read_all(path: &Path) -> io::Result<(Vec<ClickEvent>, usize)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut events = Vec::new();
    let good = walk(&bytes, |payload| match ClickEvent::decode(payload) {
        Ok(ev) => {
            events.push(ev);
            true
        }
        Err(_) => false,
    });
    Ok((events, bytes.len() - good))
}
