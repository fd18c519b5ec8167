//! One value sealed under the data key: AES-256-GCM with a fresh 96-bit nonce, and associated
//! data naming the value's table, column and row, so a sealed value moved to another row or
//! column does not open. The stored text is `enc1.` and the URL-safe base64 (no padding) of
//!
//! ```text
//! version (1 byte, 1) | key id (8 bytes) | nonce (12 bytes) | ciphertext and tag
//! ```
//!
//! The key id tells which key sealed a value, so a rotation skips the values already under the
//! new key and an open under the wrong key says so rather than failing as a forgery.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::PrivacyError;

/// The stored text's prefix: a value without it is clear text from before encryption.
pub const PREFIX: &str = "enc1.";
/// The blob's layout version.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;

/// Where a sealed value lives: its table, column and row. The associated data is built from it.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    pub table: &'static str,
    pub column: &'static str,
    pub row: &'a str,
}

impl Field<'_> {
    fn aad(&self) -> Vec<u8> {
        // NUL separators: no table, column or id holds one, so two fields never join alike.
        format!("clickgate\0{}\0{}\0{}", self.table, self.column, self.row).into_bytes()
    }
}

/// A 32-byte data key, with its id and the keyed hash's key derived from it.
#[derive(Clone)]
pub struct DataKey {
    cipher: Aes256Gcm,
    id: [u8; KEY_ID_LEN],
    lookup: [u8; 32],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", self.id_hex())
    }
}

/// HMAC-SHA256 of `msg` under `key`.
fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

impl DataKey {
    /// The key from its 32 bytes. The id and the lookup key are HMACs of fixed labels under
    /// it, so neither reveals the key, and neither is the key the cipher uses.
    pub fn from_bytes(bytes: &[u8; 32]) -> DataKey {
        let cipher = Aes256Gcm::new(bytes.into());
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&hmac(bytes, b"clickgate data key id v1")[..KEY_ID_LEN]);
        DataKey { cipher, id, lookup: hmac(bytes, b"clickgate lookup hash key v1") }
    }

    /// Parses a key as given in `CLICKGATE_DATA_KEY`: 64 hex digits, or the standard base64
    /// (with or without padding) of 32 bytes.
    pub fn parse(text: &str) -> Result<DataKey, PrivacyError> {
        Ok(DataKey::from_bytes(&parse_bytes(text)?))
    }

    /// A new random key, as 64 hex digits: what a fresh data dir's key file holds.
    pub fn generate_hex() -> Result<String, PrivacyError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| PrivacyError::Random(e.to_string()))?;
        Ok(hex::encode(b))
    }

    /// The key's id, as the store records it: 16 hex digits.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Seals `clear` for `field`. An empty value stays empty: it says nothing, and `''` is the
    /// catalog's "no e-mail".
    pub fn seal(&self, field: Field<'_>, clear: &str) -> Result<String, PrivacyError> {
        if clear.is_empty() {
            return Ok(String::new());
        }
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| PrivacyError::Random(e.to_string()))?;
        let aad = field.aad();
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: clear.as_bytes(), aad: &aad })
            .map_err(|_| PrivacyError::Sealing { table: field.table, column: field.column })?;
        let mut blob = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ct.len());
        blob.push(VERSION);
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Opens a value `seal` made for the same field. Clear text (no prefix) is refused: once
    /// a store is encrypted, a clear value in it is a fault, not data.
    pub fn open(&self, field: Field<'_>, stored: &str) -> Result<String, PrivacyError> {
        if stored.is_empty() {
            return Ok(String::new());
        }
        let bad =
            |why: &str| PrivacyError::Opening { table: field.table, column: field.column, row: field.row.to_string(), why: why.into() };
        let blob = split(stored).ok_or_else(|| bad("it is not a sealed value"))?;
        if blob.id() != self.id {
            return Err(bad(&format!("it is sealed under key id {}, not this key's {}", hex::encode(blob.id()), self.id_hex())));
        }
        let aad = field.aad();
        let clear = self
            .cipher
            .decrypt(Nonce::from_slice(blob.nonce()), Payload { msg: blob.ciphertext(), aad: &aad })
            .map_err(|_| bad("its tag does not verify (altered, or moved from another row)"))?;
        String::from_utf8(clear).map_err(|_| bad("it is not UTF-8"))
    }

    /// The keyed hash a lookup by value uses (a customer reference), as 64 hex digits:
    /// HMAC-SHA256 under a key derived from the data key, so equal values match and the
    /// hash alone does not give the value away to a guess without the key.
    pub fn lookup_hash(&self, clear: &str) -> String {
        hex::encode(hmac(&self.lookup, clear.as_bytes()))
    }
}

/// A key's 32 bytes from its text: 64 hex digits, or the standard base64 (with or without
/// padding) of 32 bytes.
pub fn parse_bytes(text: &str) -> Result<[u8; 32], PrivacyError> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(t).map_err(|e| PrivacyError::BadKey(e.to_string()))?
    } else {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        STANDARD
            .decode(t)
            .or_else(|_| STANDARD_NO_PAD.decode(t))
            .map_err(|_| PrivacyError::BadKey("it is neither 64 hex digits nor base64".into()))?
    };
    let bytes: [u8; 32] =
        bytes.try_into().map_err(|b: Vec<u8>| PrivacyError::BadKey(format!("it is {} bytes; a data key is 32", b.len())))?;
    Ok(bytes)
}

/// Whether a stored value is sealed (or empty), rather than clear text from before encryption.
pub fn is_sealed(stored: &str) -> bool {
    stored.is_empty() || stored.starts_with(PREFIX)
}

/// The id of the key that sealed `stored`, as 16 hex digits; `None` for clear text or empty.
pub fn sealed_by(stored: &str) -> Option<String> {
    split(stored).map(|b| hex::encode(b.id()))
}

/// A sealed value's blob, checked for its version and least length.
fn split(stored: &str) -> Option<Blob> {
    let body = stored.strip_prefix(PREFIX)?;
    let blob = URL_SAFE_NO_PAD.decode(body).ok()?;
    (blob.len() >= 1 + KEY_ID_LEN + NONCE_LEN + 16 && blob[0] == VERSION).then_some(Blob(blob))
}

/// A decoded blob: version, key id, nonce, ciphertext.
struct Blob(Vec<u8>);

impl Blob {
    fn id(&self) -> &[u8] {
        &self.0[1..1 + KEY_ID_LEN]
    }
    fn nonce(&self) -> &[u8] {
        &self.0[1 + KEY_ID_LEN..1 + KEY_ID_LEN + NONCE_LEN]
    }
    fn ciphertext(&self) -> &[u8] {
        &self.0[1 + KEY_ID_LEN + NONCE_LEN..]
    }
}

/// The first characters of every value `key` seals: the prefix, the version and the key id
/// (9 bytes, 12 base64 characters). A store selects the values under a key by it.
pub fn stored_prefix(key: &DataKey) -> String {
    let mut head = [0u8; 1 + KEY_ID_LEN];
    head[0] = VERSION;
    head[1..].copy_from_slice(&key.id);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(head))
}
