//! The writer's jobs, each inside the group's transaction: a new conversion (attributed,
//! commissioned, and credited to its partners' days), a transition (confirm, cancel, refund),
//! the approval sweep and a payout. None commits: the writer does, once per group. They run on
//! either backend (`ConversionTx`).

use serde::Deserialize;

use super::store::{ConversionTx, NewRow, PartnerDay, StoredConversion};
use super::{view, Answer, Attributed, ConversionError, Fingerprinted, Job, Op, Reply, Status, Transition};
use crate::attribution::engine::Method;
use crate::lifecycle::{self, ConversionRef, Refunded, Sale};
use crate::metrics::AttributionOutcome;
use crate::model::Currency;

/// One job inside the group's transaction. A new conversion's first answer is left to render
/// (`Reply::First`) unless an `Idempotency-Key` keeps it, which needs it now.
pub(super) fn process<T: ConversionTx>(tx: &mut T, job: &Job, outcomes: &mut Vec<AttributionOutcome>) -> Result<Reply, ConversionError> {
    if let Some(k) = &job.key {
        if let Some((hash, status, body)) = tx.stored_answer(&k.key)? {
            if hash != k.request_hash {
                return Err(ConversionError::Conflict("Idempotency-Key was already used with a different request".into()));
            }
            return Ok(Reply::Done(Answer { status, body, replayed: true }));
        }
    }
    let reply = match &job.op {
        Op::Record(c) => {
            // `Conversions::write` attributes every conversion it queues.
            let Some(attributed) = job.attributed.as_deref() else {
                return Err(ConversionError::Invalid { field: "job", why: "a conversion reached the writer unattributed".into() });
            };
            record(tx, c, attributed, job.now_ms, outcomes)?
        }
        Op::Transition { id, transition } => Reply::Done(transition_op(tx, id, *transition, job.now_ms)?),
        Op::Approve { limit } => Reply::Done(approve(tx, *limit, job.now_ms)?),
        Op::Pay { partner, currency, payout_id, limit } => Reply::Done(pay(tx, partner, *currency, payout_id, *limit, job.now_ms)?),
    };
    match &job.key {
        Some(k) => {
            let answer = reply.answer();
            if !answer.replayed {
                tx.keep_answer(k, &answer, job.now_ms)?;
            }
            Ok(Reply::Done(answer))
        }
        None => Ok(reply),
    }
}

fn record<T: ConversionTx>(
    tx: &mut T,
    f: &Fingerprinted,
    attributed: &Attributed,
    now_ms: u64,
    outcomes: &mut Vec<AttributionOutcome>,
) -> Result<Reply, ConversionError> {
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
        return Ok(Reply::Done(Answer { status: 201, body, replayed: true }));
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
    for s in &attribution.shares {
        let d = PartnerDay { conversions: 1, revenue_minor: s.amount_minor, ..PartnerDay::default() };
        tx.add_partner_day(&s.partner, day, c.currency, d)?;
    }
    Ok(Reply::First(Box::new(view::First { id, conversion: f.shared(), attribution_json: attributed.json.clone(), commissions, now_ms })))
}

/// Days since the Unix epoch (UTC) of a time in milliseconds: a conversion's `day`.
fn day_of(ms: u64) -> i64 {
    (ms / 86_400_000) as i64
}

/// What a cancel or a refund changes in its partners' days: `f` gives each share's change.
fn credit_partner_days<T: ConversionTx>(tx: &mut T, row: &StoredConversion, f: impl Fn(i64) -> PartnerDay) -> Result<(), ConversionError> {
    #[derive(Deserialize)]
    struct Shares {
        shares: Vec<crate::attribution::engine::Share>,
    }
    let shares: Shares = serde_json::from_str(&row.attribution)
        .map_err(|e| ConversionError::Invalid { field: "attribution", why: format!("the stored attribution does not read back: {e}") })?;
    let day = day_of(row.occurred_at_ms);
    for s in shares.shares {
        tx.add_partner_day(&s.partner, day, row.currency, f(s.amount_minor))?;
    }
    Ok(())
}

fn transition_op<T: ConversionTx>(tx: &mut T, id: &str, t: Transition, now_ms: u64) -> Result<Answer, ConversionError> {
    let Some(row) = tx.for_transition(id)? else { return Err(ConversionError::NotFound(id.to_string())) };
    let (status, amount, refunded) = (row.status, row.amount_minor, row.refunded_minor);
    let conversion = ConversionRef { id, occurred_at_ms: row.occurred_at_ms };
    let conflict = |why: String| Err(ConversionError::Conflict(format!("conversion {id} is {}: {why}", status.as_str())));
    match t {
        Transition::Confirm => match status {
            Status::Pending => {
                tx.set_status(id, Status::Confirmed)?;
                tx.add_event(id, "confirmed", None, now_ms)?;
            }
            Status::Confirmed => {}
            Status::Cancelled | Status::Refunded => return conflict("it cannot be confirmed".into()),
        },
        Transition::Cancel => match status {
            Status::Pending | Status::Confirmed if refunded == 0 => {
                tx.set_status(id, Status::Cancelled)?;
                tx.add_event(id, "cancelled", None, now_ms)?;
                credit_partner_days(tx, &row, |share| PartnerDay {
                    conversions: -1,
                    revenue_minor: -share,
                    cancelled: 1,
                    ..PartnerDay::default()
                })?;
                lifecycle::refund(tx, &conversion, Refunded::All, now_ms)?;
            }
            Status::Cancelled => {}
            _ => return conflict("a conversion with refunds is refunded further, not cancelled".into()),
        },
        Transition::Refund(want) => {
            if matches!(status, Status::Cancelled | Status::Refunded) {
                return conflict("nothing is left to refund".into());
            }
            let left = amount - refunded;
            let amt = want.unwrap_or(left);
            if amt <= 0 || amt > left {
                return Err(ConversionError::Invalid {
                    field: "amount_minor",
                    why: format!("must be in 1..={left} (what is left to refund), got {amt}"),
                });
            }
            let new_status = if amt == left { Status::Refunded } else { status };
            tx.add_refund(id, amt, new_status)?;
            tx.add_event(id, "refunded", Some(amt), now_ms)?;
            // `amount` is positive here: a refund of a zero amount was refused above.
            let part = |share: i64, r: i64| (i128::from(share) * i128::from(r) / i128::from(amount)) as i64;
            credit_partner_days(tx, &row, |share| PartnerDay {
                refunded_minor: part(share, refunded + amt) - part(share, refunded),
                ..PartnerDay::default()
            })?;
            let refunded = Refunded::Cumulative { refunded_minor: refunded + amt, amount_minor: amount };
            lifecycle::refund(tx, &conversion, refunded, now_ms)?;
        }
    }
    let body = view::render(tx, id)?.ok_or_else(|| ConversionError::NotFound(id.to_string()))?;
    Ok(Answer { status: 200, body, replayed: false })
}

/// The approval sweep's job: approves up to `limit` commissions whose lock has ended.
pub(crate) fn approve<T: ConversionTx>(tx: &mut T, limit: usize, now_ms: u64) -> Result<Answer, ConversionError> {
    let approved = lifecycle::approve_due(tx, now_ms, limit)?;
    let amount: i64 = approved.iter().map(|c| c.remaining_minor()).sum();
    let body = serde_json::json!({ "approved": approved.len(), "amount_minor": amount, "more": approved.len() == limit });
    Ok(Answer { status: 200, body: body.to_string(), replayed: false })
}

/// Marks a partner's approved commissions in a currency paid by `payout_id`.
pub(crate) fn pay<T: ConversionTx>(
    tx: &mut T,
    partner: &str,
    currency: Currency,
    payout_id: &str,
    limit: usize,
    now_ms: u64,
) -> Result<Answer, ConversionError> {
    let paid = lifecycle::pay_partner(tx, partner, currency, payout_id, now_ms, limit)?;
    let amount: i64 = paid.iter().map(|c| c.remaining_minor()).sum();
    let ids: Vec<&str> = paid.iter().map(|c| c.id.as_str()).collect();
    let body = serde_json::json!({
        "payout_id": payout_id, "partner": partner, "currency": currency,
        "paid": paid.len(), "amount_minor": amount, "commission_ids": ids, "more": paid.len() == limit,
    });
    Ok(Answer { status: 200, body: body.to_string(), replayed: false })
}
