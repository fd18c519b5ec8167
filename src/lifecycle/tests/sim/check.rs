//! The simulation's check after every step: everything the store holds against the model.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::super::harness::Harness;
use super::super::model::{without_detail, PROGRAM};
use super::Sim;
use crate::ledger::{self, AccountKey, AccountKind, Balance, StoredTransfer, TransferKind, VerifyReport};
use crate::lifecycle::{Commission, CommissionStatus};
use crate::payouts::PayoutTx;

impl<H: Harness> Sim<H> {
    /// Everything the store holds against the model; the ledger's report.
    pub(super) fn check(&mut self, at: &str) -> VerifyReport {
        let transfers = &mut self.transfers;
        let (report, balances) = self.h.run(|tx| {
            let report = ledger::verify(tx);
            read_new_transfers(tx, transfers);
            (report, tx.balances().unwrap())
        });
        let report = report.unwrap_or_else(|e| panic!("{at}: ledger verify: {e}"));
        let stored: Vec<_> = self.h.commissions().into_iter().map(without_detail).collect();
        let want: Vec<_> = self.model.commissions.values().map(|t| t.c.clone()).collect();
        if stored != want {
            let ids = |cs: &[Commission]| cs.iter().map(|c| c.id.clone()).collect::<BTreeSet<_>>();
            let (got_ids, want_ids) = (ids(&stored), ids(&want));
            assert_eq!(got_ids, want_ids, "{at}: the commissions stored");
            for (got, want) in stored.iter().zip(&want) {
                assert_eq!(got, want, "{at}: commission {}", want.id);
            }
        }
        // Only the periods of conversions accrued and committed, each counted once.
        let stored: BTreeMap<_, _> =
            self.h.periods().into_iter().map(|(k, s)| ((k.program, k.partner, k.currency.to_string(), k.label), s)).collect();
        let want: BTreeMap<_, _> =
            self.model.periods.iter().map(|((p, c, l), s)| ((PROGRAM.to_string(), p.clone(), c.to_string(), l.clone()), *s)).collect();
        for key in stored.keys().chain(want.keys()) {
            assert_eq!(stored.get(key), want.get(key), "{at}: period state {key:?}");
        }
        assert_eq!(report.pending_open, self.model.pending() as u64, "{at}: one open reserve per pending commission");
        self.check_balances(at, balances);
        self.check_transfers(at, &self.transfers);
        assert_eq!(report.transfers, self.transfers.len() as u64);
        report
    }

    fn check_balances(&mut self, at: &str, stored: Vec<(AccountKey, Balance)>) {
        let want = self.model.balances();
        let stored: BTreeMap<AccountKey, Balance> = stored.into_iter().collect();
        for key in stored.keys().chain(want.keys()) {
            let got = stored.get(key).copied().unwrap_or_default();
            assert_eq!(got, want.get(key).copied().unwrap_or_default(), "{at}: balance of {key}");
            if key.kind == AccountKind::PartnerPayable && got.net_posted() < 0 {
                self.negative_seen = true;
            }
        }
    }

    /// Per commission, exactly the transfers its state calls for: a reserve per reserve seq,
    /// a void per void, one approval and one payable move once approved, reversals adding up
    /// to what was taken back. Per payout, one pending transfer of its amount once sent and
    /// one post once paid. Nothing else.
    fn check_transfers(&self, at: &str, transfers: &[StoredTransfer]) {
        let by = transfers_by_commission(transfers);
        let mut expected_total = 0;
        for (id, t) in &self.model.commissions {
            let c = &t.c;
            let mine = by.get(id.as_str()).map(Vec::as_slice).unwrap_or_default();
            let of = |label: &'static str| mine.iter().filter(move |(l, _)| *l == label).map(|(_, s)| *s);
            let count = |label| of(label).count() as u32;
            let approved = u32::from(c.approved_at_ms.is_some());
            let want = [
                ("reserve", c.reserve_seq + 1),
                ("void", c.reserve_seq + u32::from(c.status == CommissionStatus::Voided)),
                ("approve", approved),
                ("payable", approved),
            ];
            for (label, n) in want {
                assert_eq!(count(label), n, "{at}: {id} has {} {label} transfers, expected {n}: {c:?}", count(label));
                expected_total += n as usize;
            }
            let reversals: Vec<_> = of("reverse-to").chain(of("clawback-to")).collect();
            let reversed: i64 = reversals.iter().map(|s| s.transfer.amount_minor).sum();
            assert_eq!(reversed, c.reversed_minor, "{at}: {id}: reversals and clawbacks sum to what was taken back");
            expected_total += reversals.len();
            // The kinds that carry the commission id are the ones the ledger keeps unique.
            for (label, s) in mine {
                let kind = s.transfer.kind;
                let (want_kind, with_id) = match *label {
                    "reserve" => (TransferKind::Pending, true),
                    "void" => (TransferKind::Void, true),
                    "approve" => (TransferKind::Post, true),
                    _ => (TransferKind::Single, false),
                };
                assert_eq!((kind, s.transfer.subject.is_some()), (want_kind, with_id), "{at}: {}", s.transfer.cause);
            }
            if let Some(post) = of("approve").next() {
                assert_eq!(post.transfer.amount_minor, t.approved_minor, "{at}: {id}: approved amount");
            }
            if c.paid_at_ms.is_some() {
                let paid_by = c.payout_id.as_deref().unwrap_or_else(|| panic!("{at}: {id} is paid by no payout"));
                assert!(self.model.payouts.get(paid_by).is_some_and(|p| p.paid), "{at}: {id} is paid, its payout {paid_by} is not");
            }
            let open = format!("commission:{id}:reserve:{}", c.reserve_seq);
            if c.status == CommissionStatus::Pending {
                let reserve = of("reserve").find(|s| s.transfer.cause == open).unwrap_or_else(|| panic!("{at}: {open} is missing"));
                assert_eq!(reserve.transfer.amount_minor, c.remaining_minor(), "{at}: {open} holds what is left");
            }
        }
        let by_payout = transfers_by_payout(transfers);
        for (id, p) in &self.model.payouts {
            let mine = by_payout.get(id.as_str()).map(Vec::as_slice).unwrap_or_default();
            let want: &[(&str, TransferKind)] =
                if p.paid { &[("send", TransferKind::Pending), ("paid", TransferKind::Post)] } else { &[("send", TransferKind::Pending)] };
            let got: Vec<(&str, TransferKind)> = mine.iter().map(|(l, s)| (*l, s.transfer.kind)).collect();
            assert_eq!(got, want, "{at}: payout {id}'s transfers");
            for (_, s) in mine {
                assert_eq!(
                    (s.transfer.amount_minor, s.transfer.subject.as_deref()),
                    (p.amount_minor, Some(id.as_str())),
                    "{at}: {}",
                    s.transfer.cause
                );
            }
            expected_total += want.len();
        }
        assert_eq!(transfers.len(), expected_total, "{at}: transfers beyond what the commissions and payouts call for");
    }
}

/// Appends the transfers committed since the last read. Those read before cannot have
/// changed: the ledger is append-only, and `verify` checks the whole chain every step.
fn read_new_transfers(tx: &mut dyn PayoutTx, out: &mut Vec<StoredTransfer>) {
    loop {
        let after = out.last().map_or(0, |t| t.seq);
        let page = tx.transfers_after(after, 1024).unwrap();
        if page.is_empty() {
            return;
        }
        out.extend(page);
    }
}

/// Transfers grouped by the commission their cause names (`commission:<id>:<label>:..`).
pub(super) fn transfers_by_commission(transfers: &[StoredTransfer]) -> HashMap<&str, Vec<(&str, &StoredTransfer)>> {
    transfers_by(transfers, "commission")
}

/// Transfers grouped by the payout their cause names (`payout:<id>:<step>`), in `seq` order.
fn transfers_by_payout(transfers: &[StoredTransfer]) -> HashMap<&str, Vec<(&str, &StoredTransfer)>> {
    transfers_by(transfers, "payout")
}

fn transfers_by<'a>(transfers: &'a [StoredTransfer], kind: &str) -> HashMap<&'a str, Vec<(&'a str, &'a StoredTransfer)>> {
    let mut by: HashMap<&str, Vec<(&str, &StoredTransfer)>> = HashMap::new();
    for t in transfers {
        let mut parts = t.transfer.cause.splitn(4, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(id), Some(label)) if k == kind => by.entry(id).or_default().push((label, t)),
            (Some("commission" | "payout"), Some(_), Some(_)) => {}
            _ => panic!("a transfer no commission or payout caused: {}", t.transfer.cause),
        }
    }
    by
}
