//! Fraud alerts: the core watches the clicks it ingests and raises a `fraud.alert` event when a
//! partner's share of clicks that were not `valid` jumps, or a link surges over its own
//! baseline. Pure: the caller passes each ingested click in and writes the alerts out.
//!
//! The rule, per tumbling window of `window_ms` (by the clicks' own times):
//! - `partner_flagged_share`: a partner with at least `partner_min_clicks` clicks in the window,
//!   of which at least `partner_flagged_share` were not `valid`;
//! - `link_surge`: a link with at least `link_surge_clicks` clicks in the window that the
//!   edge's `velocity_link` rule caught, enforced or observed.
//!
//! Each fires at most once per subject and window, when it first holds. Memory is what the
//! window's active partners and links need, and is dropped at every new window.

pub mod rescore;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::config::FraudAlerts;
use crate::events::ClickEvent;
pub use crate::model::AlertKind;
use crate::model::{Reason, Verdict};

/// One alert: what fired, about whom, in which window, and the counts that made it fire.
/// Fields in alphabetical order, as every JSON the product writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub clicks: u64,
    pub kind: AlertKind,
    /// The link, for `link_surge`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<Arc<str>>,
    pub not_valid: u64,
    pub partner: Arc<str>,
    pub program: Arc<str>,
    /// Of `link_surge`: the clicks `velocity_link` caught.
    pub surging: u64,
    pub window_start_ms: u64,
}

impl Alert {
    /// The cause the alert's event id derives from: one event per subject and window.
    pub fn cause(&self) -> String {
        let subject = self.link.as_deref().unwrap_or(&self.partner);
        format!("fraud:{}:{}:{}", self.kind.as_str(), subject, self.window_start_ms)
    }

    /// The share of the window's clicks that were not `valid`.
    pub fn flagged_share(&self) -> f64 {
        self.not_valid as f64 / self.clicks.max(1) as f64
    }
}

#[derive(Default)]
struct Tally {
    clicks: u64,
    not_valid: u64,
    surging: u64,
    alerted: bool,
}

/// The watcher's state: one window's counts per partner and per link.
pub struct FraudWatch {
    cfg: FraudAlerts,
    window: u64,
    partners: HashMap<Arc<str>, Tally>,
    links: HashMap<Arc<str>, Tally>,
}

impl FraudWatch {
    /// A watcher with `cfg`'s thresholds.
    pub fn new(cfg: &FraudAlerts) -> FraudWatch {
        FraudWatch { cfg: cfg.clone(), window: 0, partners: HashMap::new(), links: HashMap::new() }
    }

    /// Counts one ingested click and pushes the alerts it makes fire.
    pub fn observe(&mut self, e: &ClickEvent, out: &mut Vec<Alert>) {
        let window = e.ts_ms / self.cfg.window_ms;
        // A late click (from a spool drained after a restart) counts in the current window.
        if window > self.window {
            self.window = window;
            self.partners.clear();
            self.links.clear();
        }
        let window_start_ms = self.window * self.cfg.window_ms;
        let not_valid = e.verdict != Verdict::Valid;
        let surging = e.reasons.contains(Reason::VelocityLink) || e.observed.contains(Reason::VelocityLink);
        let base = |t: &Tally, kind, link| Alert {
            clicks: t.clicks,
            kind,
            link,
            not_valid: t.not_valid,
            partner: e.partner.clone(),
            program: e.program.clone(),
            surging: t.surging,
            window_start_ms,
        };

        let p = self.partners.entry(e.partner.clone()).or_default();
        p.clicks += 1;
        p.not_valid += u64::from(not_valid);
        if !p.alerted && p.clicks >= self.cfg.partner_min_clicks && p.not_valid as f64 >= self.cfg.partner_flagged_share * p.clicks as f64 {
            p.alerted = true;
            out.push(base(p, AlertKind::PartnerFlaggedShare, None));
        }

        let l = self.links.entry(e.link.clone()).or_default();
        l.clicks += 1;
        l.not_valid += u64::from(not_valid);
        l.surging += u64::from(surging);
        if !l.alerted && l.surging >= self.cfg.link_surge_clicks {
            l.alerted = true;
            out.push(base(l, AlertKind::LinkSurge, Some(e.link.clone())));
        }
    }
}

#[cfg(test)]
mod tests;
