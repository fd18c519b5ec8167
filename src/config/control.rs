//! Core-side sections: the click log and index (`[core]`), the JSON API (`[api]`) and cluster
//! mode (`[cluster]`).

use std::path::PathBuf;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// The core's durable click log and attribution index.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Core {
    /// The click log's directory; relative paths are inside the data dir.
    pub click_log_dir: PathBuf,
    /// A segment is sealed and a new one started past this size.
    pub segment_bytes_max: u64,
    /// Sealed segments whose newest click is older than this are deleted.
    pub retention_days: u32,
    /// How often retention and compaction run.
    pub compact_interval_ms: u64,
    /// Sealed segments smaller than this are merged with their neighbours by compaction.
    pub compact_segment_bytes_min: u64,
    /// Clicks the attribution index holds; the oldest are evicted first.
    pub index_clicks_max: usize,
    /// Touches kept per visitor; the oldest are evicted first.
    pub index_visitor_touches_max: usize,
    /// Events written and fsynced per batch.
    pub ingest_batch_len_max: usize,
    /// Where conversions, commissions and the ledger live: empty for the embedded SQLite file
    /// in the data dir, or a `postgres://` URL (cluster mode; env `CLICKGATE_DATABASE_URL`
    /// overrides it). Tables go in the first schema of the URL's search path.
    pub database_url: String,
}

impl Default for Core {
    fn default() -> Self {
        Core {
            click_log_dir: PathBuf::from("clicks"),
            segment_bytes_max: 64 * 1024 * 1024,
            retention_days: 90,
            compact_interval_ms: 3_600_000,
            compact_segment_bytes_min: 8 * 1024 * 1024,
            index_clicks_max: 2_000_000,
            index_visitor_touches_max: 32,
            ingest_batch_len_max: 8_192,
            database_url: String::new(),
        }
    }
}

/// The JSON API listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Api {
    /// The admin key in plain text (demo only; prefer `admin_key_sha256` or env `CLICKGATE_ADMIN_KEY`).
    pub admin_key: String,
    /// Hex SHA-256 of the admin key.
    pub admin_key_sha256: String,
    /// HMAC-SHA256 key for signed postbacks (`GET /v1/postback`); empty turns postbacks off.
    pub postback_secret: String,
    /// How long a postback signature stays valid.
    pub postback_max_age_s: u64,
    /// How long an `Idempotency-Key` is remembered (at least 24 h).
    pub idempotency_ttl_hours: u64,
    pub body_bytes_max: usize,
    /// How far in the future `occurred_at` may be, for clock skew.
    pub clock_skew_ms: u64,
    pub connections_max: usize,
    /// Conversions written per grouped commit.
    pub commit_batch_len_max: usize,
    /// Jobs waiting for the conversion writer (new conversions, cancels and refunds, approvals,
    /// payouts); a request that finds the queue full waits for room. At least one commit's worth.
    pub writer_queue_len_max: usize,
    /// Connections the API reads conversions, commissions, reports and the ledger through, so
    /// one slow report does not hold up the others.
    pub read_connections_max: usize,
    /// Calls a second each stored API key may make (a sustained rate; `key_burst` above it).
    pub key_requests_per_s: u32,
    pub key_burst: u32,
    /// Failed authentications a minute from one address; past them it gets `429` until one more
    /// is allowed.
    pub auth_failures_per_min: u32,
    /// The edge's public base URL, as customers reach it: links' QR codes encode
    /// `{edge_public_url}/q/{code}`.
    pub edge_public_url: String,
    /// Dashboard sessions held in memory at most; past it the oldest is signed out.
    pub dashboard_sessions_max: usize,
    /// How long a dashboard session lives after its sign-in.
    pub dashboard_session_ttl_s: u64,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            admin_key: String::new(),
            admin_key_sha256: String::new(),
            postback_secret: String::new(),
            postback_max_age_s: 900,
            idempotency_ttl_hours: 48,
            body_bytes_max: 1024 * 1024,
            clock_skew_ms: 300_000,
            connections_max: 1_024,
            commit_batch_len_max: 256,
            writer_queue_len_max: 4_096,
            read_connections_max: 4,
            key_requests_per_s: 100,
            key_burst: 200,
            auth_failures_per_min: 20,
            edge_public_url: "http://localhost:8080".into(),
            dashboard_sessions_max: 10_000,
            dashboard_session_ttl_s: 28_800,
        }
    }
}

/// Cluster mode: `clickgate edge` publishes to NATS JetStream and `clickgate core` consumes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    pub nats_url: String,
    pub stream: String,
    pub subject: String,
    /// The core's durable pull consumer.
    pub durable: String,
    /// JetStream's duplicate window: publishes with the same `Nats-Msg-Id` inside it are dropped.
    pub duplicate_window_ms: u64,
    /// The edge's local spool directory; relative paths are inside the data dir.
    pub spool_dir: PathBuf,
    /// The spool refuses appends past this size (then events are counted as dropped).
    pub spool_bytes_max: u64,
    pub publish_timeout_ms: u64,
    /// Click events per published message (a batch of consecutive spool events).
    pub publish_batch_len_max: usize,
    /// How long the publisher, once it has caught up with the spool, lets clicks gather before
    /// it reads and publishes again.
    pub publish_linger_ms: u64,
    /// Messages fetched per pull.
    pub fetch_batch_len_max: usize,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait_ms: u64,
    /// Backoff between reconnect attempts while the broker is down.
    pub reconnect_delay_ms: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            nats_url: "nats://127.0.0.1:4222".into(),
            stream: "CLICKGATE_CLICKS".into(),
            subject: "clickgate.clicks".into(),
            durable: "clickgate-core".into(),
            duplicate_window_ms: 120_000,
            spool_dir: PathBuf::from("spool"),
            spool_bytes_max: 4 * 1024 * 1024 * 1024,
            publish_timeout_ms: 5_000,
            publish_batch_len_max: 256,
            publish_linger_ms: 5,
            fetch_batch_len_max: 32,
            ack_wait_ms: 30_000,
            reconnect_delay_ms: 500,
        }
    }
}

impl Core {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.click_log_dir.as_os_str().is_empty() {
            return Err(invalid("core.click_log_dir", "must not be empty"));
        }
        if !(1 << 20..=1 << 40).contains(&self.segment_bytes_max) {
            return Err(invalid("core.segment_bytes_max", "must be in 1048576..=1099511627776"));
        }
        if !(1..=3650).contains(&self.retention_days) {
            return Err(invalid("core.retention_days", "must be in 1..=3650"));
        }
        if !(1000..=86_400_000).contains(&self.compact_interval_ms) {
            return Err(invalid("core.compact_interval_ms", "must be in 1000..=86400000"));
        }
        if self.compact_segment_bytes_min > self.segment_bytes_max {
            return Err(invalid("core.compact_segment_bytes_min", "must be at most core.segment_bytes_max"));
        }
        if !(1000..=1_000_000_000).contains(&self.index_clicks_max) {
            return Err(invalid("core.index_clicks_max", "must be in 1000..=1000000000"));
        }
        if !(1..=1024).contains(&self.index_visitor_touches_max) {
            return Err(invalid("core.index_visitor_touches_max", "must be in 1..=1024"));
        }
        if !(1..=1 << 20).contains(&self.ingest_batch_len_max) {
            return Err(invalid("core.ingest_batch_len_max", "must be in 1..=1048576"));
        }
        check_database_url("core.database_url", &self.database_url)?;
        Ok(())
    }

    /// The PostgreSQL URL of the conversion store: env `CLICKGATE_DATABASE_URL` when set and
    /// not empty, else `database_url`; `None` for the embedded SQLite file.
    pub fn database_url(&self) -> Result<Option<String>, ConfigError> {
        match std::env::var("CLICKGATE_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                check_database_url("CLICKGATE_DATABASE_URL", &url)?;
                Ok(Some(url))
            }
            _ => Ok(Some(self.database_url.clone()).filter(|u| !u.is_empty())),
        }
    }
}

/// Empty, or a `postgres://` (`postgresql://`) URL.
fn check_database_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    Err(invalid(key, "must be empty (the embedded SQLite store) or a postgres:// URL"))
}

impl Api {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.admin_key.is_empty() && self.admin_key.len() < 12 {
            return Err(invalid("api.admin_key", "must be at least 12 bytes"));
        }
        if !self.admin_key_sha256.is_empty()
            && (self.admin_key_sha256.len() != 64 || !self.admin_key_sha256.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid("api.admin_key_sha256", "must be 64 hex digits (the SHA-256 of the key)"));
        }
        if !self.postback_secret.is_empty() && self.postback_secret.len() < 16 {
            return Err(invalid("api.postback_secret", "must be at least 16 bytes"));
        }
        if !(60..=86_400).contains(&self.postback_max_age_s) {
            return Err(invalid("api.postback_max_age_s", "must be in 60..=86400"));
        }
        if !(24..=24 * 365).contains(&self.idempotency_ttl_hours) {
            return Err(invalid("api.idempotency_ttl_hours", "must be in 24..=8760: keys are kept at least a day"));
        }
        if !(1024..=64 << 20).contains(&self.body_bytes_max) {
            return Err(invalid("api.body_bytes_max", "must be in 1024..=67108864"));
        }
        if self.clock_skew_ms > 3_600_000 {
            return Err(invalid("api.clock_skew_ms", "must be at most 3600000"));
        }
        if !(1..=100_000).contains(&self.connections_max) {
            return Err(invalid("api.connections_max", "must be in 1..=100000"));
        }
        if !(1..=65_536).contains(&self.commit_batch_len_max) {
            return Err(invalid("api.commit_batch_len_max", "must be in 1..=65536"));
        }
        if !(1..=64).contains(&self.read_connections_max) {
            return Err(invalid("api.read_connections_max", "must be in 1..=64"));
        }
        if !(1..=1_000_000).contains(&self.dashboard_sessions_max) {
            return Err(invalid("api.dashboard_sessions_max", "must be in 1..=1000000"));
        }
        if !(60..=7 * 86_400).contains(&self.dashboard_session_ttl_s) {
            return Err(invalid("api.dashboard_session_ttl_s", "must be in 60..=604800"));
        }
        if !(1..=1_000_000).contains(&self.key_requests_per_s) {
            return Err(invalid("api.key_requests_per_s", "must be in 1..=1000000"));
        }
        if self.key_burst < self.key_requests_per_s.min(1_000) || self.key_burst > 1_000_000 {
            return Err(invalid("api.key_burst", "must be at least min(api.key_requests_per_s, 1000) and at most 1000000"));
        }
        if !(1..=10_000).contains(&self.auth_failures_per_min) {
            return Err(invalid("api.auth_failures_per_min", "must be in 1..=10000"));
        }
        let url = &self.edge_public_url;
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if !scheme_ok || url.len() > 200 || !url.bytes().all(|b| b.is_ascii_graphic()) || url.contains(['?', '#']) {
            return Err(invalid("api.edge_public_url", "must be an http:// or https:// URL of at most 200 bytes, without a query"));
        }
        // A queue shorter than a commit would keep every group below the batch it is allowed.
        if !(self.commit_batch_len_max..=1_048_576).contains(&self.writer_queue_len_max) {
            return Err(invalid(
                "api.writer_queue_len_max",
                format!(
                    "must be at least api.commit_batch_len_max ({}) so a whole commit can queue, and at most 1048576, got {}",
                    self.commit_batch_len_max, self.writer_queue_len_max
                ),
            ));
        }
        Ok(())
    }
}

impl Cluster {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.nats_url.starts_with("nats://") || self.nats_url.starts_with("tls://")) {
            return Err(invalid("cluster.nats_url", format!("{:?} must start with nats:// or tls://", self.nats_url)));
        }
        if self.stream.is_empty() || !self.stream.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(invalid("cluster.stream", "must be non-empty ASCII letters, digits, '_' or '-'"));
        }
        if self.subject.is_empty() || self.subject.bytes().any(|b| b.is_ascii_whitespace() || b == b'*' || b == b'>') {
            return Err(invalid("cluster.subject", "must be a literal subject (no spaces or wildcards)"));
        }
        if self.durable.is_empty() || !self.durable.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(invalid("cluster.durable", "must be non-empty ASCII letters, digits, '_' or '-'"));
        }
        if !(1000..=86_400_000).contains(&self.duplicate_window_ms) {
            return Err(invalid("cluster.duplicate_window_ms", "must be in 1000..=86400000"));
        }
        if self.spool_bytes_max < 1 << 20 {
            return Err(invalid("cluster.spool_bytes_max", "must be at least 1048576"));
        }
        if !(100..=600_000).contains(&self.publish_timeout_ms) {
            return Err(invalid("cluster.publish_timeout_ms", "must be in 100..=600000"));
        }
        if !(1..=4096).contains(&self.publish_batch_len_max) {
            return Err(invalid("cluster.publish_batch_len_max", "must be in 1..=4096"));
        }
        if self.publish_linger_ms > 1000 {
            return Err(invalid("cluster.publish_linger_ms", "must be at most 1000"));
        }
        if !(1..=65_536).contains(&self.fetch_batch_len_max) {
            return Err(invalid("cluster.fetch_batch_len_max", "must be in 1..=65536"));
        }
        if !(1000..=3_600_000).contains(&self.ack_wait_ms) {
            return Err(invalid("cluster.ack_wait_ms", "must be in 1000..=3600000"));
        }
        if !(10..=60_000).contains(&self.reconnect_delay_ms) {
            return Err(invalid("cluster.reconnect_delay_ms", "must be in 10..=60000"));
        }
        Ok(())
    }
}

/// The commission lifecycle's sweeps (`[commission]`); the rules themselves are per program.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Commission {
    /// How often the approval sweep runs; 0 turns the timer off (`clickgate commissions
    /// approve` still runs it).
    pub approve_interval_ms: u64,
    /// Commissions approved per writer job; a sweep runs jobs until one approves fewer.
    pub approve_batch_len_max: usize,
}

impl Default for Commission {
    fn default() -> Self {
        Commission { approve_interval_ms: 60_000, approve_batch_len_max: 1_000 }
    }
}

impl Commission {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.approve_interval_ms != 0 && !(1_000..=86_400_000).contains(&self.approve_interval_ms) {
            return Err(invalid("commission.approve_interval_ms", "must be 0 (off) or in 1000..=86400000"));
        }
        if !(1..=100_000).contains(&self.approve_batch_len_max) {
            return Err(invalid("commission.approve_batch_len_max", "must be in 1..=100000"));
        }
        Ok(())
    }
}
