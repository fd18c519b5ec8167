//! Which touches a conversion credits, and why.
//!
//! Priority (§5): a signed click id first, then the visitor's touches, then a coupon code. A
//! source that yields no touch that counts falls through to the next one, and the explanation
//! keeps every touch that was considered with the reason it did or did not count.
//!
//! Everything here is pure: lookups come in through `TouchSource`, time as `occurred_at_ms`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{models, Model, Settings};
use crate::index::IndexedClick;
use crate::model::{ClickId, ClickIdError, VisitorId};
use crate::model::{Status, Verdict};

/// What the engine may look up.
pub trait TouchSource {
    /// One click by id, if the index holds it.
    fn click(&self, id: &ClickId) -> Option<IndexedClick>;
    /// A visitor's touches with `since_ms <= ts <= until_ms`, oldest first.
    fn visitor_touches(&self, visitor: &VisitorId, since_ms: u64, until_ms: u64) -> Vec<IndexedClick>;
    /// The partner a coupon code credits in a program, and the coupon's status.
    fn coupon(&self, program: &str, code: &str) -> Option<(Arc<str>, Status)>;
    /// Whether `customer_ref` is the partner themself (self-referral).
    fn is_partner(&self, partner: &str, customer_ref: &str) -> bool;
}

/// The facts of a conversion that attribution reads.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub program: &'a str,
    pub occurred_at_ms: u64,
    pub amount_minor: i64,
    /// The click id as sent, already checked: `None` when absent.
    pub click_id: Option<Result<ClickId, ClickIdError>>,
    pub visitor_id: Option<VisitorId>,
    pub coupon_code: Option<&'a str>,
    pub customer_ref: Option<&'a str>,
}

/// Which source decided the attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    ClickId,
    Visitor,
    Coupon,
    None,
}

impl Method {
    /// Its serialized name, as stored in a conversion's `method`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ClickId => "click_id",
            Method::Visitor => "visitor",
            Method::Coupon => "coupon",
            Method::None => "none",
        }
    }
}

/// Where a considered touch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The click named by the conversion's click id.
    ClickId,
    /// Another touch of the visitor behind that click id.
    ClickIdVisitor,
    /// A touch of the visitor id sent with the conversion.
    Visitor,
    Coupon,
}

/// Why a touch did or did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    Counted,
    /// The click's verdict was not `valid` (its reasons say why).
    NotValid,
    OtherProgram,
    AfterConversion,
    OutsideWindow,
    /// Closer to the conversion than the program's minimum: click injection.
    ClickInjection,
    SelfReferral,
}

/// One touch in the explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Touch {
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_id: Option<ClickId>,
    pub partner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<crate::model::Channel>,
    pub ts_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub counted: bool,
    pub why: Why,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_minor: Option<i64>,
}

/// One partner's credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub partner: String,
    pub amount_minor: i64,
}

/// The decision and its explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub method: Method,
    pub model: Model,
    pub window_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_hours: Option<f64>,
    /// Partners in order of their first counted touch; the amounts sum to the conversion's.
    pub shares: Vec<Share>,
    /// Every touch considered, oldest first within each source.
    pub touches: Vec<Touch>,
    /// Sentences about sources that gave nothing (a forged click id, an unknown coupon…).
    pub notes: Vec<String>,
}

/// Attributes one conversion.
pub fn attribute(settings: &Settings, facts: &Facts<'_>, src: &impl TouchSource) -> Attribution {
    let mut out = Attribution {
        method: Method::None,
        model: settings.model,
        window_days: settings.window_days,
        half_life_hours: (settings.model == Model::TimeDecay).then_some(settings.half_life_hours),
        shares: Vec::new(),
        touches: Vec::new(),
        notes: Vec::new(),
    };
    let since_ms = facts.occurred_at_ms.saturating_sub(settings.window_ms());
    let mut seen_visitor = None;

    // 1. The signed click id, and the rest of its visitor's journey.
    match &facts.click_id {
        None => {}
        Some(Err(e)) => out.notes.push(format!("click id rejected: {e}")),
        Some(Ok(id)) => match src.click(id) {
            None => out
                .notes
                .push("click id is authentic but the index does not hold it (not yet ingested, or older than the index keeps)".into()),
            Some(click) => {
                let visitor = click.visitor_id;
                let mut journey: Vec<(Source, IndexedClick)> = src
                    .visitor_touches(&visitor, since_ms, facts.occurred_at_ms)
                    .into_iter()
                    .filter(|t| t.click_id != click.click_id)
                    .map(|t| (Source::ClickIdVisitor, t))
                    .collect();
                journey.push((Source::ClickId, click));
                journey.sort_by_key(|(_, t)| t.ts_ms);
                seen_visitor = Some(visitor);
                if judge(settings, facts, journey, src, &mut out) {
                    out.method = Method::ClickId;
                    return out;
                }
            }
        },
    }

    // 2. The visitor id sent with the conversion, unless it is the journey already judged.
    if let Some(visitor) = facts.visitor_id.filter(|v| Some(*v) != seen_visitor) {
        let journey: Vec<(Source, IndexedClick)> =
            src.visitor_touches(&visitor, since_ms, facts.occurred_at_ms).into_iter().map(|t| (Source::Visitor, t)).collect();
        if journey.is_empty() {
            out.notes.push("the visitor has no touches in the window".into());
        }
        if judge(settings, facts, journey, src, &mut out) {
            out.method = Method::Visitor;
            return out;
        }
    }

    // 3. A coupon code: offline and POS sales, where there is no click.
    if let Some(code) = facts.coupon_code {
        match src.coupon(facts.program, code) {
            None => out.notes.push(format!("coupon code {code:?} is not registered for program {:?}", facts.program)),
            // A paused or expired coupon credits no one; the sale stays unattributed by it.
            Some((_, status @ (Status::Paused | Status::Expired))) => {
                out.notes.push(format!("coupon code {code:?} is {} in program {:?}, so it credits no one", status.as_str(), facts.program))
            }
            Some((partner, Status::Active)) => {
                let self_ref = facts.customer_ref.is_some_and(|c| src.is_partner(&partner, c));
                let why = if self_ref { Why::SelfReferral } else { Why::Counted };
                out.touches.push(Touch {
                    source: Source::Coupon,
                    click_id: None,
                    partner: partner.to_string(),
                    link: None,
                    channel: None,
                    ts_ms: facts.occurred_at_ms,
                    verdict: None,
                    reasons: Vec::new(),
                    counted: !self_ref,
                    why,
                    share_minor: (!self_ref).then_some(facts.amount_minor),
                });
                if !self_ref {
                    out.method = Method::Coupon;
                    out.shares.push(Share { partner: partner.to_string(), amount_minor: facts.amount_minor });
                    return out;
                }
            }
        }
    }
    out
}

/// Explains every touch of a journey and, when any counts, splits the amount between them.
/// Returns whether anything counted.
fn judge(
    settings: &Settings,
    facts: &Facts<'_>,
    journey: Vec<(Source, IndexedClick)>,
    src: &impl TouchSource,
    out: &mut Attribution,
) -> bool {
    let first = out.touches.len();
    let mut counted_ts = Vec::new();
    for (source, t) in journey {
        let why = match eligibility(settings, facts, &t) {
            Why::Counted if facts.customer_ref.is_some_and(|c| src.is_partner(&t.partner, c)) => Why::SelfReferral,
            w => w,
        };
        if why == Why::Counted {
            counted_ts.push(t.ts_ms);
        }
        out.touches.push(Touch {
            source,
            click_id: Some(t.click_id),
            partner: t.partner.to_string(),
            link: Some(t.link.to_string()),
            channel: Some(t.channel),
            ts_ms: t.ts_ms,
            verdict: Some(t.verdict),
            reasons: t.reasons.iter().map(|r| r.as_str().to_string()).collect(),
            counted: why == Why::Counted,
            why,
            share_minor: None,
        });
    }
    if counted_ts.is_empty() {
        return false;
    }
    let shares = models::shares(settings.model, settings.half_life_hours, facts.occurred_at_ms, &counted_ts, facts.amount_minor);
    let mut next = shares.into_iter();
    for touch in out.touches[first..].iter_mut().filter(|t| t.counted) {
        let share = next.next().expect("one share per counted touch");
        touch.share_minor = Some(share);
        match out.shares.iter_mut().find(|s| s.partner == touch.partner) {
            Some(s) => s.amount_minor += share,
            None => out.shares.push(Share { partner: touch.partner.clone(), amount_minor: share }),
        }
    }
    // A touch may carry a zero share (last click wins everything); a partner with nothing is
    // not credited.
    out.shares.retain(|s| s.amount_minor > 0 || facts.amount_minor == 0);
    debug_assert_eq!(out.shares.iter().map(|s| s.amount_minor).sum::<i64>(), facts.amount_minor);
    true
}

fn eligibility(settings: &Settings, facts: &Facts<'_>, t: &IndexedClick) -> Why {
    if &*t.program != facts.program {
        return Why::OtherProgram;
    }
    if t.ts_ms > facts.occurred_at_ms {
        return Why::AfterConversion;
    }
    let age_ms = facts.occurred_at_ms - t.ts_ms;
    if age_ms > settings.window_ms() {
        return Why::OutsideWindow;
    }
    if t.verdict != Verdict::Valid {
        return Why::NotValid;
    }
    if age_ms < settings.min_click_to_conversion_ms {
        return Why::ClickInjection;
    }
    Why::Counted
}

#[cfg(test)]
mod tests;
