//! Configuration: `config/*.toml` into typed structs, every key defaulted and validated at start.
//!
//! A bad key fails start-up with its dotted name and the reason, e.g.
//! `checks.dedup.fp_rate: must be in (0, 0.01], got 0.5`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {why}")]
    Invalid { key: String, why: String },
}

fn invalid(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), why: why.into() }
}

/// Whether a rule acts, only counts what it would have done, or is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Observe,
    Off,
}

/// What a firing rule does to the click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Flag,
    Block,
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: Option<PathBuf>,
    pub listen: Listen,
    pub runtime: Runtime,
    pub edge: Edge,
    pub tls: Tls,
    pub click_id: ClickId,
    pub privacy: Privacy,
    pub checks: Checks,
    pub events: Events,
    pub core: Core,
    pub api: Api,
    pub cluster: Cluster,
    pub demo: Demo,
}

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

/// The fraud-check pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Checks {
    pub trusted_proxies: Vec<String>,
    pub rate_limit: RateLimit,
    pub ip_rules: IpRules,
    pub geoip: GeoIp,
    pub bots: Bots,
    pub velocity: Velocity,
    pub dedup: Dedup,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            trusted_proxies: vec!["127.0.0.0/8".into(), "::1/128".into()],
            rate_limit: RateLimit::default(),
            ip_rules: IpRules::default(),
            geoip: GeoIp::default(),
            bots: Bots::default(),
            velocity: Velocity::default(),
            dedup: Dedup::default(),
        }
    }
}

/// Governor rate limits. A `*_per_s` of 0 turns that limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    pub mode: Mode,
    pub ip_per_s: u32,
    pub ip_burst: u32,
    pub subnet_per_s: u32,
    pub subnet_burst: u32,
    pub global_per_s: u32,
    pub global_burst: u32,
    pub trim_interval_ms: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            mode: Mode::Enforce,
            ip_per_s: 20,
            ip_burst: 100,
            subnet_per_s: 200,
            subnet_burst: 1_000,
            global_per_s: 100_000,
            global_burst: 200_000,
            trim_interval_ms: 5_000,
        }
    }
}

/// CIDR deny and allow lists. An allowlisted address skips the deny list and the ASN rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpRules {
    pub mode: Mode,
    pub deny: Vec<String>,
    pub allow: Vec<String>,
    pub deny_action: Action,
}

impl Default for IpRules {
    fn default() -> Self {
        IpRules { mode: Mode::Enforce, deny: Vec::new(), allow: Vec::new(), deny_action: Action::Block }
    }
}

/// MaxMind databases and the rules that use them. Empty paths or missing files turn a rule off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoIp {
    pub mode: Mode,
    pub country_db: Option<PathBuf>,
    pub asn_db: Option<PathBuf>,
    pub anonymous_db: Option<PathBuf>,
    pub reload_interval_ms: u64,
    /// Cached lookups (a power of two; 0 turns the cache off).
    pub cache_len: usize,
    pub datacenter_asns: Vec<u32>,
    pub datacenter_action: Action,
    pub anonymous_action: Action,
    pub geo_action: Action,
}

impl Default for GeoIp {
    fn default() -> Self {
        GeoIp {
            mode: Mode::Enforce,
            country_db: None,
            asn_db: None,
            anonymous_db: None,
            reload_interval_ms: 10_000,
            cache_len: 262_144,
            datacenter_asns: Vec::new(),
            datacenter_action: Action::Flag,
            anonymous_action: Action::Flag,
            geo_action: Action::Block,
        }
    }
}

/// User-agent rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bots {
    pub mode: Mode,
    /// crawler-user-agents JSON (fetched by `config/bots/fetch.sh`).
    pub crawler_list: Option<PathBuf>,
    pub bot_action: Action,
    pub ua_cache_len: usize,
    /// Longer agents are flagged `non_browser_ua` without being matched.
    pub ua_bytes_max: usize,
}

impl Default for Bots {
    fn default() -> Self {
        Bots { mode: Mode::Enforce, crawler_list: None, bot_action: Action::Flag, ua_cache_len: 16_384, ua_bytes_max: 512 }
    }
}

/// Velocity thresholds over a sliding window. A `*_max` of 0 turns that counter off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Velocity {
    pub mode: Mode,
    pub window_ms: u64,
    pub ip_max: u32,
    pub subnet_max: u32,
    pub link_ip_max: u32,
    pub action: Action,
    pub sketch_width: usize,
    pub sketch_depth: usize,
}

impl Default for Velocity {
    fn default() -> Self {
        Velocity {
            mode: Mode::Enforce,
            window_ms: 60_000,
            ip_max: 30,
            subnet_max: 300,
            link_ip_max: 10,
            action: Action::Flag,
            sketch_width: 1 << 18,
            sketch_depth: 4,
        }
    }
}

/// Bloom-filter dedup of (link, IP, user agent).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dedup {
    pub mode: Mode,
    pub window_ms: u64,
    /// Design capacity per window; a filter that reaches it rotates early so the rate holds.
    pub capacity: usize,
    pub fp_rate: f64,
    pub shards: usize,
    pub action: Action,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup { mode: Mode::Enforce, window_ms: 3_600_000, capacity: 4_000_000, fp_rate: 0.001, shards: 16, action: Action::Flag }
    }
}

/// The click-event queue and log.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Events {
    pub click_queue_len_max: usize,
    pub click_log_batch_len_max: usize,
    pub click_log_linger_ms: u64,
}

impl Default for Events {
    fn default() -> Self {
        Events { click_queue_len_max: 65_536, click_log_batch_len_max: 4_096, click_log_linger_ms: 5 }
    }
}

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
            fetch_batch_len_max: 1_024,
            ack_wait_ms: 30_000,
            reconnect_delay_ms: 500,
        }
    }
}

/// Seed data written into an empty store on first start.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Demo {
    pub programs: Vec<crate::store::NewProgram>,
    pub partners: Vec<crate::store::NewPartner>,
    pub links: Vec<crate::store::NewLink>,
    pub coupons: Vec<crate::store::NewCoupon>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        config.validate()?;
        Ok(config)
    }

    /// Relative data paths are taken from the working directory when they exist there, else
    /// from the config file's project root (the directory above `config/`).
    fn resolve_paths(&mut self, config_dir: &Path) {
        let root = if config_dir.file_name().is_some_and(|n| n == "config") {
            config_dir.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            config_dir.to_path_buf()
        };
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(path) = p {
                if path.as_os_str().is_empty() {
                    *p = None;
                } else if path.is_relative() && !path.exists() && root.join(&*path).exists() {
                    *path = root.join(&*path);
                }
            }
        };
        fix(&mut self.checks.geoip.country_db);
        fix(&mut self.checks.geoip.asn_db);
        fix(&mut self.checks.geoip.anonymous_db);
        fix(&mut self.checks.bots.crawler_list);
        fix(&mut self.tls.cert_path);
        fix(&mut self.tls.key_path);
    }

    /// Checks every cross-field rule; names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.edge;
        if !(1..=1_000_000).contains(&e.connections_max) {
            return Err(invalid("edge.connections_max", format!("must be in 1..=1000000, got {}", e.connections_max)));
        }
        if e.header_read_timeout_ms == 0 {
            return Err(invalid("edge.header_read_timeout_ms", "must be at least 1"));
        }
        if !(1..=1000).contains(&e.headers_max) {
            return Err(invalid("edge.headers_max", format!("must be in 1..=1000, got {}", e.headers_max)));
        }
        if !(1024..=1 << 20).contains(&e.header_bytes_max) {
            return Err(invalid("edge.header_bytes_max", "must be in 1024..=1048576"));
        }
        if e.header_read_timeout_ms > 600_000 || e.shutdown_drain_ms > 600_000 {
            return Err(invalid("edge.header_read_timeout_ms/shutdown_drain_ms", "must be at most 600000"));
        }
        if !(10..=3_600_000).contains(&e.link_reload_interval_ms) {
            return Err(invalid("edge.link_reload_interval_ms", "must be in 10..=3600000"));
        }
        if e.visitor_cookie_name.is_empty() || !e.visitor_cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid("edge.visitor_cookie_name", "must be non-empty ASCII letters, digits or '_'"));
        }
        if !e.visitor_cookie_domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Err(invalid("edge.visitor_cookie_domain", "must be a plain domain name"));
        }
        if !(1..=512).contains(&e.sub_id_bytes_max) {
            return Err(invalid("edge.sub_id_bytes_max", "must be in 1..=512"));
        }
        if self.tls.cert_path.is_some() != self.tls.key_path.is_some() {
            return Err(invalid("tls", "cert_path and key_path must be set together"));
        }
        for (i, k) in self.click_id.keys.iter().enumerate() {
            if k.secret.len() < 16 {
                return Err(invalid(&format!("click_id.keys[{i}].secret"), "must be at least 16 bytes"));
            }
            if self.click_id.keys[..i].iter().any(|o| o.id == k.id) {
                return Err(invalid(&format!("click_id.keys[{i}].id"), format!("duplicate key id {}", k.id)));
            }
        }
        if self.click_id.max_age_days == 0 {
            return Err(invalid("click_id.max_age_days", "must be at least 1"));
        }
        if self.privacy.ip == IpPrivacy::Hash && self.privacy.ip_hash_key.len() < 16 {
            return Err(invalid("privacy.ip_hash_key", "must be at least 16 bytes when privacy.ip = \"hash\""));
        }
        for (i, c) in self.checks.trusted_proxies.iter().enumerate() {
            crate::edge::checks::ip_rules::parse_cidr(c).map_err(|why| invalid(&format!("checks.trusted_proxies[{i}]"), why))?;
        }
        for (name, list) in [("deny", &self.checks.ip_rules.deny), ("allow", &self.checks.ip_rules.allow)] {
            for (i, c) in list.iter().enumerate() {
                crate::edge::checks::ip_rules::parse_cidr(c).map_err(|why| invalid(&format!("checks.ip_rules.{name}[{i}]"), why))?;
            }
        }
        let r = &self.checks.rate_limit;
        for (key, per_s, burst) in
            [("ip", r.ip_per_s, r.ip_burst), ("subnet", r.subnet_per_s, r.subnet_burst), ("global", r.global_per_s, r.global_burst)]
        {
            if per_s > 0 && burst == 0 {
                return Err(invalid(&format!("checks.rate_limit.{key}_burst"), "must be at least 1 when the limit is on"));
            }
        }
        if !(100..=3_600_000).contains(&r.trim_interval_ms) {
            return Err(invalid("checks.rate_limit.trim_interval_ms", "must be in 100..=3600000"));
        }
        if !(1..=1 << 20).contains(&self.checks.bots.ua_cache_len) {
            return Err(invalid("checks.bots.ua_cache_len", "must be in 1..=1048576"));
        }
        if !(64..=16_384).contains(&self.checks.bots.ua_bytes_max) {
            return Err(invalid("checks.bots.ua_bytes_max", "must be in 64..=16384"));
        }
        if self.checks.geoip.cache_len > 1 << 24 {
            return Err(invalid("checks.geoip.cache_len", "must be at most 16777216"));
        }
        if !(100..=86_400_000).contains(&self.checks.geoip.reload_interval_ms) {
            return Err(invalid("checks.geoip.reload_interval_ms", "must be in 100..=86400000"));
        }
        let v = &self.checks.velocity;
        if !(1000..=86_400_000).contains(&v.window_ms) {
            return Err(invalid("checks.velocity.window_ms", "must be in 1000..=86400000 (one day)"));
        }
        if !v.sketch_width.is_power_of_two() || !(1024..=1 << 24).contains(&v.sketch_width) {
            return Err(invalid("checks.velocity.sketch_width", "must be a power of two in 1024..=16777216"));
        }
        if !(1..=7).contains(&v.sketch_depth) {
            return Err(invalid("checks.velocity.sketch_depth", "must be in 1..=7"));
        }
        let d = &self.checks.dedup;
        if !(1000..=7 * 86_400_000).contains(&d.window_ms) {
            return Err(invalid("checks.dedup.window_ms", "must be in 1000..=604800000 (a week)"));
        }
        if !(d.fp_rate > 0.0 && d.fp_rate <= 0.01) {
            return Err(invalid("checks.dedup.fp_rate", format!("must be in (0, 0.01], got {}", d.fp_rate)));
        }
        if !(1000..=1_000_000_000).contains(&d.capacity) {
            return Err(invalid("checks.dedup.capacity", "must be in 1000..=1000000000"));
        }
        if !d.shards.is_power_of_two() || d.shards > 1024 {
            return Err(invalid("checks.dedup.shards", "must be a power of two up to 1024"));
        }
        let ev = &self.events;
        if !(16..=16_777_216).contains(&ev.click_queue_len_max) {
            return Err(invalid("events.click_queue_len_max", "must be in 16..=16777216"));
        }
        if !(1..=65_536).contains(&ev.click_log_batch_len_max) {
            return Err(invalid("events.click_log_batch_len_max", "must be in 1..=65536"));
        }
        if ev.click_log_linger_ms > 1_000 {
            return Err(invalid("events.click_log_linger_ms", "must be at most 1000"));
        }
        let c = &self.core;
        if c.click_log_dir.as_os_str().is_empty() {
            return Err(invalid("core.click_log_dir", "must not be empty"));
        }
        if !(1 << 20..=1 << 40).contains(&c.segment_bytes_max) {
            return Err(invalid("core.segment_bytes_max", "must be in 1048576..=1099511627776"));
        }
        if !(1..=3650).contains(&c.retention_days) {
            return Err(invalid("core.retention_days", "must be in 1..=3650"));
        }
        if !(1000..=86_400_000).contains(&c.compact_interval_ms) {
            return Err(invalid("core.compact_interval_ms", "must be in 1000..=86400000"));
        }
        if c.compact_segment_bytes_min > c.segment_bytes_max {
            return Err(invalid("core.compact_segment_bytes_min", "must be at most core.segment_bytes_max"));
        }
        if !(1000..=1_000_000_000).contains(&c.index_clicks_max) {
            return Err(invalid("core.index_clicks_max", "must be in 1000..=1000000000"));
        }
        if !(1..=1024).contains(&c.index_visitor_touches_max) {
            return Err(invalid("core.index_visitor_touches_max", "must be in 1..=1024"));
        }
        if !(1..=1 << 20).contains(&c.ingest_batch_len_max) {
            return Err(invalid("core.ingest_batch_len_max", "must be in 1..=1048576"));
        }
        let a = &self.api;
        if !a.admin_key.is_empty() && a.admin_key.len() < 12 {
            return Err(invalid("api.admin_key", "must be at least 12 bytes"));
        }
        if !a.admin_key_sha256.is_empty() && (a.admin_key_sha256.len() != 64 || !a.admin_key_sha256.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid("api.admin_key_sha256", "must be 64 hex digits (the SHA-256 of the key)"));
        }
        if !a.postback_secret.is_empty() && a.postback_secret.len() < 16 {
            return Err(invalid("api.postback_secret", "must be at least 16 bytes"));
        }
        if !(60..=86_400).contains(&a.postback_max_age_s) {
            return Err(invalid("api.postback_max_age_s", "must be in 60..=86400"));
        }
        if !(24..=24 * 365).contains(&a.idempotency_ttl_hours) {
            return Err(invalid("api.idempotency_ttl_hours", "must be in 24..=8760: keys are kept at least a day"));
        }
        if !(1024..=64 << 20).contains(&a.body_bytes_max) {
            return Err(invalid("api.body_bytes_max", "must be in 1024..=67108864"));
        }
        if a.clock_skew_ms > 3_600_000 {
            return Err(invalid("api.clock_skew_ms", "must be at most 3600000"));
        }
        if !(1..=100_000).contains(&a.connections_max) {
            return Err(invalid("api.connections_max", "must be in 1..=100000"));
        }
        if !(1..=65_536).contains(&a.commit_batch_len_max) {
            return Err(invalid("api.commit_batch_len_max", "must be in 1..=65536"));
        }
        let k = &self.cluster;
        if !(k.nats_url.starts_with("nats://") || k.nats_url.starts_with("tls://")) {
            return Err(invalid("cluster.nats_url", format!("{:?} must start with nats:// or tls://", k.nats_url)));
        }
        if k.stream.is_empty() || !k.stream.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(invalid("cluster.stream", "must be non-empty ASCII letters, digits, '_' or '-'"));
        }
        if k.subject.is_empty() || k.subject.bytes().any(|b| b.is_ascii_whitespace() || b == b'*' || b == b'>') {
            return Err(invalid("cluster.subject", "must be a literal subject (no spaces or wildcards)"));
        }
        if k.durable.is_empty() || !k.durable.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(invalid("cluster.durable", "must be non-empty ASCII letters, digits, '_' or '-'"));
        }
        if !(1000..=86_400_000).contains(&k.duplicate_window_ms) {
            return Err(invalid("cluster.duplicate_window_ms", "must be in 1000..=86400000"));
        }
        if k.spool_bytes_max < 1 << 20 {
            return Err(invalid("cluster.spool_bytes_max", "must be at least 1048576"));
        }
        if !(100..=600_000).contains(&k.publish_timeout_ms) {
            return Err(invalid("cluster.publish_timeout_ms", "must be in 100..=600000"));
        }
        if !(1..=65_536).contains(&k.fetch_batch_len_max) {
            return Err(invalid("cluster.fetch_batch_len_max", "must be in 1..=65536"));
        }
        if !(1000..=3_600_000).contains(&k.ack_wait_ms) {
            return Err(invalid("cluster.ack_wait_ms", "must be in 1000..=3600000"));
        }
        if !(10..=60_000).contains(&k.reconnect_delay_ms) {
            return Err(invalid("cluster.reconnect_delay_ms", "must be in 10..=60000"));
        }
        for (i, p) in self.demo.programs.iter().enumerate() {
            p.validate().map_err(|why| invalid(&format!("demo.programs[{i}]"), why.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
