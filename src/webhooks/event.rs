//! The events partners and operators subscribe to, and the envelope they travel in:
//! `{"type","timestamp","data"}`, as the Standard Webhooks spec recommends.
//!
//! An event's id derives from its cause, the way a ledger transfer's does: the transaction that
//! writes the change writes the event in the same commit, so a retried transaction writes the
//! same id again and the outbox keeps one row, and every delivery attempt carries that id as
//! `webhook-id`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Why an event, its type, its id or its envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("unknown webhook event type {0:?}")]
    UnknownType(String),
    #[error("event id {0:?} is not \"msg_\" and 32 lower-case hex digits")]
    BadId(String),
    #[error("an event's cause is empty or longer than {CAUSE_BYTES_MAX} bytes")]
    BadCause,
    #[error("an event's data must be a JSON object")]
    DataNotObject,
    #[error("event time {0} ms is outside years 1970 to 9999")]
    BadTime(i64),
    #[error("event envelope is not valid: {0}")]
    Envelope(String),
}

/// Longest cause an id derives from.
pub const CAUSE_BYTES_MAX: usize = 512;

/// The closed set of event types. Stored and sent as `as_str`; parsing refuses any other
/// spelling, so a typo in a subscription fails at registration, not silently at delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ConversionAttributed,
    CommissionCreated,
    CommissionApproved,
    CommissionReversed,
    PayoutSent,
    PayoutPaid,
    PayoutFailed,
    FraudAlert,
}

impl EventType {
    /// Every type, in the order the docs list them.
    pub const ALL: [EventType; 8] = [
        EventType::ConversionAttributed,
        EventType::CommissionCreated,
        EventType::CommissionApproved,
        EventType::CommissionReversed,
        EventType::PayoutSent,
        EventType::PayoutPaid,
        EventType::PayoutFailed,
        EventType::FraudAlert,
    ];

    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConversionAttributed => "conversion.attributed",
            EventType::CommissionCreated => "commission.created",
            EventType::CommissionApproved => "commission.approved",
            EventType::CommissionReversed => "commission.reversed",
            EventType::PayoutSent => "payout.sent",
            EventType::PayoutPaid => "payout.paid",
            EventType::PayoutFailed => "payout.failed",
            EventType::FraudAlert => "fraud.alert",
        }
    }
}

impl FromStr for EventType {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, EventError> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| EventError::UnknownType(s.to_owned()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An event's id, `msg_` and 32 hex digits: the first 16 bytes of a SHA-256 over the event's
/// type and cause. Hex has no `.`, which the spec forbids in `webhook-id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId([u8; 16]);

impl EventId {
    /// The id of the event of type `kind` caused by `cause` (for example
    /// `commission:c_42:approve`). The same pair gives the same id in every process and every
    /// retry; the type is hashed too, so one cause may raise events of several types.
    pub fn derive(kind: EventType, cause: &str) -> Result<Self, EventError> {
        if cause.is_empty() || cause.len() > CAUSE_BYTES_MAX {
            return Err(EventError::BadCause);
        }
        let mut h = Sha256::new();
        // A domain tag and a separator that no type contains keep (type, cause) pairs apart.
        h.update(b"clickgate.webhooks.event.v1\0");
        h.update(kind.as_str().as_bytes());
        h.update(b"\0");
        h.update(cause.as_bytes());
        let digest = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Ok(EventId(id))
    }

    /// Parses `msg_` and 32 lower-case hex digits, refusing every other spelling.
    pub fn parse(s: &str) -> Result<Self, EventError> {
        let bad = || EventError::BadId(s.to_owned());
        let hex_part = s.strip_prefix("msg_").ok_or_else(bad)?;
        if hex_part.len() != 32 || !hex_part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(hex_part, &mut id).map_err(|_| bad())?;
        Ok(EventId(id))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "msg_{}", hex::encode(self.0))
    }
}

/// The wire form of an event. Parsing is strict (no unknown keys, a known type), so the tests'
/// receivers and replays read back exactly what was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: EventType,
    /// RFC 3339 in UTC with milliseconds, `2026-11-03T20:26:10.344Z`.
    pub timestamp: String,
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl Envelope {
    /// Parses a delivered body.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let envelope: Envelope = serde_json::from_slice(body).map_err(|e| EventError::Envelope(e.to_string()))?;
        time::OffsetDateTime::parse(&envelope.timestamp, &time::format_description::well_known::Rfc3339)
            .map_err(|e| EventError::Envelope(format!("timestamp: {e}")))?;
        Ok(envelope)
    }
}

/// `ms` as RFC 3339 in UTC with milliseconds; a time outside years 1970 to 9999 is refused
/// rather than clamped, so an envelope never carries a time other than its event's.
pub fn rfc3339_ms(ms: i64) -> Result<String, EventError> {
    const MS_MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    if !(0..=MS_MAX).contains(&ms) {
        return Err(EventError::BadTime(ms));
    }
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|_| EventError::BadTime(ms))?;
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&f).map_err(|_| EventError::BadTime(ms))
}

#[cfg(test)]
mod tests;
