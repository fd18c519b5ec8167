//! The worker over a real SQLite file and real receivers on loopback sockets, with a manual
//! clock: each round is one `step` and the attempts it started, so the tests walk days of
//! retries in milliseconds and never assert a timing.

mod receiver;
mod ssrf;
mod transport;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use receiver::{reply, Receiver, Reply};

use super::*;
use crate::metrics::DeliveryOutcome;
use crate::storage::sqlite::{self, SqliteWebhooks};
use crate::webhooks::endpoint::DisabledReason;
use crate::webhooks::schedule::{DISABLE_AFTER_FAILING_MS, RETRY_DELAYS_MS};
use crate::webhooks::signature::{self, Secret};
use crate::webhooks::store::{DeliveryFilter, DeliveryView};
use crate::webhooks::{Admin, Envelope, EventId, EventType, Policy, Registration};

const T0: u64 = 1_763_800_000_000;
const HOUR_MS: u64 = 3_600_000;
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn policy() -> Policy {
    Policy::new(true, &["127.0.0.0/8".to_string()]).unwrap()
}

struct Harness {
    _dir: tempfile::TempDir,
    conn: rusqlite::Connection,
    clock: Arc<ManualClock>,
    worker: Worker,
    metrics: WebhookMetrics,
    admin: Admin,
    store: SqliteWebhooks,
    next_cause: u32,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_limits(|_| {})
    }

    fn with_limits(tune: impl FnOnce(&mut Limits)) -> Harness {
        Harness::build(tune, policy(), None)
    }

    fn build(tune: impl FnOnce(&mut Limits), policy: Policy, resolver: Option<Arc<dyn Resolver>>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        sqlite::migrate(dir.path()).unwrap();
        let clock = Arc::new(ManualClock(AtomicU64::new(T0)));
        let metrics = WebhookMetrics::register(&prometheus::Registry::new());
        let mut limits = Limits::from_config(&crate::config::Webhooks::default());
        tune(&mut limits);
        let mut transport = Transport::new(policy.clone(), Duration::from_secs(10)).unwrap();
        if let Some(r) = resolver {
            transport.resolver = r;
        }
        let store = Box::new(SqliteWebhooks::open(dir.path()).unwrap());
        let worker = Worker::new(store, transport, limits, clock.clone(), metrics.clone(), 7);
        Harness {
            conn: rusqlite::Connection::open(sqlite::path(dir.path())).unwrap(),
            admin: Admin::new(Box::new(SqliteWebhooks::open(dir.path()).unwrap()), policy),
            store: SqliteWebhooks::open(dir.path()).unwrap(),
            _dir: dir,
            clock,
            worker,
            metrics,
            next_cause: 0,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn set(&self, ms: u64) {
        self.clock.0.store(ms, Ordering::SeqCst);
    }

    /// Writes an outbox row as the conversion writer does; returns its `webhook-id`.
    fn event(&mut self, kind: EventType, partner: Option<&str>) -> String {
        self.next_cause += 1;
        let cause = format!("test:{}", self.next_cause);
        self.conn
            .execute(
                "INSERT INTO webhook_events (type, cause, partner, occurred_ms, data) VALUES (?1, ?2, ?3, ?4, '{\"n\":1}')",
                rusqlite::params![kind.as_str(), cause, partner, self.now() as i64],
            )
            .unwrap();
        EventId::derive(kind, &cause).unwrap().to_string()
    }

    async fn endpoint(&self, url: &str, types: &[EventType], partner: Option<&str>) -> Endpoint {
        let reg = Registration {
            url: url.into(),
            event_types: types.iter().map(|t| t.as_str().to_owned()).collect(),
            partner: partner.map(str::to_owned),
        };
        self.admin.add(&reg, self.now(), &crate::audit::Actor::Cli).await.unwrap()
    }

    /// One step and the attempts it started, recorded.
    async fn round(&mut self) {
        self.worker.step().await.unwrap();
        self.worker.settle().await.unwrap();
    }

    fn deliveries(&mut self, endpoint: &Endpoint) -> Vec<DeliveryView> {
        let filter = DeliveryFilter { endpoint_id: Some(endpoint.id.clone()), limit: 100, ..Default::default() };
        self.store.deliveries(&filter).unwrap()
    }

    fn stored(&mut self, endpoint: &Endpoint) -> Endpoint {
        self.store.endpoint(&endpoint.id).unwrap().unwrap()
    }
}

fn all_types() -> Vec<EventType> {
    EventType::ALL.to_vec()
}

#[tokio::test]
async fn a_failing_delivery_walks_the_whole_schedule_under_one_webhook_id_and_then_stops() {
    let mut h = Harness::new();
    let rx = Receiver::start(LOCAL).await;
    rx.script(&vec![reply(500); 20]);
    let ep = h.endpoint(&rx.url(), &all_types(), None).await;
    let id = h.event(EventType::CommissionCreated, Some("bob"));
    h.round().await;
    assert_eq!(rx.got().len(), 1, "the first attempt goes at once");
    let mut last = h.now();
    for (i, delay) in RETRY_DELAYS_MS.iter().enumerate() {
        // Jitter is ±10%: nothing before 90% of the delay, the attempt by 110%.
        h.set(last + delay * 89 / 100);
        h.round().await;
        assert_eq!(rx.got().len(), i + 1, "retry {} went before its delay of {delay} ms", i + 1);
        h.set(last + delay * 111 / 100);
        h.round().await;
        assert_eq!(rx.got().len(), i + 2, "retry {} did not go after its delay of {delay} ms", i + 1);
        last = h.now();
    }
    h.set(last + 30 * 86_400_000);
    h.round().await;
    let got = rx.got();
    assert_eq!(got.len(), 10, "ten attempts in all");
    assert!(got.iter().all(|g| g.headers["webhook-id"] == id), "the same webhook-id on every attempt");
    let stamps: Vec<u64> = got.iter().map(|g| g.headers["webhook-timestamp"].parse().unwrap()).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "each attempt is signed at its own time: {stamps:?}");
    let d = &h.deliveries(&ep)[0];
    assert_eq!((d.status.as_str(), d.attempts, d.attempt_log.len()), ("failed", 10, 10));
    assert!(d.attempt_log.iter().all(|a| a.http_status == Some(500) && a.response_excerpt == "{\"ok\":true}"));
    assert_eq!(h.metrics.deliveries(DeliveryOutcome::Retried), 9);
    assert_eq!(h.metrics.deliveries(DeliveryOutcome::Exhausted), 1);
    let stored = h.stored(&ep);
    assert_eq!((stored.status, stored.failing_since_ms), (Status::Enabled, Some(T0)), "3 days of failures do not disable");
}

#[tokio::test]
async fn two_failures_then_a_success_deliver_and_clear_the_failing_mark() {
    let mut h = Harness::new();
    let rx = Receiver::start(LOCAL).await;
    rx.script(&[reply(500), reply(302)]);
    let ep = h.endpoint(&rx.url(), &all_types(), None).await;
    h.event(EventType::ConversionAttributed, None);
    h.round().await;
    h.set(T0 + 6_000);
    h.round().await;
    assert_eq!(h.stored(&ep).failing_since_ms, Some(T0));
    h.set(T0 + 6_000 + 6 * 60_000);
    h.round().await;
    let d = &h.deliveries(&ep)[0];
    let statuses: Vec<Option<u16>> = d.attempt_log.iter().map(|a| a.http_status).collect();
    assert_eq!((d.status.as_str(), statuses), ("delivered", vec![Some(500), Some(302), Some(200)]), "a 3xx is a failure");
    assert_eq!(rx.got().len(), 3);
    assert_eq!(h.stored(&ep).failing_since_ms, None);
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_nothing_more_is_sent() {
    let mut h = Harness::new();
    let rx = Receiver::start(LOCAL).await;
    rx.script(&[reply(410)]);
    let ep = h.endpoint(&rx.url(), &all_types(), None).await;
    h.event(EventType::CommissionApproved, None);
    h.round().await;
    let stored = h.stored(&ep);
    assert_eq!((stored.status, stored.status_ms), (Status::Disabled(DisabledReason::Gone), T0));
    assert_eq!(h.deliveries(&ep)[0].status, "failed");
    h.event(EventType::CommissionApproved, None);
    h.set(T0 + 86_400_000);
    h.round().await;
    h.round().await;
    assert_eq!(rx.got().len(), 1, "a disabled endpoint gets nothing");
    assert_eq!(h.metrics.deliveries(DeliveryOutcome::Gone), 1);
    assert_eq!(h.metrics.disabled_endpoints.get(), 1);
}

#[tokio::test]
async fn retry_after_on_429_and_503_is_honoured_and_capped_at_an_hour() {
    let mut h = Harness::new();
    let rx = Receiver::start(LOCAL).await;
    rx.script(&[
        Reply { status: 503, retry_after: Some("1800"), ..Reply::default() },
        Reply { status: 429, retry_after: Some("86400"), ..Reply::default() },
    ]);
    h.endpoint(&rx.url(), &all_types(), None).await;
    h.event(EventType::CommissionCreated, None);
    h.round().await;
    // The schedule's 5 s would have gone at 5.5 s; the receiver asked for 30 min.
    h.set(T0 + 29 * 60_000);
    h.round().await;
    assert_eq!(rx.got().len(), 1, "Retry-After: 1800 was not honoured");
    h.set(T0 + 30 * 60_000);
    h.round().await;
    assert_eq!(rx.got().len(), 2);
    // A day asked for is capped at an hour (the schedule's second delay is 5 min).
    let second = h.now();
    h.set(second + HOUR_MS - 1);
    h.round().await;
    assert_eq!(rx.got().len(), 2);
    h.set(second + HOUR_MS);
    h.round().await;
    assert_eq!(rx.got().len(), 3, "Retry-After beyond an hour is capped at an hour");
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_with_an_alert() {
    let mut h = Harness::new();
    let rx = Receiver::start(LOCAL).await;
    rx.script(&vec![reply(500); 300]);
    let ep = h.endpoint(&rx.url(), &all_types(), None).await;
    // A new event every 12 hours, so attempts keep failing after the first's schedule ends.
    while h.now() < T0 + DISABLE_AFTER_FAILING_MS - HOUR_MS {
        h.event(EventType::CommissionCreated, None);
        h.round().await;
        h.set(h.now() + 12 * HOUR_MS);
        assert_eq!(h.stored(&ep).status, Status::Enabled, "disabled before 5 days");
    }
    h.set(T0 + DISABLE_AFTER_FAILING_MS);
    h.event(EventType::CommissionCreated, None);
    h.round().await;
    let stored = h.stored(&ep);
    assert_eq!((stored.status, stored.failing_since_ms), (Status::Disabled(DisabledReason::Failing), Some(T0)));
    assert_eq!(h.metrics.failing_alerts.get(), 1, "one alert");
    let before = rx.got().len();
    h.event(EventType::CommissionCreated, None);
    h.set(h.now() + 86_400_000);
    h.round().await;
    assert_eq!(rx.got().len(), before);
}

#[tokio::test]
async fn an_endpoint_with_a_partner_gets_only_that_partners_events_of_its_types() {
    let mut h = Harness::new();
    let (bob_rx, all_rx) = (Receiver::start(LOCAL).await, Receiver::start(LOCAL).await);
    h.endpoint(&bob_rx.url(), &[EventType::CommissionCreated], Some("bob")).await;
    h.endpoint(&all_rx.url(), &all_types(), None).await;
    let bob_created = h.event(EventType::CommissionCreated, Some("bob"));
    h.event(EventType::CommissionCreated, Some("alice"));
    h.event(EventType::ConversionAttributed, Some("bob"));
    h.event(EventType::FraudAlert, None);
    h.round().await;
    let ids = |rx: &Receiver| rx.got().iter().map(|g| g.headers["webhook-id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&bob_rx), vec![bob_created]);
    assert_eq!(all_rx.got().len(), 4);
    let body = Envelope::parse(&bob_rx.got()[0].body).unwrap();
    assert_eq!((body.kind, body.data["n"].as_i64()), (EventType::CommissionCreated, Some(1)));
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign_and_after_it_only_the_new_one() {
    let mut h = Harness::new();
    let rx = Receiver::start(LOCAL).await;
    let ep = h.endpoint(&rx.url(), &all_types(), None).await;
    let (_, fresh) = h.admin.rotate(&ep.id, T0, &crate::audit::Actor::Cli).await.unwrap();
    h.event(EventType::CommissionCreated, None);
    h.round().await;
    let check = |g: &receiver::Got, secret: &Secret, at_ms: u64| {
        let headers = signature::Headers {
            id: g.headers["webhook-id"].clone(),
            timestamp: g.headers["webhook-timestamp"].clone(),
            signature: g.headers["webhook-signature"].clone(),
        };
        signature::verify(&[secret], &headers, &g.body, at_ms)
    };
    let first = &rx.got()[0];
    assert_eq!(first.headers["webhook-signature"].split(' ').count(), 2);
    assert_eq!(check(first, &ep.secret, T0), Ok(()), "the old secret verifies during the overlap");
    assert_eq!(check(first, &fresh, T0), Ok(()), "the new secret verifies");
    assert_eq!(first.headers["content-type"], "application/json");
    let late = T0 + 24 * HOUR_MS;
    h.set(late);
    h.event(EventType::CommissionCreated, None);
    h.round().await;
    let second = &rx.got()[1];
    assert_eq!(second.headers["webhook-signature"].split(' ').count(), 1);
    assert!(check(second, &ep.secret, late).is_err(), "the old secret stops signing after 24 h");
    assert_eq!(check(second, &fresh, late), Ok(()));
}

#[tokio::test]
async fn a_slow_endpoint_holds_only_its_own_slots() {
    let mut h = Harness::with_limits(|l| l.endpoint_concurrency_max = 2);
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    let slow = Receiver::with_hold(LOCAL, Some(hold.clone())).await;
    let fast = Receiver::start(LOCAL).await;
    h.endpoint(&slow.url(), &all_types(), None).await;
    h.endpoint(&fast.url(), &all_types(), None).await;
    for _ in 0..6 {
        h.event(EventType::CommissionCreated, None);
    }
    // Each step starts at most two attempts per endpoint; the slow one's stay in flight while
    // the fast one's finish and make room for the next.
    for _ in 0..2000 {
        if fast.got().len() == 6 {
            break;
        }
        h.worker.step().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(fast.got().len(), 6, "the fast endpoint got every event while the slow one held its answers");
    assert_eq!(slow.got().len(), 2, "the slow endpoint never had more than its two slots");
    hold.add_permits(100);
    h.worker.settle().await.unwrap();
    for _ in 0..3 {
        h.round().await;
    }
    assert_eq!(slow.got().len(), 6);
}

#[tokio::test]
async fn a_replay_sends_a_delivered_event_again_under_its_id() {
    let mut h = Harness::new();
    let rx = Receiver::start(LOCAL).await;
    let ep = h.endpoint(&rx.url(), &all_types(), None).await;
    let id = h.event(EventType::CommissionCreated, None);
    h.round().await;
    assert_eq!(h.admin.replay_event(&id, None, h.now()).await.unwrap(), 1);
    h.round().await;
    assert_eq!(h.admin.replay_since(&ep.id, (T0 - 1) as i64, h.now()).await.unwrap(), 1);
    h.round().await;
    let got = rx.got();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|g| g.headers["webhook-id"] == id));
    assert_eq!(h.deliveries(&ep)[0].attempts, 3);
    assert!(matches!(
        h.admin.replay_event("msg_00000000000000000000000000000000", None, h.now()).await,
        Err(crate::webhooks::AdminError::NoEvent(_))
    ));
    // A partner replays only to its own endpoints: this one is nobody's.
    assert!(matches!(h.admin.replay_event(&id, Some("bob"), h.now()).await, Err(crate::webhooks::AdminError::NoEvent(_))));
}

#[tokio::test]
async fn fan_out_reads_batch_after_batch_until_it_is_caught_up() {
    let mut h = Harness::with_limits(|l| l.fanout_batch_len_max = 2);
    let rx = Receiver::start(LOCAL).await;
    h.endpoint(&rx.url(), &all_types(), None).await;
    for _ in 0..7 {
        h.event(EventType::CommissionCreated, None);
    }
    h.round().await;
    assert_eq!(rx.got().len(), 7, "four batches of at most two in one step");
    assert_eq!(h.store.cursor().unwrap(), h.store.events_after(0, 100).unwrap().last().unwrap().seq);
}
