//! Frames on disk: finding them, and stepping over damage.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::{FRAME_BYTES_MAX, FRAME_HEADER_BYTES, READ_CHUNK_BYTES};

/// What `walk` found.
pub(super) enum Step<'a> {
    /// An intact frame; `end` is the offset just past it.
    Frame { payload: &'a [u8], end: u64 },
    /// Bytes that are no frame at all: damage, skipped.
    Skipped { from: u64, to: u64 },
}

enum Parse {
    Frame(usize),
    /// A plausible header whose frame runs past the bytes at hand: read again from here.
    Partial,
    Corrupt,
}

/// Looks for a frame at the start of `bytes`; `at_end` says no bytes follow them.
fn parse(bytes: &[u8], at_end: bool) -> Parse {
    let more = if at_end { Parse::Corrupt } else { Parse::Partial };
    if bytes.len() < FRAME_HEADER_BYTES {
        return more;
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    // Zero-length frames do not exist (an event always encodes to something); refusing them
    // keeps a zero-filled region from reading as a run of empty frames.
    if len == 0 || len > FRAME_BYTES_MAX {
        return Parse::Corrupt;
    }
    if bytes.len() < FRAME_HEADER_BYTES + len {
        return more;
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len]) == crc {
        Parse::Frame(len)
    } else {
        Parse::Corrupt
    }
}

/// Walks the frames of the segment in `file` (starting at spool offset `seg_start`) from offset
/// `from` to `to`, calling `each` with every frame and every run of damaged bytes. Damage is
/// skipped byte by byte until a frame with a valid checksum starts again. Stops early when
/// `each` returns false; returns the offset reached.
pub(super) fn walk(
    file: &mut File,
    seg_start: u64,
    from: u64,
    to: u64,
    buf: &mut Vec<u8>,
    each: &mut dyn FnMut(Step<'_>) -> bool,
) -> io::Result<u64> {
    let mut pos = from;
    let mut damaged_from: Option<u64> = None;
    while pos < to {
        let want = (to - pos).min(READ_CHUNK_BYTES as u64) as usize;
        buf.resize(want, 0);
        file.seek(SeekFrom::Start(pos - seg_start))?;
        file.read_exact(&mut buf[..want])?;
        let at_end = pos + want as u64 == to;
        let mut at = 0;
        while at < want {
            match parse(&buf[at..want], at_end) {
                Parse::Frame(len) => {
                    if let Some(from) = damaged_from.take() {
                        each(Step::Skipped { from, to: pos + at as u64 });
                    }
                    let end = at + FRAME_HEADER_BYTES + len;
                    let go_on = each(Step::Frame { payload: &buf[at + FRAME_HEADER_BYTES..end], end: pos + end as u64 });
                    at = end;
                    if !go_on {
                        return Ok(pos + at as u64);
                    }
                }
                // A read starting here holds at least a whole frame, so `at > 0` and the loop
                // moves on.
                Parse::Partial if at > 0 => break,
                Parse::Partial | Parse::Corrupt => {
                    damaged_from.get_or_insert(pos + at as u64);
                    at += 1;
                }
            }
        }
        pos += at as u64;
    }
    if let Some(from) = damaged_from {
        each(Step::Skipped { from, to: pos });
    }
    Ok(pos)
}
