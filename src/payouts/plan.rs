//! What a run pays: for each partner and currency, the programs whose unpaid approved
//! commissions reach the program's threshold, summed, and capped at what the partner's
//! payable account holds (a clawback after an earlier payout is owed against it). A
//! settlement by hand (`by_hand`) pays one partner and currency whatever the thresholds and
//! the partner's payout method, under the same cap.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::provider::{Destination, PayoutMethod};
use super::state::{PayoutError, PayoutTx, Unpaid};
use crate::ledger::{AccountKey, AccountKind};
use crate::model::Currency;

/// The threshold of a program the directory does not know (PRODUCT.md §7: 50.00).
pub const DEFAULT_THRESHOLD_MINOR: i64 = 5000;

/// What a run knows of partners and programs, from the catalog: where each partner is paid
/// (or why their details do not make a destination), and each program's threshold.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub partners: HashMap<String, PartnerEntry>,
    pub thresholds: HashMap<String, i64>,
}

/// A partner as a run sees them.
#[derive(Debug, Clone)]
pub struct PartnerEntry {
    /// The name on a Wise transfer.
    pub name: String,
    pub destination: Result<Destination, String>,
}

impl Directory {
    fn threshold(&self, program: &str) -> i64 {
        self.thresholds.get(program).copied().unwrap_or(DEFAULT_THRESHOLD_MINOR)
    }
}

/// One payout a run would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub partner: String,
    pub currency: Currency,
    pub amount_minor: i64,
    pub method: PayoutMethod,
    /// The programs whose commissions it pays.
    pub programs: Vec<String>,
    #[serde(skip)]
    pub destination: Destination,
}

/// A partner and currency a run leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub partner: String,
    pub currency: Currency,
    pub amount_minor: i64,
    pub why: String,
}

/// The payouts a run makes and the partners it leaves out, in partner and currency order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub payouts: Vec<Planned>,
    pub skipped: Vec<Skipped>,
}

/// Plans a run over the store as it is, for one program and currency when given.
pub fn plan<T: PayoutTx + ?Sized>(
    tx: &mut T,
    dir: &Directory,
    program: Option<&str>,
    currency: Option<Currency>,
) -> Result<Plan, PayoutError> {
    let unpaid = tx.unpaid(program, currency)?;
    let mut by_partner: BTreeMap<(String, Currency), Vec<Unpaid>> = BTreeMap::new();
    for u in unpaid {
        by_partner.entry((u.partner.clone(), u.currency)).or_default().push(u);
    }
    let mut out = Plan::default();
    for ((partner, currency), rows) in by_partner {
        let due: Vec<&Unpaid> = rows.iter().filter(|u| u.amount_minor >= dir.threshold(&u.program)).collect();
        if due.is_empty() {
            continue;
        }
        let sum: i64 = due.iter().map(|u| u.amount_minor).sum();
        let threshold = due.iter().map(|u| dir.threshold(&u.program)).min().unwrap_or(DEFAULT_THRESHOLD_MINOR);
        let b = tx.balance(&AccountKey::new(AccountKind::PartnerPayable, &partner, currency))?;
        let available = b.credits_posted - b.debits_posted - b.debits_pending;
        let amount_minor = sum.min(available);
        let skip = |why: String| Skipped { partner: partner.clone(), currency, amount_minor: sum, why };
        if amount_minor < threshold.max(1) {
            let why = format!("the payable balance, {available}, is below the threshold {threshold} after what the partner owes");
            out.skipped.push(skip(why));
            continue;
        }
        let destination = match dir.partners.get(&partner).map(|e| &e.destination) {
            None => {
                out.skipped.push(skip("the partner is not in this node's catalog".into()));
                continue;
            }
            Some(Err(why)) => {
                out.skipped.push(skip(format!("the partner's payout details: {why}")));
                continue;
            }
            Some(Ok(d)) => d.clone(),
        };
        out.payouts.push(Planned {
            partner,
            currency,
            amount_minor,
            method: destination.method(),
            programs: due.iter().map(|u| u.program.clone()).collect(),
            destination,
        });
    }
    Ok(out)
}

/// Plans a settlement by hand of `partner` in `currency` (of one program when given): every
/// unpaid approved commission, any positive sum, capped at what partner_payable holds after
/// what the partner owes, paid `manual`ly whatever the partner's payout details say.
pub fn by_hand<T: PayoutTx + ?Sized>(tx: &mut T, partner: &str, program: Option<&str>, currency: Currency) -> Result<Plan, PayoutError> {
    let rows: Vec<Unpaid> = tx.unpaid(program, Some(currency))?.into_iter().filter(|u| u.partner == partner).collect();
    let sum: i64 = rows.iter().map(|u| u.amount_minor).sum();
    let skip =
        |why: String| Plan { payouts: vec![], skipped: vec![Skipped { partner: partner.to_string(), currency, amount_minor: sum, why }] };
    if rows.is_empty() {
        return Ok(skip("no approved commission is left unpaid".into()));
    }
    let b = tx.balance(&AccountKey::new(AccountKind::PartnerPayable, partner, currency))?;
    let available = b.credits_posted - b.debits_posted - b.debits_pending;
    let amount_minor = sum.min(available);
    if amount_minor < 1 {
        return Ok(skip(format!("the payable balance, {available}, leaves nothing after what the partner owes")));
    }
    let planned = Planned {
        partner: partner.to_string(),
        currency,
        amount_minor,
        method: PayoutMethod::Manual,
        programs: rows.into_iter().map(|u| u.program).collect(),
        destination: Destination::Manual,
    };
    Ok(Plan { payouts: vec![planned], skipped: vec![] })
}

/// How a destination is stored on its payout: the account or the email; nothing for manual.
pub fn destination_text(d: &Destination) -> String {
    match d {
        Destination::Stripe(a) => a.as_str().to_string(),
        Destination::Paypal(e) | Destination::Wise { email: e, .. } => e.as_str().to_string(),
        Destination::Manual => String::new(),
    }
}
