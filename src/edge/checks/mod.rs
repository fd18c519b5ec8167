//! The fraud-check pipeline: built once from config, run synchronously per click, cheapest first.
//!
//! A check never fails a request: it records reasons in `Findings`, and the verdict is computed
//! from them. Rate limits run before the link lookup (a sprayer of unknown codes is still
//! limited); every other stage runs after it, because country rules are per program.

pub mod bots;
pub mod client_ip;
pub mod clock;
pub mod dedup;
pub mod geo;
pub mod ip_rules;
pub mod rate_limit;
pub mod velocity;

pub use self::ip_rules::Client;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{self, Action, Mode};
use crate::model::BlockedAction;
#[allow(unused_imports)]
pub(crate) use crate::model::{secret_seed, Reason, Reasons, Verdict};

/// Per-program rules the pipeline needs, shared by every link of the program.
#[derive(Debug, Clone, Default)]
pub struct ProgramRules {
    pub country_allow: Box<[[u8; 2]]>,
    pub country_deny: Box<[[u8; 2]]>,
    pub blocked_action: BlockedAction,
}

/// One click as the checks see it.
#[derive(Debug, Clone, Copy)]
pub struct Click<'a> {
    pub ip: IpAddr,
    /// Who the per-client and per-subnet rules count (`Client::of(ip)` on the edge).
    pub client: Client,
    pub ua: &'a str,
    pub head: bool,
    pub link_id: u32,
    pub program: &'a ProgramRules,
    /// Unix milliseconds: the wall clock on the edge, the log's `ts` in `clickgate check`.
    pub now_ms: u64,
}

/// What the checks found. Reasons from rules in `observe` mode land in `observed` and change nothing.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub reasons: Reasons,
    pub observed: Reasons,
    pub flag: bool,
    pub block: bool,
    /// HEAD requests and link unfurlers are redirected but are not clicks: stateful checks skip them.
    pub not_a_click: bool,
    pub country: Option<[u8; 2]>,
    pub asn: u32,
    mode: Mode,
}

impl Findings {
    /// Records a firing rule according to the running stage's mode.
    pub fn hit(&mut self, reason: Reason, action: Action) {
        match self.mode {
            Mode::Enforce => {
                self.reasons.insert(reason);
                match action {
                    Action::Flag => self.flag = true,
                    Action::Block => self.block = true,
                }
            }
            Mode::Observe => self.observed.insert(reason),
            Mode::Off => {}
        }
    }

    /// Records a firing rule that has a mode of its own inside its stage: the stricter of the
    /// two decides, so a new rule ships in `observe` while its stage enforces.
    pub fn hit_as(&mut self, mode: Mode, reason: Reason, action: Action) {
        let stage = self.mode;
        self.mode = match (stage, mode) {
            (Mode::Off, _) | (_, Mode::Off) => Mode::Off,
            (Mode::Observe, _) | (_, Mode::Observe) => Mode::Observe,
            _ => Mode::Enforce,
        };
        self.hit(reason, action);
        self.mode = stage;
    }

    /// The verdict these findings give.
    pub fn verdict(&self) -> Verdict {
        if self.reasons.contains(Reason::RateLimited) {
            Verdict::RateLimited
        } else if self.block {
            Verdict::Blocked
        } else if self.flag {
            Verdict::Flagged
        } else {
            Verdict::Valid
        }
    }
}

/// One stage of the pipeline.
pub trait Check: Send + Sync {
    /// Runs the check, recording what it finds.
    fn run(&self, click: &Click<'_>, findings: &mut Findings);
}

struct Stage {
    mode: Mode,
    check: Box<dyn Check>,
}

/// Why the pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("checks.bots (crawler_list or generic_list): {0}")]
    Bots(#[from] bots::BotsError),
    #[error("checks.ip_rules: {0}")]
    IpRules(String),
    #[error("checks.geoip.datacenter_asn_list: {0}")]
    DatacenterAsns(String),
}

/// The whole pipeline, built once.
pub struct Pipeline {
    pub trusted_proxies: client_ip::TrustedProxies,
    pub rate_limits: rate_limit::RateLimits,
    pub geo: Arc<geo::GeoDbs>,
    /// ASNs flagged `datacenter_asn`, and how many the fetched list named (before exceptions).
    pub datacenter_asns: (usize, usize),
    pub bots_status: bots::ListStatus,
    stages: Box<[Stage]>,
}

impl Pipeline {
    /// Builds every stage from config, cheapest first. Missing GeoIP databases turn the geo
    /// stages off (reported by `geo`); a configured but unreadable bot list is an error.
    pub fn build(cfg: &config::Checks) -> Result<Pipeline, BuildError> {
        let mut stages: Vec<Stage> = Vec::new();
        let ip_rules = ip_rules::IpRules::build(&cfg.ip_rules).map_err(BuildError::IpRules)?;
        let allow = Arc::new(ip_rules.allow.clone());
        if cfg.ip_rules.mode != Mode::Off {
            stages.push(Stage { mode: cfg.ip_rules.mode, check: Box::new(ip_rules) });
        }
        let geo = Arc::new(geo::GeoDbs::open(&cfg.geoip));
        let listed = match &cfg.geoip.datacenter_asn_list {
            Some(path) if path.exists() => geo::read_asn_list(path).map_err(BuildError::DatacenterAsns)?,
            Some(path) => {
                tracing::warn!(path = %path.display(), "the datacenter ASN list is missing, so only checks.geoip.datacenter_asns is used; run geoip/fetch.sh");
                Vec::new()
            }
            None => Vec::new(),
        };
        let asns = geo::datacenter_asns(&cfg.geoip, &listed);
        let datacenter_asns = (asns.len(), listed.len());
        if cfg.geoip.mode != Mode::Off {
            let check = geo::GeoCheck::new(geo.clone(), &cfg.geoip, asns, allow);
            stages.push(Stage { mode: cfg.geoip.mode, check: Box::new(check) });
        }
        let bots = bots::BotCheck::build(&cfg.bots)?;
        let bots_status = bots.status.clone();
        if cfg.bots.mode != Mode::Off {
            stages.push(Stage { mode: cfg.bots.mode, check: Box::new(bots) });
        }
        if cfg.velocity.mode != Mode::Off {
            stages.push(Stage { mode: cfg.velocity.mode, check: Box::new(velocity::VelocityCheck::new(&cfg.velocity)) });
        }
        if cfg.dedup.mode != Mode::Off {
            stages.push(Stage { mode: cfg.dedup.mode, check: Box::new(dedup::DedupCheck::new(&cfg.dedup)) });
        }
        Ok(Pipeline {
            trusted_proxies: client_ip::TrustedProxies::new(&cfg.trusted_proxies),
            rate_limits: rate_limit::RateLimits::new(&cfg.rate_limit),
            geo,
            datacenter_asns,
            bots_status,
            stages: stages.into_boxed_slice(),
        })
    }

    /// Stage 2: rate limits. `Err(retry_after_ms)` means refuse with `429`; observe-mode hits
    /// are added to `observed`.
    pub fn rate_limit(&self, client: Client, now_ms: u64, observed: &mut Reasons) -> Result<(), u64> {
        self.rate_limits.check(client, now_ms, observed)
    }

    /// Runs every stage after the link lookup and returns what they found. HEAD requests are
    /// never clicks, whatever the rules' modes.
    pub fn evaluate(&self, click: &Click<'_>) -> Findings {
        let mut findings = Findings::default();
        if click.head {
            findings.mode = Mode::Enforce;
            findings.hit(Reason::HeadRequest, Action::Flag);
            findings.not_a_click = true;
        }
        for stage in self.stages.iter() {
            findings.mode = stage.mode;
            stage.check.run(click, &mut findings);
        }
        findings
    }
}

#[cfg(test)]
mod tests;
