//! Stage 3b: MaxMind databases — country rules per program, datacenter ASNs and anonymous-IP
//! flags. Readers sit behind `ArcSwapOption` and are replaced when their file changes; a
//! missing or corrupt file leaves that rule off (or the old reader in place) and says so.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use maxminddb::Reader;
use serde::Deserialize;

use super::ip_rules::CidrSet;
use super::{Check, Click, Findings, Reason};
use crate::config::{self, Action};
use crate::model::GeoDbKind;

/// A loaded database and where it came from.
pub struct Db {
    pub reader: Reader<Vec<u8>>,
    /// Unix seconds the database was built (from its metadata).
    pub build_epoch: u64,
}

struct Slot {
    kind: GeoDbKind,
    path: Option<PathBuf>,
    db: ArcSwapOption<Db>,
    /// The mtime last tried, so a corrupt file is reported once, not every tick.
    tried: Mutex<Option<SystemTime>>,
}

/// The three databases.
pub struct GeoDbs {
    slots: [Slot; 3],
    /// Bumped on every swap, so cached lookups from an older database are not reused.
    generation: AtomicU64,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl GeoDbs {
    /// Opens whatever databases exist; logs each one that is configured but missing.
    pub fn open(cfg: &config::GeoIp) -> GeoDbs {
        let slot = |kind, path: &Option<PathBuf>| Slot { kind, path: path.clone(), db: ArcSwapOption::empty(), tried: Mutex::new(None) };
        let dbs = GeoDbs {
            slots: [
                slot(GeoDbKind::Country, &cfg.country_db),
                slot(GeoDbKind::Asn, &cfg.asn_db),
                slot(GeoDbKind::Anonymous, &cfg.anonymous_db),
            ],
            generation: AtomicU64::new(0),
        };
        dbs.reload_if_changed();
        for s in &dbs.slots {
            if s.db.load().is_none() {
                match &s.path {
                    Some(p) => {
                        tracing::warn!(db = s.kind.as_str(), path = %p.display(), "GeoIP database is missing, so its checks are off; run geoip/fetch.sh")
                    }
                    None => tracing::info!(db = s.kind.as_str(), "GeoIP database is not configured, so its checks are off"),
                }
            }
        }
        dbs
    }

    /// Re-opens every database whose file changed; returns how many were swapped in.
    pub fn reload_if_changed(&self) -> usize {
        let mut swapped = 0;
        for s in &self.slots {
            let Some(path) = &s.path else { continue };
            let Some(m) = mtime(path) else { continue };
            let mut tried = s.tried.lock().unwrap_or_else(|e| e.into_inner());
            if *tried == Some(m) {
                continue;
            }
            *tried = Some(m);
            match Reader::open_readfile(path) {
                Ok(reader) => {
                    let build_epoch = reader.metadata().build_epoch;
                    s.db.store(Some(Arc::new(Db { reader, build_epoch })));
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(db = s.kind.as_str(), path = %path.display(), build_epoch, "GeoIP database loaded");
                    swapped += 1;
                }
                Err(e) => {
                    tracing::error!(db = s.kind.as_str(), path = %path.display(), error = %e, "GeoIP database cannot be read; keeping the previous one")
                }
            }
        }
        swapped
    }

    /// The current database of a kind, if loaded.
    pub fn get(&self, kind: GeoDbKind) -> Option<Arc<Db>> {
        self.slots.iter().find(|s| s.kind == kind).and_then(|s| s.db.load_full())
    }
}

#[derive(Deserialize, Default)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct CountryRecord<'a> {
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    /// The flat schema of the ip-location-db packages.
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct AsnRecord {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
}

#[derive(Deserialize, Default)]
struct AnonymousRecord {
    #[serde(default)]
    is_anonymous: bool,
    #[serde(default)]
    is_hosting_provider: bool,
}

/// Looks up the country of `ip` as two ASCII uppercase letters.
pub fn country(db: &Db, ip: std::net::IpAddr) -> Option<[u8; 2]> {
    let found = db.reader.lookup(ip).ok()?;
    let rec: CountryRecord<'_> = found.decode().ok()??;
    let code = rec.country.and_then(|c| c.iso_code).or(rec.country_code)?;
    match code.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
        _ => None,
    }
}

/// Looks up the ASN of `ip`.
pub fn asn(db: &Db, ip: std::net::IpAddr) -> Option<u32> {
    let rec: AsnRecord = db.reader.lookup(ip).ok()?.decode().ok()??;
    rec.autonomous_system_number
}

/// What the databases say about one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeoFacts {
    pub country: Option<[u8; 2]>,
    pub asn: Option<u32>,
    pub hosting: bool,
    pub anonymous: bool,
}

impl GeoDbs {
    /// Looks `ip` up in every loaded database.
    pub fn facts(&self, ip: std::net::IpAddr) -> GeoFacts {
        let [country_db, asn_db, anon_db] = &self.slots;
        let mut f = GeoFacts::default();
        if let Some(db) = country_db.db.load().as_deref() {
            f.country = country(db, ip);
        }
        if let Some(db) = asn_db.db.load().as_deref() {
            f.asn = asn(db, ip);
        }
        if let Some(db) = anon_db.db.load().as_deref() {
            let rec: Option<AnonymousRecord> = db.reader.lookup(ip).ok().and_then(|r| r.decode().ok().flatten());
            if let Some(rec) = rec {
                f.hosting = rec.is_hosting_provider;
                f.anonymous = rec.is_anonymous;
            }
        }
        f
    }
}

/// A direct-mapped cache of lookups, one small lock per slot. Real traffic repeats addresses
/// (that is what velocity counts), and a hit saves two or three tree walks through databases
/// far larger than the CPU cache.
struct GeoCache {
    slots: Box<[Mutex<(u128, u64, GeoFacts)>]>,
    shift: u32,
}

impl GeoCache {
    fn new(len: usize) -> Option<GeoCache> {
        let len = len.checked_next_power_of_two().filter(|l| *l > 1)?;
        Some(GeoCache {
            slots: (0..len).map(|_| Mutex::new((u128::MAX, u64::MAX, GeoFacts::default()))).collect(),
            shift: 64 - len.trailing_zeros(),
        })
    }

    fn slot(&self, key: u128) -> &Mutex<(u128, u64, GeoFacts)> {
        let h = ((key as u64) ^ ((key >> 64) as u64).rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.slots[(h >> self.shift) as usize]
    }
}

/// The datacenter ASNs, sorted: `listed` and the config's own, less the config's exceptions.
pub fn datacenter_asns(cfg: &config::GeoIp, listed: &[u32]) -> Box<[u32]> {
    let mut asns: Vec<u32> =
        listed.iter().chain(&cfg.datacenter_asns).copied().filter(|a| !cfg.datacenter_asns_except.contains(a)).collect();
    asns.sort_unstable();
    asns.dedup();
    asns.into_boxed_slice()
}

/// Reads a list of ASNs as `geoip/fetch.sh` writes it: one per line, the number first and
/// anything after it (the provider's name) ignored; blank lines and `#` comments skipped. A line
/// whose first field is not an ASN (1 to 4294967295, with or without `AS`) is an error naming
/// the file and line: a half-understood list would silently stop flagging a provider.
pub fn read_asn_list(path: &Path) -> Result<Vec<u32>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut asns = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let field = line.split_whitespace().next().unwrap_or_default();
        let digits = field.strip_prefix("AS").or_else(|| field.strip_prefix("as")).unwrap_or(field);
        match digits.parse::<u32>() {
            Ok(asn) if asn > 0 => asns.push(asn),
            _ => return Err(format!("{}:{}: not an ASN: `{field}`", path.display(), i + 1)),
        }
    }
    Ok(asns)
}

/// The geo stage.
pub struct GeoCheck {
    dbs: Arc<GeoDbs>,
    cache: Option<GeoCache>,
    datacenter_asns: Box<[u32]>,
    allow: Arc<CidrSet>,
    datacenter_action: Action,
    anonymous_action: Action,
    geo_action: Action,
}

impl GeoCheck {
    /// Builds the stage over shared readers; `allow` is the IP allowlist, exempt from ASN rules.
    /// `datacenter_asns` is the sorted set of `datacenter_asns()`.
    pub fn new(dbs: Arc<GeoDbs>, cfg: &config::GeoIp, datacenter_asns: Box<[u32]>, allow: Arc<CidrSet>) -> GeoCheck {
        GeoCheck {
            dbs,
            cache: GeoCache::new(cfg.cache_len),
            datacenter_asns,
            allow,
            datacenter_action: cfg.datacenter_action,
            anonymous_action: cfg.anonymous_action,
            geo_action: cfg.geo_action,
        }
    }

    /// The facts for `ip`, through the cache.
    pub fn facts(&self, ip: std::net::IpAddr) -> GeoFacts {
        let Some(cache) = &self.cache else { return self.dbs.facts(ip) };
        let key = super::ip_rules::ip_key(ip);
        let generation = self.dbs.generation.load(Ordering::Acquire);
        let slot = cache.slot(key);
        {
            let entry = slot.lock().unwrap_or_else(|e| e.into_inner());
            if entry.0 == key && entry.1 == generation {
                return entry.2;
            }
        }
        let facts = self.dbs.facts(ip);
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = (key, generation, facts);
        facts
    }
}

impl Check for GeoCheck {
    fn run(&self, click: &Click<'_>, findings: &mut Findings) {
        let f = self.facts(click.ip);
        findings.country = f.country;
        findings.asn = f.asn.unwrap_or(0);
        if let Some(cc) = f.country {
            let rules = click.program;
            let denied = rules.country_deny.contains(&cc);
            let not_allowed = !rules.country_allow.is_empty() && !rules.country_allow.contains(&cc);
            if denied || not_allowed {
                findings.hit(Reason::GeoBlocked, self.geo_action);
            }
        }
        if !self.allow.is_empty() && self.allow.contains(click.ip) {
            return;
        }
        let datacenter = f.asn.is_some_and(|n| self.datacenter_asns.binary_search(&n).is_ok());
        if datacenter || f.hosting {
            findings.hit(Reason::DatacenterAsn, self.datacenter_action);
        }
        if f.anonymous {
            findings.hit(Reason::AnonymousIp, self.anonymous_action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geoip");

    #[test]
    fn hot_reload_swaps_the_reader_and_invalidates_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("country.mmdb");
        std::fs::copy(format!("{FIX}/GeoIP2-Country-Test.mmdb"), &path).unwrap();
        let cfg = config::GeoIp { country_db: Some(path.clone()), ..config::GeoIp::default() };
        let dbs = Arc::new(GeoDbs::open(&cfg));
        let check = GeoCheck::new(dbs.clone(), &cfg, datacenter_asns(&cfg, &[]), Arc::new(CidrSet::default()));
        let ip = "81.2.69.160".parse().unwrap();
        assert_eq!(check.facts(ip).country, Some(*b"GB"));
        assert_eq!(check.facts(ip).country, Some(*b"GB"), "cached");
        assert_eq!(dbs.reload_if_changed(), 0, "unchanged file is not reloaded");

        // A corrupt replacement is refused and the old reader stays.
        std::fs::write(&path, b"not a database").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(dbs.reload_if_changed(), 0);
        assert_eq!(check.facts(ip).country, Some(*b"GB"));

        // A different database is swapped in, and cached answers from the old one are dropped.
        std::fs::copy(format!("{FIX}/GeoLite2-ASN-Test.mmdb"), &path).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(dbs.reload_if_changed(), 1);
        assert_eq!(check.facts(ip).country, None);
    }

    #[test]
    fn missing_databases_turn_checks_off() {
        let cfg = config::GeoIp { country_db: Some("/nonexistent/x.mmdb".into()), ..config::GeoIp::default() };
        let dbs = GeoDbs::open(&cfg);
        assert!(dbs.get(GeoDbKind::Country).is_none());
        assert_eq!(dbs.facts("81.2.69.160".parse().unwrap()), GeoFacts::default());
    }
}
