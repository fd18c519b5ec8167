//! Configuration: `config/*.toml` into typed structs, every key defaulted and validated at start.
//!
//! A bad key fails start-up with its dotted name and the reason, e.g.
//! `checks.dedup.fp_rate: must be in (0, 0.01], got 0.5`.
//!
//! One file per area: `edge` (listeners, edge limits, TLS, click ids, privacy, events),
//! `checks` (the fraud-check pipeline), `control` (click log and index, API, cluster,
//! commissions), `webhooks` and `payouts`. Every
//! section type is re-exported here, so its path is `crate::config::<Type>`.

mod alerts;
mod checks;
mod control;
mod edge;
mod payouts;
mod webhooks;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::alerts::FraudAlerts;
pub use self::checks::{parse_cidr, Action, Bots, Checks, Dedup, GeoIp, IpRules, Mode, RateLimit, Velocity};
pub use self::control::{Api, Cluster, Commission, Core};
pub use self::edge::{ClickId, ClickKey, Edge, Events, IpPrivacy, Listen, Privacy, Runtime, Tls};
pub use self::payouts::{Payouts, Stripe as PayoutsStripe};
pub use self::webhooks::Webhooks;

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

/// `key`'s value `v` inside `lo..=hi`, or the error naming the key, the range and the value.
fn in_range(key: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(invalid(key, format!("must be in {lo}..={hi}, got {v}")))
    }
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
    pub commission: Commission,
    pub webhooks: Webhooks,
    pub payouts: Payouts,
    pub fraud_alerts: FraudAlerts,
    pub demo: Demo,
}

/// Seed data written into an empty store on first start. The entries are plain tables here:
/// the app reads them as catalog objects and validates them at start (`app::demo_seed`), so
/// the config depends on nothing else of ours.
#[derive(Debug, Clone, Default)]
pub struct Demo {
    pub programs: Vec<toml::Table>,
    pub partners: Vec<toml::Table>,
    pub links: Vec<toml::Table>,
    pub coupons: Vec<toml::Table>,
}

/// `[demo]` is a table of four optional arrays of tables, any other key refused. Written by
/// hand so that a reflection of the config's shape (tests/config_docs.rs) sees the section's
/// four keys: the entries themselves are free-form here, and their keys are the catalog's.
impl<'de> Deserialize<'de> for Demo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Demo, D::Error> {
        const FIELDS: &[&str] = &["programs", "partners", "links", "coupons"];
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Demo;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [demo] table with programs, partners, links and coupons")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Demo, A::Error> {
                let mut demo = Demo::default();
                while let Some(key) = map.next_key::<String>()? {
                    let field = match key.as_str() {
                        "programs" => &mut demo.programs,
                        "partners" => &mut demo.partners,
                        "links" => &mut demo.links,
                        "coupons" => &mut demo.coupons,
                        other => return Err(serde::de::Error::unknown_field(other, FIELDS)),
                    };
                    *field = map.next_value()?;
                }
                Ok(demo)
            }
            // A format that reads structs as sequences only traces the shape: the entries'
            // own keys are not the config's.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _seq: A) -> Result<Demo, A::Error> {
                Ok(Demo::default())
            }
        }
        d.deserialize_struct("Demo", FIELDS, Visit)
    }
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
        fix(&mut self.checks.geoip.datacenter_asn_list);
        fix(&mut self.checks.bots.crawler_list);
        fix(&mut self.checks.bots.generic_list);
        fix(&mut self.tls.cert_path);
        fix(&mut self.tls.key_path);
    }

    /// Checks every cross-field rule; names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.edge.validate()?;
        self.tls.validate()?;
        self.click_id.validate()?;
        self.privacy.validate()?;
        self.checks.validate()?;
        self.events.validate()?;
        self.core.validate()?;
        self.api.validate()?;
        self.cluster.validate()?;
        self.commission.validate()?;
        self.webhooks.validate()?;
        self.payouts.validate()?;
        self.fraud_alerts.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
