//! API keys and whom a request acts for.
//!
//! A key is `cgk_` and 32 random base62 characters. It is shown once, when it is made; the store
//! keeps its SHA-256, a display prefix (its first 10 characters), a name, a scope, and when it
//! was made, last used and revoked. A scope is `admin` or `partner:<id>`: a partner key acts for
//! that partner only (`api::scope` decides what that allows). The configured admin key stays the
//! bootstrap: it is checked before the store and is never stored.
//!
//! `Keys` answers "which key is this?" from a small cache of keys it has seen, for at most
//! `CACHE_MS`; so a key revoked through another process (the CLI) stops working within that
//! time, and one revoked through this one at once.

use std::collections::HashMap;
use std::fmt;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::audit::{snapshot, Action, Actor, AuditError, AuditLog, Entry};

/// How long a key found in the store is trusted without asking the store again.
pub const CACHE_MS: u64 = 1_000;
/// Keys cached at most; past it the cache starts again empty.
const CACHE_LEN_MAX: usize = 10_000;
/// How stale `last_used_ms` may get: a key's use is written at most this often.
const TOUCH_EVERY_MS: u64 = 60_000;
/// Random characters after the `cgk_` prefix.
const RANDOM_CHARS: usize = 32;
const PREFIX: &str = "cgk_";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// A key's name: what an operator calls it.
const NAME_LEN_MAX: usize = 100;

/// What went wrong with a key operation.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("API key {0:?} not found")]
    NotFound(String),
    #[error("the key store failed: {0}")]
    Storage(String),
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// Whom a key acts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Admin,
    Partner(String),
}

impl Scope {
    /// `admin` or `partner:<id>`; the partner id follows the catalog's id rule.
    pub fn parse(s: &str) -> Result<Scope, AccessError> {
        let invalid = |why: &str| AccessError::Invalid { field: "scope", why: why.to_string() };
        match s.split_once(':') {
            None if s == "admin" => Ok(Scope::Admin),
            Some(("partner", id)) if is_slug(id) => Ok(Scope::Partner(id.to_string())),
            Some(("partner", _)) => Err(invalid("a partner id is 1..=64 of [A-Za-z0-9_-]")),
            _ => Err(invalid("must be admin or partner:<id>")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Partner(id) => write!(f, "partner:{id}"),
        }
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    /// `ak_` and 24 hex digits.
    pub id: String,
    /// The key's first 10 characters, to tell keys apart in lists.
    pub prefix: String,
    pub name: String,
    pub scope: Scope,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
}

/// A key just made: the secret, shown once, and what is stored.
#[derive(Debug)]
pub struct Minted {
    pub secret: String,
    pub key: ApiKey,
    pub sha256: [u8; 32],
}

/// Makes a key for `scope`. The caller checks that a partner scope names a partner.
pub fn mint(name: &str, scope: Scope, now_ms: u64) -> Result<Minted, AccessError> {
    let name = name.trim();
    if name.is_empty() || name.len() > NAME_LEN_MAX || name.chars().any(char::is_control) {
        return Err(AccessError::Invalid { field: "name", why: format!("1..={NAME_LEN_MAX} bytes without control characters") });
    }
    // Rejection sampling keeps each character uniform over the 62.
    let mut secret = String::with_capacity(PREFIX.len() + RANDOM_CHARS);
    secret.push_str(PREFIX);
    let mut buf = [0u8; 64];
    while secret.len() < PREFIX.len() + RANDOM_CHARS {
        getrandom::fill(&mut buf).map_err(|e| AccessError::Random(e.to_string()))?;
        for b in buf.iter().filter(|b| **b < 248) {
            if secret.len() == PREFIX.len() + RANDOM_CHARS {
                break;
            }
            secret.push(BASE62[usize::from(*b % 62)] as char);
        }
    }
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).map_err(|e| AccessError::Random(e.to_string()))?;
    let key = ApiKey {
        id: format!("ak_{}", hex::encode(id)),
        prefix: secret[..10].to_string(),
        name: name.to_string(),
        scope,
        created_ms: now_ms,
        last_used_ms: None,
        revoked_ms: None,
    };
    Ok(Minted { sha256: sha256(&secret), secret, key })
}

/// Whether `s` has a key's shape; anything else is refused without a lookup.
pub fn well_formed(s: &str) -> bool {
    s.len() == PREFIX.len() + RANDOM_CHARS && s.starts_with(PREFIX) && s.bytes().skip(PREFIX.len()).all(|b| b.is_ascii_alphanumeric())
}

/// Whether `s` has a key id's shape.
pub fn is_key_id(s: &str) -> bool {
    s.len() == 27 && s.starts_with("ak_") && s.bytes().skip(3).all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The SHA-256 a key is stored and found under.
pub fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl From<AuditError> for AccessError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid { field, why } => AccessError::Invalid { field, why },
            AuditError::Storage(why) => AccessError::Storage(why),
        }
    }
}

/// A backend's keys (`storage::sqlite`, beside the catalog and its audit log).
pub trait KeyStore: AuditLog {
    /// Stores a new key; its id and hash are new (both random), so a clash is a storage error.
    fn insert_key(&self, key: &ApiKey, sha256: &[u8; 32]) -> Result<(), AccessError>;
    fn key_by_hash(&self, sha256: &[u8; 32]) -> Result<Option<ApiKey>, AccessError>;
    fn key(&self, id: &str) -> Result<Option<ApiKey>, AccessError>;
    /// Every key, newest first.
    fn keys(&self) -> Result<Vec<ApiKey>, AccessError>;
    /// Marks a key revoked (once: a second revocation keeps the first time); `None` when there
    /// is no such key.
    fn revoke_key(&self, id: &str, now_ms: u64) -> Result<Option<ApiKey>, AccessError>;
    fn touch_key(&self, id: &str, now_ms: u64) -> Result<(), AccessError>;
    /// Runs `f` in one transaction, which commits when `f` succeeds and rolls back otherwise:
    /// a key's write and its audit entry go together.
    fn keys_atomically(&self, f: &mut dyn FnMut() -> Result<(), AccessError>) -> Result<(), AccessError>;
}

/// Keys over a store, with the cache `authenticate` reads.
pub struct Keys {
    store: Mutex<Box<dyn KeyStore + Send>>,
    /// SHA-256 → (key, when it was read from the store).
    cache: Mutex<HashMap<[u8; 32], (ApiKey, u64)>>,
}

impl Keys {
    pub fn new(store: Box<dyn KeyStore + Send>) -> Keys {
        Keys { store: Mutex::new(store), cache: Mutex::new(HashMap::new()) }
    }

    /// The live key behind `secret`, if any. Blocking: it may read and write the store.
    pub fn authenticate(&self, secret: &str, now_ms: u64) -> Result<Option<ApiKey>, AccessError> {
        if !well_formed(secret) {
            return Ok(None);
        }
        let hash = sha256(secret);
        let cached = self.cache.lock().get(&hash).filter(|(_, at)| now_ms.saturating_sub(*at) < CACHE_MS).map(|(k, _)| k.clone());
        let key = match cached {
            Some(k) => k,
            None => {
                let Some(k) = self.store.lock().key_by_hash(&hash)? else { return Ok(None) };
                let mut cache = self.cache.lock();
                if cache.len() >= CACHE_LEN_MAX {
                    cache.clear();
                }
                cache.insert(hash, (k.clone(), now_ms));
                k
            }
        };
        if key.revoked_ms.is_some() {
            return Ok(None);
        }
        if key.last_used_ms.is_none_or(|t| now_ms.saturating_sub(t) >= TOUCH_EVERY_MS) {
            self.store.lock().touch_key(&key.id, now_ms)?;
            if let Some((k, _)) = self.cache.lock().get_mut(&hash) {
                k.last_used_ms = Some(now_ms);
            }
        }
        Ok(Some(key))
    }

    /// Makes and stores a key for `scope` (`admin` or `partner:<id>`, an id `partner_exists`
    /// knows), recording it in the audit log as `actor`'s: the one path of the API and the CLI.
    pub fn create(
        &self,
        name: &str,
        scope: &str,
        partner_exists: impl Fn(&str) -> bool,
        now_ms: u64,
        actor: &Actor,
    ) -> Result<Minted, AccessError> {
        let scope = Scope::parse(scope)?;
        if let Scope::Partner(p) = &scope {
            if !partner_exists(p) {
                return Err(AccessError::Invalid { field: "scope", why: format!("no partner {p:?}") });
            }
        }
        let minted = mint(name, scope, now_ms)?;
        let entry = Entry::new(actor, Action::ApiKeyCreate, &minted.key.id, now_ms, None, Some(snapshot(&minted.key)));
        let store = self.store.lock();
        store.keys_atomically(&mut || {
            store.insert_key(&minted.key, &minted.sha256)?;
            Ok(store.append_audit(&entry)?)
        })?;
        Ok(minted)
    }

    pub fn list(&self) -> Result<Vec<ApiKey>, AccessError> {
        self.store.lock().keys()
    }

    pub fn get(&self, id: &str) -> Result<ApiKey, AccessError> {
        self.store.lock().key(id)?.ok_or_else(|| AccessError::NotFound(id.to_string()))
    }

    /// Revokes a key, recording it in the audit log as `actor`'s; it stops working in this
    /// process at once.
    pub fn revoke(&self, id: &str, now_ms: u64, actor: &Actor) -> Result<ApiKey, AccessError> {
        let store = self.store.lock();
        let mut revoked = None;
        store.keys_atomically(&mut || {
            let before = store.key(id)?.ok_or_else(|| AccessError::NotFound(id.to_string()))?;
            let after = store.revoke_key(id, now_ms)?.ok_or_else(|| AccessError::NotFound(id.to_string()))?;
            // A second revocation changes nothing, so it records nothing.
            if before.revoked_ms.is_none() {
                store.append_audit(&Entry::new(
                    actor,
                    Action::ApiKeyRevoke,
                    id,
                    now_ms,
                    Some(snapshot(&before)),
                    Some(snapshot(&after)),
                ))?;
            }
            revoked = Some(after);
            Ok(())
        })?;
        drop(store);
        let key = revoked.ok_or_else(|| AccessError::NotFound(id.to_string()))?;
        self.cache.lock().retain(|_, (k, _)| k.id != key.id);
        Ok(key)
    }
}

#[cfg(test)]
mod tests;
