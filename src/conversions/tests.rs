use super::*;
use crate::attribution::engine::{Method, Share};
use crate::attribution::Model;
use crate::commission::ProgramRules;
use crate::conversions::view::LinkDaysScope;
use crate::model::Channel;
use std::collections::BTreeMap;
use std::sync::Arc;

struct Fixed;

impl Attributor for Fixed {
    fn attribute(&self, c: &NewConversion) -> Attribution {
        Attribution {
            method: Method::Coupon,
            model: Model::LastClick,
            window_days: 30,
            half_life_hours: None,
            shares: vec![Share { partner: "bob".into(), amount_minor: c.amount_minor }],
            touches: vec![],
            notes: vec![],
        }
    }

    fn commission_rules(&self, _program: &str) -> Arc<ProgramRules> {
        Arc::default()
    }
}

mod backend;
mod days;
mod events;
mod plan;

use crate::storage::conformance::conformance;
use backend::Backend;
use days::partner_days_add_up_every_credited_share;
use events::every_change_writes_its_webhook_events_once;

conformance!(stores Backend:
    records_once_and_replays_the_first_answer,
    idempotency_keys_replay_or_conflict,
    transitions_follow_the_lifecycle,
    concurrent_writes_are_grouped_and_each_order_is_recorded_once,
    a_reopened_store_still_replays,
    the_first_answer_built_in_memory_is_what_a_read_back_renders,
    a_job_failing_part_way_leaves_nothing_and_its_group_commits,
    the_explanation_starts_with_the_creation_once,
    partner_days_add_up_every_credited_share,
    a_stored_currency_that_does_not_parse_is_an_error_naming_the_column,
    every_change_writes_its_webhook_events_once,
);

fn conv(order: &str, amount: i64) -> NewConversion {
    NewConversion {
        order_id: order.into(),
        program: "demo".into(),
        amount_minor: amount,
        currency: Currency::parse("USD").unwrap(),
        occurred_at_ms: 1_763_800_000_000,
        click_id: None,
        visitor_id: None,
        coupon_code: Some("BOB10".into()),
        customer_ref: None,
        origin: Origin::Api,
    }
}

fn record_op(order: &str, amount: i64) -> Op {
    Op::Record(Fingerprinted::new(conv(order, amount)))
}

fn key(k: &str, body: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey { key: k.into(), request_hash: Sha256::digest(body).into(), render: crate::api::render })
}

/// A write's answer as the API renders it: its status, its JSON and whether it is a replay.
#[derive(Debug)]
struct Answered {
    status: u16,
    body: String,
    replayed: bool,
}

/// Writes through the writer and renders the outcome as the API does, so these tests read
/// the answers a client gets.
trait Answers {
    fn answer(
        &self,
        op: Op,
        key: Option<IdempotencyKey>,
        now_ms: u64,
    ) -> impl std::future::Future<Output = Result<Answered, ConversionError>>;
}

impl Answers for Conversions {
    async fn answer(&self, op: Op, key: Option<IdempotencyKey>, now_ms: u64) -> Result<Answered, ConversionError> {
        let (a, replayed) = crate::api::answered(self.write(op, key, now_ms).await?);
        Ok(Answered { status: a.status, body: a.body, replayed })
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn json(a: &Answered) -> Value {
    serde_json::from_str(&a.body).unwrap()
}

use serde_json::Value;

fn records_once_and_replays_the_first_answer(b: Backend) {
    let c = b.start();
    rt().block_on(async {
        let first = c.answer(record_op("o-1", 1250), None, 1).await.unwrap();
        assert_eq!((first.status, first.replayed), (201, false));
        let v = json(&first);
        assert_eq!(v["id"], conv("o-1", 1).id());
        assert_eq!(v["status"], "pending");
        assert_eq!(v["attribution"]["shares"][0]["partner"], "bob");
        let again = c.answer(record_op("o-1", 1250), None, 2).await.unwrap();
        assert_eq!((again.status, again.replayed, &again.body), (201, true, &first.body));
        let other = c.answer(record_op("o-1", 999), None, 3).await;
        assert!(matches!(other, Err(ConversionError::Conflict(m)) if m.contains("different fields")), "a changed retry is a conflict");
    });
}

/// A stored currency is read back only as a code that parses; anything else is an error that
/// names the column, never a guess.
fn a_stored_currency_that_does_not_parse_is_an_error_naming_the_column(b: Backend) {
    let c = b.start();
    let id = conv("o-1", 1250).id();
    rt().block_on(async { c.answer(record_op("o-1", 1250), None, 1).await.unwrap() });
    assert!(b.render(&id).is_some());
    b.execute("UPDATE conversions SET currency = 'usd'");
    let e = b.reader().get(&id).expect_err("a lower-case stored currency was read").to_string();
    assert!(e.contains("column currency: \"usd\" is not an ISO 4217 code"), "{e}");
}

fn idempotency_keys_replay_or_conflict(b: Backend) {
    let c = b.start();
    rt().block_on(async {
        let a = c.answer(record_op("o-1", 100), key("k1", "body-a"), 1).await.unwrap();
        let b = c.answer(record_op("o-1", 100), key("k1", "body-a"), 2).await.unwrap();
        assert!(b.replayed && b.body == a.body);
        let clash = c.answer(record_op("o-2", 100), key("k1", "body-b"), 3).await;
        assert!(matches!(clash, Err(ConversionError::Conflict(m)) if m.contains("Idempotency-Key")));
    });
}

fn transitions_follow_the_lifecycle(b: Backend) {
    let c = b.start();
    rt().block_on(async {
        let id = conv("o-1", 1000).id();
        c.answer(record_op("o-1", 1000), None, 1).await.unwrap();
        let t = |transition| Op::Transition { id: id.clone(), transition };
        let confirmed = c.answer(t(Transition::Confirm), None, 2).await.unwrap();
        assert_eq!(json(&confirmed)["status"], "confirmed");
        // Confirming twice changes nothing.
        let twice = c.answer(t(Transition::Confirm), None, 3).await.unwrap();
        assert_eq!(json(&twice)["events"].as_array().unwrap().len(), 2);
        let part = c.answer(t(Transition::Refund(Some(300))), key("r1", "300"), 4).await.unwrap();
        assert_eq!((json(&part)["status"].as_str(), json(&part)["refunded_minor"].as_i64()), (Some("confirmed"), Some(300)));
        // The same refund retried under its key is not refunded again.
        let retry = c.answer(t(Transition::Refund(Some(300))), key("r1", "300"), 5).await.unwrap();
        assert!(retry.replayed);
        let too_much = c.answer(t(Transition::Refund(Some(701))), key("r2", "701"), 6).await;
        assert!(matches!(too_much, Err(ConversionError::Invalid { field: "amount_minor", .. })));
        let cancel = c.answer(t(Transition::Cancel), None, 7).await;
        assert!(matches!(cancel, Err(ConversionError::Conflict(_))), "refunded sales are not cancelled");
        let rest = c.answer(t(Transition::Refund(None)), key("r3", "rest"), 8).await.unwrap();
        assert_eq!((json(&rest)["status"].as_str(), json(&rest)["refunded_minor"].as_i64()), (Some("refunded"), Some(1000)));
        let none_left = c.answer(t(Transition::Refund(None)), key("r4", "rest"), 9).await;
        assert!(matches!(none_left, Err(ConversionError::Conflict(_))));
        let missing = c.answer(Op::Transition { id: "cv_nope".into(), transition: Transition::Confirm }, None, 10).await;
        assert!(matches!(missing, Err(ConversionError::NotFound(_))));
    });
}

fn concurrent_writes_are_grouped_and_each_order_is_recorded_once(b: Backend) {
    let c = b.start();
    let answers = rt().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..400 {
            let c = c.clone();
            // Every order is sent twice, concurrently.
            tasks.push(tokio::spawn(async move { c.answer(record_op(&format!("o-{}", i % 200), 10), None, 1).await }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap().unwrap());
        }
        out
    });
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 200);
    let reader = b.reader();
    let days = reader.program_days("demo", 0, u32::MAX).unwrap();
    assert_eq!(days.iter().map(|d| d.conversions).sum::<u64>(), 200);
    assert_eq!(days.iter().map(|d| d.revenue_minor).sum::<i64>(), 2000);
    let bob = reader.partner_days("bob", 0, u32::MAX).unwrap();
    assert_eq!(bob.iter().map(|d| d.revenue_minor).sum::<i64>(), 2000);
}

fn a_reopened_store_still_replays(b: Backend) {
    let first = rt().block_on(b.start().answer(record_op("o-1", 5), key("k", "b"), 1)).unwrap();
    let again = rt().block_on(b.start().answer(record_op("o-1", 5), key("k", "b"), 2)).unwrap();
    assert!(again.replayed);
    assert_eq!(again.body, first.body);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_fingerprint_hashes_the_canonical_json() {
    // Stored fingerprints and the idempotency request hashes built from them are compared byte
    // for byte with retries, across restarts and versions: what is hashed must never change.
    let c = conv("o-1", 1250);
    let canonical =
        r#"{"order_id":"o-1","program":"demo","amount_minor":1250,"currency":"USD","occurred_at_ms":1763800000000,"coupon_code":"BOB10"}"#;
    assert_eq!(serde_json::to_string(&c).unwrap(), canonical);
    let f = Fingerprinted::new(c.clone());
    assert_eq!(hex(f.fingerprint()), "90ac0d55388fb56652e3c2b46e9db61b5d92ad2efac7f8d906169a10de13380f");
    assert_eq!(f.conversion(), &c);
    let other_origin = Fingerprinted::new(NewConversion { origin: Origin::Import, ..c });
    assert_eq!(other_origin.fingerprint(), f.fingerprint(), "the origin is not part of what a conversion is");
}

/// Two partners share each sale, under tiers, a fixed fee, a bonus at the third conversion and
/// a per-partner override, so first answers carry several commissions and a bonus item.
struct Split(Arc<ProgramRules>);

fn touch(partner: &str, link: &str, channel: Channel, counted: bool, share_minor: Option<i64>) -> crate::attribution::engine::Touch {
    use crate::attribution::engine::{Source, Why};
    crate::attribution::engine::Touch {
        source: Source::Visitor,
        click_id: None,
        partner: partner.into(),
        link: Some(link.into()),
        channel: Some(channel),
        ts_ms: 1,
        verdict: None,
        reasons: vec![],
        counted,
        why: if counted { Why::Counted } else { Why::OutsideWindow },
        share_minor,
    }
}

impl Attributor for Split {
    fn attribute(&self, c: &NewConversion) -> Attribution {
        let alice = c.amount_minor * 2 / 3;
        Attribution {
            method: Method::Coupon,
            model: Model::Linear,
            window_days: 30,
            half_life_hours: None,
            shares: vec![
                Share { partner: "zed".into(), amount_minor: c.amount_minor - alice },
                Share { partner: "alice".into(), amount_minor: alice },
            ],
            // Zed's share through one link; Alice's through two links on two channels, one of
            // them touched twice (the second time for nothing); a touch that did not count.
            touches: vec![
                touch("zed", "z1", Channel::Web, true, Some(c.amount_minor - alice)),
                touch("alice", "a1", Channel::Qr, true, Some(alice / 2)),
                touch("alice", "a2", Channel::Web, true, Some(alice - alice / 2)),
                touch("alice", "a1", Channel::Qr, true, Some(0)),
                touch("zed", "z9", Channel::Email, false, None),
            ],
            notes: vec!["split".into()],
        }
    }

    fn commission_rules(&self, _program: &str) -> Arc<ProgramRules> {
        self.0.clone()
    }
}

fn the_first_answer_built_in_memory_is_what_a_read_back_renders(b: Backend) {
    let rules: ProgramRules = serde_json::from_value(serde_json::json!({
        "rules": {
            "fixed_minor": 25,
            "tiers": [{ "from_minor": 0, "percent_bps": 1000 }, { "from_minor": 5000, "percent_bps": 1500 }],
            "bonuses": [{ "metric": "conversions", "threshold": 3, "amount_minor": 700 }],
            "lock_days": 30
        },
        "partners": { "zed": { "percent_bps": 500, "lock_days": 10 } }
    }))
    .unwrap();
    let c = b.start_with(Box::new(Split(Arc::new(rules))), 64);
    let amounts = [3000, 0, 4500, 9999, 120];
    let record = |i: usize| {
        let mut n = conv(&format!("o-{i}"), amounts[i]);
        n.click_id = (i % 2 == 0).then(|| format!("click-{i}"));
        n.customer_ref = Some("cust \"7\"".into());
        Op::Record(Fingerprinted::new(n))
    };
    let mut answers = Vec::new();
    rt().block_on(async {
        for i in 0..amounts.len() {
            answers.push(c.answer(record(i), None, 1_763_900_000_123 + i as u64).await.unwrap());
        }
    });
    let mut bonuses = 0;
    for a in &answers {
        let v = json(a);
        let id = v["id"].as_str().unwrap();
        let read = b.render(id).unwrap();
        assert_eq!(a.body, read, "the first answer of {id} differs from its read-back");
        let items: Vec<&str> = v["commissions"].as_array().unwrap().iter().map(|c| c["item"].as_str().unwrap()).collect();
        bonuses += items.iter().filter(|i| i.starts_with("bonus:")).count();
    }
    assert_eq!(json(&answers[0])["commissions"].as_array().unwrap().len(), 2, "two partners, a base item each (the fixed fee is in it)");
    assert!(bonuses >= 1, "the third conversion reaches the bonus");

    // The answer is not kept: after later steps moved the rows on, a retry still gets the first
    // answer, rebuilt from them, while a read shows where they are now.
    let id = |i: usize| json(&answers[i])["id"].as_str().unwrap().to_string();
    let steps = [(0, Transition::Refund(Some(1000))), (2, Transition::Cancel), (3, Transition::Confirm), (4, Transition::Refund(None))];
    rt().block_on(async {
        for (i, t) in steps {
            c.answer(Op::Transition { id: id(i), transition: t }, None, 1_763_900_100_000).await.unwrap();
        }
        for (i, a) in answers.iter().enumerate() {
            let again = c.answer(record(i), None, 1_763_900_200_000).await.unwrap();
            assert_eq!((again.replayed, &again.body), (true, &a.body), "the retry of {}", id(i));
        }
    });
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(b.render_first(&id(i)).as_ref(), Some(&a.body));
    }
    for i in [0, 2, 3, 4] {
        assert_ne!(b.render(&id(i)).unwrap(), answers[i].body, "{} moved on", id(i));
    }
    assert_eq!(b.count("SELECT count(*) FROM idempotency_keys"), 0, "no copy of an answer is kept without a key");
}

/// Credits "bob" twice for an order id starting `dup`, which fails part-way through its
/// commissions (the second has the first's id); every other order is credited once.
struct Dup;

impl Attributor for Dup {
    fn attribute(&self, c: &NewConversion) -> Attribution {
        let share = Share { partner: "bob".into(), amount_minor: c.amount_minor };
        let shares = if c.order_id.starts_with("dup") { vec![share.clone(), share] } else { vec![share] };
        Attribution {
            method: Method::Coupon,
            model: Model::LastClick,
            window_days: 30,
            half_life_hours: None,
            shares,
            touches: vec![],
            notes: vec![],
        }
    }

    fn commission_rules(&self, _program: &str) -> Arc<ProgramRules> {
        Arc::new(serde_json::from_value(serde_json::json!({ "rules": { "percent_bps": 1000 } })).unwrap())
    }
}

fn a_job_failing_part_way_leaves_nothing_and_its_group_commits(b: Backend) {
    let c = b.start_with(Box::new(Dup), 64);
    let (ok_1, dup, ok_2) = rt().block_on(async {
        tokio::join!(
            c.answer(record_op("ok-1", 1000), None, 10),
            c.answer(record_op("dup-1", 1000), key("k-dup", "dup"), 10),
            c.answer(record_op("ok-2", 2000), None, 10)
        )
    });
    assert!(matches!(dup, Err(ConversionError::Commission(_))), "{dup:?}");
    assert_eq!(ok_1.unwrap().status, 201);
    assert_eq!(ok_2.unwrap().status, 201);
    let count = |sql: &str| b.count(sql);
    assert_eq!(count("SELECT count(*) FROM conversions"), 2);
    assert_eq!(
        (
            count("SELECT CAST(sum(conversions) AS BIGINT) FROM partner_days"),
            count("SELECT CAST(sum(revenue_minor) AS BIGINT) FROM partner_days")
        ),
        (2, 3000)
    );
    assert_eq!(count("SELECT count(*) FROM commissions"), 2, "the failed job's first commission is gone too");
    let accrued = if matches!(b, Backend::Sqlite(_)) { "commission_accrued" } else { "commission_accruals" };
    assert_eq!(count(&format!("SELECT count(*) FROM {accrued}")), 2);
    assert_eq!(count("SELECT count(*) FROM idempotency_keys"), 0, "a failed job stores no answer");
    assert_eq!(count("SELECT count(*) FROM webhook_events"), 4, "the failed job's events are gone with it");
    assert_eq!(count("SELECT count(*) FROM ledger_transfers"), 2);
    assert_eq!(count("SELECT debits_pending FROM ledger_balances WHERE kind = 'program_expense'"), 300);
    assert_eq!(b.verify().transfers, 2);
    // The same failure alone, in a group of its own, is refused the same way.
    let again = rt().block_on(c.answer(record_op("dup-1", 1000), None, 11));
    assert!(matches!(again, Err(ConversionError::Commission(_))), "{again:?}");
}

/// The creation is the conversion row (no `recorded` event row is written, and the schema
/// refuses one), and the explanation starts with it, once.
fn the_explanation_starts_with_the_creation_once(b: Backend) {
    let c = b.start();
    let id = conv("o-1", 1000).id();
    rt().block_on(async {
        c.answer(record_op("o-1", 1000), None, 7).await.unwrap();
        c.answer(Op::Transition { id: id.clone(), transition: Transition::Confirm }, None, 9).await.unwrap();
    });
    assert_eq!(b.count(&format!("SELECT count(*) FROM conversion_events WHERE conversion_id = '{id}'")), 1, "only the confirmation");
    let steps = |b: &Backend| -> Vec<(String, String)> {
        let v: Value = serde_json::from_str(&b.render(&id).unwrap()).unwrap();
        let text = |e: &Value, k: &str| e[k].as_str().unwrap().to_string();
        v["events"].as_array().unwrap().iter().map(|e| (text(e, "kind"), text(e, "at"))).collect()
    };
    let expected = vec![("recorded".to_string(), view::rfc3339(7)), ("confirmed".to_string(), view::rfc3339(9))];
    assert_eq!(steps(&b), expected);
}

/// Two writers on one PostgreSQL database, as two cores in cluster mode: the same orders sent
/// to both at once, and transitions on them through either. Each order is recorded once, a
/// losing writer's job is refused or replays and never counts twice, and the ledger verifies.
#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn two_writers_on_one_database_record_each_order_once() {
    let b = Backend::pg();
    let (one, two) = (b.start_with(Box::new(Split(Arc::default())), 32), b.start_with(Box::new(Split(Arc::default())), 32));
    let orders = 120;
    let (recorded, refused) = rt().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..orders {
            for w in [one.clone(), two.clone()] {
                tasks.push(tokio::spawn(async move { w.answer(record_op(&format!("o-{i}"), 1000 + i as i64), None, 1).await }));
            }
        }
        let (mut recorded, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(a) if !a.replayed => recorded += 1,
                Ok(_) => {}
                // The loser of a race on the same order id: its group ran again and this job
                // failed; the client's retry replays.
                Err(ConversionError::Storage(_) | ConversionError::NotStored(_)) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        (recorded, refused)
    });
    assert_eq!(recorded, orders, "each order recorded by exactly one writer ({refused} refused)");
    // Retries of every order replay on either writer.
    rt().block_on(async {
        for i in 0..orders {
            let w = if i % 2 == 0 { &one } else { &two };
            let a = w.answer(record_op(&format!("o-{i}"), 1000 + i as i64), None, 2).await.unwrap();
            assert!(a.replayed);
        }
        // Refunds and cancels through both writers at once.
        let mut tasks = Vec::new();
        for i in 0..orders {
            let id = conv(&format!("o-{i}"), 0).id();
            let w = if i % 3 == 0 { one.clone() } else { two.clone() };
            let t = if i % 2 == 0 { Transition::Cancel } else { Transition::Refund(Some(100)) };
            tasks.push(tokio::spawn(async move { w.answer(Op::Transition { id, transition: t }, None, 3).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    assert_eq!(b.count("SELECT count(*) FROM conversions"), orders as i64);
    assert_eq!(b.count("SELECT count(*) FROM conversions WHERE status = 'cancelled'"), orders as i64 / 2);
    assert_eq!(b.count("SELECT CAST(sum(refunded_minor) AS BIGINT) FROM conversions"), 100 * orders as i64 / 2);
    assert_eq!(b.count("SELECT count(*) FROM commission_accruals"), orders as i64);
    let report = b.verify();
    assert!(report.transfers > 2 * orders as u64, "{report}");
}

/// The server drops the writer's connections (a restart, a failover): the group that finds its
/// connection gone is answered with a storage error, a group whose flush finds the flush
/// connection gone is answered as not stored, each connection is made again, and the write,
/// retried under its key until answered, is recorded once.
#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn the_postgresql_writer_reconnects_after_the_server_drops_it() {
    let b = Backend::pg();
    let Backend::Pg(schema) = &b else { unreachable!("Backend::pg is PostgreSQL") };
    // Named, so this test ends only its own writer's connection.
    let url = format!("{}&application_name={}", schema.url, schema.name);
    let config =
        WriterConfig { commit_batch_len_max: 64, queue_len_max: 1024, idempotency_ttl_ms: 86_400_000, event_retention_ms: 30 * 86_400_000 };
    let c = crate::storage::pg::start(&url, config, Box::new(Fixed), crate::metrics::Metrics::new().api).unwrap();
    rt().block_on(c.answer(record_op("o-1", 100), None, 1)).unwrap();
    let ended: i64 = schema
        .client()
        .query_one("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", &[&schema.name])
        .unwrap()
        .get(0);
    assert_eq!(ended, 2, "the writer's group connection and its flush connection (`storage::pg::walflush`)");
    let mut failed = Vec::new();
    let second = loop {
        match rt().block_on(c.answer(record_op("o-2", 200), key("k-2", "o-2"), 2)) {
            Ok(a) => break a,
            Err(e @ (ConversionError::Storage(_) | ConversionError::NotStored(_))) => {
                failed.push(e.to_string());
                assert!(failed.len() < 4, "still failing after reconnecting: {failed:?}");
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(!failed.is_empty(), "the dropped connections were noticed");
    // A commit whose flush failed is kept and its retry replays it; one that failed is not.
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(second.replayed, failed.iter().any(|e| e.contains("durab")), "{failed:?}");
    let again = rt().block_on(c.answer(record_op("o-1", 100), None, 3)).unwrap();
    assert!(again.replayed);
    assert_eq!(b.count("SELECT count(*) FROM conversions"), 2);
    assert_eq!(b.count("SELECT count(*) FROM idempotency_keys"), 1);
}

/// SQLite: a group is answered only after an fdatasync of the WAL that follows its commit, and
/// a failed sync is never acknowledged, nor is anything after it (the kernel may report the
/// next sync clean after dropping the pages it could not write).
#[test]
fn a_group_whose_wal_cannot_be_synced_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        WriterConfig { commit_batch_len_max: 8, queue_len_max: 64, idempotency_ttl_ms: 86_400_000, event_retention_ms: 30 * 86_400_000 };
    let metrics = crate::metrics::Metrics::new().api;
    let c = crate::storage::sqlite::start(dir.path(), config, Box::new(Fixed), metrics.clone()).unwrap();
    let rt = rt();
    let a = rt.block_on(c.answer(record_op("o-1", 1000), None, 1_763_800_000_000)).unwrap();
    assert_eq!(a.status, 201);
    assert!(metrics.wal_syncs.get() >= 1, "the answer came after a sync of the WAL");
    // The sync thread opens the WAL by its path; without it, the sync fails.
    let wal = crate::storage::sqlite::path(dir.path()).with_extension("db-wal");
    std::fs::remove_file(&wal).unwrap();
    for order in ["o-2", "o-3"] {
        match rt.block_on(c.answer(record_op(order, 1000), None, 1_763_800_000_000)) {
            Err(ConversionError::NotStored(why)) => assert!(why.contains("durable"), "{order}: {why}"),
            other => panic!("{order}: acknowledged without a sync: {other:?}"),
        }
    }
}
