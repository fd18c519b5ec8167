//! Webhook delivery (PRODUCT.md §10 and issue 17: at least 5k deliveries/s to a local receiver,
//! and an outbox lag under 1 s while conversions run at the SQLite goal).
//!
//! ```text
//! cargo bench --bench webhooks                          # full: 100 k deliveries, 50 k conversions
//! CLICKGATE_BENCH_QUICK=1 cargo bench --bench webhooks  # seconds
//! cargo test --release --bench webhooks                 # the same scaled-down run, as CI's smoke test
//! ```
//!
//! Prints plain `webhooks ...` lines:
//! - `webhooks deliveries`: the real worker (`webhooks::delivery::Worker`, its own SQLite
//!   connection, signed attempts over loopback TCP, one connection per attempt, each attempt
//!   recorded) fanning an outbox of N events out to 4 endpoints on an in-process receiver, timed
//!   from start until every delivery is recorded delivered.
//! - `webhooks lag`: the conversion writer fed as fast as it takes conversions (512 tasks, as
//!   `benches/conversions.rs`), each writing its two events, while the worker delivers them to
//!   one endpoint; the outbox lag (the age of the oldest event fan-out has not read) is sampled
//!   every 20 ms from a connection of its own, and its maximum and mean printed.
//! - `webhooks lag_fanout_only`: the same with an endpoint that wants none of those events, so
//!   the worker only reads the outbox and moves its cursor: the writer's rate beside fan-out
//!   alone, against `lag`'s beside fan-out and delivery.

#[path = "conversions/world.rs"]
mod world;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clickgate::api::answered;
use clickgate::config::Api;
use clickgate::conversions::{Fingerprinted, Op, WriterConfig};
use clickgate::storage::sqlite::{self, SqliteWebhooks};
use clickgate::webhooks::delivery::{Limits, SystemClock, Transport, Worker};
use clickgate::webhooks::endpoint::{new_id, Endpoint, Status};
use clickgate::webhooks::signature::Secret;
use clickgate::webhooks::{EventType, Policy, WebhookStore};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rusqlite::{params, Connection};
use world::World;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A receiver answering 200 to every request, counting them.
async fn receiver(count: Arc<AtomicU64>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let count = count.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    count.fetch_add(1, Ordering::Relaxed);
                    async { Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok")))) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    addr
}

fn endpoint(url: String, types: &[EventType]) -> Endpoint {
    Endpoint {
        id: new_id().unwrap(),
        url,
        event_types: types.to_vec(),
        partner: None,
        secret: Secret::generate().unwrap(),
        previous: None,
        status: Status::Enabled,
        status_ms: now_ms(),
        created_ms: now_ms(),
        failing_since_ms: None,
    }
}

fn worker(dir: &Path, metrics: &clickgate::metrics::Metrics) -> Worker {
    let config =
        clickgate::config::Webhooks { endpoint_concurrency_max: 64, in_flight_max: 2048, poll_interval_ms: 20, ..Default::default() };
    let policy = Policy::new(true, &["127.0.0.0/8".to_string()]).unwrap();
    let transport = Transport::new(policy, Duration::from_secs(15)).unwrap();
    let store = Box::new(SqliteWebhooks::open(dir).unwrap());
    Worker::new(store, transport, Limits::from_config(&config), Arc::new(SystemClock), metrics.webhooks.clone(), 1)
}

fn count(conn: &Connection, sql: &str) -> u64 {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64
}

fn bench_deliveries(root: &Path, events: usize) {
    const ENDPOINTS: usize = 4;
    let dir = tempfile::tempdir_in(root).unwrap();
    sqlite::migrate(dir.path()).unwrap();
    let mut conn = Connection::open(sqlite::path(dir.path())).unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..events {
        tx.execute(
            "INSERT INTO webhook_events (type, cause, partner, occurred_ms, data) VALUES ('commission.created', ?1, 'bob', ?2, ?3)",
            params![format!("bench:{i}"), now_ms() as i64, format!("{{\"commission_id\":\"cm_{i}\",\"amount_minor\":1250}}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let addr = rt.block_on(receiver(received.clone()));
    let mut store = SqliteWebhooks::open(dir.path()).unwrap();
    for _ in 0..ENDPOINTS {
        store.insert_endpoint(&endpoint(format!("http://{addr}/hook"), &[EventType::CommissionCreated]), &cli_stamp()).unwrap();
    }
    // The cursor starts at the outbox's end when the table is made: back to the start.
    conn.execute("UPDATE webhook_cursor SET seq = 0", []).unwrap();
    let metrics = clickgate::metrics::Metrics::new();
    let w = worker(dir.path(), &metrics);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let want = (events * ENDPOINTS) as u64;
    let started = Instant::now();
    let task = rt.spawn(w.run(stop_rx));
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if count(&conn, "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'") >= want {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "deliveries stalled");
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    rt.block_on(task).unwrap();
    let attempts = count(&conn, "SELECT count(*) FROM webhook_attempts");
    println!(
        "webhooks deliveries deliveries_per_s={:.0} deliveries={want} endpoints={ENDPOINTS} seconds={seconds:.2} attempts={attempts} \
         received={} (each a signed POST over a new loopback connection, recorded in SQLite)",
        want as f64 / seconds,
        received.load(Ordering::Relaxed)
    );
}

/// `label` names the run; `kinds` are the endpoint's types (none of the writer's for a run of
/// fan-out alone, which reads the outbox and moves its cursor but sends nothing).
fn bench_lag(root: &Path, conversions: usize, label: &str, kinds: &[EventType]) {
    let world_dir = tempfile::tempdir_in(root).unwrap();
    let world = World::build(world_dir.path(), conversions, 42);
    let dir = tempfile::tempdir_in(root).unwrap();
    let batch = Api::default().commit_batch_len_max;
    let config = WriterConfig {
        commit_batch_len_max: batch,
        queue_len_max: batch * 16,
        idempotency_ttl_ms: 48 * 3_600_000,
        event_retention_ms: 30 * 86_400_000,
    };
    let metrics = clickgate::metrics::Metrics::new();
    let writer = sqlite::start(dir.path(), config, Box::new(world.attributor()), metrics.api.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let addr = rt.block_on(receiver(received.clone()));
    let mut store = SqliteWebhooks::open(dir.path()).unwrap();
    store.insert_endpoint(&endpoint(format!("http://{addr}/hook"), kinds), &cli_stamp()).unwrap();
    let w = worker(dir.path(), &metrics);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = rt.spawn(w.run(stop_rx));

    // The lag sampler: the age of the first event after the cursor, from its own connection.
    let sampling = Arc::new(AtomicUsize::new(1));
    let sampler = {
        let (path, sampling) = (sqlite::path(dir.path()), sampling.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(path).unwrap();
            let (mut max_ms, mut sum_ms, mut n) = (0u64, 0u64, 0u64);
            while sampling.load(Ordering::Relaxed) == 1 {
                let oldest: Option<i64> = conn
                    .query_row(
                        "SELECT occurred_ms FROM webhook_events WHERE seq > (SELECT seq FROM webhook_cursor) ORDER BY seq LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .ok();
                let lag = oldest.map_or(0, |o| now_ms().saturating_sub(o as u64));
                (max_ms, sum_ms, n) = (max_ms.max(lag), sum_ms + lag, n + 1);
                std::thread::sleep(Duration::from_millis(20));
            }
            (max_ms, sum_ms / n.max(1), n)
        })
    };
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let list = Arc::new(world.conversions.clone());
    rt.block_on(async {
        let tasks: Vec<_> = (0..512)
            .map(|_| {
                let (writer, list, next) = (writer.clone(), list.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(c) = list.get(i) else { break };
                        let (answer, _) = answered(writer.write(Op::Record(Fingerprinted::new(c.clone())), None, now_ms()).await.unwrap());
                        assert_eq!(answer.status, 201);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let conn = Connection::open(sqlite::path(dir.path())).unwrap();
    let events = count(&conn, "SELECT count(*) FROM webhook_events");
    let wanted = if kinds.contains(&EventType::CommissionCreated) { events } else { 0 };
    while count(&conn, "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'") < wanted
        || count(&conn, "SELECT count(*) FROM webhook_events WHERE seq > (SELECT seq FROM webhook_cursor)") > 0
    {
        std::thread::sleep(Duration::from_millis(20));
        assert!(started.elapsed() < Duration::from_secs(600), "deliveries stalled");
    }
    let drained = started.elapsed().as_secs_f64();
    sampling.store(0, Ordering::Relaxed);
    let (max_ms, mean_ms, samples) = sampler.join().unwrap();
    let _ = stop_tx.send(true);
    rt.block_on(task).unwrap();
    drop(writer);
    println!(
        "webhooks {label} outbox_lag_max_ms={max_ms} outbox_lag_mean_ms={mean_ms} samples={samples} conversions_per_s={:.0} \
         conversions={conversions} clicks={} events={events} delivered_all_after_s={drained:.2} (writer fed by 512 tasks while the \
         worker delivers)",
        conversions as f64 / seconds,
        world.clicks
    );
}

fn main() {
    // Personal fields (customer references, payout details, stored answers) are sealed under
    // the process's data key, which a server's start loads; the bench holds a fixed one.
    clickgate::privacy::keys::install(clickgate::privacy::DataKey::from_bytes(&[0x5a; 32])).expect("one data key");
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var_os("CLICKGATE_BENCH_QUICK").is_some() || !args.iter().any(|a| a == "--bench");
    let (events, conversions) = if quick { (2_000, 2_000) } else { (25_000, 50_000) };
    if quick {
        println!("(quick mode: scaled-down inputs)");
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(root).unwrap();
    bench_deliveries(root, events);
    bench_lag(root, conversions, "lag", &[EventType::ConversionAttributed, EventType::CommissionCreated]);
    bench_lag(root, conversions, "lag_fanout_only", &[EventType::FraudAlert]);
}

/// The audit stamp the bench's endpoint registrations are recorded under.
fn cli_stamp() -> clickgate::audit::Stamp {
    clickgate::audit::Stamp::new(clickgate::audit::Actor::Cli, 0)
}
