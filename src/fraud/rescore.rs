//! Rescoring: how a new rule set's verdicts differ from the ones in the click log, and which
//! partners' credit on a conversion rests only on clicks that are no longer `valid`. Pure: the
//! caller replays the log through the new pipeline and reads the conversions; this module
//! counts and decides.
//!
//! A partner loses a conversion's credit when every touch that counted for them was a click
//! that was `valid` in the log and is not under the new rules. A coupon's touch is no click,
//! so a partner credited through a coupon keeps the credit. A partner gains when a touch the
//! attribution left out as `not_valid` is a click the new rules find `valid`; credit is never
//! added by a rescore (attribution would have to run again), only reported.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::attribution::engine::{Attribution, Why};
use crate::model::{ClickId, Reasons, Verdict};

/// The replay's counts: clicks by (logged verdict → new verdict), and reasons that appear or
/// go. Fields in alphabetical order, as every JSON the product writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Clicks in the window.
    pub clicks: u64,
    /// Clicks whose verdict changed.
    pub changed: u64,
    /// Clicks kept as logged: logged before events kept the agent, or of a link no longer in
    /// the catalog.
    pub kept: u64,
    /// `"reason"` → clicks the new rules give it that the logged verdict did not have.
    pub reasons_added: BTreeMap<&'static str, u64>,
    /// `"reason"` → clicks the logged verdict had it and the new rules do not.
    pub reasons_removed: BTreeMap<&'static str, u64>,
    /// `"logged->new"` → clicks, for every pair that occurs (unchanged ones too).
    pub verdicts: BTreeMap<String, u64>,
}

impl Tally {
    /// Counts one replayed click. Returns `Some(now_valid)` when its validity flipped.
    pub fn add(&mut self, logged: (Verdict, Reasons), new: (Verdict, Reasons)) -> Option<bool> {
        self.clicks += 1;
        *self.verdicts.entry(format!("{}->{}", logged.0.as_str(), new.0.as_str())).or_default() += 1;
        if logged.0 != new.0 {
            self.changed += 1;
        }
        for r in new.1.iter().filter(|r| !logged.1.contains(*r)) {
            *self.reasons_added.entry(r.as_str()).or_default() += 1;
        }
        for r in logged.1.iter().filter(|r| !new.1.contains(*r)) {
            *self.reasons_removed.entry(r.as_str()).or_default() += 1;
        }
        let (was, is) = (logged.0 == Verdict::Valid, new.0 == Verdict::Valid);
        (was != is).then_some(is)
    }

    /// Counts a click that cannot be replayed and keeps its logged verdict.
    pub fn keep(&mut self, logged: Verdict) {
        self.clicks += 1;
        self.kept += 1;
        *self.verdicts.entry(format!("{0}->{0}", logged.as_str())).or_default() += 1;
    }
}

/// Clicks whose validity flipped: `true` when now `valid`, `false` when no longer.
pub type Flips = HashMap<ClickId, bool>;

/// Which way a partner's credit on a conversion would move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Every click that counted for the partner is no longer `valid`.
    Loses,
    /// A click left out as not valid is `valid` now.
    Gains,
}

/// One partner's credit on one conversion that the new rules move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditChange {
    pub clicks: Vec<String>,
    pub conversion_id: String,
    pub direction: Direction,
    pub partner: String,
}

/// The credit changes of one conversion under `flips`, partners in the attribution's order.
pub fn credit_changes(conversion_id: &str, attribution: &Attribution, flips: &Flips) -> Vec<CreditChange> {
    let mut out = Vec::new();
    let encode = |id: &ClickId| id.encode(&mut [0; crate::model::CLICK_ID_CHARS]).to_string();
    for share in &attribution.shares {
        let counted: Vec<_> = attribution.touches.iter().filter(|t| t.counted && t.partner == share.partner).collect();
        let all_lost = !counted.is_empty() && counted.iter().all(|t| t.click_id.is_some_and(|id| flips.get(&id) == Some(&false)));
        if all_lost {
            out.push(CreditChange {
                clicks: counted.iter().filter_map(|t| t.click_id.as_ref()).map(encode).collect(),
                conversion_id: conversion_id.to_string(),
                direction: Direction::Loses,
                partner: share.partner.clone(),
            });
        }
    }
    let mut gains: Vec<(String, Vec<String>)> = Vec::new();
    for t in attribution.touches.iter().filter(|t| t.why == Why::NotValid) {
        let Some(id) = t.click_id.filter(|id| flips.get(id) == Some(&true)) else { continue };
        match gains.iter_mut().find(|(p, _)| *p == t.partner) {
            Some((_, clicks)) => clicks.push(encode(&id)),
            None => gains.push((t.partner.clone(), vec![encode(&id)])),
        }
    }
    out.extend(gains.into_iter().map(|(partner, clicks)| CreditChange {
        clicks,
        conversion_id: conversion_id.to_string(),
        direction: Direction::Gains,
        partner,
    }));
    out
}

/// A text for the ledger's cause of a rescore's take-back: the rules' digest and the admin's
/// reason, without control characters, at most 200 characters.
pub fn audit_reason(rules_digest: &str, reason: &str) -> String {
    let clean: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
    format!("rescore:{rules_digest}:{}", clean.trim())
}

#[cfg(test)]
mod tests;
