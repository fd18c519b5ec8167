//! The writer's jobs, each inside the group's transaction: a new conversion (attributed,
//! commissioned, and credited to its partners' days), a transition (confirm, cancel, refund),
//! the approval sweep and a payout. None commits: `Writer::run_group` does, once per group.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;

use super::{view, Answer, Attributor, ConversionError, Job, NewConversion, Op, Status, Transition};
use crate::core::attribution::engine::Method;
use crate::core::lifecycle::{self, ConversionRef, LifecycleError, Refunded, Sale};
use crate::ledger::{parse_currency, SqliteLedger};
use crate::metrics::AttributionOutcome;

/// One job inside the group's transaction.
pub(super) fn process(
    tx: &Connection,
    attributor: &dyn Attributor,
    job: &Job,
    outcomes: &mut Vec<AttributionOutcome>,
) -> Result<Answer, ConversionError> {
    if let Some(k) = &job.key {
        let found: Option<(Vec<u8>, u16, String)> = tx
            .prepare_cached("SELECT request_hash, status, body FROM idempotency_keys WHERE key = ?1")?
            .query_row([&k.key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((hash, status, body)) = found {
            if hash != k.request_hash {
                return Err(ConversionError::Conflict("Idempotency-Key was already used with a different request".into()));
            }
            return Ok(Answer { status, body, replayed: true });
        }
    }
    let answer = match &job.op {
        Op::Record(c) => record(tx, attributor, c.conversion(), c.fingerprint(), job.now_ms, outcomes)?,
        Op::Transition { id, transition } => transition_op(tx, id, *transition, job.now_ms)?,
        Op::Approve { limit } => approve(tx, *limit, job.now_ms)?,
        Op::Pay { partner, currency, payout_id, limit } => pay(tx, partner, currency, payout_id, *limit, job.now_ms)?,
    };
    if let Some(k) = &job.key {
        if !answer.replayed {
            tx.prepare_cached("INSERT INTO idempotency_keys (key, request_hash, status, body, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![k.key, &k.request_hash[..], answer.status, answer.body, job.now_ms as i64])?;
        }
    }
    Ok(answer)
}

fn record(
    tx: &Connection,
    attributor: &dyn Attributor,
    c: &NewConversion,
    fingerprint: &[u8; 32],
    now_ms: u64,
    outcomes: &mut Vec<AttributionOutcome>,
) -> Result<Answer, ConversionError> {
    let id = c.id();
    let found: Option<(Vec<u8>, String)> = tx
        .prepare_cached("SELECT fingerprint, first_answer FROM conversions WHERE id = ?1")?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((fp, first)) = found {
        if fp != *fingerprint {
            return Err(ConversionError::Conflict(format!(
                "order_id {:?} is already recorded for program {:?} (conversion {id}) with different fields",
                c.order_id, c.program
            )));
        }
        // Store files made before kept the answer; now it is rebuilt from the rows.
        let body = if first.is_empty() { view::render_first(tx, &id)?.unwrap_or_default() } else { first };
        return Ok(Answer { status: 201, body, replayed: true });
    }
    let attribution = attributor.attribute(c);
    outcomes.push(match attribution.method {
        Method::ClickId => AttributionOutcome::ClickId,
        Method::Visitor => AttributionOutcome::Visitor,
        Method::Coupon => AttributionOutcome::Coupon,
        Method::None => AttributionOutcome::Unattributed,
    });
    let attribution_json = serde_json::to_string(&attribution).expect("attribution serialises");
    // The commissions first: they need nothing of the conversion's rows, and the first answer
    // is then built from what this job wrote instead of read back.
    let mut commissions = Vec::new();
    if !attribution.shares.is_empty() {
        let currency = parse_currency(&c.currency)
            .ok_or_else(|| ConversionError::Invalid { field: "currency", why: format!("{:?} is not an ISO 4217 code", c.currency) })?;
        let sale =
            Sale { conversion_id: &id, program: &c.program, currency, amount_minor: c.amount_minor, occurred_at_ms: c.occurred_at_ms };
        let rules = attributor.commission_rules(&c.program);
        commissions =
            lifecycle::accrue(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, &sale, &attribution.shares, &rules, now_ms)?;
    }
    let body = view::first_answer(&id, c, &attribution_json, commissions, now_ms);
    tx.prepare_cached(
        "INSERT INTO conversions (id, program, order_id, amount_minor, currency, occurred_at_ms, day, received_at_ms, click_id,
             visitor_id, coupon_code, customer_ref, origin, fingerprint, method, attribution, status, refunded_minor, first_answer)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 'pending', 0, '')",
    )?
    .execute(params![
        id,
        c.program,
        c.order_id,
        c.amount_minor,
        c.currency,
        c.occurred_at_ms as i64,
        day_of(c.occurred_at_ms),
        now_ms as i64,
        c.click_id,
        c.visitor_id,
        c.coupon_code,
        c.customer_ref,
        c.origin.as_str(),
        &fingerprint[..],
        serde_json::to_value(attribution.method).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        attribution_json,
    ])?;
    let day = day_of(c.occurred_at_ms);
    for s in &attribution.shares {
        add_partner_day(
            tx,
            &s.partner,
            day,
            &c.currency,
            PartnerDay { conversions: 1, revenue_minor: s.amount_minor, ..PartnerDay::default() },
        )?;
    }
    Ok(Answer { status: 201, body, replayed: false })
}

/// Days since the Unix epoch (UTC) of a time in milliseconds: a conversion's `day`.
fn day_of(ms: u64) -> i64 {
    (ms / 86_400_000) as i64
}

/// A change to one row of `partner_days`.
#[derive(Debug, Default, Clone, Copy)]
struct PartnerDay {
    conversions: i64,
    revenue_minor: i64,
    refunded_minor: i64,
    cancelled: i64,
}

fn add_partner_day(tx: &Connection, partner: &str, day: i64, currency: &str, d: PartnerDay) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO partner_days (partner, day, currency, conversions, revenue_minor, refunded_minor, cancelled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (day, partner, currency) DO UPDATE SET conversions = conversions + excluded.conversions,
            revenue_minor = revenue_minor + excluded.revenue_minor, refunded_minor = refunded_minor + excluded.refunded_minor,
            cancelled = cancelled + excluded.cancelled",
    )?
    .execute(params![partner, day, currency, d.conversions, d.revenue_minor, d.refunded_minor, d.cancelled])?;
    Ok(())
}

/// What a cancel or a refund changes in its partners' days: `f` gives each share's change.
fn credit_partner_days(tx: &Connection, row: &StoredConversion, f: impl Fn(i64) -> PartnerDay) -> Result<(), ConversionError> {
    #[derive(Deserialize)]
    struct Shares {
        shares: Vec<crate::core::attribution::engine::Share>,
    }
    let shares: Shares = serde_json::from_str(&row.attribution)
        .map_err(|e| ConversionError::Invalid { field: "attribution", why: format!("the stored attribution does not read back: {e}") })?;
    let day = day_of(row.occurred_at_ms);
    for s in shares.shares {
        add_partner_day(tx, &s.partner, day, &row.currency, f(s.amount_minor))?;
    }
    Ok(())
}

/// What a transition reads of a conversion.
struct StoredConversion {
    status: Status,
    amount_minor: i64,
    refunded_minor: i64,
    occurred_at_ms: u64,
    currency: String,
    attribution: String,
}

fn event(tx: &Connection, id: &str, kind: &str, amount_minor: Option<i64>, now_ms: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO conversion_events (conversion_id, seq, kind, amount_minor, at_ms)
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM conversion_events WHERE conversion_id = ?1), ?2, ?3, ?4)",
    )?
    .execute(params![id, kind, amount_minor, now_ms as i64])?;
    Ok(())
}

fn transition_op(tx: &Connection, id: &str, t: Transition, now_ms: u64) -> Result<Answer, ConversionError> {
    let row = tx
        .prepare_cached(
            "SELECT status, amount_minor, refunded_minor, occurred_at_ms, currency, attribution FROM conversions WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(StoredConversion {
                status: Status::parse(&r.get::<_, String>(0)?),
                amount_minor: r.get(1)?,
                refunded_minor: r.get(2)?,
                occurred_at_ms: r.get::<_, i64>(3)? as u64,
                currency: r.get(4)?,
                attribution: r.get(5)?,
            })
        })
        .optional()?;
    let Some(row) = row else { return Err(ConversionError::NotFound(id.to_string())) };
    let (status, amount, refunded) = (row.status, row.amount_minor, row.refunded_minor);
    let conversion = ConversionRef { id, occurred_at_ms: row.occurred_at_ms };
    let conflict = |why: String| Err(ConversionError::Conflict(format!("conversion {id} is {}: {why}", status.as_str())));
    match t {
        Transition::Confirm => match status {
            Status::Pending => set_status(tx, id, Status::Confirmed, "confirmed", None, now_ms)?,
            Status::Confirmed => {}
            Status::Cancelled | Status::Refunded => return conflict("it cannot be confirmed".into()),
        },
        Transition::Cancel => match status {
            Status::Pending | Status::Confirmed if refunded == 0 => {
                set_status(tx, id, Status::Cancelled, "cancelled", None, now_ms)?;
                credit_partner_days(tx, &row, |share| PartnerDay {
                    conversions: -1,
                    revenue_minor: -share,
                    cancelled: 1,
                    ..PartnerDay::default()
                })?;
                lifecycle::refund(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, &conversion, Refunded::All, now_ms)?;
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
            tx.prepare_cached("UPDATE conversions SET refunded_minor = refunded_minor + ?1, status = ?2 WHERE id = ?3")?
                .execute(params![amt, new_status.as_str(), id])?;
            event(tx, id, "refunded", Some(amt), now_ms)?;
            // `amount` is positive here: a refund of a zero amount was refused above.
            let part = |share: i64, r: i64| (i128::from(share) * i128::from(r) / i128::from(amount)) as i64;
            credit_partner_days(tx, &row, |share| PartnerDay {
                refunded_minor: part(share, refunded + amt) - part(share, refunded),
                ..PartnerDay::default()
            })?;
            let refunded = Refunded::Cumulative { refunded_minor: refunded + amt, amount_minor: amount };
            lifecycle::refund(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, &conversion, refunded, now_ms)?;
        }
    }
    let body = view::render(tx, id)?.ok_or_else(|| ConversionError::NotFound(id.to_string()))?;
    Ok(Answer { status: 200, body, replayed: false })
}

/// The approval sweep's job: approves up to `limit` commissions whose lock has ended.
pub(super) fn approve(tx: &Connection, limit: usize, now_ms: u64) -> Result<Answer, ConversionError> {
    let approved = lifecycle::approve_due(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, now_ms, limit)?;
    let amount: i64 = approved.iter().map(|c| c.remaining_minor()).sum();
    let body = serde_json::json!({ "approved": approved.len(), "amount_minor": amount, "more": approved.len() == limit });
    Ok(Answer { status: 200, body: body.to_string(), replayed: false })
}

/// Marks a partner's approved commissions in a currency paid by `payout_id`.
pub(super) fn pay(
    tx: &Connection,
    partner: &str,
    currency: &str,
    payout_id: &str,
    limit: usize,
    now_ms: u64,
) -> Result<Answer, ConversionError> {
    let cur = parse_currency(currency)
        .ok_or_else(|| ConversionError::Invalid { field: "currency", why: format!("{currency:?} is not an ISO 4217 code") })?;
    let paid = lifecycle::pay_partner(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, partner, cur, payout_id, now_ms, limit)?;
    let amount: i64 = paid.iter().map(|c| c.remaining_minor()).sum();
    let ids: Vec<&str> = paid.iter().map(|c| c.id.as_str()).collect();
    let body = serde_json::json!({
        "payout_id": payout_id, "partner": partner, "currency": currency,
        "paid": paid.len(), "amount_minor": amount, "commission_ids": ids, "more": paid.len() == limit,
    });
    Ok(Answer { status: 200, body: body.to_string(), replayed: false })
}

fn set_status(tx: &Connection, id: &str, status: Status, kind: &str, amount: Option<i64>, now_ms: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE conversions SET status = ?1 WHERE id = ?2")?.execute(params![status.as_str(), id])?;
    event(tx, id, kind, amount, now_ms)
}
