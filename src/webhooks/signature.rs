//! Standard Webhooks signatures: `whsec_` secrets, `v1,<base64 HMAC-SHA256>` over
//! `{msg_id}.{timestamp}.{payload}`, several signatures space-separated while a secret rotates.
//!
//! A receiver's existing Standard Webhooks library has to accept what we send, so the format
//! follows the spec to the byte; the unit tests pin it with the spec's published vector.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

use crate::model::ct_eq;

/// Why a secret, a signature or its headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("webhook secret does not start with \"whsec_\"")]
    SecretPrefix,
    #[error("webhook secret is not base64")]
    SecretEncoding,
    #[error("webhook secret has {len} bytes; the spec wants {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX}")]
    SecretLength { len: usize },
    #[error("the OS random number generator failed: {0}")]
    Random(String),
    #[error("no secret to sign with")]
    NoSecret,
    #[error("webhook-id is empty, longer than {MSG_ID_BYTES_MAX} bytes, or holds a '.', a space or a control character")]
    MsgId,
    #[error("webhook-timestamp is not whole seconds since the Unix epoch")]
    Timestamp,
    #[error("webhook-timestamp is more than {TOLERANCE_S} s before now")]
    TooOld,
    #[error("webhook-timestamp is more than {TOLERANCE_S} s after now")]
    TooNew,
    #[error("no v1 signature in webhook-signature matches")]
    NoMatch,
}

/// Bytes of randomness in a secret we generate.
pub const SECRET_BYTES: usize = 32;
/// Shortest secret the spec allows (192 bits).
pub const SECRET_BYTES_MIN: usize = 24;
/// Longest secret the spec allows.
pub const SECRET_BYTES_MAX: usize = 64;
/// The prefix that marks a symmetric Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far `webhook-timestamp` may stray from the receiver's clock, in seconds (the spec's
/// libraries use 5 minutes).
pub const TOLERANCE_S: u64 = 300;
/// Longest `webhook-id` accepted.
pub const MSG_ID_BYTES_MAX: usize = 256;
/// How long both the old and the new secret sign after a rotation.
pub const ROTATION_OVERLAP_MS: u64 = 24 * 3_600_000;

/// Standard base64 that accepts a secret with or without its padding, as the reference
/// libraries do.
const LENIENT: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

/// An endpoint's signing secret. Its bytes leave only through `to_whsec`; `Debug` never shows
/// them, so a secret logged by accident stays secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// A new secret of `SECRET_BYTES` from the OS random number generator.
    pub fn generate() -> Result<Self, SignatureError> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| SignatureError::Random(e.to_string()))?;
        Ok(Secret(Box::new(bytes)))
    }

    /// Parses `whsec_<base64>`, as `to_whsec` writes it and the spec serializes it.
    pub fn parse(s: &str) -> Result<Self, SignatureError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).ok_or(SignatureError::SecretPrefix)?;
        let bytes = LENIENT.decode(b64).map_err(|_| SignatureError::SecretEncoding)?;
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&bytes.len()) {
            return Err(SignatureError::SecretLength { len: bytes.len() });
        }
        Ok(Secret(bytes.into_boxed_slice()))
    }

    /// The secret as `whsec_<base64>`: shown once at registration, and what the store keeps.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The raw HMAC-SHA256 of `{msg_id}.{timestamp_s}.{payload}`.
    fn mac(&self, msg_id: &str, timestamp_s: u64, payload: &[u8]) -> [u8; 32] {
        // HMAC takes a key of any length, so this arm never runs; it keeps the path panic-free.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else { return [0; 32] };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_s.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({SECRET_PREFIX}…, {} bytes)", self.0.len())
    }
}

/// The three headers of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    /// `webhook-id`: the event's id, the same on every attempt.
    pub id: String,
    /// `webhook-timestamp`: the attempt's time in whole seconds.
    pub timestamp: String,
    /// `webhook-signature`: `v1,<base64>`, one per signing secret, space-separated.
    pub signature: String,
}

/// Signs one attempt at `now_ms` with every secret in `secrets` (one while none rotates, two
/// during a rotation's overlap).
pub fn headers(secrets: &[&Secret], msg_id: &str, now_ms: u64, payload: &[u8]) -> Result<Headers, SignatureError> {
    let timestamp_s = now_ms / 1000;
    Ok(Headers { id: msg_id.to_owned(), timestamp: timestamp_s.to_string(), signature: sign(secrets, msg_id, timestamp_s, payload)? })
}

/// The `webhook-signature` value: `v1,<base64>` for each secret, space-separated.
pub fn sign(secrets: &[&Secret], msg_id: &str, timestamp_s: u64, payload: &[u8]) -> Result<String, SignatureError> {
    check_msg_id(msg_id)?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let sigs: Vec<String> = secrets.iter().map(|s| format!("v1,{}", STANDARD.encode(s.mac(msg_id, timestamp_s, payload)))).collect();
    Ok(sigs.join(" "))
}

/// Verifies an attempt as a receiver does: the timestamp within `TOLERANCE_S` of `now_ms`, and
/// at least one `v1` signature equal, in constant time, to one made with one of `secrets`.
/// Signatures of other versions (`v1a`, `v2`) and undecodable ones are skipped, as the spec's
/// libraries skip them.
pub fn verify(secrets: &[&Secret], headers: &Headers, payload: &[u8], now_ms: u64) -> Result<(), SignatureError> {
    check_msg_id(&headers.id)?;
    let ts = &headers.timestamp;
    if ts.is_empty() || ts.len() > 19 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Timestamp);
    }
    let timestamp_s: u64 = ts.parse().map_err(|_| SignatureError::Timestamp)?;
    let now_s = now_ms / 1000;
    if timestamp_s.saturating_add(TOLERANCE_S) < now_s {
        return Err(SignatureError::TooOld);
    }
    if timestamp_s > now_s.saturating_add(TOLERANCE_S) {
        return Err(SignatureError::TooNew);
    }
    let wanted: Vec<[u8; 32]> = secrets.iter().map(|s| s.mac(&headers.id, timestamp_s, payload)).collect();
    for versioned in headers.signature.split(' ') {
        let Some(("v1", b64)) = versioned.split_once(',') else { continue };
        let Ok(given) = STANDARD.decode(b64) else { continue };
        if wanted.iter().any(|w| ct_eq(w, &given)) {
            return Ok(());
        }
    }
    Err(SignatureError::NoMatch)
}

/// The secrets that sign at `now_ms`: the current one, and the previous one until
/// `ROTATION_OVERLAP_MS` after the rotation, so a receiver that has not yet switched keeps
/// verifying.
pub fn signing_secrets<'a>(current: &'a Secret, previous: Option<(&'a Secret, u64)>, now_ms: u64) -> Vec<&'a Secret> {
    match previous {
        Some((old, rotated_ms)) if now_ms < rotated_ms.saturating_add(ROTATION_OVERLAP_MS) => vec![current, old],
        _ => vec![current],
    }
}

/// The spec forbids a `.` in the id, since `{msg_id}.{timestamp}` would otherwise be ambiguous;
/// a space or a control character would break the header.
fn check_msg_id(msg_id: &str) -> Result<(), SignatureError> {
    let ok = !msg_id.is_empty() && msg_id.len() <= MSG_ID_BYTES_MAX && msg_id.bytes().all(|b| b.is_ascii_graphic() && b != b'.');
    if ok {
        Ok(())
    } else {
        Err(SignatureError::MsgId)
    }
}

#[cfg(test)]
mod tests;
