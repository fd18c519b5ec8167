//! The lifecycle on every store: each case is a generic fn over a `Harness`, and
//! `conformance!` (`storage::conformance`) makes one test per backend. PostgreSQL cases run in
//! a schema of their own; they are ignored unless asked for (`cargo test -- --include-ignored`), and then a missing
//! server fails them with a message naming it. `sim` is the seeded simulation; `model` is its
//! expected state.

mod concurrent;
mod grouped;
mod harness;
mod ids;
mod model;
mod sim;

use crate::payouts::{PayoutError, PayoutStatus};
use crate::storage::conformance::conformance;
use grouped::accruals_in_one_transaction_see_each_other;
use harness::{pay_by_hand, Harness, Lifecycle};

use super::*;
use crate::commission::{Bonus, Metric, Tier};
use crate::ledger::{Balance, VerifyReport};

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}
const PROGRAM: &str = "shop";
/// 2026-03-10T12:00Z: when the scenarios' conversions happen and are accrued.
const T0: u64 = 1_773_144_000_000;
const LOCK_DAYS: u32 = 3;
/// When a conversion at `T0` may be approved.
const LOCKED_UNTIL: u64 = T0 + LOCK_DAYS as u64 * DAY_MS;

/// A rule set with the scenarios' 3-day lock.
fn rules(rs: RuleSet) -> ProgramRules {
    ProgramRules { rules: RuleSet { lock_days: LOCK_DAYS, ..rs }, partners: Default::default() }
}

fn pct(percent_bps: u32) -> ProgramRules {
    rules(RuleSet { percent_bps, ..RuleSet::default() })
}

fn shares(list: &[(&str, i64)]) -> Vec<Share> {
    list.iter().map(|(p, a)| Share { partner: p.to_string(), amount_minor: *a }).collect()
}

/// Accrues a usd() conversion of the program `shop` of `amount_minor` at `T0`, committed.
fn accrue_at<H: Harness>(h: &mut H, rules: &ProgramRules, conv: &str, amount_minor: i64, split: &[(&str, i64)]) -> Vec<Commission> {
    accrue_in(h, PROGRAM, rules, conv, amount_minor, split)
}

fn accrue_in<H: Harness>(
    h: &mut H,
    program: &str,
    rules: &ProgramRules,
    conv: &str,
    amount_minor: i64,
    split: &[(&str, i64)],
) -> Vec<Commission> {
    let sale = Sale { conversion_id: conv, program, currency: usd(), amount_minor, occurred_at_ms: T0 };
    h.run(|tx| accrue(tx, &sale, &shares(split), rules, T0)).unwrap_or_else(|e| panic!("accrue {conv}: {e}"))
}

fn bal<H: Harness>(h: &mut H, kind: AccountKind, owner: &str) -> Balance {
    h.run(|tx| tx.balance(&AccountKey::new(kind, owner, usd()))).unwrap()
}

fn pending_of<H: Harness>(h: &mut H, partner: &str) -> Balance {
    bal(h, AccountKind::PartnerPending, partner)
}

fn payable_net<H: Harness>(h: &mut H, partner: &str) -> i64 {
    bal(h, AccountKind::PartnerPayable, partner).net_posted()
}

fn paid_net<H: Harness>(h: &mut H, partner: &str) -> i64 {
    bal(h, AccountKind::PartnerPaid, partner).net_posted()
}

fn stored<H: Harness>(h: &mut H, id: &str) -> Commission {
    h.run(|tx| tx.commission(id)).unwrap().unwrap_or_else(|| panic!("commission {id} is not stored"))
}

fn events<H: Harness>(h: &mut H, id: &str) -> Vec<(&'static str, i64)> {
    h.run(|tx| tx.events_of(id)).unwrap().into_iter().map(|e| (e.kind, e.amount_minor)).collect()
}

fn refund_at<H: Harness>(h: &mut H, conv: &str, refunded: Refunded, now_ms: u64) -> Vec<Commission> {
    h.run(|tx| refund(tx, &at_t0(conv), refunded, now_ms)).unwrap_or_else(|e| panic!("refund {conv} {refunded:?}: {e}"))
}

/// A conversion of the tests: they all occur at `T0`.
fn at_t0(id: &str) -> ConversionRef<'_> {
    ConversionRef { id, occurred_at_ms: T0 }
}

fn partial(refunded_minor: i64, amount_minor: i64) -> Refunded {
    Refunded::Cumulative { refunded_minor, amount_minor }
}

fn approve_at<H: Harness>(h: &mut H, now_ms: u64) -> Vec<String> {
    h.run(|tx| approve_due(tx, now_ms, 100)).unwrap().into_iter().map(|c| c.id).collect()
}

/// Pays alice's approved commissions in usd() by a payout of run `run` settled by hand a day
/// after the lock; the payout's id, or `None` when nothing was payable.
fn pay_at<H: Harness>(h: &mut H, run: &str) -> Result<Option<String>, PayoutError> {
    h.run(|tx| pay_by_hand(tx, run, "alice", usd(), LOCKED_UNTIL + DAY_MS)).map(|p| p.map(|p| p.id))
}

/// A payout run's id, the `n`th of the tests.
fn run_id(n: u32) -> String {
    crate::payouts::Run::new_id(LOCKED_UNTIL as i64, n)
}

/// `ledger::verify` is clean; its report.
fn clean<H: Harness>(h: &mut H) -> VerifyReport {
    h.verify()
}

/// Accrues conversion `conv` of `program` and checks the items it makes (partner, item,
/// amount), in order, and that they are exactly what moved into each partner's
/// partner_pending reserve. Periods are per program, so each program starts empty.
fn check_accrue<H: Harness>(
    h: &mut H,
    program: &str,
    rs: RuleSet,
    conv: &str,
    amount_minor: i64,
    split: &[(&str, i64)],
    expected: &[(&str, &str, i64)],
) {
    let partners: Vec<&str> = split.iter().map(|s| s.0).collect();
    let before: Vec<i64> = partners.iter().map(|p| pending_of(h, p).credits_pending).collect();
    let made = accrue_in(h, program, &rules(rs), conv, amount_minor, split);
    let got: Vec<(&str, &str, i64)> = made.iter().map(|c| (c.partner.as_str(), c.item.as_str(), c.amount_minor)).collect();
    assert_eq!(got, expected, "{program}: {conv}");
    for (p, before) in partners.iter().zip(before) {
        let want: i64 = made.iter().filter(|c| c.partner == *p).map(|c| c.amount_minor).sum();
        assert_eq!(pending_of(h, p).credits_pending - before, want, "{program}: {conv}: {p}'s partner_pending reserve");
    }
    for c in &made {
        assert_eq!(
            (c.status, c.reserve_seq, c.remaining_minor(), c.lock_until_ms),
            (CommissionStatus::Pending, 0, c.amount_minor, LOCKED_UNTIL as i64)
        );
        assert_eq!(stored(h, &c.id), *c, "{program}: {conv}: as stored");
        assert_eq!(events(h, &c.id), [("created", c.amount_minor)]);
    }
}

fn accrue_applies_the_rules_to_each_share<H: Harness>(h: &mut H) {
    let pct = |percent_bps| RuleSet { percent_bps, ..RuleSet::default() };
    check_accrue(h, "percent", pct(1000), "cv_p", 10_000, &[("alice", 10_000)], &[("alice", "base", 1000)]);
    check_accrue(
        h,
        "percent-split",
        pct(1000),
        "cv_ps",
        10_000,
        &[("alice", 7_001), ("bob", 2_999)],
        &[("alice", "base", 700), ("bob", "base", 299)],
    );
    // The fixed part is paid pro rata to each share; percent and fixed add up.
    let fixed = RuleSet { percent_bps: 0, fixed_minor: 500, ..RuleSet::default() };
    check_accrue(
        h,
        "fixed",
        fixed.clone(),
        "cv_f",
        10_000,
        &[("alice", 5_000), ("bob", 5_000)],
        &[("alice", "base", 250), ("bob", "base", 250)],
    );
    let both = RuleSet { percent_bps: 1000, fixed_minor: 100, ..RuleSet::default() };
    check_accrue(
        h,
        "percent-fixed",
        both,
        "cv_pf",
        10_000,
        &[("alice", 7_000), ("bob", 3_000)],
        &[("alice", "base", 770), ("bob", "base", 330)],
    );
    // A share of 0 earns nothing, and nothing is stored or reserved for it.
    check_accrue(h, "zero-share", fixed, "cv_z", 10_000, &[("alice", 10_000), ("bob", 0)], &[("alice", "base", 500)]);
    // Tiers go by the period's volume before the sale: the sale that crosses the threshold
    // earns the old rate, the next one the new.
    let tiers = RuleSet {
        tiers: vec![Tier { from_minor: 0, percent_bps: 500 }, Tier { from_minor: 5_000, percent_bps: 700 }],
        ..RuleSet::default()
    };
    check_accrue(h, "tiers", tiers.clone(), "cv_t1", 6_000, &[("alice", 6_000)], &[("alice", "base", 300)]);
    check_accrue(h, "tiers", tiers, "cv_t2", 1_000, &[("alice", 1_000)], &[("alice", "base", 70)]);
    // A bonus is its own commission, once per period.
    let bonus = RuleSet { bonuses: vec![Bonus { metric: Metric::Volume, threshold: 5_000, amount_minor: 200 }], ..pct(1000) };
    check_accrue(h, "bonus", bonus.clone(), "cv_b1", 4_000, &[("alice", 4_000)], &[("alice", "base", 400)]);
    check_accrue(h, "bonus", bonus.clone(), "cv_b2", 2_000, &[("alice", 2_000)], &[("alice", "base", 200), ("alice", "bonus:0", 200)]);
    check_accrue(h, "bonus", bonus, "cv_b3", 2_000, &[("alice", 2_000)], &[("alice", "base", 200)]);
    // The cap cuts the item that reaches it; a commission of 0 is not made at all.
    let cap = RuleSet { cap_minor: Some(500), ..pct(1000) };
    check_accrue(h, "cap", cap.clone(), "cv_c1", 4_000, &[("alice", 4_000)], &[("alice", "base", 400)]);
    check_accrue(
        h,
        "cap",
        cap.clone(),
        "cv_c2",
        4_000,
        &[("alice", 2_000), ("bob", 2_000)],
        &[("alice", "base", 100), ("bob", "base", 200)],
    );
    check_accrue(h, "cap", cap, "cv_c3", 4_000, &[("alice", 4_000)], &[]);
    let report = clean(h);
    assert_eq!(report.pending_open, 17, "one reserve per commission made");
}

/// One 10% commission of 1000 on a sale of 10_000 to alice; its id.
fn one_commission<H: Harness>(h: &mut H, conv: &str) -> String {
    let made = accrue_at(h, &pct(1000), conv, 10_000, &[("alice", 10_000)]);
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].amount_minor, 1000);
    made[0].id.clone()
}

fn a_cancel_inside_the_lock_voids<H: Harness>(h: &mut H) {
    let id = one_commission(h, "cv_1");
    assert_eq!(pending_of(h, "alice"), Balance { credits_pending: 1000, ..Balance::default() });
    let changed = refund_at(h, "cv_1", Refunded::All, T0 + 3_600_000);
    assert_eq!(changed.len(), 1);
    let c = stored(h, &id);
    assert_eq!((c.status, c.voided_minor, c.reversed_minor, c.remaining_minor()), (CommissionStatus::Voided, 1000, 0, 0));
    assert_eq!(changed[0], c);
    assert_eq!(pending_of(h, "alice"), Balance::default(), "the reserve is released");
    assert_eq!(bal(h, AccountKind::ProgramExpense, PROGRAM), Balance::default());
    assert_eq!(events(h, &id), [("created", 1000), ("voided", 1000)]);
    // A voided commission is never approved.
    assert!(approve_at(h, LOCKED_UNTIL).is_empty());
    let report = clean(h);
    assert_eq!((report.transfers, report.pending_open), (2, 0));
}

fn a_partial_refund_inside_the_lock_voids_pro_rata<H: Harness>(h: &mut H) {
    let id = one_commission(h, "cv_1");
    refund_at(h, "cv_1", partial(2_500, 10_000), T0 + 3_600_000);
    let c = stored(h, &id);
    assert_eq!((c.status, c.voided_minor, c.remaining_minor(), c.reserve_seq), (CommissionStatus::Pending, 250, 750, 1));
    assert_eq!(pending_of(h, "alice"), Balance { credits_pending: 750, ..Balance::default() });
    // The old reserve is voided whole and what is left reserved anew.
    let reserve = h.run(|tx| tx.get_transfer(&TransferId::derive(&format!("commission:{id}:reserve:1")))).unwrap().expect("re-reserved");
    assert_eq!((reserve.transfer.kind, reserve.transfer.amount_minor), (TransferKind::Pending, 750));
    assert_eq!(events(h, &id), [("created", 1000), ("voided", 250)]);
    // Prorating is cumulative: a second refund to 5_000 voids the next 250, not 250 of 750.
    refund_at(h, "cv_1", partial(5_000, 10_000), T0 + 7_200_000);
    let c = stored(h, &id);
    assert_eq!((c.voided_minor, c.remaining_minor(), c.reserve_seq), (500, 500, 2));
    let report = clean(h);
    assert_eq!((report.transfers, report.pending_open), (5, 1));
}

fn approval_waits_for_the_lock<H: Harness>(h: &mut H) {
    let id = one_commission(h, "cv_1");
    refund_at(h, "cv_1", partial(2_500, 10_000), T0 + 3_600_000);
    assert!(approve_at(h, LOCKED_UNTIL - 1).is_empty(), "a millisecond before the lock ends");
    assert_eq!(stored(h, &id).status, CommissionStatus::Pending);
    assert_eq!(approve_at(h, LOCKED_UNTIL), std::slice::from_ref(&id));
    let c = stored(h, &id);
    assert_eq!((c.status, c.approved_at_ms, c.remaining_minor()), (CommissionStatus::Approved, Some(LOCKED_UNTIL as i64), 750));
    assert_eq!(payable_net(h, "alice"), 750);
    let pending = pending_of(h, "alice");
    assert_eq!((pending.credits_pending, pending.net_posted()), (0, 0), "posted in and moved on to payable");
    assert_eq!(bal(h, AccountKind::ProgramExpense, PROGRAM), Balance { debits_posted: 750, ..Balance::default() });
    assert_eq!(events(h, &id), [("created", 1000), ("voided", 250), ("approved", 750)]);
    assert!(approve_at(h, LOCKED_UNTIL + DAY_MS).is_empty(), "approved once");
    assert_eq!(clean(h).pending_open, 0);
}

/// A sale of 10_000 to alice at 10%, approved: commission id.
fn approved<H: Harness>(h: &mut H, conv: &str) -> String {
    let id = one_commission(h, conv);
    assert!(approve_at(h, LOCKED_UNTIL).contains(&id));
    id
}

fn a_payout_moves_payable_to_paid<H: Harness>(h: &mut H) {
    let id = approved(h, "cv_1");
    let pending = one_commission(h, "cv_2");
    assert_eq!(payable_net(h, "alice"), 1000);
    let payout = pay_at(h, &run_id(1)).unwrap().expect("alice is owed 1000");
    let c = stored(h, &id);
    assert_eq!(
        (c.status, c.payout_id.as_deref(), c.paid_at_ms),
        (CommissionStatus::Paid, Some(payout.as_str()), Some((LOCKED_UNTIL + DAY_MS) as i64))
    );
    assert_eq!(stored(h, &pending).status, CommissionStatus::Pending, "a pending commission is not paid");
    assert_eq!((payable_net(h, "alice"), paid_net(h, "alice")), (0, 1000));
    // One pending transfer and its post, both the payout's, for all its commissions.
    for step in ["send", "paid"] {
        let t = h.run(|tx| tx.get_transfer(&TransferId::derive(&format!("payout:{payout}:{step}")))).unwrap().expect(step);
        assert_eq!((t.transfer.amount_minor, t.transfer.subject.as_deref()), (1000, Some(payout.as_str())));
    }
    let transfers = clean(h).transfers;
    // The same payout again is a no-op; another finds nothing left to pay; neither writes.
    assert_eq!(pay_at(h, &run_id(1)).unwrap(), Some(payout.clone()));
    assert_eq!(pay_at(h, &run_id(2)).unwrap(), None);
    assert_eq!((payable_net(h, "alice"), paid_net(h, "alice")), (0, 1000));
    assert_eq!(clean(h).transfers, transfers);
    assert_eq!(events(h, &id), [("created", 1000), ("approved", 1000), ("paid", 1000)]);
    let p = h.run(|tx| tx.payout(&payout)).unwrap().unwrap();
    assert_eq!((p.status, p.amount_minor), (PayoutStatus::Paid, 1000));
}

fn a_payout_pays_every_approved_commission_and_what_is_owed_caps_it<H: Harness>(h: &mut H) {
    let first = approved(h, "cv_1");
    let second = approved(h, "cv_2");
    let bobs = accrue_at(h, &pct(1000), "cv_3", 3_000, &[("bob", 3_000)]);
    approve_at(h, LOCKED_UNTIL);
    let payout = pay_at(h, &run_id(1)).unwrap().unwrap();
    let held: Vec<String> = h.run(|tx| tx.commissions_of_payout(&payout)).unwrap().into_iter().map(|c| c.id).collect();
    let mut both = vec![first, second.clone()];
    both.sort();
    assert_eq!(held, both);
    assert_eq!((payable_net(h, "alice"), paid_net(h, "alice")), (0, 2_000));
    assert_eq!(stored(h, &bobs[0].id).status, CommissionStatus::Approved, "another partner's commission is not paid");
    // A clawback of 500 is owed: the next payout pays what is left after it.
    refund_at(h, "cv_2", partial(5_000, 10_000), LOCKED_UNTIL + 2 * DAY_MS);
    assert_eq!(payable_net(h, "alice"), -500);
    let third = approved(h, "cv_4");
    let capped = pay_at(h, &run_id(2)).unwrap().unwrap();
    let p = h.run(|tx| tx.payout(&capped)).unwrap().unwrap();
    assert_eq!(p.amount_minor, 500, "1000 earned less the 500 owed");
    assert_eq!((stored(h, &third).status, payable_net(h, "alice"), paid_net(h, "alice")), (CommissionStatus::Paid, 0, 2_500));
    // Owing all of it leaves nothing payable, and nothing is created.
    refund_at(h, "cv_4", Refunded::All, LOCKED_UNTIL + 3 * DAY_MS);
    approved(h, "cv_5");
    assert_eq!(payable_net(h, "alice"), 0);
    let before = clean(h).transfers;
    assert_eq!(pay_at(h, &run_id(3)).unwrap(), None);
    assert_eq!(clean(h).transfers, before);
    let e = h.run(|tx| crate::payouts::steps::paid(tx, "po_missing", None, 0)).unwrap_err();
    assert!(matches!(e, PayoutError::NotFound(_)), "{e}");
}

fn a_refund_after_approval_reverses<H: Harness>(h: &mut H) {
    let id = approved(h, "cv_1");
    let changed = refund_at(h, "cv_1", partial(5_000, 10_000), LOCKED_UNTIL + 1);
    let c = stored(h, &id);
    assert_eq!(changed, std::slice::from_ref(&c));
    assert_eq!((c.status, c.reversed_minor, c.remaining_minor()), (CommissionStatus::Approved, 500, 500));
    assert_eq!(payable_net(h, "alice"), 500);
    let reversal =
        h.run(|tx| tx.get_transfer(&TransferId::derive(&format!("commission:{id}:reverse-to:5000")))).unwrap().expect("reversed");
    assert_eq!(reversal.transfer.amount_minor, 500);
    refund_at(h, "cv_1", partial(10_000, 10_000), LOCKED_UNTIL + 2);
    let c = stored(h, &id);
    assert_eq!((c.status, c.reversed_minor, c.remaining_minor()), (CommissionStatus::Reversed, 1000, 0));
    assert_eq!(payable_net(h, "alice"), 0);
    assert_eq!(bal(h, AccountKind::ProgramExpense, PROGRAM).net_posted(), 0, "the program got all of it back");
    assert_eq!(pay_at(h, &run_id(1)).unwrap(), None, "nothing is left to pay");
    assert_eq!(events(h, &id), [("created", 1000), ("approved", 1000), ("reversed", 500), ("reversed", 500)]);
    clean(h);
}

fn a_refund_after_payment_claws_back<H: Harness>(h: &mut H) {
    let id = approved(h, "cv_1");
    pay_at(h, &run_id(1)).unwrap().unwrap();
    refund_at(h, "cv_1", partial(2_500, 10_000), LOCKED_UNTIL + 2 * DAY_MS);
    let c = stored(h, &id);
    assert_eq!((c.status, c.reversed_minor, c.remaining_minor()), (CommissionStatus::Paid, 250, 750));
    // The partner was paid 1000 and now owes 250 back against future earnings.
    assert_eq!((payable_net(h, "alice"), paid_net(h, "alice")), (-250, 1000));
    assert!(h.run(|tx| tx.get_transfer(&TransferId::derive(&format!("commission:{id}:clawback-to:2500")))).unwrap().is_some());
    refund_at(h, "cv_1", Refunded::All, LOCKED_UNTIL + 3 * DAY_MS);
    let c = stored(h, &id);
    assert_eq!((c.status, c.reversed_minor), (CommissionStatus::Reversed, 1000));
    assert_eq!((payable_net(h, "alice"), paid_net(h, "alice")), (-1000, 1000));
    assert_eq!(events(h, &id), [("created", 1000), ("approved", 1000), ("paid", 1000), ("clawed_back", 250), ("clawed_back", 750)]);
    // A later commission is earned against what is owed.
    let next = approved(h, "cv_2");
    assert_eq!(payable_net(h, "alice"), 0);
    assert_eq!(stored(h, &next).status, CommissionStatus::Approved);
    clean(h);
}

/// Refunds `conv` to `refunded` and checks that nothing changes: the answer is empty and
/// the ledger is as it was.
fn check_no_op<H: Harness>(h: &mut H, conv: &str, refunded: Refunded, now_ms: u64) {
    let before = clean(h);
    assert!(refund_at(h, conv, refunded, now_ms).is_empty(), "{refunded:?} again");
    assert_eq!(clean(h), before, "{refunded:?} again");
}

fn retrying_a_refund_changes_nothing<H: Harness>(h: &mut H) {
    let id = one_commission(h, "cv_1");
    refund_at(h, "cv_1", partial(2_500, 10_000), T0 + 1);
    check_no_op(h, "cv_1", partial(2_500, 10_000), T0 + 2);
    // A smaller refund delivered late is covered by the larger one.
    check_no_op(h, "cv_1", partial(1_000, 10_000), T0 + 3);
    approve_at(h, LOCKED_UNTIL);
    check_no_op(h, "cv_1", partial(2_500, 10_000), LOCKED_UNTIL + 1);
    refund_at(h, "cv_1", partial(5_000, 10_000), LOCKED_UNTIL + 2);
    check_no_op(h, "cv_1", partial(5_000, 10_000), LOCKED_UNTIL + 3);
    pay_at(h, &run_id(1)).unwrap().unwrap();
    check_no_op(h, "cv_1", partial(5_000, 10_000), LOCKED_UNTIL + 4);
    refund_at(h, "cv_1", Refunded::All, LOCKED_UNTIL + 5);
    check_no_op(h, "cv_1", Refunded::All, LOCKED_UNTIL + 6);
    check_no_op(h, "cv_1", partial(10_000, 10_000), LOCKED_UNTIL + 7);
    let c = stored(h, &id);
    assert_eq!((c.status, c.voided_minor, c.reversed_minor), (CommissionStatus::Reversed, 250, 750));
    // Paid 500 (what was left after the void and the reversal), clawed back 500.
    assert_eq!((payable_net(h, "alice"), paid_net(h, "alice")), (-500, 500));
    let e = h.run(|tx| refund(tx, &at_t0("cv_1"), partial(10_001, 10_000), LOCKED_UNTIL + 8)).unwrap_err();
    assert!(matches!(e, LifecycleError::Invalid { field: "refunded_minor", .. }), "{e}");
}

fn accruing_twice_counts_once<H: Harness>(h: &mut H) {
    // A bonus at the second conversion: counting the first twice would fire it early.
    let rs = rules(RuleSet { bonuses: vec![Bonus { metric: Metric::Conversions, threshold: 2, amount_minor: 300 }], ..RuleSet::default() });
    let first = accrue_at(h, &rs, "cv_1", 1_000, &[("alice", 1_000)]);
    let transfers = clean(h).transfers;
    let again = accrue_at(h, &rs, "cv_1", 1_000, &[("alice", 1_000)]);
    assert_eq!(again, first, "a retry answers with what is stored");
    assert_eq!(clean(h).transfers, transfers);
    let key = PeriodRef { program: PROGRAM.into(), partner: "alice".into(), currency: usd(), label: "2026-03".into() };
    let state = h.run(|tx| tx.period_state(&key)).unwrap();
    assert_eq!(state, PeriodState { volume_minor: 1_000, conversions: 1, commission_minor: 100, bonuses_paid: 0 });
    let second = accrue_at(h, &rs, "cv_2", 1_000, &[("alice", 1_000)]);
    let items: Vec<_> = second.iter().map(|c| (c.item.as_str(), c.amount_minor)).collect();
    assert_eq!(items, [("base", 100), ("bonus:0", 300)]);
    let state = h.run(|tx| tx.period_state(&key)).unwrap();
    assert_eq!(state, PeriodState { volume_minor: 2_000, conversions: 2, commission_minor: 500, bonuses_paid: 1 });
    // The rules that made them are stored by version.
    assert!(second.iter().all(|c| c.rule_version == rs.rules.version_hash()));
    assert_eq!(clean(h).pending_open, 3);
}

fn a_crash_before_commit_leaves_nothing<H: Harness>(h: &mut H) {
    let sale = Sale { conversion_id: "cv_1", program: PROGRAM, currency: usd(), amount_minor: 10_000, occurred_at_ms: T0 };
    let made = h.crash(|tx| accrue(tx, &sale, &shares(&[("alice", 10_000)]), &pct(1000), T0)).unwrap();
    assert_eq!(made.len(), 1);
    h.reopen();
    assert!(h.run(|tx| tx.commissions_of(&at_t0("cv_1"))).unwrap().is_empty());
    assert_eq!(pending_of(h, "alice"), Balance::default());
    assert_eq!(clean(h).transfers, 0);
    // The retry accrues it, once.
    assert_eq!(accrue_at(h, &pct(1000), "cv_1", 10_000, &[("alice", 10_000)]), made);
    assert_eq!(pending_of(h, "alice").credits_pending, 1000);
    // So does a crashed approval: still pending after, approved by the next sweep.
    let id = &made[0].id;
    assert_eq!(h.crash(|tx| approve_due(tx, LOCKED_UNTIL, 10)).unwrap().len(), 1);
    assert_eq!(stored(h, id).status, CommissionStatus::Pending);
    assert_eq!(approve_at(h, LOCKED_UNTIL), std::slice::from_ref(id));
    assert_eq!(clean(h).pending_open, 0);
}

/// The store's own methods, field by field, without the lifecycle: what the backends must
/// agree on.
fn rows_round_trip<H: Harness>(h: &mut H) {
    // Ids as the lifecycle makes them: the conversion's prefix, then a suffix in a known order.
    let cv = ConversionRef { id: "cv_1", occurred_at_ms: T0 };
    let cm = |suffix: &str| format!("{}{suffix:0>8}", cv.commission_prefix());
    let c = Commission {
        id: cm("1"),
        conversion_id: "cv_1".into(),
        program: PROGRAM.into(),
        partner: "alice".into(),
        item: "bonus:3".into(),
        currency: Currency::parse("EUR").unwrap(),
        amount_minor: i64::MAX / 2,
        voided_minor: 1,
        reversed_minor: 2,
        status: CommissionStatus::Paid,
        rule_version: "0123456789abcdef".into(),
        period: "2026-W11".into(),
        detail: "{\"percent_bps\":1000}".into(),
        created_at_ms: T0 as i64,
        lock_until_ms: LOCKED_UNTIL as i64,
        approved_at_ms: Some(LOCKED_UNTIL as i64),
        paid_at_ms: Some(LOCKED_UNTIL as i64 + 1),
        payout_id: Some("po_1".into()),
        reserve_seq: u32::MAX,
    };
    let due = |id: &str, lock: u64| Commission {
        id: id.into(),
        status: CommissionStatus::Pending,
        lock_until_ms: lock as i64,
        approved_at_ms: None,
        paid_at_ms: None,
        payout_id: None,
        reserve_seq: 0,
        currency: usd(),
        ..c.clone()
    };
    h.run(|tx| {
        assert_eq!((tx.mark_accrued(&cv, 1).unwrap(), tx.mark_accrued(&cv, 2).unwrap()), (true, false));
        assert!(tx.mark_accrued(&ConversionRef { id: "cv_2", ..cv }, 1).unwrap());
        tx.insert_commission(&c).unwrap();
        assert_eq!(tx.commission(&cm("1")).unwrap(), Some(c.clone()));
        assert_eq!(tx.commission(&cm("2")).unwrap(), None);
    });
    // The primary key is unique (rolled back after: PostgreSQL aborts a transaction at its
    // first error).
    assert!(matches!(h.crash(|tx| tx.insert_commission(&c)), Err(LifecycleError::Storage(_))), "{}", c.id);
    h.run(|tx| {
        let updated = Commission { status: CommissionStatus::Reversed, reversed_minor: 3, reserve_seq: 7, payout_id: None, ..c.clone() };
        tx.update_commission(&updated).unwrap();
        assert_eq!(tx.commission(&cm("1")).unwrap(), Some(updated));
        assert_eq!(tx.update_commission(&due(&cm("9"), 0)), Err(LifecycleError::NotFound(cm("9"))));
        for (id, lock) in [("b", 20), ("a", 20), ("c", 10), ("d", 30)] {
            tx.insert_commission(&Commission { item: id.into(), ..due(&cm(id), lock) }).unwrap();
        }
        // Another conversion's commission, in the same second: not one of cv_1's.
        let other = ConversionRef { id: "cv_2", ..cv };
        tx.insert_commission(&Commission { id: commission_id(&other, "alice", "base"), conversion_id: "cv_2".into(), ..due("", 40) })
            .unwrap();
        let ids = |cs: Vec<Commission>| cs.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(tx.due_for_approval(20, 10).unwrap()), [cm("c"), cm("a"), cm("b")], "by lock, then id; none before its lock");
        assert_eq!(ids(tx.due_for_approval(20, 2).unwrap()), [cm("c"), cm("a")]);
        assert_eq!(ids(tx.commissions_of(&cv).unwrap()), [cm("1"), cm("a"), cm("b"), cm("c"), cm("d")]);

        let key = PeriodRef { program: PROGRAM.into(), partner: "alice".into(), currency: usd(), label: "2026-03".into() };
        assert_eq!(tx.period_state(&key).unwrap(), PeriodState::default());
        let state = PeriodState { volume_minor: i64::MAX, conversions: 1 << 40, commission_minor: 7, bonuses_paid: u32::MAX };
        tx.put_period_state(&key, &state).unwrap();
        tx.put_period_state(&key, &state).unwrap();
        assert_eq!(tx.period_state(&key).unwrap(), state);
        assert_eq!(tx.period_state(&PeriodRef { label: "2026-04".into(), ..key.clone() }).unwrap(), PeriodState::default());
        let rs = pct(1000).rules;
        tx.put_rule_version("v1", &rs).unwrap();
        tx.put_rule_version("v1", &pct(2000).rules).unwrap();

        let kinds = ["created", "voided", "approved", "paid", "reversed", "clawed_back"];
        for (i, kind) in kinds.into_iter().enumerate() {
            let e = CommissionEvent {
                commission_id: cm("1"),
                kind,
                amount_minor: i as i64,
                transfer_id: TransferId::derive(kind),
                at_ms: i as i64,
            };
            tx.insert_event(&e).unwrap();
        }
        let got = tx.events_of(&cm("1")).unwrap();
        assert_eq!(got.iter().map(|e| e.kind).collect::<Vec<_>>(), kinds);
        assert_eq!(got[5].transfer_id, TransferId::derive("clawed_back"));
        assert!(tx.events_of(&cm("a")).unwrap().is_empty());
    });
}

fn the_schema_backs_the_rules<H: Harness>(h: &mut H) {
    let id = one_commission(h, "cv_1");
    for sql in [
        format!("UPDATE commission_events SET amount_minor = 1 WHERE commission_id = '{id}'"),
        format!("DELETE FROM commission_events WHERE commission_id = '{id}'"),
    ] {
        let r = h.raw(&sql);
        assert!(r.as_ref().is_err_and(|e| e.contains("append-only")), "{sql}: {r:?}");
    }
    for sql in [
        format!("UPDATE commissions SET voided_minor = 600, reversed_minor = 600 WHERE id = '{id}'"),
        format!("UPDATE commissions SET status = 'lost' WHERE id = '{id}'"),
        format!("UPDATE commissions SET voided_minor = -1 WHERE id = '{id}'"),
    ] {
        assert!(h.raw(&sql).is_err(), "{sql} was accepted");
    }
    assert_eq!(stored(h, &id).remaining_minor(), 1000);
    assert_eq!(events(h, &id).len(), 1);
}

conformance!(transactions Lifecycle:
    accruals_in_one_transaction_see_each_other,
    accrue_applies_the_rules_to_each_share,
    a_cancel_inside_the_lock_voids,
    a_partial_refund_inside_the_lock_voids_pro_rata,
    approval_waits_for_the_lock,
    a_payout_moves_payable_to_paid,
    a_payout_pays_every_approved_commission_and_what_is_owed_caps_it,
    a_refund_after_approval_reverses,
    a_refund_after_payment_claws_back,
    retrying_a_refund_changes_nothing,
    accruing_twice_counts_once,
    a_crash_before_commit_leaves_nothing,
    rows_round_trip,
    the_schema_backs_the_rules,
);
