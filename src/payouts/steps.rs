//! A payout's steps in the ledger, the commissions and the outbox, each inside its caller's
//! transaction: create (its commissions set aside), send (payable → in transit, a pending
//! transfer), paid (the pending transfer posts) and failed (it voids: payable again).
//!
//! # Transfers
//!
//! For payout `p` of partner `x` in currency `C`, amount `A`:
//!
//! | step | transfer | cause |
//! |---|---|---|
//! | sent | `Pending` partner_payable(x) → partner_paid(x), `A` | `payout:p:send` |
//! | paid | `Post` of it, `A` | `payout:p:paid` |
//! | failed | `Void` of it | `payout:p:void` |
//!
//! Each carries the payout id as its subject, so the ledger refuses a second post. Money in
//! transit is the pending part of both balances. A commission is held by the payout that set
//! its `payout_id` (it stays `approved`), becomes `paid` when the payout posts, and is released
//! (its `payout_id` cleared) when the payout fails, so its money goes into the next run. A
//! refund of a held commission is a reversal as for any approved one; once the payout posts,
//! what it took back is owed by the partner against future earnings, as after a clawback.

use serde::Serialize;

use super::state::{Payout, PayoutError, PayoutStatus, PayoutTx};
use crate::ledger::{self, AccountKey, AccountKind, TransferId, TransferKind, TransferRequest};
use crate::lifecycle::{CommissionEvent, CommissionStatus};
use crate::webhooks::{self, EventType};

/// The transfer of payout `p` for one step.
fn transfer(p: &Payout, step: &str, kind: TransferKind, now_ms: i64) -> TransferRequest {
    let cause = format!("payout:{}:{step}", p.id);
    TransferRequest {
        id: TransferId::derive(&cause),
        cause,
        debit: AccountKey::new(AccountKind::PartnerPayable, &p.partner, p.currency),
        credit: AccountKey::new(AccountKind::PartnerPaid, &p.partner, p.currency),
        amount_minor: p.amount_minor,
        currency: p.currency,
        kind,
        subject: Some(p.id.clone()),
        pending_id: (kind != TransferKind::Pending).then(|| send_id(&p.id)),
        at_ms: now_ms,
    }
}

/// The id of a payout's pending transfer.
pub fn send_id(payout_id: &str) -> TransferId {
    TransferId::derive(&format!("payout:{payout_id}:send"))
}

/// The data of a payout's webhook events: ids and amounts, never a destination.
#[derive(Serialize)]
struct EventData<'a> {
    payout_id: &'a str,
    run_id: &'a str,
    partner: &'a str,
    currency: crate::model::Currency,
    amount_minor: i64,
    method: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a str>,
}

fn emit<T: PayoutTx + ?Sized>(tx: &mut T, kind: EventType, step: &str, p: &Payout, now_ms: i64) -> Result<(), PayoutError> {
    let data = EventData {
        payout_id: &p.id,
        run_id: &p.run_id,
        partner: &p.partner,
        currency: p.currency,
        amount_minor: p.amount_minor,
        method: p.method.as_str(),
        status: p.status.as_str(),
        reference: p.reference.as_deref(),
        failure: p.failure.as_deref(),
    };
    webhooks::emit(tx, kind, &format!("payout:{}:{step}", p.id), now_ms, Some(&p.partner), &data)?;
    Ok(())
}

/// Stores a new payout and sets its commissions aside (`programs`: those whose commissions
/// it pays). Nothing moves in the ledger yet.
pub fn create<T: PayoutTx + ?Sized>(tx: &mut T, p: &Payout, programs: &[String]) -> Result<usize, PayoutError> {
    debug_assert_eq!(p.status, PayoutStatus::Created);
    tx.insert_payout(p)?;
    let held = tx.hold_commissions(&p.partner, p.currency, programs, &p.id)?;
    if held == 0 {
        return Err(PayoutError::Conflict(format!("payout {}: partner {} has no unpaid commission left", p.id, p.partner)));
    }
    Ok(held)
}

/// `created` → `sent`: the pending transfer and `payout.sent`. `reference` is the export file
/// of a file payout. A payout already sent is left as it is.
pub fn send<T: PayoutTx + ?Sized>(tx: &mut T, id: &str, reference: Option<&str>, now_ms: i64) -> Result<Payout, PayoutError> {
    let mut p = load(tx, id)?;
    if p.status != PayoutStatus::Created {
        return Ok(p);
    }
    ledger::apply(tx, &transfer(&p, "send", TransferKind::Pending, now_ms))?;
    p.status = PayoutStatus::Sent;
    p.sent_ms = Some(now_ms);
    p.reference = reference.map(str::to_string);
    tx.update_payout(&p)?;
    emit(tx, EventType::PayoutSent, "sent", &p, now_ms)?;
    Ok(p)
}

/// `sent` → `paid`: the pending transfer posts, its commissions are paid, and `payout.paid`.
/// A payout already paid is left as it is; one in another state is a conflict.
pub fn paid<T: PayoutTx + ?Sized>(tx: &mut T, id: &str, reference: Option<&str>, now_ms: i64) -> Result<Payout, PayoutError> {
    let mut p = load(tx, id)?;
    match p.status {
        PayoutStatus::Sent => {}
        PayoutStatus::Paid => return Ok(p),
        s => return Err(PayoutError::Conflict(format!("payout {id} is {}, not sent", s.as_str()))),
    }
    let post = transfer(&p, "paid", TransferKind::Post, now_ms);
    ledger::apply(tx, &post)?;
    for mut c in tx.commissions_of_payout(&p.id)? {
        if c.status != CommissionStatus::Approved {
            continue;
        }
        let amount_minor = c.remaining_minor();
        c.status = CommissionStatus::Paid;
        c.paid_at_ms = Some(now_ms);
        tx.update_commission(&c)?;
        tx.insert_event(&CommissionEvent { commission_id: c.id.clone(), kind: "paid", amount_minor, transfer_id: post.id, at_ms: now_ms })?;
    }
    p.status = PayoutStatus::Paid;
    p.settled_ms = Some(now_ms);
    if reference.is_some() {
        p.reference = reference.map(str::to_string);
    }
    tx.update_payout(&p)?;
    emit(tx, EventType::PayoutPaid, "paid", &p, now_ms)?;
    Ok(p)
}

/// `created` or `sent` → `failed`: the pending transfer (if any) voids, the commissions are
/// released for the next run, and `payout.failed`. A payout already failed is left as it is.
pub fn failed<T: PayoutTx + ?Sized>(tx: &mut T, id: &str, why: &str, insufficient: bool, now_ms: i64) -> Result<Payout, PayoutError> {
    let mut p = load(tx, id)?;
    match p.status {
        PayoutStatus::Created => {}
        PayoutStatus::Sent => {
            ledger::apply(tx, &transfer(&p, "void", TransferKind::Void, now_ms))?;
        }
        PayoutStatus::Failed => return Ok(p),
        PayoutStatus::Paid => return Err(PayoutError::Conflict(format!("payout {id} is paid already"))),
    }
    for mut c in tx.commissions_of_payout(&p.id)? {
        if c.status == CommissionStatus::Approved {
            c.payout_id = None;
            tx.update_commission(&c)?;
        }
    }
    p.status = PayoutStatus::Failed;
    p.settled_ms = Some(now_ms);
    p.failure = Some(why.chars().take(500).collect());
    p.insufficient = insufficient;
    tx.update_payout(&p)?;
    emit(tx, EventType::PayoutFailed, "failed", &p, now_ms)?;
    Ok(p)
}

fn load<T: PayoutTx + ?Sized>(tx: &mut T, id: &str) -> Result<Payout, PayoutError> {
    tx.payout(id)?.ok_or_else(|| PayoutError::NotFound(format!("payout {id:?} not found")))
}
