//! The dashboard's sessions: a random 32-byte token in a cookie, and in memory the key it was
//! signed in with, so every request checks that key again through `keys::authenticate` (a
//! revoked key's session ends at its next request) and is held to its scope as the API holds
//! the key. The map is bounded (`api.dashboard_sessions_max`) and each entry expires
//! (`api.dashboard_session_ttl_s`); nothing is written to disk, so a restart signs everyone out.

use std::collections::HashMap;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "cg_session";
/// The sign-in form's token cookie: the form's hidden field must match it.
pub const LOGIN_COOKIE: &str = "cg_login";
/// How long a sign-in form's token lasts.
const LOGIN_TTL_S: u64 = 3_600;

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the system's random source failed: {0}")]
    Random(String),
}

/// One signed-in browser.
#[derive(Clone)]
pub struct Session {
    /// The key as pasted, for `keys::authenticate` on each request; held only here, in memory.
    pub key: String,
    /// The token every POST form of this session carries (hex), against cross-site requests.
    pub csrf: String,
    pub expires_ms: u64,
}

/// The sessions of this process.
pub struct Sessions {
    /// By the SHA-256 of the token, so the map never holds a cookie's value.
    map: Mutex<HashMap<[u8; 32], Session>>,
    len_max: usize,
    ttl_ms: u64,
    /// Whether the API listener runs TLS: the cookie is then `Secure`.
    pub secure: bool,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// 32 random bytes as hex: a token.
pub fn random_hex() -> Result<String, SessionError> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| SessionError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

impl Sessions {
    pub fn new(config: &crate::config::Api, secure: bool) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            len_max: config.dashboard_sessions_max.max(1),
            ttl_ms: config.dashboard_session_ttl_s * 1_000,
            secure,
        }
    }

    /// Starts a session for `key`; answers its token (the cookie's value) and the session.
    /// A full map first drops the expired sessions, then the one closest to expiry.
    pub fn start(&self, key: &str, now_ms: u64) -> Result<(String, Session), SessionError> {
        let token = random_hex()?;
        let session = Session { key: key.to_string(), csrf: random_hex()?, expires_ms: now_ms + self.ttl_ms };
        let mut map = self.map.lock();
        if map.len() >= self.len_max {
            map.retain(|_, s| s.expires_ms > now_ms);
        }
        if map.len() >= self.len_max {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires_ms).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(digest(&token), session.clone());
        Ok((token, session))
    }

    /// The live session of `token`; an expired one is dropped.
    pub fn get(&self, token: &str, now_ms: u64) -> Option<Session> {
        let d = digest(token);
        let mut map = self.map.lock();
        match map.get(&d) {
            Some(s) if s.expires_ms > now_ms => Some(s.clone()),
            Some(_) => {
                map.remove(&d);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`, if any.
    pub fn end(&self, token: &str) {
        self.map.lock().remove(&digest(token));
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `Set-Cookie` value that hands `token` to the browser.
    pub fn cookie(&self, token: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={}{secure}", self.ttl_ms / 1_000)
    }

    /// The `Set-Cookie` value of a sign-in form's token.
    pub fn login_cookie(&self, token: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={LOGIN_TTL_S}{secure}")
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0{secure}")
    }
}

/// The token in cookie `name` of a `Cookie` header, if any.
pub fn token_of<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}
