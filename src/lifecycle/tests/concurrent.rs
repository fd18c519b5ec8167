//! Two writers on one PostgreSQL store (cluster mode), under its default READ COMMITTED: a
//! step that starts while another step's transaction is open must act on what that step
//! committed, not on what it read before. SQLite has one writer at a time, so only
//! PostgreSQL is raced here.

use std::time::{Duration, Instant};

use super::super::*;
use super::harness::{pay_by_hand, Harness, Pg};
use super::{accrue_at, approved, pct, rules, run_id, shares, stored, usd, LOCKED_UNTIL, PROGRAM, T0};
use crate::commission::{Bonus, Metric};
use crate::payouts::{PayoutError, PayoutTx};
use crate::storage::pg::PgTx;

/// Runs `first` in a transaction, then `second` in another on a thread of its own; commits
/// the first once the second waits on one of its locks; the second's answer, after its commit.
fn race<R: Send>(h: &Pg, first: impl FnOnce(&mut dyn PayoutTx), second: impl FnOnce(&mut dyn PayoutTx) -> R + Send) -> R {
    let (mut a, mut b, mut watcher) = (h.second_client(), h.second_client(), h.second_client());
    let b_pid: i32 = b.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut ta = a.transaction().unwrap();
    first(&mut PgTx::new(&mut ta));
    std::thread::scope(|s| {
        let racer = s.spawn(move || {
            let mut tb = b.transaction().unwrap();
            let r = second(&mut PgTx::new(&mut tb));
            tb.commit().unwrap();
            r
        });
        // Commit only once the racer is blocked, so it has started before the commit.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = watcher.query_opt("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", &[&b_pid]).unwrap();
            if row.and_then(|r| r.get::<_, Option<String>>(0)).as_deref() == Some("Lock") {
                break;
            }
            assert!(Instant::now() < deadline && !racer.is_finished(), "the second writer never waited for the first");
            std::thread::sleep(Duration::from_millis(5));
        }
        ta.commit().unwrap();
        racer.join().unwrap()
    })
}

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn a_payout_racing_another_is_refused_on_postgres() {
    let mut h = Pg::connect();
    let id = approved(&mut h, "cv_1");
    let at = LOCKED_UNTIL + DAY_MS;
    let (a, b) = (run_id(1), run_id(2));
    let first = |tx: &mut dyn PayoutTx| drop(pay_by_hand(tx, &a, "alice", usd(), at).unwrap().unwrap());
    let second = race(&h, first, |tx| pay_by_hand(tx, &b, "alice", usd(), at));
    // The second planned the commission before the first committed; holding it too would be a
    // second payout of the same money.
    assert!(matches!(&second, Err(PayoutError::Conflict(m)) if m.contains("no unpaid commission left")), "{second:?}");
    let paid_by = crate::payouts::state::payout_id(&a, "alice", usd());
    assert_eq!(stored(&mut h, &id).payout_id.as_deref(), Some(paid_by.as_str()));
    let kinds: Vec<_> = h.run(|tx| tx.events_of(&id)).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["created", "approved", "paid"]);
    h.verify();
}

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn accruals_racing_in_one_period_both_count_on_postgres() {
    let mut h = Pg::connect();
    // The second conversion of the period earns the bonus: only if it sees the first.
    let rs = rules(RuleSet { bonuses: vec![Bonus { metric: Metric::Conversions, threshold: 2, amount_minor: 300 }], ..RuleSet::default() });
    let sale = |conv| Sale { conversion_id: conv, program: PROGRAM, currency: usd(), amount_minor: 1_000, occurred_at_ms: T0 };
    let split = shares(&[("alice", 1_000)]);
    let second = race(&h, |tx| drop(accrue(tx, &sale("cv_1"), &split, &rs, T0).unwrap()), |tx| accrue(tx, &sale("cv_2"), &split, &rs, T0));
    let items: Vec<_> = second.unwrap().into_iter().map(|c| (c.item, c.amount_minor)).collect();
    assert_eq!(items, [("base".to_string(), 100), ("bonus:0".to_string(), 300)]);
    let key = PeriodRef { program: PROGRAM.into(), partner: "alice".into(), currency: usd(), label: "2026-03".into() };
    let state = h.run(|tx| tx.period_state(&key)).unwrap();
    assert_eq!(state, PeriodState { volume_minor: 2_000, conversions: 2, commission_minor: 500, bonuses_paid: 1 });
    h.verify();
}

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn sweeps_racing_approve_once_on_postgres() {
    let mut h = Pg::connect();
    let made = accrue_at(&mut h, &pct(1000), "cv_1", 10_000, &[("alice", 10_000)]);
    let second = race(&h, |tx| drop(approve_due(tx, LOCKED_UNTIL, 10).unwrap()), |tx| approve_due(tx, LOCKED_UNTIL + 1, 10));
    assert!(second.unwrap().is_empty(), "the first sweep approved it");
    let c = stored(&mut h, &made[0].id);
    assert_eq!((c.status, c.approved_at_ms), (CommissionStatus::Approved, Some(LOCKED_UNTIL as i64)));
    let kinds: Vec<_> = h.run(|tx| tx.events_of(&c.id)).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["created", "approved"]);
    h.verify();
}
