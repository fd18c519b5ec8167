//! Payout runs against the local Stripe (`clickgate::testing::stripe`) over real sockets, on
//! SQLite and PostgreSQL: one transfer per idempotency key, `balance_insufficient` leaves the
//! money payable for the next run (under a new payout id), other refusals fail the payout with
//! Stripe's message, a lost answer is replayed under the same key, an unknown outcome stays
//! `sent` and the next run asks again under the same key; PayPal and Wise files parse back to
//! the run's totals.

#[macro_use]
mod payouts_support;

use std::collections::HashSet;
use std::path::Path;

use clickgate::ledger::AccountKind;
use clickgate::payouts::export::{self, ExportFormat};
use clickgate::payouts::state::payout_id;
use clickgate::payouts::{PayoutFilter, PayoutMethod, PayoutStatus, PayoutStore};
use clickgate::testing::stripe::StripeServer;
use payouts_support::*;

const KEY: &str = "sk_test_51PayoutRunsLocalKey";

both!(stripe_pays_once_per_key_and_insufficient_balance_is_paid_by_the_next_run);
both!(a_lost_answer_is_replayed_and_an_unknown_outcome_is_asked_again_under_the_same_key);
both!(file_exports_hold_one_currency_and_parse_back_to_the_runs_totals);

fn clock(t: i64) -> impl Fn() -> i64 + Sync {
    move || t
}

fn stripe_pays_once_per_key_and_insufficient_balance_is_paid_by_the_next_run(backend: Backend) {
    let server = StripeServer::start(KEY).unwrap();
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Stripe, Some("acct_ann1"), None);
    w.add_partner("bob", PayoutMethod::Stripe, Some("acct_bob1"), None);
    w.add_partner("cy", PayoutMethod::Stripe, Some("acct_cy1"), None);
    w.earn("shop", "ann", 60_000);
    w.earn("shop", "bob", 70_000);
    w.earn("shop", "cy", 80_000);
    server.set_insufficient("acct_bob1", true);
    server.set_missing("acct_cy1");
    let desk = w.desk(Some(KEY), Some(server.base()));

    let first = desk.run(&req(false), &clock(T0 + 500 * DAY_MS)).unwrap();
    assert_eq!((first.paid.count, first.paid.amount_minor), (1, 6000), "{first:?}");
    assert_eq!((first.failed.count, first.insufficient.count, first.insufficient.amount_minor), (2, 1, 7000));
    let transfers = server.transfers();
    let [t] = &transfers[..] else { panic!("{transfers:?}") };
    let ann = payout_id(&first.run_id, "ann", usd());
    assert_eq!((t.amount, t.currency.as_str(), t.destination.as_str()), (6000, "usd", "acct_ann1"));
    assert_eq!((t.idempotency_key.as_str(), t.transfer_group.as_str()), (ann.as_str(), first.run_id.as_str()));
    assert_eq!(t.metadata.get("payout_id"), Some(&ann));
    assert_eq!(t.metadata.get("partner").map(String::as_str), Some("ann"));
    let paid = w.db().read(|tx| tx.payout(&ann)).unwrap().unwrap();
    assert_eq!((paid.status, paid.reference.as_deref()), (PayoutStatus::Paid, Some(t.id.as_str())));
    assert_eq!(w.balance(AccountKind::PartnerPaid, "ann").credits_posted, 6000);

    // bob: not paid, the money payable again and counted; cy: refused for good, Stripe's
    // message and the partner named.
    let bob = w.db().read(|tx| tx.payout(&payout_id(&first.run_id, "bob", usd()))).unwrap().unwrap();
    assert_eq!((bob.status, bob.insufficient), (PayoutStatus::Failed, true));
    assert_eq!(w.available("bob"), 7000);
    let cy = w.db().read(|tx| tx.payout(&payout_id(&first.run_id, "cy", usd()))).unwrap().unwrap();
    let why = cy.failure.unwrap();
    assert!(
        cy.status == PayoutStatus::Failed && !cy.insufficient && why.contains("partner cy") && why.contains("No such destination"),
        "{why}"
    );

    // The next run pays bob under a new payout id; ann is not paid again; cy is tried again
    // (her details are still refused), and no key ever made two transfers.
    server.set_insufficient("acct_bob1", false);
    let second = desk.run(&req(false), &clock(T0 + 501 * DAY_MS)).unwrap();
    assert_eq!((second.paid.count, second.paid.amount_minor), (1, 7000), "{second:?}");
    let transfers = server.transfers();
    assert_eq!(transfers.len(), 2);
    assert_eq!(transfers[1].idempotency_key, payout_id(&second.run_id, "bob", usd()));
    let keys: HashSet<&str> = transfers.iter().map(|t| t.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), transfers.len());
    assert_eq!(w.balance(AccountKind::PartnerPaid, "bob").credits_posted, 7000);
    assert_eq!((w.available("ann"), w.available("bob")), (0, 0));
    assert_eq!(w.verify().pending_open, 0);
}

fn a_lost_answer_is_replayed_and_an_unknown_outcome_is_asked_again_under_the_same_key(backend: Backend) {
    let server = StripeServer::start(KEY).unwrap();
    let mut w = World::new(backend);
    w.add_partner("ann", PayoutMethod::Stripe, Some("acct_ann1"), None);
    w.earn("shop", "ann", 60_000);
    let desk = w.desk(Some(KEY), Some(server.base()));
    // The transfer executes but its answer is lost: the retry under the same key replays it.
    server.lose_next(1);
    let first = desk.run(&req(false), &clock(T0 + 500 * DAY_MS)).unwrap();
    assert_eq!(first.paid.count, 1, "{first:?}");
    assert_eq!(server.transfers().len(), 1);
    assert!(server.requests().len() >= 2);

    // Every attempt fails before it executes: the outcome is unknown, the payout stays sent
    // and the money in transit.
    w.add_partner("bob", PayoutMethod::Stripe, Some("acct_bob1"), None);
    w.earn("shop", "bob", 70_000);
    server.fail_next(5, 503);
    let second = desk.run(&req(false), &clock(T0 + 501 * DAY_MS)).unwrap();
    assert_eq!((second.paid.count, second.sent.count), (0, 1), "{second:?}");
    let bob = payout_id(&second.run_id, "bob", usd());
    assert_eq!(w.db().read(|tx| tx.payout(&bob)).unwrap().unwrap().status, PayoutStatus::Sent);
    assert_eq!(w.balance(AccountKind::PartnerPayable, "bob").debits_pending, 7000);
    // The next run, an hour later, asks again under bob's first key, and plans no second
    // payout for him.
    let third = desk.run(&req(false), &clock(T0 + 501 * DAY_MS + 3_600_000)).unwrap();
    assert_eq!((third.paid.count, third.plan.payouts.len()), (1, 0), "{third:?}");
    let transfers = server.transfers();
    assert_eq!(transfers.len(), 2);
    assert_eq!(transfers[1].idempotency_key, bob);
    assert_eq!(w.db().read(|tx| tx.payout(&bob)).unwrap().unwrap().status, PayoutStatus::Paid);
    assert_eq!(w.verify().pending_open, 0);

    // An unknown outcome past the key's 23 hours is never sent again (Stripe may have
    // forgotten the key and would pay twice): it waits, holding its money, for an operator to
    // check Stripe and confirm it.
    w.add_partner("cy", PayoutMethod::Stripe, Some("acct_cy1"), None);
    w.earn("shop", "cy", 80_000);
    server.fail_next(5, 503);
    let fourth = desk.run(&req(false), &clock(T0 + 510 * DAY_MS)).unwrap();
    let cy = payout_id(&fourth.run_id, "cy", usd());
    assert_eq!((fourth.paid.count, fourth.sent.count), (0, 1), "{fourth:?}");
    let fifth = desk.run(&req(false), &clock(T0 + 511 * DAY_MS)).unwrap();
    assert_eq!((fifth.paid.count, fifth.plan.payouts.len()), (0, 0), "{fifth:?}");
    assert_eq!(server.transfers().len(), 2, "no request under a stale key");
    assert_eq!(w.db().read(|tx| tx.payout(&cy)).unwrap().unwrap().status, PayoutStatus::Sent);
    assert_eq!(w.balance(AccountKind::PartnerPayable, "cy").debits_pending, 8000);
    let confirmed = desk.confirm(&fourth.run_id, &[(cy.clone(), "refused by Stripe".into())], &clock(T0 + 511 * DAY_MS)).unwrap();
    assert_eq!(confirmed.failed.count, 1, "{confirmed:?}");
    assert_eq!(w.db().read(|tx| tx.payout(&cy)).unwrap().unwrap().status, PayoutStatus::Failed);
    assert_eq!(w.available("cy"), 8000, "a failed payout's money is payable again");
    assert_eq!(w.verify().pending_open, 0);
}

fn file_exports_hold_one_currency_and_parse_back_to_the_runs_totals(backend: Backend) {
    let mut w = World::new(backend);
    w.add_partner("pam", PayoutMethod::Paypal, None, Some("pam@pay.example.com"));
    w.add_partner("pia", PayoutMethod::Paypal, None, Some("pia@pay.example.com"));
    w.add_partner("wes", PayoutMethod::Wise, None, None);
    w.earn("shop", "pam", 51_230);
    w.earn("shop", "pia", 99_990);
    w.earn("shop", "wes", 77_770);
    let desk = w.desk(None, None);
    let run = desk.run(&req(false), &clock(T0 + 500 * DAY_MS)).unwrap();
    assert_eq!((run.sent.count, run.sent.amount_minor), (3, 5123 + 9999 + 7777), "{run:?}");
    assert_eq!(run.files.len(), 2);
    let paypal = w.export_dir.join(format!("{}-paypal-USD.csv", run.run_id));
    let wise = w.export_dir.join(format!("{}-wise-USD.csv", run.run_id));
    let check = |path: &Path, format, want: (usize, i64)| {
        let lines = export::read(path, format).unwrap();
        assert_eq!(export::totals(&lines).unwrap(), want, "{}", path.display());
        lines
    };
    let lines = check(&paypal, ExportFormat::Paypal, (2, 5123 + 9999));
    let pam = lines.iter().find(|l| l.payout_id == payout_id(&run.run_id, "pam", usd())).expect("pam's line");
    assert_eq!((pam.email.as_str(), pam.amount_minor), ("pam@pay.example.com", 5123));
    let lines = check(&wise, ExportFormat::Wise, (1, 7777));
    assert_eq!((lines[0].name.as_deref(), lines[0].email.as_str()), (Some("Partner wes"), "wes@example.com"));
    // The payouts wait for their confirmation, with the file as their reference.
    let sent = desk.payouts(&PayoutFilter { run: Some(run.run_id.clone()), limit: 10, ..Default::default() }).unwrap();
    assert!(sent.iter().all(|p| p.status == PayoutStatus::Sent && p.reference.as_deref().is_some_and(|r| r.ends_with(".csv"))));
    let wes = payout_id(&run.run_id, "wes", usd());
    let done = desk.confirm(&run.run_id, &[(wes, "the recipient's account is closed".into())], &clock(T0 + 501 * DAY_MS)).unwrap();
    assert_eq!((done.paid.count, done.paid.amount_minor, done.failed.count), (2, 5123 + 9999, 1));
    assert_eq!(w.available("wes"), 7777);
    w.verify();
}

both!(a_resumed_run_writes_its_whole_file_again);

/// A run killed after it marked one of its two PayPal payouts sent: the run that takes its lock
/// over writes the file with both again, and marks the other.
fn a_resumed_run_writes_its_whole_file_again(backend: Backend) {
    use clickgate::payouts::{steps, Payout, PayoutStore, Run, Trigger};
    let mut w = World::new(backend);
    w.add_partner("pam", PayoutMethod::Paypal, None, Some("pam@pay.example.com"));
    w.add_partner("pia", PayoutMethod::Paypal, None, Some("pia@pay.example.com"));
    w.earn("shop", "pam", 51_230);
    w.earn("shop", "pia", 99_990);
    let t = T0 + 500 * DAY_MS;
    let run = Run {
        id: Run::new_id(t, 9),
        program: None,
        currency: None,
        trigger: Trigger::Cli,
        finished: false,
        started_ms: t,
        finished_ms: None,
    };
    let payout = |partner: &str, amount_minor: i64| Payout {
        id: payout_id(&run.id, partner, usd()),
        run_id: run.id.clone(),
        partner: partner.into(),
        currency: usd(),
        amount_minor,
        method: PayoutMethod::Paypal,
        destination: format!("{partner}@pay.example.com"),
        status: PayoutStatus::Created,
        reference: None,
        failure: None,
        insufficient: false,
        created_ms: t,
        sent_ms: None,
        settled_ms: None,
    };
    let (pam, pia) = (payout("pam", 5123), payout("pia", 9999));
    w.db()
        .write(|tx| {
            tx.take_lock("killed-process", &run.id, t, t + 1000)?;
            tx.insert_run(&run)?;
            steps::create(tx, &pam, &["shop".to_string()])?;
            steps::create(tx, &pia, &["shop".to_string()])?;
            steps::send(tx, &pam.id, Some("killed.csv"), t)?;
            Ok(())
        })
        .unwrap();
    let desk = w.desk(None, None);
    let resumed = desk.run(&req(false), &clock(t + 1001)).unwrap();
    assert!(resumed.resumed && resumed.run_id == run.id, "{resumed:?}");
    assert_eq!((resumed.sent.count, resumed.sent.amount_minor), (1, 9999), "only pia was left to mark");
    let lines = export::read(&w.export_dir.join(format!("{}-paypal-USD.csv", run.id)), ExportFormat::Paypal).unwrap();
    assert_eq!(export::totals(&lines).unwrap(), (2, 5123 + 9999), "the file holds both again");
    let all = desk.payouts(&PayoutFilter { run: Some(run.id.clone()), limit: 10, ..Default::default() }).unwrap();
    assert!(all.iter().all(|p| p.status == PayoutStatus::Sent), "{all:?}");
    assert_eq!(w.verify().pending_open, 2);
}
