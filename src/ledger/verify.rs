//! `verify`: replays every stored transfer in `seq` order and checks what the ledger promises.
//!
//! 1. The hash chain: `seq` runs 1, 2, 3.. without a gap, each row links to the hash before it,
//!    each hash matches its row's fields, and the stored head is the last row.
//! 2. Every transfer keeps the rules `apply` enforces (its id derives from its cause, a positive
//!    amount, two accounts in its currency); no pending transfer is resolved twice or by more
//!    than it reserved; no subject has two transfers of the same posting kind.
//! 3. Every stored balance equals the sum recomputed from the transfers.
//! 4. Per currency, debits equal credits, posted and pending separately.
//!
//! The first bad thing found is the error, named precisely.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::model::Currency;

use super::{check_shape, AccountKey, Balance, LedgerError, LedgerTx, StoredTransfer, TransferId, TransferKind};

/// Transfers read per page, so memory does not grow with one huge read.
const PAGE_LEN: usize = 1024;

/// What a clean ledger holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub transfers: u64,
    pub accounts: u64,
    /// Pending transfers not yet posted or voided.
    pub pending_open: u64,
    pub head_seq: u64,
    pub head_hash: [u8; 32],
    /// Per currency, in code order.
    pub currencies: Vec<CurrencyTotals>,
}

impl fmt::Display for VerifyReport {
    /// One line per currency after a summary, for `clickgate ledger verify`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = hex::encode(self.head_hash);
        write!(
            f,
            "ledger clean: {} transfers, {} accounts, {} pending open, head seq {} hash {head}",
            self.transfers, self.accounts, self.pending_open, self.head_seq
        )?;
        for c in &self.currencies {
            write!(
                f,
                "\n{}: {} transfers, posted {} minor units, pending {} minor units",
                c.currency, c.transfers, c.posted_minor, c.pending_minor
            )?;
        }
        Ok(())
    }
}

/// One currency's totals over every account. Debits equal credits, so one figure each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyTotals {
    pub currency: Currency,
    pub transfers: u64,
    /// The sum of posted debits, which equals the sum of posted credits.
    pub posted_minor: i128,
    /// The sum of pending debits, which equals the sum of pending credits.
    pub pending_minor: i128,
}

/// The first thing found wrong.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("transfer seq {seq} (id {id}): {why}")]
    Transfer { seq: u64, id: TransferId, why: String },
    #[error("transfer seq {seq} is missing: {why}")]
    Missing { seq: u64, why: String },
    #[error("chain head: {0}")]
    Head(String),
    #[error("account {account}: {why}")]
    Account { account: AccountKey, why: String },
    #[error("currency {currency}: {why}")]
    Currency { currency: Currency, why: String },
    #[error(transparent)]
    Storage(#[from] LedgerError),
}

struct Pending {
    seq: u64,
    amount_minor: i64,
    accounts: (AccountKey, AccountKey),
    resolved_by: Option<u64>,
}

/// Checks the whole ledger inside `tx`; see the module docs for what is checked.
///
/// The head is read first: on PostgreSQL that locks it, so no append commits while `verify`
/// reads and the pages, balances and head agree (SQLite's transaction is a snapshot already).
pub fn verify<T: LedgerTx + ?Sized>(tx: &mut T) -> Result<VerifyReport, VerifyError> {
    let (head_seq, head_hash) = tx.head()?;
    let mut prev_seq = 0u64;
    let mut prev_hash = [0u8; 32];
    let mut pendings: HashMap<TransferId, Pending> = HashMap::new();
    let mut subjects: HashSet<(String, TransferKind)> = HashSet::new();
    let mut sums: HashMap<AccountKey, [i128; 4]> = HashMap::new();
    let mut per_currency: BTreeMap<Currency, u64> = BTreeMap::new();
    loop {
        let page = tx.transfers_after(prev_seq, PAGE_LEN)?;
        if page.is_empty() {
            break;
        }
        for t in &page {
            check_transfer(t, prev_seq, &prev_hash, &mut pendings, &mut subjects)?;
            let r = &t.transfer;
            let a = i128::from(r.amount_minor);
            let (pending_delta, posted) = match r.kind {
                TransferKind::Pending => (a, 0),
                TransferKind::Single => (0, a),
                TransferKind::Post | TransferKind::Void => {
                    let p = i128::from(pendings[&r.pending_id.expect("checked")].amount_minor);
                    (-p, if r.kind == TransferKind::Post { a } else { 0 })
                }
            };
            let d = sums.entry(r.debit.clone()).or_default();
            d[0] += pending_delta;
            d[2] += posted;
            let c = sums.entry(r.credit.clone()).or_default();
            c[1] += pending_delta;
            c[3] += posted;
            *per_currency.entry(r.currency).or_default() += 1;
            prev_seq = t.seq;
            prev_hash = t.hash;
        }
    }
    if head_seq != prev_seq {
        return Err(VerifyError::Head(format!("the head is at seq {head_seq} but the last stored transfer is seq {prev_seq}")));
    }
    if head_hash != prev_hash {
        return Err(VerifyError::Head(format!("the head hash does not match transfer seq {prev_seq}")));
    }
    let stored = tx.balances()?;
    let accounts = stored.len() as u64;
    let mut totals: BTreeMap<Currency, [i128; 4]> = BTreeMap::new();
    for (account, balance) in &stored {
        let summed = sums.remove(account).unwrap_or_default();
        for ((field, value), sum) in balance.fields().into_iter().zip(summed) {
            if i128::from(value) != sum {
                return Err(VerifyError::Account { account: account.clone(), why: format!("{field} is {value}, transfers sum to {sum}") });
            }
        }
        let t = totals.entry(account.currency).or_default();
        for (i, (_, value)) in balance.fields().into_iter().enumerate() {
            t[i] += i128::from(value);
        }
    }
    if let Some((account, summed)) = sums.into_iter().filter(|(_, s)| s.iter().any(|&x| x != 0)).min_by(|a, b| a.0.cmp(&b.0)) {
        let (field, sum) =
            Balance::default().fields().into_iter().zip(summed).map(|((f, _), s)| (f, s)).find(|(_, s)| *s != 0).expect("non-zero");
        return Err(VerifyError::Account { account, why: format!("has no stored balance, but its transfers sum to {field} {sum}") });
    }
    let mut currencies = Vec::with_capacity(per_currency.len().max(totals.len()));
    for (currency, t) in totals {
        let [debits_pending, credits_pending, debits_posted, credits_posted] = t;
        if debits_posted != credits_posted {
            return Err(VerifyError::Currency {
                currency,
                why: format!("posted debits sum to {debits_posted}, posted credits to {credits_posted}"),
            });
        }
        if debits_pending != credits_pending {
            return Err(VerifyError::Currency {
                currency,
                why: format!("pending debits sum to {debits_pending}, pending credits to {credits_pending}"),
            });
        }
        let transfers = per_currency.get(&currency).copied().unwrap_or(0);
        currencies.push(CurrencyTotals { currency, transfers, posted_minor: debits_posted, pending_minor: debits_pending });
    }
    let pending_open = pendings.values().filter(|p| p.resolved_by.is_none()).count() as u64;
    Ok(VerifyReport { transfers: prev_seq, accounts, pending_open, head_seq, head_hash, currencies })
}

/// One transfer in chain order: its link, its hash, its rules, and the pending it resolves.
fn check_transfer(
    t: &StoredTransfer,
    prev_seq: u64,
    prev_hash: &[u8; 32],
    pendings: &mut HashMap<TransferId, Pending>,
    subjects: &mut HashSet<(String, TransferKind)>,
) -> Result<(), VerifyError> {
    let r = &t.transfer;
    let bad = |why: String| Err(VerifyError::Transfer { seq: t.seq, id: r.id, why });
    if t.seq != prev_seq + 1 {
        return Err(VerifyError::Missing { seq: prev_seq + 1, why: format!("the next stored transfer is seq {}", t.seq) });
    }
    if t.prev_hash != *prev_hash {
        return bad(format!("prev_hash does not match the hash of seq {prev_seq}"));
    }
    if t.computed_hash() != t.hash {
        return bad("hash does not match its fields".into());
    }
    if let Err(e) = check_shape(r) {
        return bad(format!("breaks a rule: {e}"));
    }
    if let (Some(c), TransferKind::Post | TransferKind::Single) = (&r.subject, r.kind) {
        if !subjects.insert((c.clone(), r.kind)) {
            return bad(format!("subject {c:?} has a second {} transfer", r.kind.as_str()));
        }
    }
    match r.kind {
        TransferKind::Pending => {
            pendings.insert(
                r.id,
                Pending { seq: t.seq, amount_minor: r.amount_minor, accounts: (r.debit.clone(), r.credit.clone()), resolved_by: None },
            );
        }
        TransferKind::Post | TransferKind::Void => {
            let pid = r.pending_id.expect("checked by check_shape");
            let Some(p) = pendings.get_mut(&pid) else {
                return bad(format!("resolves {pid}, which is not an earlier pending transfer"));
            };
            if let Some(first) = p.resolved_by {
                return bad(format!("resolves pending transfer seq {} a second time (first by seq {first})", p.seq));
            }
            if p.accounts.0 != r.debit || p.accounts.1 != r.credit {
                return bad(format!("moves other accounts than pending transfer seq {} it resolves", p.seq));
            }
            if r.amount_minor > p.amount_minor {
                return bad(format!("posts {}, more than the {} of pending transfer seq {}", r.amount_minor, p.amount_minor, p.seq));
            }
            if r.kind == TransferKind::Void && r.amount_minor != p.amount_minor {
                return bad(format!("voids {} of the {} of pending transfer seq {}", r.amount_minor, p.amount_minor, p.seq));
            }
            p.resolved_by = Some(t.seq);
        }
        TransferKind::Single => {}
    }
    Ok(())
}
