//! The wire format of click messages: one message carries a batch of consecutive spool events.
//!
//! A batch payload is the byte `0xC1`, the format version (`1`), then per event `len:u32le |
//! event` (the event's rmp-serde encoding, `ClickEvent::encode_into`). MessagePack never uses the
//! byte `0xC1`, so no single encoded event starts with it: a payload that does not is one event
//! alone, as edges sent before batching, and the core still takes it.
//!
//! A batch's `Nats-Msg-Id` is `<spool id>.<start>.<end>.<digest>`: the edge's spool id (16 hex
//! digits, `Spool::id`), the spool positions its events span (hex) and the xxh3-64 of the payload
//! (16 hex digits). See `publish` for why that makes a republish a repeat and nothing else.

use crate::events::ClickEvent;

/// The first byte of a batch payload; never the first byte of a MessagePack value.
pub const BATCH_MAGIC: u8 = 0xC1;
/// The batch format this build writes and reads.
pub const BATCH_VERSION: u8 = 1;
/// Bytes of encoded events after which a message is closed. Under nats-server's default
/// `max_payload` (1 MiB) with room for one more event of `FRAME_BYTES_MAX`.
pub const MESSAGE_EVENT_BYTES_MAX: usize = 512 * 1024;

const HEADER_BYTES: usize = 2;
const LEN_BYTES: usize = 4;

/// Why a payload is not a batch the core can read. Each is counted as poison.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch format version {0} is unknown to this build")]
    UnknownVersion(u8),
    #[error("batch payload is cut short at byte {0}")]
    Truncated(usize),
    #[error("batch payload holds no events")]
    Empty,
    #[error("message is neither a batch nor a click event: {0}")]
    NotAnEvent(String),
}

/// Encodes `events` as one batch payload into `buf` (cleared first).
pub fn encode(events: &[ClickEvent], buf: &mut Vec<u8>) -> Result<(), rmp_serde::encode::Error> {
    buf.clear();
    buf.extend_from_slice(&[BATCH_MAGIC, BATCH_VERSION]);
    for ev in events {
        let at = buf.len();
        buf.extend_from_slice(&[0; LEN_BYTES]);
        ev.encode_into(buf)?;
        let len = (buf.len() - at - LEN_BYTES) as u32;
        buf[at..at + LEN_BYTES].copy_from_slice(&len.to_le_bytes());
    }
    Ok(())
}

/// What `decode` found in one payload.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Events appended to the output.
    pub events: usize,
    /// Frames of the batch that held no click event; the others were kept.
    pub bad_events: usize,
}

/// Appends the events of a message payload (a batch, or one event alone) to `out`.
///
/// A frame that is not a click event is skipped and counted; a payload whose framing is broken,
/// of an unknown version or that is no event at all is an error, and nothing is appended.
pub fn decode(payload: &[u8], out: &mut Vec<ClickEvent>) -> Result<Decoded, BatchError> {
    if payload.first() != Some(&BATCH_MAGIC) {
        let ev = ClickEvent::decode(payload).map_err(|e| BatchError::NotAnEvent(e.to_string()))?;
        out.push(ev);
        return Ok(Decoded { events: 1, bad_events: 0 });
    }
    match payload.get(1) {
        Some(&BATCH_VERSION) => {}
        Some(&v) => return Err(BatchError::UnknownVersion(v)),
        None => return Err(BatchError::Truncated(1)),
    }
    let frames = frames(payload)?;
    let before = out.len();
    let mut decoded = Decoded::default();
    for frame in frames {
        match ClickEvent::decode(frame) {
            Ok(ev) => out.push(ev),
            Err(_) => decoded.bad_events += 1,
        }
    }
    decoded.events = out.len() - before;
    Ok(decoded)
}

/// How many events a message payload carries, without decoding them.
pub fn event_count(payload: &[u8]) -> Result<usize, BatchError> {
    match payload {
        [BATCH_MAGIC, BATCH_VERSION, ..] => Ok(frames(payload)?.len()),
        [BATCH_MAGIC, v, ..] => Err(BatchError::UnknownVersion(*v)),
        [BATCH_MAGIC] => Err(BatchError::Truncated(1)),
        _ => Ok(1),
    }
}

/// The event frames of a version-1 payload, checked whole before any is decoded.
fn frames(payload: &[u8]) -> Result<Vec<&[u8]>, BatchError> {
    let mut frames = Vec::new();
    let mut at = HEADER_BYTES;
    while at < payload.len() {
        let Some(len) = payload.get(at..at + LEN_BYTES) else { return Err(BatchError::Truncated(at)) };
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let start = at + LEN_BYTES;
        let Some(frame) = payload.get(start..start.saturating_add(len)) else { return Err(BatchError::Truncated(at)) };
        frames.push(frame);
        at = start + len;
    }
    if frames.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(frames)
}

/// The `Nats-Msg-Id` of the batch of spool `spool_id` spanning positions `start..end` with
/// this payload.
pub fn message_id(spool_id: u64, start: u64, end: u64, payload: &[u8]) -> String {
    let digest = xxhash_rust::xxh3::xxh3_64(payload);
    format!("{spool_id:016x}.{start:x}.{end:x}.{digest:016x}")
}

#[cfg(test)]
mod tests;
