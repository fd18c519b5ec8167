//! The click log: an append-only file of framed, checksummed events under the data dir.
//!
//! Each frame is `len:u32le | crc32(payload):u32le | payload`. A reader stops at the first
//! frame that is short or fails its checksum: that is a torn write from a crash, and nothing
//! after it was ever acknowledged.

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
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl ClickLog {
    /// The log file inside `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("clicks.log")
    }

    /// Opens the log for appending, creating it if needed.
    pub fn open(data_dir: &Path) -> io::Result<ClickLog> {
        let path = Self::path(data_dir);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(ClickLog {
            path,
            inner: Mutex::new(Inner {
                out: BufWriter::with_capacity(256 * 1024, file),
                scratch: Vec::with_capacity(512),
                last_sync: Instant::now(),
            }),
        })
    }

    /// Where the log lives.
    pub fn file_path(&self) -> &Path {
        &self.path
    }

    /// Appends events and flushes them to the OS; fsyncs when `sync_every` has passed.
    pub fn append(&self, events: &[ClickEvent], sync_every: std::time::Duration) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *g;
        for ev in events {
            inner.scratch.clear();
            ev.encode_into(&mut inner.scratch).map_err(io::Error::other)?;
            if inner.scratch.len() > FRAME_BYTES_MAX {
                return Err(io::Error::other("click event larger than a frame"));
            }
            inner.out.write_all(&(inner.scratch.len() as u32).to_le_bytes())?;
            inner.out.write_all(&crc32fast::hash(&inner.scratch).to_le_bytes())?;
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

/// Reads every intact event of a log, and how many bytes of torn tail follow them.
pub fn read_all(path: &Path) -> io::Result<(Vec<ClickEvent>, usize)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut events = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + 8 + len;
        if len > FRAME_BYTES_MAX || end > bytes.len() || crc32fast::hash(&bytes[at + 8..end]) != crc {
            break;
        }
        match ClickEvent::decode(&bytes[at + 8..end]) {
            Ok(ev) => events.push(ev),
            Err(_) => break,
        }
        at = end;
    }
    Ok((events, bytes.len() - at))
}
