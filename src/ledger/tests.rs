//! The same suite against both backends: each case is a generic fn over a `Harness`, and
//! `conformance!` (`storage::conformance`) makes one test per backend. PostgreSQL tests run in
//! a schema of their own; they are ignored unless asked for (`cargo test -- --include-ignored`),
//! and then a missing server fails them with a message naming it.

mod concurrent;
mod harness;
mod random;
mod savepoint;
mod tamper;

use crate::storage::conformance::conformance;
use harness::{Harness, Ledger};

use super::*;
use crate::model::Currency;

fn dollars() -> Currency {
    Currency::parse("USD").unwrap()
}

fn euros() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn acct(kind: AccountKind, owner: &str) -> AccountKey {
    AccountKey::new(kind, owner, dollars())
}

fn expense() -> AccountKey {
    acct(AccountKind::ProgramExpense, "demo")
}

fn payable(partner: &str) -> AccountKey {
    acct(AccountKind::PartnerPayable, partner)
}

/// A USD transfer from the demo program's expense to `partner`'s payable account.
fn transfer(cause: &str, kind: TransferKind, partner: &str, amount_minor: i64, pending: Option<&str>) -> TransferRequest {
    TransferRequest {
        id: TransferId::derive(cause),
        cause: cause.to_string(),
        debit: expense(),
        credit: payable(partner),
        amount_minor,
        currency: dollars(),
        kind,
        subject: None,
        pending_id: pending.map(TransferId::derive),
        at_ms: 1_763_800_000_000,
    }
}

fn single(cause: &str, amount_minor: i64) -> TransferRequest {
    transfer(cause, TransferKind::Single, "alice", amount_minor, None)
}

fn pending(cause: &str, amount_minor: i64) -> TransferRequest {
    transfer(cause, TransferKind::Pending, "alice", amount_minor, None)
}

fn post(cause: &str, pending_cause: &str, amount_minor: i64) -> TransferRequest {
    transfer(cause, TransferKind::Post, "alice", amount_minor, Some(pending_cause))
}

fn void(cause: &str, pending_cause: &str, amount_minor: i64) -> TransferRequest {
    transfer(cause, TransferKind::Void, "alice", amount_minor, Some(pending_cause))
}

fn bal(debits_pending: i64, credits_pending: i64, debits_posted: i64, credits_posted: i64) -> Balance {
    Balance { debits_pending, credits_pending, debits_posted, credits_posted }
}

/// Applies each request in its own committed transaction.
fn apply_all<H: Harness>(h: &mut H, reqs: &[TransferRequest]) -> Vec<Result<Applied, LedgerError>> {
    reqs.iter().map(|r| h.run(|tx| apply(tx, r))).collect()
}

fn ok<H: Harness>(h: &mut H, r: &TransferRequest) -> Applied {
    h.run(|tx| apply(tx, r)).unwrap_or_else(|e| panic!("{}: {e}", r.cause))
}

fn err<H: Harness>(h: &mut H, r: &TransferRequest) -> LedgerError {
    match h.run(|tx| apply(tx, r)) {
        Ok(a) => panic!("{} was applied ({a:?}), expected an error", r.cause),
        Err(e) => e,
    }
}

fn balances<H: Harness>(h: &mut H) -> (Balance, Balance) {
    h.run(|tx| (tx.balance(&expense()).unwrap(), tx.balance(&payable("alice")).unwrap()))
}

fn clean<H: Harness>(h: &mut H) -> VerifyReport {
    h.run(|tx| verify(tx)).unwrap_or_else(|e| panic!("verify: {e}"))
}

fn idempotent_retry<H: Harness>(h: &mut H) {
    let r = single("conversion:cv_1:partner:alice:accrue", 1500);
    assert_eq!(ok(h, &r), Applied::Created(1));
    assert_eq!(ok(h, &r), Applied::AlreadyExists);
    // A retry later carries a later time; the first one stays.
    let later = TransferRequest { at_ms: r.at_ms + 60_000, ..r.clone() };
    assert_eq!(ok(h, &later), Applied::AlreadyExists);
    assert_eq!(h.run(|tx| tx.get_transfer(&r.id).unwrap().unwrap().transfer.at_ms), r.at_ms);
    assert_eq!(balances(h), (bal(0, 0, 1500, 0), bal(0, 0, 0, 1500)));
    let report = clean(h);
    assert_eq!((report.transfers, report.accounts, report.head_seq), (1, 2, 1));
}

fn retry_with_a_changed_field_is_a_mismatch<H: Harness>(h: &mut H) {
    let r = single("conversion:cv_2:partner:alice:accrue", 900);
    ok(h, &r);
    let changes: [(&str, TransferRequest); 5] = [
        ("amount_minor", TransferRequest { amount_minor: 901, ..r.clone() }),
        ("credit", TransferRequest { credit: payable("bob"), ..r.clone() }),
        ("kind", TransferRequest { kind: TransferKind::Pending, ..r.clone() }),
        ("subject", TransferRequest { subject: Some("cm_2".into()), ..r.clone() }),
        ("debit", TransferRequest { debit: acct(AccountKind::PartnerPending, "alice"), ..r.clone() }),
    ];
    for (field, changed) in changes {
        let e = err(h, &changed);
        assert_eq!(e, LedgerError::Mismatch { id: r.id, field }, "changing {field}");
        assert!(e.to_string().contains(&r.id.to_string()) && e.to_string().contains(field), "{e}");
    }
    assert_eq!(h.run(|tx| tx.head().unwrap().0), 1, "a refused transfer writes nothing");
    assert_eq!(balances(h), (bal(0, 0, 900, 0), bal(0, 0, 0, 900)));
    clean(h);
}

fn two_phase_post_partial_post_and_void<H: Harness>(h: &mut H) {
    ok(h, &pending("p1", 1000));
    assert_eq!(balances(h), (bal(1000, 0, 0, 0), bal(0, 1000, 0, 0)));
    assert_eq!(ok(h, &post("p1:post", "p1", 1000)), Applied::Created(2));
    assert_eq!(balances(h), (bal(0, 0, 1000, 0), bal(0, 0, 0, 1000)));

    ok(h, &pending("p2", 1000));
    ok(h, &post("p2:post", "p2", 600));
    assert_eq!(balances(h), (bal(0, 0, 1600, 0), bal(0, 0, 0, 1600)), "the 400 not posted is released");

    ok(h, &pending("p3", 700));
    assert_eq!(balances(h), (bal(700, 0, 1600, 0), bal(0, 700, 0, 1600)));
    ok(h, &void("p3:void", "p3", 700));
    assert_eq!(balances(h), (bal(0, 0, 1600, 0), bal(0, 0, 0, 1600)));

    let report = clean(h);
    assert_eq!((report.transfers, report.pending_open), (6, 0));
    let usd = &report.currencies[0];
    assert_eq!((usd.currency, usd.transfers, usd.posted_minor, usd.pending_minor), (dollars(), 6, 1600, 0));
}

fn a_pending_is_resolved_once<H: Harness>(h: &mut H) {
    ok(h, &pending("p", 1000));
    let first = post("p:post", "p", 400);
    ok(h, &first);
    let by = first.id;
    let pending_id = TransferId::derive("p");
    let again = post("p:post-again", "p", 100);
    assert_eq!(err(h, &again), LedgerError::PendingAlreadyResolved { id: again.id, pending_id, by });
    let v = void("p:void", "p", 1000);
    assert_eq!(err(h, &v), LedgerError::PendingAlreadyResolved { id: v.id, pending_id, by });
    assert_eq!(ok(h, &first), Applied::AlreadyExists, "a retry of the resolution is still a no-op");
    // The resolution is stored, not remembered: a new connection refuses it too.
    h.reopen();
    assert!(matches!(err(h, &again), LedgerError::PendingAlreadyResolved { .. }));
    assert_eq!(ok(h, &first), Applied::AlreadyExists);
    assert_eq!(balances(h), (bal(0, 0, 400, 0), bal(0, 0, 0, 400)));
    assert_eq!(clean(h).pending_open, 0);
}

fn resolutions_are_checked_against_their_pending<H: Harness>(h: &mut H) {
    ok(h, &pending("p", 1000));
    ok(h, &single("s", 50));
    let id = |c: &str| TransferId::derive(c);
    let pid = id("p");
    let r = post("too-much", "p", 1001);
    assert_eq!(err(h, &r), LedgerError::AmountExceedsPending { id: r.id, pending_id: pid, amount_minor: 1001, pending_minor: 1000 });
    let r = post("nowhere", "missing", 10);
    assert_eq!(err(h, &r), LedgerError::PendingNotFound { id: r.id, pending_id: id("missing") });
    let r = post("of-a-single", "s", 10);
    assert_eq!(err(h, &r), LedgerError::PendingNotFound { id: r.id, pending_id: id("s") });
    let r = transfer("other-partner", TransferKind::Post, "bob", 10, Some("p"));
    assert_eq!(err(h, &r), LedgerError::PendingMismatch { id: r.id, pending_id: pid, field: "credit" });
    let r = void("half-void", "p", 500);
    assert!(matches!(err(h, &r), LedgerError::Invalid { field: "amount_minor", .. }));
    let eur = |cause: &str| TransferRequest {
        debit: AccountKey::new(AccountKind::ProgramExpense, "demo", euros()),
        credit: AccountKey::new(AccountKind::PartnerPayable, "alice", euros()),
        currency: euros(),
        ..post(cause, "p", 10)
    };
    assert_eq!(err(h, &eur("in-euros")), LedgerError::CurrencyMismatch { id: id("in-euros"), field: "pending transfer" });
    assert_eq!(h.run(|tx| tx.head().unwrap().0), 2, "nothing refused was written");
    assert_eq!(clean(h).pending_open, 1);
}

fn malformed_transfers_are_refused<H: Harness>(h: &mut H) {
    let r = single("zero", 0);
    assert_eq!(err(h, &r), LedgerError::NonPositiveAmount { id: r.id, amount_minor: 0 });
    let r = single("negative", -5);
    assert_eq!(err(h, &r), LedgerError::NonPositiveAmount { id: r.id, amount_minor: -5 });
    let r = TransferRequest { credit: expense(), ..single("self", 5) };
    assert_eq!(err(h, &r), LedgerError::SameAccount { id: r.id, account: expense() });
    let r = TransferRequest { debit: AccountKey::new(AccountKind::ProgramExpense, "demo", euros()), ..single("mixed", 5) };
    assert_eq!(err(h, &r), LedgerError::CurrencyMismatch { id: r.id, field: "debit" });
    let r = TransferRequest { id: TransferId::derive("something else"), ..single("forged", 5) };
    assert!(matches!(err(h, &r), LedgerError::Invalid { field: "id", .. }));
    let r = TransferRequest { pending_id: Some(TransferId::derive("x")), ..single("single-with-pending", 5) };
    assert!(matches!(err(h, &r), LedgerError::Invalid { field: "pending_id", .. }));
    let r = TransferRequest { pending_id: None, ..post("post-without-pending", "x", 5) };
    assert!(matches!(err(h, &r), LedgerError::Invalid { field: "pending_id", .. }));
    // A lower-case or unknown code cannot reach the ledger: it is not a `Currency`.
    assert!(Currency::parse("usd").is_err());
    assert_eq!(h.run(|tx| tx.head().unwrap()), (0, [0; 32]));
    assert_eq!(clean(h).transfers, 0);
}

fn a_commission_is_posted_once<H: Harness>(h: &mut H) {
    let with = |r: TransferRequest| TransferRequest { subject: Some("cm_1".into()), ..r };
    ok(h, &with(pending("cm_1:accrue", 300)));
    ok(h, &with(post("cm_1:approve", "cm_1:accrue", 300)));
    ok(h, &with(single("cm_1:bonus", 20)));
    let twice = with(single("cm_1:bonus-again", 20));
    assert_eq!(
        err(h, &twice),
        LedgerError::SubjectAlreadyPosted {
            id: twice.id,
            subject: "cm_1".into(),
            kind: TransferKind::Single,
            by: TransferId::derive("cm_1:bonus")
        }
    );
    clean(h);
}

fn balances_across_accounts_and_currencies<H: Harness>(h: &mut H) {
    let eur = |cause: &str, debit: AccountKey, credit: AccountKey, a| TransferRequest {
        debit,
        credit,
        currency: euros(),
        ..transfer(cause, TransferKind::Single, "x", a, None)
    };
    let key = |kind, owner: &str| AccountKey::new(kind, owner, euros());
    let reqs = [
        single("u1", 100),
        transfer("u2", TransferKind::Single, "bob", 250, None),
        eur("e1", key(AccountKind::ProgramExpense, "shop"), key(AccountKind::PartnerPending, "alice"), 70),
        eur("e2", key(AccountKind::PartnerPending, "alice"), key(AccountKind::PartnerPayable, "alice"), 70),
        eur("e3", key(AccountKind::PartnerPayable, "alice"), key(AccountKind::PartnerPaid, "alice"), 30),
    ];
    assert!(apply_all(h, &reqs).into_iter().all(|r| matches!(r, Ok(Applied::Created(_)))));
    let all = h.run(|tx| tx.balances().unwrap());
    let expected = vec![
        (expense(), bal(0, 0, 350, 0)),
        (key(AccountKind::ProgramExpense, "shop"), bal(0, 0, 70, 0)),
        (key(AccountKind::PartnerPending, "alice"), bal(0, 0, 70, 70)),
        (key(AccountKind::PartnerPayable, "alice"), bal(0, 0, 30, 70)),
        (payable("alice"), bal(0, 0, 0, 100)),
        (payable("bob"), bal(0, 0, 0, 250)),
        (key(AccountKind::PartnerPaid, "alice"), bal(0, 0, 0, 30)),
    ];
    assert_eq!(all, expected);
    assert_eq!(h.run(|tx| tx.balance(&payable("nobody")).unwrap()), Balance::default());
    let report = clean(h);
    let totals: Vec<_> = report.currencies.iter().map(|c| (c.currency, c.transfers, c.posted_minor)).collect();
    assert_eq!(totals, vec![(euros(), 3, 170), (dollars(), 2, 350)]);
    let shown = report.to_string();
    assert!(shown.starts_with("ledger clean: 5 transfers, 7 accounts, 0 pending open, head seq 5 hash "), "{shown}");
    assert!(shown.ends_with("\nEUR: 3 transfers, posted 170 minor units, pending 0 minor units\nUSD: 2 transfers, posted 350 minor units, pending 0 minor units"), "{shown}");
}

fn transfers_are_append_only<H: Harness>(h: &mut H) {
    ok(h, &single("s", 10));
    let update = h.raw("UPDATE ledger_transfers SET amount_minor = 11 WHERE seq = 1");
    assert!(update.as_ref().is_err_and(|e| e.contains("append-only")), "{update:?}");
    let delete = h.raw("DELETE FROM ledger_transfers WHERE seq = 1");
    assert!(delete.as_ref().is_err_and(|e| e.contains("append-only")), "{delete:?}");
    assert_eq!(clean(h).transfers, 1);
}

fn verify_walks_pages<H: Harness>(h: &mut H) {
    // More transfers than one page of `verify`, in one grouped transaction.
    let n = 2500;
    h.run(|tx| {
        for i in 0..n {
            apply(tx, &single(&format!("bulk:{i}"), 1 + i % 7)).unwrap();
        }
    });
    let report = clean(h);
    assert_eq!((report.transfers, report.head_seq), (n as u64, n as u64));
    assert_eq!(report.currencies[0].posted_minor, (0..n).map(|i| 1 + i % 7).sum::<i64>() as i128);
}

conformance!(transactions Ledger:
    idempotent_retry,
    retry_with_a_changed_field_is_a_mismatch,
    two_phase_post_partial_post_and_void,
    a_pending_is_resolved_once,
    resolutions_are_checked_against_their_pending,
    malformed_transfers_are_refused,
    a_commission_is_posted_once,
    balances_across_accounts_and_currencies,
    transfers_are_append_only,
    verify_walks_pages,
    random_sequences_stay_consistent,
);

use random::random_sequences_stay_consistent;

#[test]
fn ids_derive_from_causes_and_show_as_hex() {
    let a = TransferId::derive("conversion:cv_1:partner:alice:accrue");
    assert_eq!(a, TransferId::derive("conversion:cv_1:partner:alice:accrue"));
    assert_ne!(a, TransferId::derive("conversion:cv_1:partner:alice:approve"));
    let hex = a.to_string();
    assert_eq!(hex.len(), 32);
    assert_eq!(TransferId::from_hex(&hex), Some(a));
    assert_eq!(TransferId::from_hex("zz"), None);
    assert_eq!(payable("alice").to_string(), "partner_payable:alice:USD");
}

#[test]
fn ids_of_causes_about_a_timed_id_start_with_its_time() {
    let reserve = |id: &str| TransferId::derive(&format!("commission:{id}:reserve:0"));
    let early = reserve("cm_65f0000011111111aaaaaaaa");
    assert_eq!(early.0[..4], [0x65, 0xf0, 0x00, 0x00], "the subject's first 8 hex digits lead");
    let later = reserve("cm_65f0000122222222bbbbbbbb");
    assert!(early < later, "a later second sorts after an earlier one");
    assert_ne!(early.0[4..], reserve("cm_65f0000011111111aaaaaaab").0[4..], "the rest is the cause's hash");
    assert_ne!(early, TransferId::derive("commission:cm_65f0000011111111aaaaaaaa:approve"));
    // Anything else in that place keeps the whole hash: the same bytes as without the rule.
    for cause in ["commission:cm_65f0000x11111111aaaaaaaa:reserve:0", "a:bcdef_12345678", "x:cm_1234567", "x:CM_12345678", "cm_12345678"] {
        use sha2::Digest;
        let hash = sha2::Sha256::new().chain_update(b"clickgate.ledger.transfer-id.v1\0").chain_update(cause.as_bytes()).finalize();
        assert_eq!(TransferId::derive(cause).0[..], hash[..16], "{cause}");
    }
}

#[test]
fn the_hash_covers_every_field() {
    let base = StoredTransfer::chain(1, [0; 32], TransferRequest { subject: Some("c".into()), ..single("h", 5) });
    let variants = [
        TransferRequest { amount_minor: 6, ..base.transfer.clone() },
        TransferRequest { at_ms: 1, ..base.transfer.clone() },
        TransferRequest { subject: None, ..base.transfer.clone() },
        TransferRequest { subject: Some("d".into()), ..base.transfer.clone() },
        TransferRequest { credit: payable("bob"), ..base.transfer.clone() },
        TransferRequest { kind: TransferKind::Pending, ..base.transfer.clone() },
        TransferRequest { cause: "h2".into(), ..base.transfer.clone() },
    ];
    for v in variants {
        assert_ne!(chain_hash(&[0; 32], 1, &v), base.hash, "{v:?}");
    }
    assert_ne!(chain_hash(&[0; 32], 2, &base.transfer), base.hash, "seq");
    assert_ne!(chain_hash(&[1; 32], 1, &base.transfer), base.hash, "prev_hash");
    assert_eq!(base.computed_hash(), base.hash);
}
