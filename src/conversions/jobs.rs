//! The writer's jobs, each inside the group's transaction: a new conversion (attributed,
//! commissioned, and credited to its partners' days), a transition (confirm, cancel, refund),
//! and the approval sweep. None commits: the writer does, once per group. They run on
//! either backend (`ConversionTx`) and answer an `Outcome`, which the API renders.
//!
//! A job reads and decides before it writes: a new conversion arrives attributed, with its
//! rules, from the request's task (`Attributed`); a transition is planned from the stored row
//! by `plan_transition`, a pure function, and only then applied. An error after the first
//! write still leaves nothing: the writer rolls the job's savepoint back, whatever the error.

use serde::Deserialize;

use super::events;
use super::store::{ConversionTx, LinkDayKey, NewRow, PartnerDay, StoredConversion};
use super::{view, Approval, Attributed, ConversionError, Fingerprinted, Job, Op, Outcome, Status, Transition, Written};
use crate::attribution::engine::{Method, Touch};
use crate::lifecycle::{self, Commission, ConversionRef, Refunded, Sale};
use crate::metrics::AttributionOutcome;
use crate::model::Channel;
use crate::webhooks::OutboxEvent;

/// One job inside the group's transaction. Its outcome goes back unrendered unless an
/// `Idempotency-Key` keeps its answer, which needs it rendered now.
pub(super) fn process<T: ConversionTx>(tx: &mut T, job: &Job, outcomes: &mut Vec<AttributionOutcome>) -> Result<Written, ConversionError> {
    if let Some(k) = &job.key {
        if let Some((hash, answer)) = tx.stored_answer(&k.key)? {
            if hash != k.request_hash {
                return Err(ConversionError::Conflict("Idempotency-Key was already used with a different request".into()));
            }
            return Ok(Written::Kept { answer, replayed: true });
        }
    }
    let outcome = match &job.op {
        Op::Record(c) => {
            // `Conversions::write` attributes every conversion it queues.
            let Some(attributed) = job.attributed.as_deref() else {
                return Err(ConversionError::Invalid { field: "job", why: "a conversion reached the writer unattributed".into() });
            };
            record(tx, c, attributed, job.now_ms, outcomes)?
        }
        Op::Transition { id, transition } => transition_op(tx, id, *transition, job.now_ms)?,
        Op::Approve { limit } => Outcome::Approved(approve(tx, *limit, job.now_ms)?),
        Op::Emit(e) => {
            let event =
                OutboxEvent { kind: e.kind, cause: &e.cause, partner: e.partner.as_deref(), occurred_ms: e.occurred_ms, data: &e.data };
            tx.append_event(&event)?;
            Outcome::Emitted
        }
    };
    match &job.key {
        Some(k) => {
            // A retry of a recorded conversion keeps nothing: its answer is rebuilt from the rows.
            let replayed = matches!(outcome, Outcome::AlreadyRecorded(_));
            let answer = (k.render)(outcome);
            if !replayed {
                tx.keep_answer(k, &answer, job.now_ms)?;
            }
            Ok(Written::Kept { answer, replayed })
        }
        None => Ok(Written::Done(outcome)),
    }
}

fn record<T: ConversionTx>(
    tx: &mut T,
    f: &Fingerprinted,
    attributed: &Attributed,
    now_ms: u64,
    outcomes: &mut Vec<AttributionOutcome>,
) -> Result<Outcome, ConversionError> {
    let (c, fingerprint) = (f.conversion(), f.fingerprint());
    let id = f.id().to_string();
    let attribution = &attributed.attribution;
    // Checked before anything is written: an error that is not a storage error keeps what the
    // job wrote.
    let currency = (!attribution.shares.is_empty()).then_some(c.currency);
    // The row first: its key finds a retry, so a new conversion costs no look-up before it.
    let day = day_of(c.occurred_at_ms);
    let inserted = tx.insert_conversion(&NewRow {
        id: &id,
        conversion: c,
        fingerprint,
        received_at_ms: now_ms,
        day,
        method: attribution.method.as_str(),
        attribution: &attributed.json,
    })?;
    if !inserted {
        let Some(fp) = tx.recorded(&id)? else {
            return Err(ConversionError::NotStored(format!("conversion {id} conflicted on insert but cannot be read")));
        };
        if fp != *fingerprint {
            return Err(ConversionError::Conflict(format!(
                "order_id {:?} is already recorded for program {:?} (conversion {id}) with different fields",
                c.order_id, c.program
            )));
        }
        // No answer is kept: a retry's is rebuilt from the rows.
        let body = view::render_first(tx, &id)?.unwrap_or_default();
        return Ok(Outcome::AlreadyRecorded(body));
    }
    outcomes.push(match attribution.method {
        Method::ClickId => AttributionOutcome::ClickId,
        Method::Visitor => AttributionOutcome::Visitor,
        Method::Coupon => AttributionOutcome::Coupon,
        Method::None => AttributionOutcome::Unattributed,
    });
    // The first answer is built from what this job wrote instead of read back.
    let mut commissions = Vec::new();
    if let Some(currency) = currency {
        let sale =
            Sale { conversion_id: &id, program: &c.program, currency, amount_minor: c.amount_minor, occurred_at_ms: c.occurred_at_ms };
        commissions = lifecycle::accrue(tx, &sale, &attribution.shares, &attributed.rules, now_ms)?;
    }
    events::attributed(tx, &id, c, attribution, now_ms)?;
    events::created(tx, &commissions, now_ms)?;
    let credited = Credited { program: &c.program, day, currency: c.currency, amount_minor: c.amount_minor };
    credit_days(tx, &credited, &attribution.shares, attribution.touches.iter().map(LinkTouch::from), |share| PartnerDay {
        conversions: 1,
        revenue_minor: share,
        ..PartnerDay::default()
    })?;
    Ok(Outcome::Recorded(Box::new(view::First {
        id,
        conversion: f.shared(),
        attribution_json: attributed.json.clone(),
        commissions,
        now_ms,
    })))
}

/// Days since the Unix epoch (UTC) of a time in milliseconds: a conversion's `day`.
fn day_of(ms: u64) -> i64 {
    (ms / 86_400_000) as i64
}

/// What a link's credit is read from: a touch of the attribution, as decided or as stored.
#[derive(Deserialize)]
struct LinkTouch {
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    channel: Option<Channel>,
    partner: String,
    #[serde(default)]
    counted: bool,
    #[serde(default)]
    share_minor: Option<i64>,
}

impl From<&Touch> for LinkTouch {
    fn from(t: &Touch) -> LinkTouch {
        LinkTouch { link: t.link.clone(), channel: t.channel, partner: t.partner.clone(), counted: t.counted, share_minor: t.share_minor }
    }
}

/// Each link's share of a conversion, by link, channel and partner: the sum of its counted
/// touches' shares. A link whose counted touches carry nothing is not credited, as a partner
/// with nothing is not, unless the amount is zero; a coupon's touch has no link.
fn link_shares(
    touches: impl Iterator<Item = LinkTouch>,
    amount_minor: i64,
) -> std::collections::BTreeMap<(String, &'static str, String), i64> {
    let mut out = std::collections::BTreeMap::new();
    for t in touches.filter(|t| t.counted) {
        if let (Some(link), Some(channel)) = (t.link, t.channel) {
            *out.entry((link, channel.as_str(), t.partner)).or_default() += t.share_minor.unwrap_or(0);
        }
    }
    out.retain(|_, share| *share > 0 || amount_minor == 0);
    out
}

/// The conversion a change to partner and link days is for.
struct Credited<'a> {
    program: &'a str,
    day: i64,
    currency: crate::model::Currency,
    amount_minor: i64,
}

/// Adds to the days of every partner with a share and every link credited (`link_shares`):
/// `f` gives each share's change. Nothing is credited without shares.
fn credit_days<T: ConversionTx>(
    tx: &mut T,
    c: &Credited<'_>,
    shares: &[crate::attribution::engine::Share],
    touches: impl Iterator<Item = LinkTouch>,
    f: impl Fn(i64) -> PartnerDay,
) -> Result<(), ConversionError> {
    if shares.is_empty() {
        return Ok(());
    }
    for s in shares {
        tx.add_partner_day(&s.partner, c.day, c.currency, f(s.amount_minor))?;
    }
    for ((link, channel, partner), share) in link_shares(touches, c.amount_minor) {
        let key = LinkDayKey { link, channel, day: c.day, currency: c.currency, program: c.program.to_string(), partner };
        tx.add_link_day(key, f(share))?;
    }
    Ok(())
}

/// What a cancel or a refund changes in its partners' and links' days: `f` gives each share's
/// change.
fn credit_partner_days<T: ConversionTx>(tx: &mut T, row: &StoredConversion, f: impl Fn(i64) -> PartnerDay) -> Result<(), ConversionError> {
    #[derive(Deserialize)]
    struct Shares {
        shares: Vec<crate::attribution::engine::Share>,
        #[serde(default)]
        touches: Vec<LinkTouch>,
    }
    let shares: Shares = serde_json::from_str(&row.attribution)
        .map_err(|e| ConversionError::Invalid { field: "attribution", why: format!("the stored attribution does not read back: {e}") })?;
    let credited =
        Credited { program: &row.program, day: day_of(row.occurred_at_ms), currency: row.currency, amount_minor: row.amount_minor };
    credit_days(tx, &credited, &shares.shares, shares.touches.into_iter(), f)
}

/// What a transition changes, decided from the stored row before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransitionPlan {
    /// Already where the transition leads: nothing to write.
    Nothing,
    Confirm,
    /// Cancels the conversion and voids or reverses every commission.
    Cancel,
    /// Refunds `amount_minor` more, of `refunded_minor` so far, leaving it `status`.
    Refund {
        amount_minor: i64,
        refunded_minor: i64,
        status: Status,
    },
}

/// Plans a transition of a conversion at `status`, of `amount_minor` with `refunded_minor`
/// refunded so far: a conflict or an invalid amount is refused here, before any write.
pub(crate) fn plan_transition(
    id: &str,
    status: Status,
    amount_minor: i64,
    refunded_minor: i64,
    t: Transition,
) -> Result<TransitionPlan, ConversionError> {
    let conflict = |why: &str| Err(ConversionError::Conflict(format!("conversion {id} is {}: {why}", status.as_str())));
    match t {
        Transition::Confirm => match status {
            Status::Pending => Ok(TransitionPlan::Confirm),
            Status::Confirmed => Ok(TransitionPlan::Nothing),
            Status::Cancelled | Status::Refunded => conflict("it cannot be confirmed"),
        },
        Transition::Cancel => match status {
            Status::Pending | Status::Confirmed if refunded_minor == 0 => Ok(TransitionPlan::Cancel),
            Status::Cancelled => Ok(TransitionPlan::Nothing),
            _ => conflict("a conversion with refunds is refunded further, not cancelled"),
        },
        Transition::Refund(want) => {
            if matches!(status, Status::Cancelled | Status::Refunded) {
                return conflict("nothing is left to refund");
            }
            let left = amount_minor - refunded_minor;
            let amt = want.unwrap_or(left);
            if amt <= 0 || amt > left {
                return Err(ConversionError::Invalid {
                    field: "amount_minor",
                    why: format!("must be in 1..={left} (what is left to refund), got {amt}"),
                });
            }
            let status = if amt == left { Status::Refunded } else { status };
            Ok(TransitionPlan::Refund { amount_minor: amt, refunded_minor, status })
        }
    }
}

fn transition_op<T: ConversionTx>(tx: &mut T, id: &str, t: Transition, now_ms: u64) -> Result<Outcome, ConversionError> {
    let Some(row) = tx.for_transition(id)? else { return Err(ConversionError::NotFound(id.to_string())) };
    let plan = plan_transition(id, row.status, row.amount_minor, row.refunded_minor, t)?;
    let conversion = ConversionRef { id, occurred_at_ms: row.occurred_at_ms };
    match plan {
        TransitionPlan::Nothing => {}
        TransitionPlan::Confirm => {
            tx.set_status(id, Status::Confirmed)?;
            tx.add_event(id, "confirmed", None, now_ms)?;
        }
        TransitionPlan::Cancel => {
            tx.set_status(id, Status::Cancelled)?;
            tx.add_event(id, "cancelled", None, now_ms)?;
            credit_partner_days(tx, &row, |share| PartnerDay {
                conversions: -1,
                revenue_minor: -share,
                cancelled: 1,
                ..PartnerDay::default()
            })?;
            let taken_back = lifecycle::refund(tx, &conversion, Refunded::All, now_ms)?;
            events::reversed(tx, &taken_back, now_ms)?;
        }
        TransitionPlan::Refund { amount_minor: amt, refunded_minor: refunded, status } => {
            let amount = row.amount_minor;
            tx.add_refund(id, amt, status)?;
            tx.add_event(id, "refunded", Some(amt), now_ms)?;
            // `amount` is positive here: the plan refused a refund of a zero amount.
            let part = |share: i64, r: i64| (i128::from(share) * i128::from(r) / i128::from(amount)) as i64;
            credit_partner_days(tx, &row, |share| PartnerDay {
                refunded_minor: part(share, refunded + amt) - part(share, refunded),
                ..PartnerDay::default()
            })?;
            let refunded = Refunded::Cumulative { refunded_minor: refunded + amt, amount_minor: amount };
            let taken_back = lifecycle::refund(tx, &conversion, refunded, now_ms)?;
            events::reversed(tx, &taken_back, now_ms)?;
        }
    }
    let body = view::render(tx, id)?.ok_or_else(|| ConversionError::NotFound(id.to_string()))?;
    Ok(Outcome::Transitioned(body))
}

/// The approval sweep's job: approves up to `limit` commissions whose lock has ended.
pub(crate) fn approve<T: ConversionTx>(tx: &mut T, limit: usize, now_ms: u64) -> Result<Approval, ConversionError> {
    let approved = lifecycle::approve_due(tx, now_ms, limit)?;
    events::approved(tx, &approved, now_ms)?;
    let amount_minor = approved.iter().map(|c| c.remaining_minor()).sum();
    Ok(Approval { amount_minor, approved: approved.len(), more: approved.len() == limit })
}

/// A rescore's take-back: everything left of `partner`'s commissions on conversion `id`, with
/// `commission.reversed` events, the ledger's causes naming `audit`
/// (`fraud::rescore::audit_reason`). A retry finds nothing left and changes nothing. Returns
/// the commissions it changed.
pub(crate) fn revoke<T: ConversionTx>(
    tx: &mut T,
    id: &str,
    partner: &str,
    audit: &str,
    now_ms: u64,
) -> Result<Vec<Commission>, ConversionError> {
    let Some(row) = tx.for_transition(id)? else { return Err(ConversionError::NotFound(id.to_string())) };
    let conversion = ConversionRef { id, occurred_at_ms: row.occurred_at_ms };
    let taken_back = lifecycle::revoke(tx, &conversion, partner, audit, now_ms)?;
    events::reversed(tx, &taken_back, now_ms)?;
    Ok(taken_back)
}
