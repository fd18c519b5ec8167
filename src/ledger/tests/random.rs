//! Seeded random sequences of transfers, retries, mismatched reuses and double resolutions,
//! grouped into transactions, checked against a model after every step; then `verify` must be
//! clean and every balance must match the model. A failure names its seed and step.
//! `CLICKGATE_LEDGER_SEED=n` adds a seed.

use std::collections::HashMap;

use super::super::*;
use super::harness::Harness;
use crate::model::Currency;

const STEPS: usize = 300;
const OWNERS: [&str; 3] = ["demo", "alice", "bob"];
const CURRENCIES: [&str; 2] = ["USD", "EUR"];

#[derive(Default)]
struct Model {
    balances: HashMap<AccountKey, Balance>,
    applied: Vec<TransferRequest>,
    /// Index into `applied` of each pending transfer, and whether it is resolved.
    pendings: Vec<(usize, bool)>,
    commissions: HashMap<String, TransferId>,
    seq: u64,
}

impl Model {
    fn add(&mut self, key: &AccountKey, d: Balance) {
        let b = self.balances.entry(key.clone()).or_default();
        b.debits_pending += d.debits_pending;
        b.credits_pending += d.credits_pending;
        b.debits_posted += d.debits_posted;
        b.credits_posted += d.credits_posted;
    }

    fn created(&mut self, r: &TransferRequest, pending_amount_minor: i64) -> Result<Applied, LedgerError> {
        let a = r.amount_minor;
        let (p, posted) = match r.kind {
            TransferKind::Pending => (a, 0),
            TransferKind::Single => (0, a),
            TransferKind::Post => (-pending_amount_minor, a),
            TransferKind::Void => (-pending_amount_minor, 0),
        };
        self.add(&r.debit, Balance { debits_pending: p, debits_posted: posted, ..Balance::default() });
        self.add(&r.credit, Balance { credits_pending: p, credits_posted: posted, ..Balance::default() });
        if r.kind == TransferKind::Pending {
            self.pendings.push((self.applied.len(), false));
        }
        if let (Some(c), TransferKind::Single) = (&r.subject, r.kind) {
            self.commissions.insert(c.clone(), r.id);
        }
        self.applied.push(r.clone());
        self.seq += 1;
        Ok(Applied::Created(self.seq))
    }
}

fn account(rng: &mut fastrand::Rng, currency: Currency) -> AccountKey {
    let kind = AccountKind::ALL[rng.usize(..AccountKind::ALL.len())];
    AccountKey { kind, owner: OWNERS[rng.usize(..OWNERS.len())].to_string(), currency }
}

/// One random request and the outcome the model expects of it.
fn step(rng: &mut fastrand::Rng, m: &mut Model, seed: u64, n: usize) -> (TransferRequest, Result<Applied, LedgerError>) {
    let cause = format!("random:{seed}:{n}");
    let fresh = |rng: &mut fastrand::Rng, kind| {
        let currency = Currency::parse(CURRENCIES[rng.usize(..2)]).unwrap();
        let debit = account(rng, currency);
        let mut credit = account(rng, currency);
        while credit == debit {
            credit = account(rng, currency);
        }
        TransferRequest {
            id: TransferId::derive(&cause),
            cause: cause.clone(),
            debit,
            credit,
            amount_minor: rng.i64(1..10_000),
            currency,
            kind,
            subject: None,
            pending_id: None,
            at_ms: n as i64,
        }
    };
    let roll = rng.u8(..10);
    match roll {
        5 | 6 if !m.pendings.is_empty() => {
            let (at, resolved) = m.pendings[rng.usize(..m.pendings.len())];
            let p = m.applied[at].clone();
            let kind = if roll == 5 { TransferKind::Post } else { TransferKind::Void };
            let amount_minor = if kind == TransferKind::Post { rng.i64(1..=p.amount_minor) } else { p.amount_minor };
            let r = TransferRequest {
                id: TransferId::derive(&cause),
                cause: cause.clone(),
                amount_minor,
                kind,
                pending_id: Some(p.id),
                at_ms: n as i64,
                ..p.clone()
            };
            if resolved {
                let by = m.applied.iter().find(|t| t.pending_id == Some(p.id)).expect("resolved").id;
                return (r.clone(), Err(LedgerError::PendingAlreadyResolved { id: r.id, pending_id: p.id, by }));
            }
            m.pendings.iter_mut().find(|(i, _)| *i == at).expect("pending").1 = true;
            (r.clone(), m.created(&r, p.amount_minor))
        }
        7 if !m.applied.is_empty() => {
            let r = m.applied[rng.usize(..m.applied.len())].clone();
            (TransferRequest { at_ms: n as i64, ..r }, Ok(Applied::AlreadyExists))
        }
        8 if !m.applied.is_empty() => {
            let r = m.applied[rng.usize(..m.applied.len())].clone();
            let changed = TransferRequest { amount_minor: r.amount_minor + 1, ..r };
            (changed.clone(), Err(LedgerError::Mismatch { id: changed.id, field: "amount_minor" }))
        }
        9 => {
            let c = format!("cm_{}", rng.u8(..8));
            let r = TransferRequest { subject: Some(c.clone()), ..fresh(rng, TransferKind::Single) };
            match m.commissions.get(&c) {
                Some(&by) => {
                    let e = LedgerError::SubjectAlreadyPosted { id: r.id, subject: c, kind: TransferKind::Single, by };
                    (r, Err(e))
                }
                None => (r.clone(), m.created(&r, 0)),
            }
        }
        0..=2 => {
            let r = fresh(rng, TransferKind::Pending);
            (r.clone(), m.created(&r, 0))
        }
        _ => {
            let r = fresh(rng, TransferKind::Single);
            (r.clone(), m.created(&r, 0))
        }
    }
}

fn run_seed<H: Harness>(h: &mut H, m: &mut Model, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut n = 0;
    while n < STEPS {
        let group = rng.usize(1..=8);
        let mut cases = Vec::with_capacity(group);
        for _ in 0..group {
            cases.push(step(&mut rng, m, seed, n));
            n += 1;
        }
        let got: Vec<_> = h.run(|tx| cases.iter().map(|(r, _)| apply(tx, r)).collect());
        for ((r, want), got) in cases.iter().zip(got) {
            assert_eq!(&got, want, "seed {seed}, {}", r.cause);
        }
    }
    let report = h.run(|tx| verify(tx)).unwrap_or_else(|e| panic!("seed {seed}: verify: {e}"));
    assert_eq!(report.transfers, m.seq, "seed {seed}");
    assert_eq!(report.pending_open, m.pendings.iter().filter(|p| !p.1).count() as u64, "seed {seed}");
    let mut want: Vec<_> = m.balances.iter().map(|(k, b)| (k.clone(), *b)).collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(h.run(|tx| tx.balances().unwrap()), want, "seed {seed}");
    for (key, b) in &want {
        assert_eq!(h.run(|tx| tx.balance(key).unwrap()), *b, "seed {seed}, {key}");
    }
}

pub fn random_sequences_stay_consistent<H: Harness>(h: &mut H) {
    let mut seeds = vec![1, 2, 3];
    if let Some(s) = std::env::var("CLICKGATE_LEDGER_SEED").ok().and_then(|s| s.parse().ok()) {
        seeds.push(s);
    }
    // Every seed continues the same ledger and model: later seeds start from a longer chain.
    let mut m = Model::default();
    for seed in seeds {
        run_seed(h, &mut m, seed);
    }
}
