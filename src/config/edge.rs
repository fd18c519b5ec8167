//! Edge-side sections: listeners, runtime, edge limits, TLS, click-id keys, privacy and the
//! click-event queue.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// Listener addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    pub edge: SocketAddr,
    pub admin: SocketAddr,
    pub api: SocketAddr,
}

impl Default for Listen {
    fn default() -> Self {
        Listen { edge: ([127, 0, 0, 1], 8080).into(), admin: ([127, 0, 0, 1], 9090).into(), api: ([127, 0, 0, 1], 8081).into() }
    }
}

/// Tokio runtime sizing.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Runtime {
    /// 0 means one worker per core.
    pub worker_threads: usize,
}

/// Edge listener limits and link-table behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Edge {
    pub connections_max: usize,
    pub header_read_timeout_ms: u64,
    pub headers_max: usize,
    pub header_bytes_max: usize,
    pub body_bytes_max: u64,
    pub shutdown_drain_ms: u64,
    pub link_reload_interval_ms: u64,
    /// Entries the store's catalog change log keeps; an edge further behind reads every link again.
    pub link_change_log_len_max: u64,
    /// How often, at most, a cluster edge writes its catalog snapshot again after its links changed.
    pub catalog_snapshot_interval_ms: u64,
    pub visitor_cookie_name: String,
    pub visitor_cookie_max_age_s: u64,
    pub visitor_cookie_domain: String,
    pub sub_id_bytes_max: usize,
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            connections_max: 10_000,
            header_read_timeout_ms: 5_000,
            headers_max: 100,
            header_bytes_max: 16 * 1024,
            body_bytes_max: 1024,
            shutdown_drain_ms: 10_000,
            link_reload_interval_ms: 1_000,
            link_change_log_len_max: 100_000,
            catalog_snapshot_interval_ms: 10_000,
            visitor_cookie_name: "cg_vid".into(),
            visitor_cookie_max_age_s: 365 * 24 * 3600,
            visitor_cookie_domain: String::new(),
            sub_id_bytes_max: 64,
        }
    }
}

/// TLS for every listener; off unless both paths are set.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
}

/// Click-id signing keys. The first key signs; every key verifies, so keys rotate by prepending.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickId {
    pub keys: Vec<ClickKey>,
    pub max_age_days: u32,
}

/// One HMAC key with the id carried in each click id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickKey {
    pub id: u8,
    pub secret: String,
}

impl Default for ClickId {
    fn default() -> Self {
        ClickId { keys: Vec::new(), max_age_days: 90 }
    }
}

/// How much of the client IP a click event keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpPrivacy {
    /// IPv4 /24, IPv6 /48.
    #[default]
    Truncate,
    /// A keyed hash of the full address.
    Hash,
    Full,
}

/// Privacy settings for click events.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Privacy {
    pub ip: IpPrivacy,
    pub ip_hash_key: String,
}

/// The click-event queue and log.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Events {
    pub click_queue_len_max: usize,
    /// The spill queue behind the click queue, drained to the spool by a thread of its own.
    pub spill_queue_len_max: usize,
    pub click_log_batch_len_max: usize,
    pub click_log_linger_ms: u64,
}

impl Default for Events {
    fn default() -> Self {
        Events { click_queue_len_max: 65_536, spill_queue_len_max: 16_384, click_log_batch_len_max: 4_096, click_log_linger_ms: 5 }
    }
}

impl Edge {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1_000_000).contains(&self.connections_max) {
            return Err(invalid("edge.connections_max", format!("must be in 1..=1000000, got {}", self.connections_max)));
        }
        if self.header_read_timeout_ms == 0 {
            return Err(invalid("edge.header_read_timeout_ms", "must be at least 1"));
        }
        if !(1..=1000).contains(&self.headers_max) {
            return Err(invalid("edge.headers_max", format!("must be in 1..=1000, got {}", self.headers_max)));
        }
        if !(1024..=1 << 20).contains(&self.header_bytes_max) {
            return Err(invalid("edge.header_bytes_max", "must be in 1024..=1048576"));
        }
        if self.header_read_timeout_ms > 600_000 || self.shutdown_drain_ms > 600_000 {
            return Err(invalid("edge.header_read_timeout_ms/shutdown_drain_ms", "must be at most 600000"));
        }
        if !(10..=3_600_000).contains(&self.link_reload_interval_ms) {
            return Err(invalid("edge.link_reload_interval_ms", "must be in 10..=3600000"));
        }
        if !(1_000..=100_000_000).contains(&self.link_change_log_len_max) {
            return Err(invalid("edge.link_change_log_len_max", "must be in 1000..=100000000"));
        }
        if !(100..=86_400_000).contains(&self.catalog_snapshot_interval_ms) {
            return Err(invalid("edge.catalog_snapshot_interval_ms", "must be in 100..=86400000"));
        }
        if self.visitor_cookie_name.is_empty() || !self.visitor_cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid("edge.visitor_cookie_name", "must be non-empty ASCII letters, digits or '_'"));
        }
        if !self.visitor_cookie_domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Err(invalid("edge.visitor_cookie_domain", "must be a plain domain name"));
        }
        if !(1..=512).contains(&self.sub_id_bytes_max) {
            return Err(invalid("edge.sub_id_bytes_max", "must be in 1..=512"));
        }
        Ok(())
    }
}

impl Tls {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.cert_path.is_some() != self.key_path.is_some() {
            return Err(invalid("tls", "cert_path and key_path must be set together"));
        }
        Ok(())
    }
}

impl ClickId {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (i, k) in self.keys.iter().enumerate() {
            if k.secret.len() < 16 {
                return Err(invalid(&format!("click_id.keys[{i}].secret"), "must be at least 16 bytes"));
            }
            if self.keys[..i].iter().any(|o| o.id == k.id) {
                return Err(invalid(&format!("click_id.keys[{i}].id"), format!("duplicate key id {}", k.id)));
            }
        }
        if self.max_age_days == 0 {
            return Err(invalid("click_id.max_age_days", "must be at least 1"));
        }
        Ok(())
    }
}

impl Privacy {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.ip == IpPrivacy::Hash && self.ip_hash_key.len() < 16 {
            return Err(invalid("privacy.ip_hash_key", "must be at least 16 bytes when privacy.ip = \"hash\""));
        }
        Ok(())
    }
}

impl Events {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(16..=16_777_216).contains(&self.click_queue_len_max) {
            return Err(invalid("events.click_queue_len_max", "must be in 16..=16777216"));
        }
        if !(16..=16_777_216).contains(&self.spill_queue_len_max) {
            return Err(invalid("events.spill_queue_len_max", format!("must be in 16..=16777216, got {}", self.spill_queue_len_max)));
        }
        if !(1..=65_536).contains(&self.click_log_batch_len_max) {
            return Err(invalid("events.click_log_batch_len_max", "must be in 1..=65536"));
        }
        if self.click_log_linger_ms > 1_000 {
            return Err(invalid("events.click_log_linger_ms", "must be at most 1000"));
        }
        Ok(())
    }
}
