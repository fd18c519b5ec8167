//! Payout runs on both stores, without a provider: manual payouts go `created` → `sent` (a
//! pending transfer, payable → in transit) → `paid` (posted) or `failed` (voided, payable
//! again, paid by the next run); a dry run changes nothing; the run lock keeps two runs apart
//! and a killed run's expired lock is taken over and its run resumed. Each case runs on SQLite
//! and on PostgreSQL (ignored without `--include-ignored`).

#[macro_use]
mod payouts_support;

use clickgate::ledger::AccountKind;
use clickgate::lifecycle::{self, CommissionStatus, ConversionRef, Refunded};
use clickgate::payouts::{PayoutError, PayoutFilter, PayoutMethod, PayoutStatus, PayoutStore, Run, Trigger};
use payouts_support::*;

both!(manual_payouts_go_in_transit_then_post_when_confirmed);
both!(a_failed_payout_voids_back_to_payable_and_the_next_run_pays_it);
both!(a_dry_run_prints_the_plan_and_changes_nothing);
both!(the_lock_keeps_runs_apart_and_a_killed_runs_expired_lock_is_taken_over);
both!(a_refund_of_a_commission_in_transit_is_owed_after_the_payout_posts);
both!(a_runs_detail_totals_every_page_and_lists_the_first_payouts);

fn clock(t: i64) -> impl Fn() -> i64 + Sync {
    move || t
}

fn manual_payouts_go_in_transit_then_post_when_confirmed(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.add_partner("bob", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 40_000);
    w.earn("shop", "ann", 20_000);
    w.earn("shop", "bob", 30_000);
    let desk = w.desk(None, None);

    let report = desk.run(&req(false), &clock(T0 + 500 * DAY_MS)).unwrap();
    assert_eq!((report.sent.count, report.sent.amount_minor), (1, 6000), "{report:?}");
    assert_eq!(report.plan.payouts.len(), 1, "bob's 3000 is below the threshold");
    let payouts = desk.payouts(&PayoutFilter { run: Some(report.run_id.clone()), limit: 100, ..Default::default() }).unwrap();
    let [p] = &payouts[..] else { panic!("{payouts:?}") };
    assert_eq!((p.partner.as_str(), p.status, p.amount_minor), ("ann", PayoutStatus::Sent, 6000));
    assert_eq!(p.id, clickgate::payouts::state::payout_id(&report.run_id, "ann", usd()));
    // In transit: pending on both sides, nothing posted yet.
    let (payable, paid) = (w.balance(AccountKind::PartnerPayable, "ann"), w.balance(AccountKind::PartnerPaid, "ann"));
    assert_eq!((payable.debits_pending, paid.credits_pending, paid.credits_posted), (6000, 6000, 0));
    assert_eq!(w.available("ann"), 0);
    let held = w.db().read(|tx| tx.commissions_of_payout(&p.id)).unwrap();
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|c| c.status == CommissionStatus::Approved));
    assert_eq!(w.events("payout.sent").len(), 1);
    assert_eq!(w.verify().pending_open, 1);
    // A settlement by hand leaves what a run holds to the run.
    let by_hand = clickgate::payouts::ByHand { partner: "ann".into(), reference: "bank-1".into() };
    let settle = clickgate::payouts::Request { currency: Some(usd()), by_hand: Some(by_hand), ..req(false) };
    let nothing = desk.run(&settle, &clock(T0 + 500 * DAY_MS)).unwrap();
    assert_eq!((nothing.settled.as_ref(), nothing.paid.count), (None, 0), "{nothing:?}");

    // A second run finds nothing: ann's commissions are held, bob's are below the threshold.
    let again = desk.run(&req(false), &clock(T0 + 500 * DAY_MS + 1)).unwrap();
    assert_eq!((again.sent.count, again.plan.payouts.len()), (0, 0));

    let confirmed = desk.confirm(&report.run_id, &[], &clock(T0 + 501 * DAY_MS)).unwrap();
    assert_eq!((confirmed.paid.count, confirmed.paid.amount_minor), (1, 6000));
    let (payable, paid) = (w.balance(AccountKind::PartnerPayable, "ann"), w.balance(AccountKind::PartnerPaid, "ann"));
    assert_eq!((payable.debits_pending, payable.debits_posted, paid.credits_posted, paid.credits_pending), (0, 6000, 6000, 0));
    let held = w.db().read(|tx| tx.commissions_of_payout(&p.id)).unwrap();
    assert!(held.iter().all(|c| c.status == CommissionStatus::Paid && c.paid_at_ms.is_some()), "{held:?}");
    assert_eq!(w.events("payout.paid"), vec![(format!("payout:{}:paid", p.id), Some("ann".to_string()))]);
    // Confirming again changes nothing; a Stripe-style second post is refused by the ledger.
    let twice = desk.confirm(&report.run_id, &[], &clock(T0 + 502 * DAY_MS)).unwrap();
    assert_eq!(twice.paid.count, 0);
    let report = w.verify();
    assert_eq!(report.pending_open, 0);
}

fn a_failed_payout_voids_back_to_payable_and_the_next_run_pays_it(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 70_000);
    let desk = w.desk(None, None);
    let first = desk.run(&req(false), &clock(T0 + 500 * DAY_MS)).unwrap();
    let id = clickgate::payouts::state::payout_id(&first.run_id, "ann", usd());
    let not_ours = desk.confirm(&first.run_id, &[("po_nope".into(), "x".into())], &clock(T0 + 501 * DAY_MS)).unwrap_err();
    assert!(matches!(not_ours, PayoutError::Invalid { .. }), "{not_ours}");
    let confirmed = desk.confirm(&first.run_id, &[(id.clone(), "bank refused".into())], &clock(T0 + 501 * DAY_MS)).unwrap();
    assert_eq!((confirmed.failed.count, confirmed.paid.count), (1, 0));
    let p = w.db().read(|tx| tx.payout(&id)).unwrap().unwrap();
    assert_eq!((p.status, p.failure.as_deref()), (PayoutStatus::Failed, Some("bank refused")));
    assert_eq!(w.available("ann"), 7000, "the voided transfer gives the money back to payable");
    assert_eq!(w.balance(AccountKind::PartnerPaid, "ann").credits_pending, 0);
    assert!(w.db().read(|tx| tx.commissions_of_payout(&id)).unwrap().is_empty(), "the commissions are released");
    assert_eq!(w.events("payout.failed").len(), 1);

    let second = desk.run(&req(false), &clock(T0 + 502 * DAY_MS)).unwrap();
    assert_ne!(second.run_id, first.run_id);
    assert_eq!((second.sent.count, second.sent.amount_minor), (1, 7000));
    desk.confirm(&second.run_id, &[], &clock(T0 + 503 * DAY_MS)).unwrap();
    assert_eq!(w.balance(AccountKind::PartnerPaid, "ann").credits_posted, 7000);
    assert_eq!(w.available("ann"), 0);
    assert_eq!(w.verify().pending_open, 0);
}

fn a_dry_run_prints_the_plan_and_changes_nothing(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 90_000);
    let before = (w.verify().head_seq, w.events("payout.sent").len());
    let desk = w.desk(None, None);
    let report = desk.run(&req(true), &clock(T0 + 500 * DAY_MS)).unwrap();
    assert!(report.dry_run && report.run_id.is_empty());
    let [p] = &report.plan.payouts[..] else { panic!("{report:?}") };
    assert_eq!((p.partner.as_str(), p.amount_minor, p.method), ("ann", 9000, PayoutMethod::Manual));
    assert_eq!((w.verify().head_seq, w.events("payout.sent").len()), before);
    assert!(desk.runs(None, 10).unwrap().is_empty());
    assert_eq!(w.available("ann"), 9000);
}

fn the_lock_keeps_runs_apart_and_a_killed_runs_expired_lock_is_taken_over(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 90_000);
    let t = T0 + 500 * DAY_MS;
    // A run that took the lock and was killed before it planned anything.
    let killed = Run {
        id: Run::new_id(t, 7),
        program: None,
        currency: None,
        trigger: Trigger::Cli,
        finished: false,
        started_ms: t,
        finished_ms: None,
    };
    w.db()
        .write(|tx| {
            tx.take_lock("killed-process", &killed.id, t, t + 600_000)?;
            tx.insert_run(&killed)
        })
        .unwrap();
    let desk = w.desk(None, None);
    let refused = desk.run(&req(false), &clock(t + 1000)).unwrap_err();
    assert!(matches!(&refused, PayoutError::Locked { run, .. } if *run == killed.id), "{refused}");
    assert!(w.db().write(|tx| tx.take_lock("other-process", "pr_other", t + 1000, t + 2000)).is_err());
    // Once its lease has passed, the next run takes the lock over and finishes the killed run.
    let resumed = desk.run(&req(false), &clock(t + 600_001)).unwrap();
    assert!(resumed.resumed);
    assert_eq!(resumed.run_id, killed.id);
    let runs = desk.runs(None, 10).unwrap();
    assert!(runs.iter().all(|r| r.finished), "{runs:?}");
    // The killed run had planned nothing; the next run pays ann, once.
    let next = desk.run(&req(false), &clock(t + 600_002)).unwrap();
    assert_eq!((next.resumed, next.sent.count), (false, 1));
    assert_eq!(desk.run(&req(false), &clock(t + 600_003)).unwrap().sent.count, 0);

    // A process that stalled past its lease cannot renew once another took the lock over: it
    // stops instead of sending what the new holder may settle.
    let mut db = w.db();
    db.write(|tx| tx.take_lock("stalled", "pr_a", t + 700_000, t + 700_100)).unwrap();
    assert!(db.write(|tx| tx.renew_lock("stalled", "pr_a", t + 700_050)).unwrap(), "its own lock renews");
    db.write(|tx| tx.take_lock("taker", "pr_a", t + 800_000, t + 900_000)).unwrap();
    assert!(!db.write(|tx| tx.renew_lock("stalled", "pr_a", t + 800_001)).unwrap(), "a lock taken over does not");
    assert!(db.write(|tx| tx.renew_lock("taker", "pr_a", t + 800_001)).unwrap());
}

fn a_refund_of_a_commission_in_transit_is_owed_after_the_payout_posts(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.earn("shop", "ann", 50_000);
    w.earn("shop", "ann", 30_000);
    let desk = w.desk(None, None);
    let run = desk.run(&req(false), &clock(T0 + 500 * DAY_MS)).unwrap();
    assert_eq!(run.sent.amount_minor, 8000);
    // The second conversion is refunded whole while its commission is in transit.
    let conversion = ConversionRef { id: "cv_ann_2", occurred_at_ms: T0 as u64 };
    let changed = w.db().write(|tx| Ok(lifecycle::refund(tx, &conversion, Refunded::All, (T0 + 500 * DAY_MS + 5) as u64)?)).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].status, CommissionStatus::Reversed);
    desk.confirm(&run.run_id, &[], &clock(T0 + 501 * DAY_MS)).unwrap();
    // The payout paid 8000; 3000 of it was taken back: the partner owes it.
    let payable = w.balance(AccountKind::PartnerPayable, "ann");
    assert_eq!(payable.credits_posted - payable.debits_posted, -3000);
    assert_eq!(w.balance(AccountKind::PartnerPaid, "ann").credits_posted, 8000);
    let id = clickgate::payouts::state::payout_id(&run.run_id, "ann", usd());
    let statuses: Vec<CommissionStatus> = w.db().read(|tx| tx.commissions_of_payout(&id)).unwrap().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [CommissionStatus::Paid, CommissionStatus::Reversed]);
    // What ann owes comes off her next earnings: 6000 earned, 3000 payable, below the threshold.
    w.earn("shop", "ann", 60_000);
    let next = desk.run(&req(false), &clock(T0 + 502 * DAY_MS)).unwrap();
    assert_eq!(next.plan.payouts.len(), 0);
    assert_eq!(next.plan.skipped.len(), 1, "{next:?}");
    w.verify();
}

both!(the_schedule_starts_a_programs_run_once_per_slot);

fn the_schedule_starts_a_programs_run_once_per_slot(backend: Backend) {
    let mut w = World::new(backend);
    let weekly = clickgate::catalog::NewProgram { payout_schedule: "weekly:sun".into(), ..program("weekly", 1000) };
    clickgate::catalog::Catalogue::add_program(&w.catalog(), &weekly).unwrap();
    w.add_partner("ann", PayoutMethod::Manual, None, None);
    w.earn("weekly", "ann", 20_000);
    w.earn("shop", "ann", 90_000);
    let desk = w.desk(None, None);
    // 2027-06-20 is a Sunday: the weekly program's slot began at 00:00 UTC.
    let sunday = T0 + 201 * DAY_MS + 3_600_000;
    let due = desk.scheduled(&clock(sunday)).unwrap();
    let [(program, report)] = &due[..] else { panic!("{due:?}") };
    let report = report.as_ref().unwrap();
    assert_eq!((program.as_str(), report.sent.count, report.sent.amount_minor), ("weekly", 1, 2000), "only the weekly program's money");
    let run = desk.run_detail(&report.run_id, 0).unwrap().unwrap().run;
    assert_eq!((run.trigger, run.program.as_deref()), (Trigger::Schedule, Some("weekly")));
    assert!(desk.scheduled(&clock(sunday + 3_600_000)).unwrap().is_empty(), "once per slot");
    assert!(desk.scheduled(&clock(sunday + 6 * DAY_MS)).unwrap().is_empty(), "Saturday: the slot has a run");
    assert_eq!(desk.scheduled(&clock(sunday + 7 * DAY_MS)).unwrap().len(), 1, "the next Sunday");
    assert_eq!(w.available("ann"), 9000, "the shop program has no schedule");
}

fn a_runs_detail_totals_every_page_and_lists_the_first_payouts(backend: Backend) {
    let mut w = World::new(backend);
    for (partner, sale_minor) in [("ann", 100_000), ("bob", 200_000), ("cat", 300_000)] {
        w.add_partner(partner, PayoutMethod::Manual, None, None);
        w.earn("shop", partner, sale_minor);
    }
    // A page of one payout, so the totals take three reads.
    let desk = w.desk_with(None, None, 1);
    let report = desk.run(&req(false), &clock(T0 + 500 * DAY_MS)).unwrap();
    assert_eq!((report.sent.count, report.sent.amount_minor), (3, 60_000), "{report:?}");
    let detail = desk.run_detail(&report.run_id, 2).unwrap().unwrap();
    let sent = &detail.totals["sent"];
    assert_eq!((detail.totals.len(), sent.count, sent.amount_minor), (1, 3, 60_000), "{:?}", detail.totals);
    let partners: Vec<&str> = detail.payouts.iter().map(|p| p.partner.as_str()).collect();
    let mut all: Vec<(String, String)> =
        ["ann", "bob", "cat"].iter().map(|p| (clickgate::payouts::state::payout_id(&report.run_id, p, usd()), p.to_string())).collect();
    all.sort();
    assert_eq!(partners, [all[0].1.as_str(), all[1].1.as_str()], "the first two by id");
    assert!(desk.run_detail("pr_00", 2).unwrap().is_none());
}
