//! The commission lifecycle: pending → approved → paid, voids inside the lock, reversals after
//! approval and clawbacks after payment, each one or two ledger transfers whose ids derive from
//! their cause.
//!
//! The logic here is generic over `CommissionTx`, one open transaction of a store that holds
//! both the ledger (`LedgerTx`) and the commission rows, so a commission and its transfers
//! commit together. Backends: `SqliteTx` (the embedded default, inside the conversion
//! writer's grouped commit) and `PgTx` (cluster mode).
//!
//! # Transfers
//!
//! Accounts are per program, partner and currency. For commission `c` of `A` minor units:
//!
//! | step | transfer | cause |
//! |---|---|---|
//! | created | `Pending` program_expense → partner_pending, `A` | `commission:c:reserve:0` |
//! | refund inside the lock | `Void` of the reserve, then a new `Pending` of what is left | `commission:c:void:n`, `commission:c:reserve:n+1` |
//! | approved | `Post` of the reserve, then `Single` partner_pending → partner_payable | `commission:c:approve`, `commission:c:payable` |
//! | paid | none of its own: its payout's transfers (`payouts::steps`) | `payout:p:send`, `payout:p:paid` |
//! | refund after approval | `Single` partner_payable → program_expense | `commission:c:reverse-to:r` |
//! | refund after payment | the same transfer, recorded as a clawback | `commission:c:clawback-to:r` |
//!
//! `r` is the conversion's cumulative refunded amount after the refund, so a retried refund
//! derives the same cause. The approving `Post` carries the commission id, so the ledger's
//! unique index refuses a second approval of one commission even from a bug that invented a
//! new cause. A commission is paid by the payout that holds it (its `payout_id`), whose
//! transfers carry the payout's id: one pending and one post per payout, for all the
//! commissions it pays. A clawback after payment leaves partner_payable negative: the partner
//! owes it against future earnings.
//!
//! # Refunds
//!
//! Every item of a conversion (base and bonuses) is prorated by the share of the sale refunded,
//! cumulatively (`commission::prorate`): after a refund of `r` of amount `S`, the commission has
//! lost `floor(A * r / S)` in all, and a cancel or a full refund takes all of `A`. Period
//! volumes, counts and paid bonuses are not rolled back: tiers and bonus thresholds count
//! attributed sales as they were made.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::attribution::engine::Share;
use crate::commission::{self, CommissionInput, PeriodState, ProgramRules, RuleSet};
use crate::ledger::{self, AccountKey, AccountKind, Applied, LedgerError, LedgerTx, TransferId, TransferKind, TransferRequest};
use crate::model::Currency;

const DAY_MS: u64 = 86_400_000;

/// Why a lifecycle step was refused, or the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("commission {0:?} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("commission storage: {0}")]
    Storage(String),
}

/// Where a commission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommissionStatus {
    /// Reserved, inside the lock period.
    Pending,
    /// The lock passed; the partner is owed it.
    Approved,
    /// A payout paid it. A later refund claws part or all of it back.
    Paid,
    /// Cancelled or refunded whole inside the lock.
    Voided,
    /// Taken back whole after approval or payment.
    Reversed,
}

impl CommissionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [CommissionStatus; 5] = [
        CommissionStatus::Pending,
        CommissionStatus::Approved,
        CommissionStatus::Paid,
        CommissionStatus::Voided,
        CommissionStatus::Reversed,
    ];

    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommissionStatus::Pending => "pending",
            CommissionStatus::Approved => "approved",
            CommissionStatus::Paid => "paid",
            CommissionStatus::Voided => "voided",
            CommissionStatus::Reversed => "reversed",
        }
    }

    /// The inverse of `as_str`.
    pub fn parse(s: &str) -> Option<CommissionStatus> {
        CommissionStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One commission: one item (the base, or one bonus) of one partner's earnings on one
/// conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commission {
    /// `cm_` and 24 hex digits, derived from (conversion, occurred second, partner, item).
    pub id: String,
    pub conversion_id: String,
    pub program: String,
    pub partner: String,
    /// `base`, or `bonus:<index>` into the rule set's bonuses.
    pub item: String,
    pub currency: Currency,
    /// As created.
    pub amount_minor: i64,
    /// Voided inside the lock by cancels and refunds.
    pub voided_minor: i64,
    /// Taken back after approval (reversals) or payment (clawbacks).
    pub reversed_minor: i64,
    pub status: CommissionStatus,
    /// `RuleSet::version_hash` of the rules that produced it.
    pub rule_version: String,
    /// The rule period's label, such as `2026-11`.
    pub period: String,
    /// How it was computed (rate, tier, fixed part, cap), as JSON.
    #[serde(skip)]
    pub detail: String,
    pub created_at_ms: i64,
    /// Approval is due at or after this time, unless the sale is cancelled first.
    pub lock_until_ms: i64,
    pub approved_at_ms: Option<i64>,
    pub paid_at_ms: Option<i64>,
    pub payout_id: Option<String>,
    /// The current reserve is `commission:<id>:reserve:<reserve_seq>`.
    pub reserve_seq: u32,
}

fn ser_display<S: serde::Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Commission {
    /// What is still owed or reserved: created less voided less reversed.
    pub fn remaining_minor(&self) -> i64 {
        self.amount_minor - self.voided_minor - self.reversed_minor
    }

    fn account(&self, kind: AccountKind) -> AccountKey {
        let owner = if kind == AccountKind::ProgramExpense { &self.program } else { &self.partner };
        AccountKey::new(kind, owner, self.currency)
    }

    fn transfer(&self, cause: String, kind: TransferKind, debit: AccountKind, credit: AccountKind, amount_minor: i64) -> TransferRequest {
        TransferRequest {
            id: TransferId::derive(&cause),
            cause,
            debit: self.account(debit),
            credit: self.account(credit),
            amount_minor,
            currency: self.currency,
            kind,
            subject: None,
            pending_id: None,
            at_ms: 0,
        }
    }

    /// The id of the pending transfer that reserves the commission under reserve seq `seq`.
    pub fn reserve_id(&self, seq: u32) -> TransferId {
        TransferId::derive(&format!("commission:{}:reserve:{seq}", self.id))
    }
}

/// The conversion a commission belongs to: its id and the time it occurred, which together
/// place its commissions (`commission_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversionRef<'a> {
    pub id: &'a str,
    pub occurred_at_ms: u64,
}

impl ConversionRef<'_> {
    /// What every commission id of this conversion starts with: `cm_`, the second it occurred
    /// at (8 hex digits) and 8 hex digits of SHA-256 of its id.
    pub fn commission_prefix(&self) -> String {
        let secs = u32::try_from(self.occurred_at_ms / 1000).unwrap_or(u32::MAX);
        let d = Sha256::digest(self.id.as_bytes());
        let mut raw = [0; 8];
        raw[..4].copy_from_slice(&secs.to_be_bytes());
        raw[4..].copy_from_slice(&d[..4]);
        let mut s = String::with_capacity(27);
        s.push_str("cm_");
        s.push_str(&hex::encode(raw));
        s
    }

    /// The bounds, both exclusive, between which every commission id of this conversion lies:
    /// its `commission_prefix`, and that prefix followed by a character above the hex digits.
    pub fn commission_id_range(&self) -> (String, String) {
        let lo = self.commission_prefix();
        let hi = format!("{lo}~");
        (lo, hi)
    }
}

/// `cm_` and 24 hex digits: the conversion's `commission_prefix` (its second, then a hash of
/// its id), then 8 hex digits of SHA-256(conversion, partner, item).
///
/// The time comes first so that ids grow with time: every index keyed by a commission id, and
/// the ledger's index of transfer ids (`TransferId::derive` takes the time from a commission
/// id in the cause), gets its inserts at one end instead of on a random page each, which is
/// what a grouped commit writes to the WAL. A conversion's commissions share the prefix, so
/// they are found by one range of the id without an index on the conversion.
pub fn commission_id(conversion: &ConversionRef<'_>, partner: &str, item: &str) -> String {
    let mut h = Sha256::new();
    for part in [conversion.id, partner, item] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut s = conversion.commission_prefix();
    s.push_str(&hex::encode(&d[..4]));
    s
}

/// One step in a commission's history, for the conversion's explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommissionEvent {
    pub commission_id: String,
    /// `created`, `voided`, `approved`, `paid`, `reversed`, `clawed_back`.
    pub kind: &'static str,
    pub amount_minor: i64,
    /// The transfer that moved the money (the last one, for steps of two).
    #[serde(serialize_with = "ser_display")]
    pub transfer_id: TransferId,
    pub at_ms: i64,
}

impl CommissionEvent {
    /// Every event kind, as stored.
    pub const KINDS: [&'static str; 6] = ["created", "voided", "approved", "paid", "reversed", "clawed_back"];

    /// The static name of a stored event kind; `None` for anything else, never a guess.
    pub fn parse_kind(s: &str) -> Option<&'static str> {
        Self::KINDS.into_iter().find(|k| *k == s)
    }
}

/// A partner's period, which volume, counts, bonuses and the cap are kept per.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeriodRef {
    pub program: String,
    pub partner: String,
    pub currency: Currency,
    pub label: String,
}

/// One open transaction of a store holding the ledger and the commissions. Implementations
/// only read and write rows; the rules live in this module.
pub trait CommissionTx: LedgerTx {
    /// Records that a conversion's commissions were created; false if it was already.
    fn mark_accrued(&mut self, conversion: &ConversionRef<'_>, at_ms: i64) -> Result<bool, LifecycleError>;
    /// A partner's period state; zero for a period never used.
    fn period_state(&mut self, key: &PeriodRef) -> Result<PeriodState, LifecycleError>;
    /// Stores a partner's period state.
    fn put_period_state(&mut self, key: &PeriodRef, state: &PeriodState) -> Result<(), LifecycleError>;
    /// Stores a rule set under its version, once: serialized only when the version is new.
    fn put_rule_version(&mut self, version: &str, rules: &RuleSet) -> Result<(), LifecycleError>;
    fn insert_commission(&mut self, c: &Commission) -> Result<(), LifecycleError>;
    /// Stores a commission's mutable fields: amounts, status, times, payout, reserve seq.
    fn update_commission(&mut self, c: &Commission) -> Result<(), LifecycleError>;
    fn commission(&mut self, id: &str) -> Result<Option<Commission>, LifecycleError>;
    /// A conversion's commissions, by id.
    fn commissions_of(&mut self, conversion: &ConversionRef<'_>) -> Result<Vec<Commission>, LifecycleError>;
    /// Up to `limit` pending commissions whose lock ended at or before `now_ms`, oldest first.
    fn due_for_approval(&mut self, now_ms: i64, limit: usize) -> Result<Vec<Commission>, LifecycleError>;
    fn insert_event(&mut self, e: &CommissionEvent) -> Result<(), LifecycleError>;
    /// A commission's events, in order.
    fn events_of(&mut self, commission_id: &str) -> Result<Vec<CommissionEvent>, LifecycleError>;
}

/// The sale a conversion's commissions are computed on.
#[derive(Debug, Clone, Copy)]
pub struct Sale<'a> {
    pub conversion_id: &'a str,
    pub program: &'a str,
    pub currency: Currency,
    pub amount_minor: i64,
    pub occurred_at_ms: u64,
}

impl<'a> Sale<'a> {
    pub fn conversion(&self) -> ConversionRef<'a> {
        ConversionRef { id: self.conversion_id, occurred_at_ms: self.occurred_at_ms }
    }
}

/// The partner's period that a sale's share counts in, under the partner's rules.
pub fn period_of(sale: &Sale<'_>, partner: &str, rs: &RuleSet) -> PeriodRef {
    PeriodRef {
        program: sale.program.to_string(),
        partner: partner.to_string(),
        currency: sale.currency,
        label: rs.period.key(sale.occurred_at_ms).label,
    }
}

/// Applies one transfer stamped with `now_ms`; a retry of the same transfer is a no-op.
fn apply<T: CommissionTx + ?Sized>(tx: &mut T, mut t: TransferRequest, now_ms: i64) -> Result<TransferId, LifecycleError> {
    t.at_ms = now_ms;
    match ledger::apply(tx, &t)? {
        Applied::Created(_) | Applied::AlreadyExists => Ok(t.id),
    }
}

/// Computes and stores the commissions of a new conversion, one per partner share and item
/// with a positive amount, each reserved by a pending transfer. A conversion already accrued
/// is left alone (answer: its commissions as stored), so period states never count it twice.
pub fn accrue<T: CommissionTx + ?Sized>(
    tx: &mut T,
    sale: &Sale<'_>,
    shares: &[Share],
    rules: &ProgramRules,
    now_ms: u64,
) -> Result<Vec<Commission>, LifecycleError> {
    let now = now_ms as i64;
    let conversion = sale.conversion();
    if !tx.mark_accrued(&conversion, now)? {
        return tx.commissions_of(&conversion);
    }
    let mut out = Vec::new();
    for share in shares {
        let rs: &RuleSet = rules.for_partner(&share.partner);
        let key = period_of(sale, &share.partner, rs);
        let before = tx.period_state(&key)?;
        let calc = commission::compute(
            rs,
            &CommissionInput {
                occurred_at_ms: sale.occurred_at_ms,
                share_minor: share.amount_minor,
                amount_minor: sale.amount_minor,
                before,
            },
        );
        tx.put_period_state(&key, &calc.after)?;
        tx.put_rule_version(&calc.version, rs)?;
        let lock_until = sale.occurred_at_ms.saturating_add(u64::from(rs.lock_days) * DAY_MS) as i64;
        let mut items = vec![("base".to_string(), calc.base.amount_minor, serde_json::to_string(&calc.base).expect("serialises"))];
        for b in &calc.bonuses {
            items.push((format!("bonus:{}", b.index), b.amount_minor, serde_json::to_string(b).expect("serialises")));
        }
        for (item, amount, detail) in items {
            if amount <= 0 {
                continue;
            }
            let c = Commission {
                id: commission_id(&conversion, &share.partner, &item),
                conversion_id: sale.conversion_id.to_string(),
                program: sale.program.to_string(),
                partner: share.partner.clone(),
                item,
                currency: sale.currency,
                amount_minor: amount,
                voided_minor: 0,
                reversed_minor: 0,
                status: CommissionStatus::Pending,
                rule_version: calc.version.clone(),
                period: calc.period.label.clone(),
                detail,
                created_at_ms: now,
                lock_until_ms: lock_until,
                approved_at_ms: None,
                paid_at_ms: None,
                payout_id: None,
                reserve_seq: 0,
            };
            tx.insert_commission(&c)?;
            let transfer_id = reserve(tx, &c, now)?;
            tx.insert_event(&CommissionEvent {
                commission_id: c.id.clone(),
                kind: "created",
                amount_minor: amount,
                transfer_id,
                at_ms: now,
            })?;
            out.push(c);
        }
    }
    Ok(out)
}

/// The pending transfer that reserves what is left of `c` under its current reserve seq.
fn reserve<T: CommissionTx + ?Sized>(tx: &mut T, c: &Commission, now: i64) -> Result<TransferId, LifecycleError> {
    let mut t = c.transfer(
        format!("commission:{}:reserve:{}", c.id, c.reserve_seq),
        TransferKind::Pending,
        AccountKind::ProgramExpense,
        AccountKind::PartnerPending,
        c.remaining_minor(),
    );
    t.subject = Some(c.id.clone());
    apply(tx, t, now)
}

/// How much of a conversion is refunded after this step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refunded {
    /// A cancel: every commission goes, whatever the amounts.
    All,
    /// The cumulative amount refunded after this refund, of the conversion's amount.
    Cumulative { refunded_minor: i64, amount_minor: i64 },
}

/// Takes back the part of each of a conversion's commissions that the refund (or cancel)
/// reaches: voided while pending, reversed once approved, clawed back once paid. Cumulative,
/// so a retry of the same step changes nothing. Returns the commissions it changed.
pub fn refund<T: CommissionTx + ?Sized>(
    tx: &mut T,
    conversion: &ConversionRef<'_>,
    refunded: Refunded,
    now_ms: u64,
) -> Result<Vec<Commission>, LifecycleError> {
    let now = now_ms as i64;
    let (cause_key, full) = match refunded {
        Refunded::All => ("all".to_string(), true),
        Refunded::Cumulative { refunded_minor, amount_minor } => {
            if refunded_minor < 0 || refunded_minor > amount_minor {
                return Err(LifecycleError::Invalid {
                    field: "refunded_minor",
                    why: format!("must be in 0..={amount_minor}, got {refunded_minor}"),
                });
            }
            (refunded_minor.to_string(), refunded_minor >= amount_minor)
        }
    };
    let mut changed = Vec::new();
    for c in tx.commissions_of(conversion)? {
        let target = match refunded {
            _ if full => c.amount_minor,
            Refunded::Cumulative { refunded_minor, amount_minor } => commission::prorate(c.amount_minor, refunded_minor, amount_minor),
            Refunded::All => c.amount_minor,
        };
        let step = target - c.voided_minor - c.reversed_minor;
        if let Some(c) = take_back(tx, c, step, &cause_key, None, now)? {
            changed.push(c);
        }
    }
    Ok(changed)
}

/// Takes back everything left of `partner`'s commissions on a conversion, whatever their
/// state (voided while pending, reversed once approved, clawed back once paid): a rescore found
/// that no click that credited the partner was valid. `cause_key` names why in the ledger's
/// causes (`fraud::rescore::audit_reason`). A commission already taken back is left alone, so
/// a retry changes nothing. Returns the commissions it changed.
pub fn revoke<T: CommissionTx + ?Sized>(
    tx: &mut T,
    conversion: &ConversionRef<'_>,
    partner: &str,
    cause_key: &str,
    now_ms: u64,
) -> Result<Vec<Commission>, LifecycleError> {
    let mut changed = Vec::new();
    for c in tx.commissions_of(conversion)?.into_iter().filter(|c| c.partner == partner) {
        let step = c.remaining_minor();
        if let Some(c) = take_back(tx, c, step, cause_key, Some(cause_key), now_ms as i64)? {
            changed.push(c);
        }
    }
    Ok(changed)
}

/// Takes `step` back from one commission: voided while pending (the reserve voided, and the
/// rest reserved again), reversed once approved, clawed back once paid. `None` when there is
/// nothing to take (a step of 0, or a commission voided or reversed already). `void_audit`
/// is appended to a void's cause, which otherwise names only the reserve it voids.
fn take_back<T: CommissionTx + ?Sized>(
    tx: &mut T,
    mut c: Commission,
    step: i64,
    cause_key: &str,
    void_audit: Option<&str>,
    now: i64,
) -> Result<Option<Commission>, LifecycleError> {
    if step <= 0 {
        return Ok(None);
    }
    match c.status {
        CommissionStatus::Pending => {
            let held = c.remaining_minor();
            let mut void = c.transfer(
                match void_audit {
                    None => format!("commission:{}:void:{}", c.id, c.reserve_seq),
                    Some(audit) => format!("commission:{}:void:{}:{audit}", c.id, c.reserve_seq),
                },
                TransferKind::Void,
                AccountKind::ProgramExpense,
                AccountKind::PartnerPending,
                held,
            );
            void.pending_id = Some(c.reserve_id(c.reserve_seq));
            void.subject = Some(c.id.clone());
            let mut id = apply(tx, void, now)?;
            c.voided_minor += step;
            if c.remaining_minor() > 0 {
                c.reserve_seq += 1;
                id = reserve(tx, &c, now)?;
            } else {
                c.status = CommissionStatus::Voided;
            }
            tx.insert_event(&CommissionEvent {
                commission_id: c.id.clone(),
                kind: "voided",
                amount_minor: step,
                transfer_id: id,
                at_ms: now,
            })?;
        }
        CommissionStatus::Approved | CommissionStatus::Paid => {
            let (label, kind) =
                if c.status == CommissionStatus::Paid { ("clawback-to", "clawed_back") } else { ("reverse-to", "reversed") };
            let t = c.transfer(
                format!("commission:{}:{label}:{cause_key}", c.id),
                TransferKind::Single,
                AccountKind::PartnerPayable,
                AccountKind::ProgramExpense,
                step,
            );
            let id = apply(tx, t, now)?;
            c.reversed_minor += step;
            if c.remaining_minor() == 0 {
                c.status = CommissionStatus::Reversed;
            }
            tx.insert_event(&CommissionEvent { commission_id: c.id.clone(), kind, amount_minor: step, transfer_id: id, at_ms: now })?;
        }
        CommissionStatus::Voided | CommissionStatus::Reversed => return Ok(None),
    }
    debug_assert!(c.remaining_minor() >= 0, "a commission never goes below zero: {c:?}");
    tx.update_commission(&c)?;
    Ok(Some(c))
}

/// Approves up to `limit` pending commissions whose lock ended at or before `now_ms`: posts
/// each reserve and moves it from partner_pending to partner_payable. Returns them.
pub fn approve_due<T: CommissionTx + ?Sized>(tx: &mut T, now_ms: u64, limit: usize) -> Result<Vec<Commission>, LifecycleError> {
    let now = now_ms as i64;
    let due = tx.due_for_approval(now, limit)?;
    let mut out = Vec::with_capacity(due.len());
    for mut c in due {
        debug_assert!(c.status == CommissionStatus::Pending && c.lock_until_ms <= now);
        let amount = c.remaining_minor();
        let mut post = c.transfer(
            format!("commission:{}:approve", c.id),
            TransferKind::Post,
            AccountKind::ProgramExpense,
            AccountKind::PartnerPending,
            amount,
        );
        post.pending_id = Some(c.reserve_id(c.reserve_seq));
        post.subject = Some(c.id.clone());
        apply(tx, post, now)?;
        let payable = c.transfer(
            format!("commission:{}:payable", c.id),
            TransferKind::Single,
            AccountKind::PartnerPending,
            AccountKind::PartnerPayable,
            amount,
        );
        let transfer_id = apply(tx, payable, now)?;
        c.status = CommissionStatus::Approved;
        c.approved_at_ms = Some(now);
        tx.update_commission(&c)?;
        tx.insert_event(&CommissionEvent { commission_id: c.id.clone(), kind: "approved", amount_minor: amount, transfer_id, at_ms: now })?;
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
