//! Frames: `len:u32le | crc32(payload):u32le | payload`, the payload one `ClickEvent` in
//! rmp-serde with field names.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::events::ClickEvent;
use crate::events::FRAME_BYTES_MAX;

/// Bytes in a frame header.
pub(super) const HEADER_BYTES: usize = 8;

/// Appends one framed event to `buf`. On error `buf` is left as it was.
pub(super) fn encode(ev: &ClickEvent, buf: &mut Vec<u8>) -> io::Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER_BYTES]);
    if let Err(e) = ev.encode_into(buf) {
        buf.truncate(start);
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("click event {:?} does not encode: {e}", ev.click_id)));
    }
    let len = buf.len() - start - HEADER_BYTES;
    if len > FRAME_BYTES_MAX {
        buf.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("click event {:?} encodes to {len} bytes, more than a frame's {FRAME_BYTES_MAX}", ev.click_id),
        ));
    }
    let crc = crc32fast::hash(&buf[start + HEADER_BYTES..]);
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[start + 4..start + HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What reading one segment found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Bytes of intact frames from the start of the file: where a reader stopped.
    pub intact_bytes: u64,
    /// Bytes in the file.
    pub file_bytes: u64,
    /// Events decoded.
    pub events: u64,
    pub min_ts_ms: u64,
    pub max_ts_ms: u64,
    /// Frames whose checksum held but whose payload did not decode (a newer or buggy writer);
    /// they are skipped, not treated as the end.
    pub undecodable: u64,
    /// Where and why reading stopped early, if it did.
    pub bad: Option<(u64, &'static str)>,
}

/// Reads the intact frames of a segment in order, calling `each(frame, event)` with the whole
/// frame (header included) and its event (`None` when the payload does not decode). Stops at
/// the first short or mismatching frame and reports where.
pub(super) fn scan(path: &Path, mut each: impl FnMut(&[u8], Option<ClickEvent>)) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_bytes = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut scan = Scan { file_bytes, min_ts_ms: u64::MAX, ..Scan::default() };
    let mut frame = Vec::with_capacity(4096);
    loop {
        frame.resize(HEADER_BYTES, 0);
        let got = read_full(&mut r, &mut frame)?;
        if got == 0 {
            break;
        }
        if got < HEADER_BYTES {
            scan.bad = Some((scan.intact_bytes, "short frame header"));
            break;
        }
        let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
        if len > FRAME_BYTES_MAX {
            scan.bad = Some((scan.intact_bytes, "frame length out of range"));
            break;
        }
        frame.resize(HEADER_BYTES + len, 0);
        if read_full(&mut r, &mut frame[HEADER_BYTES..])? < len {
            scan.bad = Some((scan.intact_bytes, "short frame payload"));
            break;
        }
        if crc32fast::hash(&frame[HEADER_BYTES..]) != crc {
            scan.bad = Some((scan.intact_bytes, "frame checksum mismatch"));
            break;
        }
        let ev = ClickEvent::decode(&frame[HEADER_BYTES..]).ok();
        match &ev {
            Some(ev) => {
                scan.events += 1;
                scan.min_ts_ms = scan.min_ts_ms.min(ev.ts_ms);
                scan.max_ts_ms = scan.max_ts_ms.max(ev.ts_ms);
            }
            None => {
                tracing::error!(path = %path.display(), offset = scan.intact_bytes, "click log frame passes its checksum but does not decode; skipping it");
                scan.undecodable += 1;
            }
        }
        each(&frame, ev);
        scan.intact_bytes += frame.len() as u64;
    }
    if scan.events == 0 {
        scan.min_ts_ms = 0;
    }
    Ok(scan)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
