//! Signed, time-ordered click ids and visitor ids.
//!
//! A click id is 35 bytes, written as 47 URL-safe characters in an alphabet whose ASCII order
//! matches byte order, so ids sort by time as text too:
//!
//! ```text
//! ts_ms:6 | key_id:1 | random:8 | link_id:4 | partner_id:4 | hmac_sha256(first 23 bytes)[..12]
//! ```
//!
//! The MAC covers (click id, link, partner, timestamp), so the core rejects a forged or altered
//! id without a lookup. Keys rotate: the first configured key signs, all of them verify.

use base64::alphabet::Alphabet;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

use super::ct_eq;

/// Bytes in a click id.
pub const CLICK_ID_BYTES: usize = 35;
/// Characters in an encoded click id.
pub const CLICK_ID_CHARS: usize = 47;
const SIGNED_BYTES: usize = 23;
const MAC_BYTES: usize = 12;

/// URL-safe base64 in ASCII order.
const SORTABLE: Alphabet = match Alphabet::new("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz") {
    Ok(a) => a,
    Err(_) => panic!("alphabet is valid"),
};
/// The encoding of click and visitor ids.
pub const ENGINE: GeneralPurpose = GeneralPurpose::new(&SORTABLE, NO_PAD);

/// A click id as bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClickId(pub [u8; CLICK_ID_BYTES]);

impl ClickId {
    /// Writes the text form into `out` (no allocation) and returns it.
    pub fn encode<'a>(&self, out: &'a mut [u8; CLICK_ID_CHARS]) -> &'a str {
        let n = ENGINE.encode_slice(self.0, out).expect("47 bytes fit a 35-byte id");
        std::str::from_utf8(&out[..n]).expect("base64 is ASCII")
    }

    /// Parses the text form (signature not checked).
    pub fn decode(s: &str) -> Option<ClickId> {
        if s.len() != CLICK_ID_CHARS {
            return None;
        }
        let mut out = [0u8; CLICK_ID_BYTES];
        (ENGINE.decode_slice(s, &mut out).ok()? == CLICK_ID_BYTES).then_some(ClickId(out))
    }

    /// Unix milliseconds at which the click was minted.
    pub fn ts_ms(&self) -> u64 {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(b)
    }

    /// The link row id.
    pub fn link_id(&self) -> u32 {
        u32::from_be_bytes(self.0[15..19].try_into().expect("4 bytes"))
    }

    /// The partner row id.
    pub fn partner_id(&self) -> u32 {
        u32::from_be_bytes(self.0[19..23].try_into().expect("4 bytes"))
    }
}

impl std::fmt::Debug for ClickId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encode(&mut [0; CLICK_ID_CHARS]))
    }
}

impl Serialize for ClickId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.encode(&mut [0; CLICK_ID_CHARS]))
    }
}

impl<'de> Deserialize<'de> for ClickId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ClickId::decode(&s).ok_or_else(|| serde::de::Error::custom("malformed click id"))
    }
}

/// Why a click id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClickIdError {
    #[error("click id is malformed")]
    Malformed,
    #[error("click id is signed with an unknown key")]
    UnknownKey,
    #[error("click id signature does not match")]
    BadSignature,
    #[error("click id has expired")]
    Expired,
    #[error("click id is from the future")]
    Future,
}

thread_local! {
    /// fastrand seeded from the OS once per thread (its default seed is derived from the clock).
    /// Its outputs only make ids unique; the MAC, under a key from the OS, is what protects them.
    static RNG: std::cell::RefCell<fastrand::Rng> = std::cell::RefCell::new({
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        fastrand::Rng::with_seed(u64::from_le_bytes(seed) ^ fastrand::u64(..))
    });
}

fn random_u64() -> u64 {
    RNG.with(|r| r.borrow_mut().u64(..))
}

/// Mints and verifies click ids.
pub struct ClickSigner {
    keys: Vec<(u8, Hmac<Sha256>)>,
}

impl ClickSigner {
    /// Builds from (key id, secret) pairs; the first signs. `keys` must not be empty.
    pub fn new(keys: &[(u8, Vec<u8>)]) -> ClickSigner {
        assert!(!keys.is_empty(), "at least one click-id key");
        ClickSigner {
            keys: keys
                .iter()
                .map(|(id, secret)| (*id, Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length")))
                .collect(),
        }
    }

    fn mac(state: &Hmac<Sha256>, signed: &[u8]) -> [u8; MAC_BYTES] {
        let mut m = state.clone();
        m.update(signed);
        let full = m.finalize().into_bytes();
        full[..MAC_BYTES].try_into().expect("12 bytes")
    }

    /// A 128-bit key for `label`, derived from the key with the smallest id: every node with
    /// the same keys derives the same one, and it stays while that key is configured.
    pub fn derive_key(&self, label: &[u8]) -> [u8; 16] {
        let (_, state) = self.keys.iter().min_by_key(|(id, _)| *id).expect("at least one click-id key");
        let mut m = state.clone();
        m.update(b"clickgate derived key\0");
        m.update(label);
        m.finalize().into_bytes()[..16].try_into().expect("16 bytes")
    }

    /// A new click id for (link, partner) at `ts_ms`.
    pub fn mint(&self, ts_ms: u64, link_id: u32, partner_id: u32) -> ClickId {
        let (key_id, state) = &self.keys[0];
        let mut b = [0u8; CLICK_ID_BYTES];
        b[..6].copy_from_slice(&ts_ms.to_be_bytes()[2..]);
        b[6] = *key_id;
        b[7..15].copy_from_slice(&random_u64().to_le_bytes());
        b[15..19].copy_from_slice(&link_id.to_be_bytes());
        b[19..23].copy_from_slice(&partner_id.to_be_bytes());
        let mac = Self::mac(state, &b[..SIGNED_BYTES]);
        b[SIGNED_BYTES..].copy_from_slice(&mac);
        ClickId(b)
    }

    /// Checks the signature and age of a click id in text form.
    pub fn verify(&self, s: &str, now_ms: u64, max_age_ms: u64) -> Result<ClickId, ClickIdError> {
        let id = ClickId::decode(s).ok_or(ClickIdError::Malformed)?;
        let (_, state) = self.keys.iter().find(|(k, _)| *k == id.0[6]).ok_or(ClickIdError::UnknownKey)?;
        let want = Self::mac(state, &id.0[..SIGNED_BYTES]);
        // The MAC must not leak through timing.
        if !ct_eq(&want, &id.0[SIGNED_BYTES..]) {
            return Err(ClickIdError::BadSignature);
        }
        let ts = id.ts_ms();
        if ts > now_ms + 60_000 {
            return Err(ClickIdError::Future);
        }
        if now_ms.saturating_sub(ts) > max_age_ms {
            return Err(ClickIdError::Expired);
        }
        Ok(id)
    }
}

/// Characters in a visitor id.
pub const VISITOR_ID_CHARS: usize = 22;

/// A first-party visitor id (16 random bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisitorId(pub [u8; 16]);

impl VisitorId {
    /// A fresh random id.
    pub fn random() -> VisitorId {
        VisitorId((u128::from(random_u64()) << 64 | u128::from(random_u64())).to_le_bytes())
    }

    /// Writes the text form into `out` and returns it.
    pub fn encode<'a>(&self, out: &'a mut [u8; VISITOR_ID_CHARS]) -> &'a str {
        let n = ENGINE.encode_slice(self.0, out).expect("22 bytes fit a 16-byte id");
        std::str::from_utf8(&out[..n]).expect("base64 is ASCII")
    }

    /// Parses the text form; anything else (a tampered or foreign cookie) is `None`.
    pub fn decode(s: &str) -> Option<VisitorId> {
        if s.len() != VISITOR_ID_CHARS {
            return None;
        }
        let mut out = [0u8; 16];
        (ENGINE.decode_slice(s, &mut out).ok()? == 16).then_some(VisitorId(out))
    }
}

impl std::fmt::Debug for VisitorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encode(&mut [0; VISITOR_ID_CHARS]))
    }
}

impl Serialize for VisitorId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.encode(&mut [0; VISITOR_ID_CHARS]))
    }
}

impl<'de> Deserialize<'de> for VisitorId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        VisitorId::decode(&s).ok_or_else(|| serde::de::Error::custom("malformed visitor id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> ClickSigner {
        ClickSigner::new(&[(2, b"a-new-secret-key-0123".to_vec()), (1, b"an-old-secret-key-0123".to_vec())])
    }

    #[test]
    fn mints_verifiable_sortable_ids() {
        let s = signer();
        let t = 1_763_800_000_000;
        let a = s.mint(t, 7, 9);
        let b = s.mint(t + 1, 7, 9);
        let (ta, tb) = (format!("{a:?}"), format!("{b:?}"));
        assert_eq!(ta.len(), CLICK_ID_CHARS);
        assert!(ta < tb, "text order follows time");
        let v = s.verify(&ta, t + 5, 1000).unwrap();
        assert_eq!((v.ts_ms(), v.link_id(), v.partner_id()), (t, 7, 9));
        assert_ne!(a, s.mint(t, 7, 9), "ids are unique");
    }

    #[test]
    fn rejects_forgeries() {
        let s = signer();
        let t = 1_763_800_000_000;
        let id = s.mint(t, 7, 9);
        let mut forged = id;
        forged.0[18] ^= 1; // another link
        assert_eq!(s.verify(&format!("{forged:?}"), t, 1000), Err(ClickIdError::BadSignature));
        let mut unknown = id;
        unknown.0[6] = 99;
        assert_eq!(s.verify(&format!("{unknown:?}"), t, 1000), Err(ClickIdError::UnknownKey));
        assert_eq!(s.verify("short", t, 1000), Err(ClickIdError::Malformed));
        assert_eq!(s.verify(&format!("{id:?}"), t + 1001, 1000), Err(ClickIdError::Expired));
        let other = ClickSigner::new(&[(2, b"someone-elses-key-000".to_vec())]);
        assert_eq!(other.verify(&format!("{id:?}"), t, 1000), Err(ClickIdError::BadSignature));
    }

    #[test]
    fn old_keys_still_verify() {
        let old = ClickSigner::new(&[(1, b"an-old-secret-key-0123".to_vec())]);
        let t = 1_763_800_000_000;
        let id = old.mint(t, 1, 1);
        assert!(signer().verify(&format!("{id:?}"), t, 1000).is_ok());
    }

    #[test]
    fn visitor_ids_round_trip() {
        let v = VisitorId::random();
        assert_eq!(VisitorId::decode(v.encode(&mut [0; VISITOR_ID_CHARS])), Some(v));
        assert_eq!(VisitorId::decode("not a visitor id at al"), None);
    }
}
