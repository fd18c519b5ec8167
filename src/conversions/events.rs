//! The webhook events a job writes to the outbox, in its own transaction: a conversion credited
//! to a partner, and each commission created, approved, or voided and reversed. Each cause is
//! written once, by the job whose change it is: a retry that changes nothing writes nothing.
//! The data carries ids and amounts only, never a customer's data, and only what the event
//! adds: the writer renders two of these per conversion on its own thread.

use serde::Serialize;

use super::store::ConversionTx;
use super::{ConversionError, NewConversion};
use crate::attribution::engine::Attribution;
use crate::lifecycle::Commission;
use crate::model::Currency;
use crate::webhooks::{self, EventType};

/// `conversion.attributed`'s data: the sale, and the share credited to one partner.
#[derive(Serialize)]
struct Attributed<'a> {
    conversion_id: &'a str,
    program: &'a str,
    partner: &'a str,
    method: &'static str,
    currency: Currency,
    amount_minor: i64,
    share_minor: i64,
    occurred_at_ms: u64,
}

/// A commission's data: as created (`commission.created`), or where a step left it.
#[derive(Serialize)]
struct CommissionData<'a> {
    commission_id: &'a str,
    conversion_id: &'a str,
    program: &'a str,
    partner: &'a str,
    item: &'a str,
    currency: Currency,
    amount_minor: i64,
    /// What is still owed; less than `amount_minor` once voided or reversed in part.
    remaining_minor: i64,
    status: &'static str,
    lock_until_ms: i64,
}

impl<'a> CommissionData<'a> {
    fn of(c: &'a Commission) -> Self {
        CommissionData {
            commission_id: &c.id,
            conversion_id: &c.conversion_id,
            program: &c.program,
            partner: &c.partner,
            item: &c.item,
            currency: c.currency,
            amount_minor: c.amount_minor,
            remaining_minor: c.remaining_minor(),
            status: c.status.as_str(),
            lock_until_ms: c.lock_until_ms,
        }
    }
}

fn emit<T: ConversionTx, D: Serialize>(
    tx: &mut T,
    kind: EventType,
    cause: &str,
    now_ms: u64,
    partner: &str,
    data: &D,
) -> Result<(), ConversionError> {
    webhooks::emit(tx, kind, cause, now_ms as i64, Some(partner), data)?;
    Ok(())
}

/// `conversion.attributed`, once per credited partner, with that partner's share.
pub(super) fn attributed<T: ConversionTx>(
    tx: &mut T,
    id: &str,
    c: &NewConversion,
    attribution: &Attribution,
    now_ms: u64,
) -> Result<(), ConversionError> {
    for s in &attribution.shares {
        let data = Attributed {
            conversion_id: id,
            program: &c.program,
            partner: &s.partner,
            method: attribution.method.as_str(),
            currency: c.currency,
            amount_minor: c.amount_minor,
            share_minor: s.amount_minor,
            occurred_at_ms: c.occurred_at_ms,
        };
        emit(tx, EventType::ConversionAttributed, &format!("conversion:{id}:partner:{}", s.partner), now_ms, &s.partner, &data)?;
    }
    Ok(())
}

/// `commission.created` for each commission a new conversion made.
pub(super) fn created<T: ConversionTx>(tx: &mut T, commissions: &[Commission], now_ms: u64) -> Result<(), ConversionError> {
    for c in commissions {
        emit(tx, EventType::CommissionCreated, &format!("commission:{}:created", c.id), now_ms, &c.partner, &CommissionData::of(c))?;
    }
    Ok(())
}

/// `commission.approved` for each commission the approval sweep approved.
pub(super) fn approved<T: ConversionTx>(tx: &mut T, commissions: &[Commission], now_ms: u64) -> Result<(), ConversionError> {
    for c in commissions {
        emit(tx, EventType::CommissionApproved, &format!("commission:{}:approve", c.id), now_ms, &c.partner, &CommissionData::of(c))?;
    }
    Ok(())
}

/// `commission.reversed` for each commission a cancel or a refund voided (inside its lock) or
/// reversed (after approval or payment). The cause names what has been taken back in all, so
/// every step is its own event.
pub(super) fn reversed<T: ConversionTx>(tx: &mut T, commissions: &[Commission], now_ms: u64) -> Result<(), ConversionError> {
    for c in commissions {
        let cause = format!("commission:{}:taken-back:{}", c.id, c.voided_minor + c.reversed_minor);
        emit(tx, EventType::CommissionReversed, &cause, now_ms, &c.partner, &CommissionData::of(c))?;
    }
    Ok(())
}
