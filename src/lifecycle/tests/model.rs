//! The simulation's model: what each request should do, kept in memory and written apart from
//! the lifecycle code, so the store is checked against an independent account of every
//! commission (status, amounts, reserve seq, payout) and of the ledger balances they imply.
//!
//! Only the commission arithmetic (`commission::compute`, tested on its own) is shared; the
//! lifecycle rules (voids inside the lock, reversals, clawbacks, approval order), the payout
//! rules (what a settlement by hand holds and pays, capped by what is owed, idempotent) and
//! the refund proration are restated here.

use std::collections::{BTreeMap, BTreeSet};

use super::super::{commission_id, Commission, CommissionStatus, ConversionRef, LifecycleError, Refunded};
use crate::attribution::engine::Share;
use crate::commission::{self, CommissionInput, PeriodState, ProgramRules};
use crate::ledger::{AccountKey, AccountKind, Balance};
use crate::model::Currency;
use crate::payouts::PayoutError;

pub const PROGRAM: &str = "shop";
const DAY_MS: u64 = 86_400_000;

/// A conversion as the client knows it, whether or not the store has it yet.
#[derive(Debug, Clone)]
pub struct Conv {
    pub id: String,
    pub currency: Currency,
    pub amount_minor: i64,
    pub occurred_at_ms: u64,
    pub shares: Vec<Share>,
    /// The cumulative refund the client asked for last.
    pub refunded_issued_minor: i64,
    /// A full refund or a cancel was asked for: no more refunds are issued.
    pub closed: bool,
}

impl Conv {
    pub fn conversion(&self) -> ConversionRef<'_> {
        ConversionRef { id: &self.id, occurred_at_ms: self.occurred_at_ms }
    }
}

/// One request, as the client sends it and as a retry repeats it.
#[derive(Debug, Clone)]
pub enum Op {
    /// Accrue conversion `convs[i]`.
    Accrue(usize),
    Refund(usize, Refunded),
    Approve {
        limit: usize,
    },
    /// Create and send the payout of run `run` that settles a partner in a currency by hand
    /// (`harness::send_by_hand`), or send it again.
    Send {
        run: String,
        partner: &'static str,
        currency: Currency,
    },
    /// Mark a payout paid (`payouts::steps::paid`).
    Paid {
        payout: String,
    },
}

/// What a request answered, reduced to what the model predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The commissions it answered with, `detail` cleared.
    Commissions(Vec<Commission>),
    /// Refused before writing: `not_found`, `conflict`, or the invalid field's name.
    Refused(&'static str),
    /// A ledger or storage error, which no request of the simulation should meet.
    Failed(String),
}

impl Outcome {
    pub fn of(r: Result<Vec<Commission>, LifecycleError>) -> Outcome {
        match r {
            Ok(cs) => Outcome::Commissions(cs.into_iter().map(without_detail).collect()),
            Err(LifecycleError::NotFound(_)) => Outcome::Refused("not_found"),
            Err(LifecycleError::Conflict(_)) => Outcome::Refused("conflict"),
            Err(LifecycleError::Invalid { field, .. }) => Outcome::Refused(field),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// A payout step's answer: the commissions its payout holds or paid.
    pub fn of_payout(r: Result<Vec<Commission>, PayoutError>) -> Outcome {
        match r {
            Ok(cs) => Outcome::of(Ok(cs)),
            Err(PayoutError::Lifecycle(e)) => Outcome::of(Err(e)),
            Err(PayoutError::NotFound(_)) => Outcome::Refused("not_found"),
            Err(PayoutError::Conflict(_)) => Outcome::Refused("conflict"),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// The model does not restate how a commission's computation is described.
pub fn without_detail(c: Commission) -> Commission {
    Commission { detail: String::new(), ..c }
}

/// One commission and what the ledger should show of it.
#[derive(Debug, Clone)]
pub struct Track {
    pub c: Commission,
    /// What the approving post moved to payable; 0 until approved.
    pub approved_minor: i64,
    /// What was left of it when its payout posted (its `paid` event); 0 until paid.
    pub paid_minor: i64,
    /// Its events, kind and amount, in order.
    pub events: Vec<(&'static str, i64)>,
}

/// The expected state of the store.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub commissions: BTreeMap<String, Track>,
    pub accrued: BTreeSet<usize>,
    /// By (partner, currency, period label); one program.
    pub periods: BTreeMap<(String, Currency, String), PeriodState>,
    /// By payout id.
    pub payouts: BTreeMap<String, PayoutTrack>,
}

/// A payout and what the ledger should show of it.
#[derive(Debug, Clone)]
pub struct PayoutTrack {
    pub partner: String,
    pub currency: Currency,
    /// Fixed when it is created: what its transfers move.
    pub amount_minor: i64,
    pub paid: bool,
}

impl Model {
    /// A conversion's commissions as the store lists them: by id.
    pub fn of(&self, conv: &Conv) -> Vec<Commission> {
        self.commissions.values().filter(|t| t.c.conversion_id == conv.id).map(|t| t.c.clone()).collect()
    }

    /// Open pending transfers: a reserve per pending commission, one per payout in transit.
    pub fn pending(&self) -> usize {
        self.commissions.values().filter(|t| t.c.status == CommissionStatus::Pending).count()
            + self.payouts.values().filter(|p| !p.paid).count()
    }

    /// Applies `op` at `now_ms` and answers what the store must answer.
    pub fn apply(&mut self, op: &Op, convs: &[Conv], rules: &ProgramRules, now_ms: u64) -> Outcome {
        match op {
            Op::Accrue(i) => Outcome::Commissions(self.accrue(*i, &convs[*i], rules, now_ms)),
            Op::Refund(i, refunded) => self.refund(&convs[*i], *refunded),
            Op::Approve { limit } => Outcome::Commissions(self.approve(now_ms, *limit)),
            Op::Send { run, partner, currency } => {
                self.send(&crate::payouts::state::payout_id(run, partner, *currency), partner, *currency)
            }
            Op::Paid { payout } => self.paid(payout, now_ms),
        }
    }

    /// The commissions a payout holds or paid, as the store lists them: by creation, then id.
    fn of_payout(&self, payout: &str) -> Vec<Commission> {
        let mut held: Vec<Commission> =
            self.commissions.values().filter(|t| t.c.payout_id.as_deref() == Some(payout)).map(|t| t.c.clone()).collect();
        held.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        held
    }

    /// A settlement by hand holds every approved commission of the partner in the currency
    /// that no payout holds, for their sum capped at what partner_payable holds after what the
    /// partner owes and what is in transit; nothing when that is not positive.
    fn send(&mut self, id: &str, partner: &str, currency: Currency) -> Outcome {
        if self.payouts.contains_key(id) {
            return Outcome::Commissions(self.of_payout(id));
        }
        let free = |t: &&mut Track| {
            t.c.partner == partner && t.c.currency == currency && t.c.status == CommissionStatus::Approved && t.c.payout_id.is_none()
        };
        let sum: i64 = self.commissions.values_mut().filter(free).map(|t| t.c.remaining_minor()).sum();
        let b = self.balances().get(&AccountKey::new(AccountKind::PartnerPayable, partner, currency)).copied().unwrap_or_default();
        let amount_minor = sum.min(b.credits_posted - b.debits_posted - b.debits_pending);
        if sum == 0 || amount_minor < 1 {
            return Outcome::Commissions(Vec::new());
        }
        for t in self.commissions.values_mut().filter(free) {
            t.c.payout_id = Some(id.to_string());
        }
        let track = PayoutTrack { partner: partner.to_string(), currency, amount_minor, paid: false };
        self.payouts.insert(id.to_string(), track);
        Outcome::Commissions(self.of_payout(id))
    }

    /// A payout posts: what it holds and is still approved is paid, whatever is left of it.
    fn paid(&mut self, id: &str, now_ms: u64) -> Outcome {
        let Some(p) = self.payouts.get_mut(id) else { return Outcome::Refused("not_found") };
        if !p.paid {
            p.paid = true;
            for t in self.commissions.values_mut().filter(|t| t.c.payout_id.as_deref() == Some(id)) {
                if t.c.status == CommissionStatus::Approved {
                    t.paid_minor = t.c.remaining_minor();
                    t.c.status = CommissionStatus::Paid;
                    t.c.paid_at_ms = Some(now_ms as i64);
                    t.events.push(("paid", t.paid_minor));
                }
            }
        }
        Outcome::Commissions(self.of_payout(id))
    }

    fn accrue(&mut self, i: usize, conv: &Conv, rules: &ProgramRules, now_ms: u64) -> Vec<Commission> {
        if !self.accrued.insert(i) {
            // Accrued already: the store answers with what it holds and counts nothing again.
            return self.of(conv);
        }
        let mut out = Vec::new();
        for share in &conv.shares {
            let rs = rules.for_partner(&share.partner);
            let period = rs.period.key(conv.occurred_at_ms);
            let key = (share.partner.clone(), conv.currency, period.label.clone());
            let before = self.periods.get(&key).copied().unwrap_or_default();
            let calc = commission::compute(
                rs,
                &CommissionInput {
                    occurred_at_ms: conv.occurred_at_ms,
                    share_minor: share.amount_minor,
                    amount_minor: conv.amount_minor,
                    before,
                },
            );
            self.periods.insert(key, calc.after);
            let mut items = vec![("base".to_string(), calc.base.amount_minor)];
            items.extend(calc.bonuses.iter().map(|b| (format!("bonus:{}", b.index), b.amount_minor)));
            for (item, amount_minor) in items.into_iter().filter(|(_, a)| *a > 0) {
                let c = Commission {
                    id: commission_id(&conv.conversion(), &share.partner, &item),
                    conversion_id: conv.id.clone(),
                    program: PROGRAM.to_string(),
                    partner: share.partner.clone(),
                    item,
                    currency: conv.currency,
                    amount_minor,
                    voided_minor: 0,
                    reversed_minor: 0,
                    status: CommissionStatus::Pending,
                    rule_version: calc.version.clone(),
                    period: period.label.clone(),
                    detail: String::new(),
                    created_at_ms: now_ms as i64,
                    lock_until_ms: (conv.occurred_at_ms + u64::from(rs.lock_days) * DAY_MS) as i64,
                    approved_at_ms: None,
                    paid_at_ms: None,
                    payout_id: None,
                    reserve_seq: 0,
                };
                let track = Track { c: c.clone(), approved_minor: 0, paid_minor: 0, events: vec![("created", amount_minor)] };
                assert!(self.commissions.insert(c.id.clone(), track).is_none(), "model: commission {} made twice", c.id);
                out.push(c);
            }
        }
        out
    }

    fn refund(&mut self, conv: &Conv, refunded: Refunded) -> Outcome {
        let (refunded_minor, full) = match refunded {
            Refunded::All => (0, true),
            Refunded::Cumulative { refunded_minor, amount_minor } => {
                if refunded_minor < 0 || refunded_minor > amount_minor {
                    return Outcome::Refused("refunded_minor");
                }
                (refunded_minor, refunded_minor >= amount_minor)
            }
        };
        let mut changed = Vec::new();
        for t in self.commissions.values_mut().filter(|t| t.c.conversion_id == conv.id) {
            let c = &mut t.c;
            // Cumulative: the commission has lost floor(A * r / S) in all after this refund.
            let target = if full {
                c.amount_minor
            } else {
                (i128::from(c.amount_minor) * i128::from(refunded_minor) / i128::from(conv.amount_minor)) as i64
            };
            let step = target - c.voided_minor - c.reversed_minor;
            if step <= 0 {
                continue;
            }
            match c.status {
                CommissionStatus::Pending => {
                    c.voided_minor += step;
                    if c.remaining_minor() > 0 {
                        c.reserve_seq += 1;
                    } else {
                        c.status = CommissionStatus::Voided;
                    }
                    t.events.push(("voided", step));
                }
                CommissionStatus::Approved | CommissionStatus::Paid => {
                    t.events.push((if c.status == CommissionStatus::Paid { "clawed_back" } else { "reversed" }, step));
                    c.reversed_minor += step;
                    if c.remaining_minor() == 0 {
                        c.status = CommissionStatus::Reversed;
                    }
                }
                CommissionStatus::Voided | CommissionStatus::Reversed => unreachable!("nothing is left to take: {c:?}"),
            }
            changed.push(c.clone());
        }
        Outcome::Commissions(changed)
    }

    fn approve(&mut self, now_ms: u64, limit: usize) -> Vec<Commission> {
        let now = now_ms as i64;
        let mut due: Vec<(i64, String)> = self
            .commissions
            .values()
            .filter(|t| t.c.status == CommissionStatus::Pending && t.c.lock_until_ms <= now)
            .map(|t| (t.c.lock_until_ms, t.c.id.clone()))
            .collect();
        due.sort();
        let mut out = Vec::new();
        for (_, id) in due.into_iter().take(limit) {
            let t = self.commissions.get_mut(&id).expect("listed");
            t.approved_minor = t.c.remaining_minor();
            t.c.status = CommissionStatus::Approved;
            t.c.approved_at_ms = Some(now);
            t.events.push(("approved", t.approved_minor));
            out.push(t.c.clone());
        }
        out
    }

    /// The balances the commissions and payouts imply. Reserves count while pending; an
    /// approval posts to partner_pending and moves on to partner_payable; reversals and
    /// clawbacks leave partner_payable for program_expense; a payout moves its amount from
    /// partner_payable to partner_paid, pending while sent, posted once paid.
    pub fn balances(&self) -> BTreeMap<AccountKey, Balance> {
        let mut out: BTreeMap<AccountKey, Balance> = BTreeMap::new();
        let mut add = |kind, owner: &str, currency, d: Balance| {
            let b = out.entry(AccountKey::new(kind, owner, currency)).or_default();
            b.debits_pending += d.debits_pending;
            b.credits_pending += d.credits_pending;
            b.debits_posted += d.debits_posted;
            b.credits_posted += d.credits_posted;
        };
        for t in self.commissions.values() {
            let c = &t.c;
            let held = if c.status == CommissionStatus::Pending { c.remaining_minor() } else { 0 };
            let (approved, reversed) = (t.approved_minor, c.reversed_minor);
            let z = Balance::default();
            add(
                AccountKind::ProgramExpense,
                &c.program,
                c.currency,
                Balance { debits_pending: held, debits_posted: approved, credits_posted: reversed, ..z },
            );
            add(
                AccountKind::PartnerPending,
                &c.partner,
                c.currency,
                Balance { credits_pending: held, credits_posted: approved, debits_posted: approved, ..z },
            );
            add(AccountKind::PartnerPayable, &c.partner, c.currency, Balance { credits_posted: approved, debits_posted: reversed, ..z });
        }
        for p in self.payouts.values() {
            let (a, z) = (p.amount_minor, Balance::default());
            let (payable, paid) = if p.paid {
                (Balance { debits_posted: a, ..z }, Balance { credits_posted: a, ..z })
            } else {
                (Balance { debits_pending: a, ..z }, Balance { credits_pending: a, ..z })
            };
            add(AccountKind::PartnerPayable, &p.partner, p.currency, payable);
            add(AccountKind::PartnerPaid, &p.partner, p.currency, paid);
        }
        out
    }
}
