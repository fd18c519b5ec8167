//! Settlements by hand (`clickgate payouts settle`, `POST /v1/partners/{id}/payouts`) on both
//! stores: a run of its own that pays one partner and currency with one manual payout, whatever
//! the thresholds and the partner's payout method, capped by what the partner owes, marked paid
//! with the operator's reference; never twice; refused while another run holds the lock; and
//! resumable, before or after any other run. Each case runs on SQLite and on PostgreSQL
//! (ignored without `--include-ignored`).

#[macro_use]
mod payouts_support;

use clickgate::ledger::AccountKind;
use clickgate::lifecycle::{self, CommissionStatus, ConversionRef, Refunded};
use clickgate::payouts::state::payout_id;
use clickgate::payouts::{
    plan, steps, ByHand, Payout, PayoutError, PayoutFilter, PayoutMethod, PayoutStatus, PayoutStore, Report, Request, Run, Trigger,
};
use payouts_support::*;

both!(a_settlement_pays_one_partner_whatever_the_threshold_and_method_once);
both!(what_the_partner_owes_caps_a_settlement);
both!(a_settlement_is_refused_while_another_run_holds_the_lock_and_checks_its_request);
both!(a_killed_settlement_is_finished_by_the_next_run);
both!(a_settlement_finishes_a_killed_run_first);

/// 2028-04-15: long after every commission's lock.
const T: i64 = T0 + 500 * DAY_MS;

fn clock(t: i64) -> impl Fn() -> i64 + Sync {
    move || t
}

fn settle(partner: &str, reference: &str) -> Request {
    Request { currency: Some(usd()), by_hand: Some(ByHand { partner: partner.into(), reference: reference.into() }), ..req(false) }
}

/// The one payout of a run.
fn only_payout(w: &World, run: &str) -> Payout {
    let payouts = w.db().read(|tx| tx.payouts(&PayoutFilter { run: Some(run.to_string()), limit: 10, ..Default::default() })).unwrap();
    let [p] = &payouts[..] else { panic!("{run}: {payouts:?}") };
    p.clone()
}

fn a_settlement_pays_one_partner_whatever_the_threshold_and_method_once(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Stripe, Some("acct_1Ann"), None);
    w.add_partner("bob", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 20_000);
    w.earn("shop", "ann", 12_340);
    w.earn("shop", "bob", 30_000);
    // A Stripe key whose API is nowhere: the settlement must not ask Stripe anything.
    let desk = w.desk(Some("sk_test_by_hand"), Some("http://127.0.0.1:9".into()));
    assert_eq!(desk.run(&req(true), &clock(T)).unwrap().plan.payouts.len(), 0, "both are below the threshold of 5000");

    let report = desk.run(&settle("ann", "bank-ann-1"), &clock(T)).unwrap();
    let [planned] = &report.plan.payouts[..] else { panic!("{report:?}") };
    assert_eq!((planned.partner.as_str(), planned.amount_minor, planned.method), ("ann", 3234, PayoutMethod::Manual));
    assert_eq!((report.paid.count, report.paid.amount_minor, report.sent.count, report.failed.count), (1, 3234, 0, 0));
    let settled = report.settled.clone().expect("a payout");
    assert_eq!(
        (settled.partner.as_str(), settled.amount_minor, settled.commissions, settled.reference.as_str()),
        ("ann", 3234, 2, "bank-ann-1")
    );
    let p = only_payout(&w, &report.run_id);
    assert_eq!(p.id, payout_id(&report.run_id, "ann", usd()));
    assert_eq!(p.id, settled.payout_id);
    assert_eq!(
        (p.status, p.method, p.destination.as_str(), p.reference.as_deref(), p.settled_ms),
        (PayoutStatus::Paid, PayoutMethod::Manual, "", Some("bank-ann-1"), Some(T))
    );
    let run = desk.run_detail(&report.run_id, 0).unwrap().unwrap().run;
    assert!(run.finished && run.currency == Some(usd()), "{run:?}");
    let held = w.db().read(|tx| tx.commissions_of_payout(&p.id)).unwrap();
    assert!(held.len() == 2 && held.iter().all(|c| c.status == CommissionStatus::Paid && c.paid_at_ms == Some(T)), "{held:?}");
    // Sent (a pending transfer) and then posted: nothing is left in transit.
    let (payable, paid) = (w.balance(AccountKind::PartnerPayable, "ann"), w.balance(AccountKind::PartnerPaid, "ann"));
    assert_eq!((payable.debits_posted, payable.debits_pending, paid.credits_posted, paid.credits_pending), (3234, 0, 3234, 0));
    assert_eq!(w.available("bob"), 3000, "only ann is settled");
    assert_eq!(w.events("payout.sent"), [(format!("payout:{}:sent", p.id), Some("ann".to_string()))]);
    assert_eq!(w.events("payout.paid"), [(format!("payout:{}:paid", p.id), Some("ann".to_string()))]);
    let ledger = w.verify();
    assert_eq!(ledger.pending_open, 0);

    // Again, under the same reference or another: nothing is left, and it says so.
    for reference in ["bank-ann-1", "bank-ann-2"] {
        let again = desk.run(&settle("ann", reference), &clock(T + 1)).unwrap();
        assert_eq!((again.settled.as_ref(), again.paid.count, again.plan.payouts.len()), (None, 0, 0), "{again:?}");
        let [skipped] = &again.plan.skipped[..] else { panic!("{again:?}") };
        assert!(skipped.why.contains("no approved commission"), "{skipped:?}");
    }
    assert_eq!(w.verify().head_seq, ledger.head_seq, "nothing more was written to the ledger");
    assert_eq!(w.balance(AccountKind::PartnerPaid, "ann").credits_posted, 3234);
}

fn what_the_partner_owes_caps_a_settlement(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 40_000);
    let desk = w.desk(None, None);
    assert_eq!(desk.run(&settle("ann", "r1"), &clock(T)).unwrap().paid.amount_minor, 4000);
    // The paid conversion is refunded whole: ann owes 4000 against her next earnings.
    let conversion = ConversionRef { id: "cv_ann_1", occurred_at_ms: T0 as u64 };
    w.db().write(|tx| Ok(lifecycle::refund(tx, &conversion, Refunded::All, (T + 1) as u64)?)).unwrap();
    assert_eq!(w.available("ann"), -4000);
    w.earn("shop", "ann", 10_000);
    let owed = desk.run(&settle("ann", "r2"), &clock(T + 2)).unwrap();
    assert_eq!((owed.settled.as_ref(), owed.paid.count), (None, 0), "{owed:?}");
    let [skipped] = &owed.plan.skipped[..] else { panic!("{owed:?}") };
    assert!(skipped.why.contains("after what the partner owes") && skipped.amount_minor == 1000, "{skipped:?}");
    // 1000 + 5000 earned, 4000 owed: 2000 is paid, and both commissions are.
    w.earn("shop", "ann", 50_000);
    let capped = desk.run(&settle("ann", "r3"), &clock(T + 3)).unwrap();
    let settled = capped.settled.expect("a payout");
    assert_eq!((settled.amount_minor, settled.commissions), (2000, 2));
    assert_eq!(w.available("ann"), 0);
    assert_eq!(w.balance(AccountKind::PartnerPaid, "ann").credits_posted, 6000);
    assert_eq!(w.verify().pending_open, 0);
}

fn a_settlement_is_refused_while_another_run_holds_the_lock_and_checks_its_request(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 20_000);
    let desk = w.desk(None, None);
    w.db().write(|tx| tx.take_lock("another-process", "pr_0000000000000001", T, T + 60_000)).unwrap();
    let refused = desk.run(&settle("ann", "r1"), &clock(T + 1)).unwrap_err();
    assert!(matches!(refused, PayoutError::Locked { .. }), "{refused}");
    assert_eq!(w.available("ann"), 2000);
    w.db().write(|tx| tx.release_lock("another-process")).unwrap();

    let invalid = |r: Result<Report, PayoutError>| match r {
        Err(PayoutError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(invalid(desk.run(&settle("ann", "bank ref"), &clock(T))), "reference");
    assert_eq!(invalid(desk.run(&settle("ann", ""), &clock(T))), "reference");
    assert_eq!(invalid(desk.run(&Request { currency: None, ..settle("ann", "r1") }, &clock(T))), "currency");
    assert!(matches!(desk.run(&settle("nobody", "r1"), &clock(T)), Err(PayoutError::NotFound(_))));
    assert!(desk.runs(None, 10).unwrap().is_empty(), "nothing refused made a run");
    let dry = desk.run(&Request { dry_run: true, ..settle("ann", "r1") }, &clock(T)).unwrap();
    assert_eq!((dry.dry_run, dry.plan.payouts.len(), w.available("ann")), (true, 1, 2000));
    assert_eq!(desk.run(&settle("ann", "r1"), &clock(T + 2)).unwrap().paid.amount_minor, 2000);
}

/// Stores a run killed by hand-settling `partner` after its payout was created (and sent, when
/// `sent`), with its lock expired at `t`.
fn killed_settlement(w: &World, partner: &str, reference: &str, sent: bool, t: i64) -> String {
    let run = Run {
        id: Run::new_id(t, 1),
        program: None,
        currency: Some(usd()),
        trigger: Trigger::Cli,
        finished: false,
        started_ms: t,
        finished_ms: None,
    };
    w.db()
        .write(|tx| {
            tx.take_lock("killed-process", &run.id, t, t + 1)?;
            tx.insert_run(&run)?;
            let plan = plan::by_hand(tx, partner, None, usd())?;
            let planned = &plan.payouts[0];
            let p = Payout {
                id: payout_id(&run.id, partner, usd()),
                run_id: run.id.clone(),
                partner: partner.into(),
                currency: usd(),
                amount_minor: planned.amount_minor,
                method: PayoutMethod::Manual,
                destination: String::new(),
                status: PayoutStatus::Created,
                reference: Some(reference.into()),
                failure: None,
                insufficient: false,
                created_ms: t,
                sent_ms: None,
                settled_ms: None,
            };
            steps::create(tx, &p, &planned.programs)?;
            if sent {
                steps::send(tx, &p.id, Some(reference), t)?;
            }
            Ok(())
        })
        .unwrap();
    run.id
}

fn a_killed_settlement_is_finished_by_the_next_run(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.add_partner("bob", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 20_000);
    w.earn("shop", "bob", 10_000);
    let desk = w.desk(None, None);
    for (partner, sent, t) in [("ann", false, T), ("bob", true, T + DAY_MS)] {
        let killed = killed_settlement(&w, partner, &format!("bank-{partner}"), sent, t);
        // Any run resumes it, and marks its payout paid with its reference, not `sent` to wait
        // for a confirmation as a run's own manual payouts do.
        let resumed = desk.run(&req(false), &clock(t + 10)).unwrap();
        assert_eq!((resumed.resumed, resumed.run_id.as_str(), resumed.paid.count, resumed.sent.count), (true, killed.as_str(), 1, 0));
        let settled = resumed.settled.expect("the settlement");
        assert_eq!((settled.partner.as_str(), settled.reference), (partner, format!("bank-{partner}")));
        let p = only_payout(&w, &killed);
        assert_eq!((p.status, p.reference), (PayoutStatus::Paid, Some(format!("bank-{partner}"))));
        assert_eq!(w.available(partner), 0);
        assert_eq!(w.events("payout.paid").iter().filter(|(cause, _)| cause.contains(&p.id)).count(), 1);
    }
    assert_eq!(w.balance(AccountKind::PartnerPaid, "ann").credits_posted, 2000);
    assert_eq!(w.balance(AccountKind::PartnerPaid, "bob").credits_posted, 1000);
    assert_eq!(w.verify().pending_open, 0);
}

fn a_settlement_finishes_a_killed_run_first(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.add_partner("bob", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 20_000);
    w.earn("shop", "bob", 90_000);
    // A run that planned bob's manual payout and was killed before sending it.
    let killed = Run {
        id: Run::new_id(T, 7),
        program: None,
        currency: None,
        trigger: Trigger::Cli,
        finished: false,
        started_ms: T,
        finished_ms: None,
    };
    w.db()
        .write(|tx| {
            tx.take_lock("killed-process", &killed.id, T, T + 1)?;
            tx.insert_run(&killed)?;
            let planned = plan::plan(tx, &w.desk(None, None).directory()?, None, None)?.payouts.remove(0);
            let p = Payout {
                id: payout_id(&killed.id, "bob", usd()),
                run_id: killed.id.clone(),
                partner: "bob".into(),
                currency: usd(),
                amount_minor: planned.amount_minor,
                method: PayoutMethod::Manual,
                destination: String::new(),
                status: PayoutStatus::Created,
                reference: None,
                failure: None,
                insufficient: false,
                created_ms: T,
                sent_ms: None,
                settled_ms: None,
            };
            steps::create(tx, &p, &planned.programs).map(drop)
        })
        .unwrap();
    let desk = w.desk(None, None);
    let report = desk.run(&settle("ann", "bank-ann"), &clock(T + 10)).unwrap();
    let [first] = &report.finished_first[..] else { panic!("{report:?}") };
    // The killed run's manual payout is sent and waits for `confirm`, as it would have.
    assert_eq!((first.run_id.as_str(), first.resumed, first.sent.count, first.sent.amount_minor), (killed.id.as_str(), true, 1, 9000));
    assert_eq!(only_payout(&w, &killed.id).status, PayoutStatus::Sent);
    assert!(!report.resumed && report.run_id != killed.id);
    let settled = report.settled.expect("ann's settlement");
    assert_eq!((settled.partner.as_str(), settled.amount_minor), ("ann", 2000));
    assert!(desk.runs(None, 10).unwrap().iter().all(|r| r.finished));
    assert_eq!(w.verify().pending_open, 1, "bob's payout is in transit");
}
