//! `WebhookStore` on both backends: one suite, run on a fresh SQLite file and on a fresh
//! PostgreSQL schema.

use crate::storage::{pg, sqlite};
use crate::testing::PgSchema;
use crate::webhooks::endpoint::{DisabledReason, Endpoint, Status};
use crate::webhooks::signature::Secret;
use crate::webhooks::store::{AttemptRecord, DeliveryFilter, DeliveryStatus, EndpointChange, NewDelivery, StoredEvent, Then, WebhookStore};
use crate::webhooks::EventType;

fn endpoint(id_digit: char, partner: Option<&str>, types: &[EventType]) -> Endpoint {
    Endpoint {
        id: format!("we_{}", id_digit.to_string().repeat(24)),
        url: "https://hooks.example.com/in".into(),
        event_types: types.to_vec(),
        partner: partner.map(str::to_owned),
        secret: Secret::generate().unwrap(),
        previous: None,
        status: Status::Enabled,
        status_ms: 1_000,
        created_ms: 1_000 + id_digit as u64,
        failing_since_ms: None,
    }
}

fn delivery(e: &Endpoint, ev: &StoredEvent) -> NewDelivery {
    NewDelivery { endpoint_id: e.id.clone(), seq: ev.seq, event_id: ev.outbox().id().unwrap().to_string(), kind: ev.kind }
}

fn attempt(delivery_id: i64, endpoint_id: &str, n: u32, status: Option<u16>, then: Then, change: EndpointChange) -> AttemptRecord {
    AttemptRecord {
        delivery_id,
        endpoint_id: endpoint_id.into(),
        attempt: n,
        at_ms: 10_000 * u64::from(n),
        http_status: status,
        error: if status.is_none() { Some("connect") } else { None },
        latency_ms: 3,
        excerpt: "é".repeat(600).chars().take(512).collect(),
        replays: 0,
        then,
        endpoint: change,
    }
}

/// The suite; `add_event(type, cause, partner)` writes an outbox row as the writer does.
fn suite(store: &mut dyn WebhookStore, add_event: &mut dyn FnMut(&str, &str, Option<&str>)) {
    // Endpoints: stored, read back, rotated, listed oldest first.
    let a = endpoint('a', Some("bob"), &[EventType::ConversionAttributed, EventType::CommissionCreated]);
    let b = endpoint('b', None, &[EventType::CommissionCreated]);
    store.insert_endpoint(&a, &cli(1)).unwrap();
    store.insert_endpoint(&b, &cli(1)).unwrap();
    assert_eq!(store.endpoint(&a.id).unwrap().as_ref(), Some(&a));
    assert_eq!(store.endpoint("we_000000000000000000000000").unwrap(), None);
    let fresh = Secret::generate().unwrap();
    assert!(store.rotate_secret(&a.id, &fresh, 99_000, &cli(2)).unwrap());
    let rotated = store.endpoint(&a.id).unwrap().unwrap();
    assert_eq!((rotated.secret.clone(), rotated.previous.clone()), (fresh, Some((a.secret.clone(), 99_000))));
    assert_eq!(store.endpoints().unwrap().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [a.id.as_str(), b.id.as_str()]);

    // Fan-out: the cursor starts at the outbox's end and only moves forward.
    let start = store.cursor().unwrap();
    add_event("conversion.attributed", "conversion:cv_1:attributed", Some("bob"));
    add_event("commission.created", "commission:cm_1:created", Some("alice"));
    let events = store.events_after(start, 10).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!((events[0].kind, events[0].partner.as_deref()), (EventType::ConversionAttributed, Some("bob")));
    let wanted = vec![delivery(&a, &events[0]), delivery(&b, &events[1])];
    store.fan_out(&wanted, events[1].seq, 50_000).unwrap();
    store.fan_out(&wanted, events[0].seq, 50_000).unwrap();
    assert_eq!(store.cursor().unwrap(), events[1].seq, "the cursor never moves back");
    assert!(store.due(&a.id, 49_999, 10).unwrap().is_empty(), "not due before its time");
    let due_a = store.due(&a.id, 50_000, 10).unwrap();
    assert_eq!(due_a.len(), 1, "a second fan-out of the same deliveries adds none");
    assert_eq!((due_a[0].attempts, due_a[0].tries, &due_a[0].event), (0, 0, &events[0]));

    // Attempts: a failure retried, then a success; the endpoint fails, then succeeds.
    let id = due_a[0].delivery_id;
    store
        .record(&[attempt(id, &a.id, 1, Some(500), Then::Retry { next_attempt_ms: 80_000 }, EndpointChange::Failed { at_ms: 10_000 })])
        .unwrap();
    assert_eq!(store.endpoint(&a.id).unwrap().unwrap().failing_since_ms, Some(10_000));
    assert!(store.due(&a.id, 79_999, 10).unwrap().is_empty());
    assert_eq!(store.due(&a.id, 80_000, 10).unwrap()[0].attempts, 1);
    store.record(&[attempt(id, &a.id, 2, None, Then::Failed, EndpointChange::Failed { at_ms: 20_000 })]).unwrap();
    assert_eq!(store.endpoint(&a.id).unwrap().unwrap().failing_since_ms, Some(10_000), "failing since the first failure");
    let listed = store.deliveries(&DeliveryFilter { endpoint_id: Some(a.id.clone()), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].status.as_str(), listed[0].attempts, listed[0].attempt_log.len()), ("failed", 2, 2));
    assert_eq!(listed[0].attempt_log[0].http_status, Some(500));
    assert_eq!((listed[0].attempt_log[1].http_status, listed[0].attempt_log[1].error.as_deref()), (None, Some("connect")));
    assert_eq!(listed[0].attempt_log[0].response_excerpt.len(), 1024, "the excerpt is kept whole up to 1 KiB");

    // Replay: the delivery is pending again from the start of the schedule.
    let of_event = store.deliveries_of_event(&listed[0].event_id).unwrap();
    assert_eq!(of_event, vec![wanted[0].clone()]);
    assert_eq!(store.requeue(&of_event, 90_000).unwrap(), 1);
    let again = store.due(&a.id, 90_000, 10).unwrap();
    assert_eq!((again[0].attempts, again[0].tries, again[0].replays), (2, 0, 1));
    // A replay while that attempt is in flight: the attempt's record keeps the delivery pending.
    assert_eq!(store.requeue(&of_event, 91_000).unwrap(), 1);
    let delivered_then = attempt(id, &a.id, 3, Some(204), Then::Delivered, EndpointChange::Succeeded);
    store.record(&[AttemptRecord { replays: 1, ..delivered_then }]).unwrap();
    let replayed = store.due(&a.id, 91_000, 10).unwrap();
    assert_eq!((replayed.len(), replayed[0].attempts, replayed[0].tries, replayed[0].replays), (1, 3, 0, 2), "a replay in flight is kept");
    store.record(&[AttemptRecord { replays: 2, ..attempt(id, &a.id, 4, Some(204), Then::Delivered, EndpointChange::Succeeded) }]).unwrap();
    assert!(store.due(&a.id, 99_000, 10).unwrap().is_empty());
    assert_eq!(store.endpoint(&a.id).unwrap().unwrap().failing_since_ms, None);
    let delivered = DeliveryFilter { status: Some(DeliveryStatus::Delivered), limit: 10, ..Default::default() };
    assert_eq!(store.deliveries(&delivered).unwrap().len(), 1);

    // Disabling: once, with the first reason.
    let gone = EndpointChange::Disable { reason: DisabledReason::Gone, at_ms: 95_000 };
    let b_due = store.due(&b.id, 95_000, 10).unwrap();
    store.record(&[attempt(b_due[0].delivery_id, &b.id, 1, Some(410), Then::Failed, gone)]).unwrap();
    let failing = EndpointChange::Disable { reason: DisabledReason::Failing, at_ms: 96_000 };
    store.record(&[attempt(b_due[0].delivery_id, &b.id, 2, Some(500), Then::Failed, failing)]).unwrap();
    let b_now = store.endpoint(&b.id).unwrap().unwrap();
    assert_eq!((b_now.status, b_now.status_ms), (Status::Disabled(DisabledReason::Gone), 95_000));
    // Enabling again: enabled from then, its failure record cleared; again changes nothing.
    assert!(store.enable(&b.id, 97_000, &cli(97_000)).unwrap());
    assert!(store.enable(&b.id, 98_000, &cli(98_000)).unwrap());
    let b_now = store.endpoint(&b.id).unwrap().unwrap();
    assert_eq!((b_now.status, b_now.status_ms, b_now.failing_since_ms), (Status::Enabled, 97_000, None));
    assert!(!store.enable("we_nosuch", 97_000, &cli(97_000)).unwrap());

    // Cursor pages: newest first, strictly before the cursor.
    let all = store.deliveries(&DeliveryFilter { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].delivery_id > all[1].delivery_id);
    let next = store.deliveries(&DeliveryFilter { before_id: Some(all[0].delivery_id), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(next, all[1..].to_vec());
    // A partner's view: deliveries to the endpoints registered for that partner only.
    let bobs = store.deliveries(&DeliveryFilter { partner: Some("bob".into()), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(bobs.iter().map(|d| d.endpoint_id.as_str()).collect::<Vec<_>>(), [a.id.as_str()]);
    assert!(store.deliveries(&DeliveryFilter { partner: Some("alice".into()), limit: 10, ..Default::default() }).unwrap().is_empty());

    // Removal takes the deliveries and attempts with it; purge drops deliveries of purged events.
    assert_eq!(store.purge_deliveries(&b.id, events[1].seq + 1).unwrap(), 1);
    assert!(store.delete_endpoint(&a.id, &cli(3)).unwrap());
    assert!(!store.delete_endpoint(&a.id, &cli(3)).unwrap());
    assert!(store.deliveries(&DeliveryFilter { limit: 10, ..Default::default() }).unwrap().is_empty());
    assert_eq!(store.first_event_seq().unwrap(), Some(events[0].seq));
}

#[test]
fn the_webhook_store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sqlite::migrate(dir.path()).unwrap();
    let conn = rusqlite::Connection::open(sqlite::path(dir.path())).unwrap();
    let mut store = sqlite::SqliteWebhooks::open(dir.path()).unwrap();
    suite(&mut store, &mut |kind, cause, partner| {
        conn.execute(
            "INSERT INTO webhook_events (type, cause, partner, occurred_ms, data) VALUES (?1, ?2, ?3, 1763800000000, '{\"x\":1}')",
            rusqlite::params![kind, cause, partner],
        )
        .unwrap();
    });
    audited(&sqlite::SqliteCatalog::connect(dir.path()).unwrap());
}

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn the_webhook_store_on_postgresql() {
    let schema = PgSchema::new("webhooks_store");
    pg::migrate(&schema.url).unwrap();
    let mut client = schema.client();
    let mut store = pg::PgWebhooks::open(&schema.url).unwrap();
    // One worker of the schema leads; another stands by until the leader's connection goes.
    let mut other = pg::PgWebhooks::open(&schema.url).unwrap();
    assert!(store.lead().unwrap());
    assert!(store.lead().unwrap(), "a leader stays the leader");
    assert!(!other.lead().unwrap());
    drop(store);
    // The server ends the dropped session, and frees its lock, a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !other.lead().unwrap() {
        assert!(std::time::Instant::now() < deadline, "the one standing by never took over");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut store = other;
    suite(&mut store, &mut |kind, cause, partner| {
        client
            .execute(
                "INSERT INTO webhook_events (type, cause, partner, occurred_ms, data) VALUES ($1, $2, $3, 1763800000000, '{\"x\":1}')",
                &[&kind, &cause, &partner],
            )
            .unwrap();
    });
    audited(&pg::PgCatalog::connect(&schema.url).unwrap());
}

/// The suite's endpoint writes, each in the audit log with the endpoint before and after and
/// never a secret; the writes that found no endpoint are not there.
fn audited(log: &dyn crate::audit::AuditLog) {
    let q = crate::audit::Query { object_type: Some("webhook_endpoint".into()), limit: 100, ..Default::default() };
    let rows = log.audit_page(&q).unwrap();
    let (a, b) = (endpoint('a', None, &[]).id, endpoint('b', None, &[]).id);
    let seen: Vec<(&str, &str, bool, bool)> =
        rows.iter().map(|r| (r.action, r.object_id.as_str(), r.before.is_some(), r.after.is_some())).collect();
    assert_eq!(
        seen,
        [
            ("webhook_endpoint.create", a.as_str(), false, true),
            ("webhook_endpoint.create", b.as_str(), false, true),
            ("webhook_endpoint.rotate_secret", a.as_str(), true, true),
            ("webhook_endpoint.enable", b.as_str(), true, true),
            ("webhook_endpoint.enable", b.as_str(), true, true),
            ("webhook_endpoint.delete", a.as_str(), true, false),
        ]
    );
    let rotated = &rows[2];
    assert!(rotated.before.as_ref().unwrap()["previous_secret_until_ms"].is_null());
    assert_eq!(rotated.after.as_ref().unwrap()["previous_secret_until_ms"].as_u64(), Some(99_000));
    assert!(!serde_json::to_string(&rows).unwrap().contains("whsec_"), "no secret reaches the log");
}

fn cli(at_ms: u64) -> crate::audit::Stamp {
    crate::audit::Stamp::new(crate::audit::Actor::Cli, at_ms)
}
