//! Cluster mode as two processes: `clickgate edge` and `clickgate core`, the real binary, talking
//! through a real nats-server with JetStream, driven over real sockets.
//!
//! Each test starts its own nats-server (`common::nats`), which it can stop and restart. Each
//! is therefore ignored unless asked for (`cargo test -- --include-ignored`), and fails without
//! `nats-server` when it runs; the PostgreSQL variant needs that server too.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use clickgate::events::ClickEvent;
use clickgate::model::CLICK_ID_CHARS;
use common::nats::{click_events, Broker};
use common::stream::now_ms;
use common::*;

on_both!(nats: a_click_on_the_edge_is_attributed_by_the_core);

const KEY: &str = "test-admin-key-0123";
/// The click-id key both processes share, so the core verifies what the edge minted.
const CLICK_KEY: &str = "cluster-e2e-click-key";

/// The fixture config with an admin key, quick cluster timeouts and no click-injection guard
/// (the tests convert right after clicking).
fn config_text() -> String {
    fixture_config(&format!(
        "[api]\nadmin_key = \"{KEY}\"\n[cluster]\npublish_timeout_ms = 2000\nack_wait_ms = 2000\nreconnect_delay_ms = 100\n"
    ))
    .replace("country_deny = [\"GB\"]", "country_deny = [\"GB\"]\n[demo.programs.attribution]\nmin_click_to_conversion_ms = 0")
}

fn auth() -> String {
    format!("Authorization: Bearer {KEY}")
}

/// An edge and a core on one broker, each with its own data dir.
struct Cluster {
    dir: tempfile::TempDir,
    edge: Node,
    edge_addr: SocketAddr,
    core: Node,
    api: SocketAddr,
    /// Where the core keeps conversions; dropped after the processes.
    _store: Store,
}

/// Starts `clickgate core` (which creates the stream) and then `clickgate edge`.
fn start_cluster(broker: &Broker) -> Cluster {
    start_cluster_on(broker, Store::Sqlite)
}

/// `start_cluster` with the core's conversion store on `store`.
fn start_cluster_on(broker: &Broker, store: Store) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("clickgate.toml");
    std::fs::write(&config, config_text()).unwrap();
    let core = start_core(dir.path(), &config, broker, &store);
    let [edge_addr, admin] = free_addrs();
    let mut args = vec!["edge".to_string(), "--nats-url".into(), broker.url()];
    args.extend(listen_arg("edge-listen", edge_addr));
    args.extend(listen_arg("admin-listen", admin));
    let env = [("CLICKGATE_CLICK_KEY", CLICK_KEY)];
    let edge = Node::start(&config, &dir.path().join("edge-data"), &args, &env, &dir.path().join("edge.log"), admin);
    let api = core_api(&core);
    Cluster { dir, edge, edge_addr, core, api, _store: store }
}

fn start_core(dir: &Path, config: &Path, broker: &Broker, store: &Store) -> Node {
    let [api, admin] = free_addrs();
    let mut args = vec!["core".to_string(), "--nats-url".into(), broker.url()];
    args.extend(listen_arg("api-listen", api));
    args.extend(listen_arg("admin-listen", admin));
    let store_env = store.env();
    let mut env = vec![("CLICKGATE_CLICK_KEY", CLICK_KEY)];
    env.extend(store_env.iter().map(|(k, v)| (*k, v.as_str())));
    Node::start(config, &dir.join("core-data"), &args, &env, &dir.join("core.log"), admin)
}

fn core_api(core: &Node) -> SocketAddr {
    core.args.iter().skip_while(|a| *a != "--api-listen").nth(1).unwrap().parse().unwrap()
}

impl Cluster {
    /// Clicks the demo link as a browser from `ip`; returns the `cgid`.
    fn click(&self, ip: &str) -> String {
        let out = edge_get(self.edge_addr, "/r/demo", ip, CHROME);
        assert!(out.starts_with("HTTP/1.1 302"), "{out}");
        let location = header(&out, "location").expect("Location");
        location.split("cgid=").nth(1).unwrap().split('&').next().unwrap().to_string()
    }

    fn lookup(&self, cgid: &str) -> Answer {
        http(self.api, "GET", &format!("/v1/clicks/{cgid}"), &[&auth()], "")
    }

    /// Waits until the core's index holds every click in `cgids`.
    fn wait_ingested(&self, cgids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for cgid in cgids {
            loop {
                let a = self.lookup(cgid);
                if a.status == 200 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "click {cgid} never reached the core: {a:?}\nedge log:\n{}\ncore log:\n{}",
                    self.edge.log(),
                    self.core.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn wait_metric(&self, node: &Node, series: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = node.metric(series);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} stayed {got}, not {want}\nedge log:\n{}\ncore log:\n{}",
                self.edge.log(),
                self.core.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Publishes `events` as the edge does (`Nats-Msg-Id` = click id, or `id_suffix` appended to
/// make the broker see a new message); returns how many the stream called duplicates.
fn publish(url: &str, events: &[ClickEvent], id_suffix: &str) -> usize {
    block_on(async {
        let js = jetstream::new(async_nats::connect(url).await.unwrap());
        let mut acks: std::collections::VecDeque<jetstream::context::PublishAckFuture> = std::collections::VecDeque::new();
        let mut duplicates = 0;
        for ev in events {
            // A window of acks in flight: the client buffers only so many unread ones.
            if acks.len() == 512 {
                duplicates += usize::from(acks.pop_front().unwrap().await.unwrap().duplicate);
            }
            let mut payload = Vec::new();
            ev.encode_into(&mut payload).unwrap();
            let mut id = [0u8; CLICK_ID_CHARS];
            let msg_id = format!("{}{id_suffix}", ev.click_id.encode(&mut id));
            let message = PublishMessage::build().payload(payload.into()).message_id(msg_id);
            acks.push_back(js.send_publish(clickgate::config::Cluster::default().subject, message).await.unwrap());
        }
        for ack in acks {
            duplicates += usize::from(ack.await.unwrap().duplicate);
        }
        duplicates
    })
}

fn a_click_on_the_edge_is_attributed_by_the_core(store: Store) {
    let broker = Broker::start();
    let c = start_cluster_on(&broker, store);
    let cgid = c.click("198.51.100.7");
    c.wait_ingested(std::slice::from_ref(&cgid));
    let click = c.lookup(&cgid).json();
    assert_eq!((click["partner"].as_str(), click["verdict"].as_str()), (Some("alice"), Some("valid")), "{click}");

    let occurred = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let body = serde_json::json!({
        "order_id": "order-1", "program": "demo", "amount_minor": 2599, "currency": "USD",
        "occurred_at": occurred, "click_id": cgid,
    });
    let headers = [auth(), "Idempotency-Key: e2e-1".to_string()];
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let answer = http(c.api, "POST", "/v1/conversions", &headers, &body.to_string());
    assert_eq!(answer.status, 201, "{answer:?}");
    let v = answer.json();
    assert_eq!(v["attribution"]["method"], "click_id", "{v}");
    assert_eq!(v["attribution"]["shares"], serde_json::json!([{"partner": "alice", "amount_minor": 2599}]));
    assert_eq!(c.edge.metric("clickgate_cluster_broker_up"), 1.0);
    assert_eq!(c.core.metric("clickgate_cluster_consumed_total"), 1.0);
    // The edge keeps no click log of its own: its clicks live in the core.
    assert!(!c.dir.path().join("edge-data/clicks").exists());
}

#[test]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
fn clicks_keep_redirecting_through_a_broker_outage_and_none_are_lost() {
    let mut broker = Broker::start();
    let c = start_cluster(&broker);
    let mut cgids: Vec<String> = (0..20).map(|i| c.click(&format!("198.51.100.{}", i + 1))).collect();
    c.wait_ingested(&cgids);

    broker.kill();
    // Every click still gets its redirect at once; the edge keeps them in its spool.
    let started = Instant::now();
    cgids.extend((0..60).map(|i| c.click(&format!("192.0.2.{}", i + 1))));
    let outage_clicks = started.elapsed();
    c.wait_metric(&c.edge, "clickgate_cluster_spooled_total", 80.0);
    assert!(c.edge.metric("clickgate_cluster_spool_bytes") > 0.0, "the outage's clicks wait in the spool");
    assert_eq!(c.edge.metric("clickgate_cluster_broker_up"), 0.0);
    assert_eq!(c.edge.metric("clickgate_click_events_dropped_total"), 0.0);
    eprintln!("60 clicks answered in {outage_clicks:?} with the broker down");

    broker.restart();
    c.wait_ingested(&cgids);
    c.wait_metric(&c.edge, "clickgate_cluster_spool_bytes", 0.0);
    c.wait_metric(&c.core, "clickgate_core_clicks_ingested_total", 80.0);
    assert_eq!(c.core.metric("clickgate_core_click_duplicates_total"), 0.0);
    assert_eq!(cgids.iter().collect::<HashSet<_>>().len(), 80);
}

#[test]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
fn a_click_published_twice_is_one_click() {
    let broker = Broker::start();
    let mut c = start_cluster(&broker);
    let cgids: Vec<String> = (0..10).map(|i| c.click(&format!("198.51.100.{}", i + 1))).collect();
    c.wait_ingested(&cgids);
    c.wait_metric(&c.edge, "clickgate_cluster_spool_bytes", 0.0);

    // The edge publishes its whole spool again, as after a crash between the broker's ack and
    // the cursor's commit. A batch with the span of one published before is dropped by the
    // stream as a repeat of its `Nats-Msg-Id`; one cut otherwise (the ten now wait together) is
    // stored, and the core skips its clicks by click id.
    assert_eq!(c.edge.terminate().code(), Some(0), "{}", c.edge.log());
    std::fs::remove_file(c.dir.path().join("edge-data/spool/cursor")).unwrap();
    c.edge.restart();
    c.wait_metric(&c.edge, "clickgate_cluster_published_total", 10.0);
    c.wait_metric(&c.edge, "clickgate_cluster_spool_bytes", 0.0);

    // A repeat outside the broker's duplicate window (another message id, same click) reaches
    // the core, which drops it by click id. These go in the single-event format of edges
    // before batching, which the core still takes.
    let ev = click_events(CLICK_KEY.as_bytes(), now_ms(), 0..1);
    assert_eq!(publish(&broker.url(), &ev, ""), 0);
    assert_eq!(publish(&broker.url(), &ev, ""), 1, "the same message id inside the window is a duplicate");
    assert_eq!(publish(&broker.url(), &ev, "-again"), 0);
    // Work-queue retention: once the stream is empty, the core has acked all it was given.
    let deadline = Instant::now() + Duration::from_secs(60);
    let stream = clickgate::config::Cluster::default().stream;
    loop {
        let left = block_on(async {
            let js = jetstream::new(async_nats::connect(broker.url()).await.unwrap());
            js.get_stream(&stream).await.unwrap().info().await.unwrap().state.messages
        });
        let (ingested, duplicates) =
            (c.core.metric("clickgate_core_clicks_ingested_total"), c.core.metric("clickgate_core_click_duplicates_total"));
        if left == 0 && duplicates >= 1.0 && c.core.metric("clickgate_cluster_consumed_total") == ingested + duplicates {
            break;
        }
        assert!(Instant::now() < deadline, "the core did not drain the stream\ncore log:\n{}", c.core.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.core.metric("clickgate_core_clicks_ingested_total"), 11.0, "10 clicks and 1 published click, each once");
}

/// Kill -9 the core again and again while it ingests a backlog: in the end every click is in
/// the click log exactly once, and the index answers as it did before the last kill.
#[test]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
fn the_core_survives_kill_9_mid_ingest() {
    let broker = Broker::start();
    let c = start_cluster(&broker);
    let total = 100_000u64;
    let base = now_ms() - total;
    let events = click_events(CLICK_KEY.as_bytes(), base, 0..total);
    let mut core = c.core;
    // The backlog is published before the first kill; each kill lands a pseudo-random 10 to
    // 265 ms after a start, while the core is working through it.
    for chunk in events.chunks(10_000) {
        assert_eq!(publish(&broker.url(), chunk, ""), 0);
    }
    let mut seed = now_ms();
    let mut kills = 0;
    while kills < 10 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 56) + 10));
        core.kill9();
        kills += 1;
        core.restart();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let sample: Vec<&ClickEvent> = events.iter().step_by(997).collect();
    let api = core_api(&core);
    let all_indexed = || {
        sample.iter().all(|ev| {
            let mut id = [0u8; CLICK_ID_CHARS];
            http(api, "GET", &format!("/v1/clicks/{}", ev.click_id.encode(&mut id)), &[&auth()], "").status == 200
        })
    };
    while !(consumer_done(&broker) && all_indexed()) {
        assert!(
            Instant::now() < deadline,
            "the backlog was not consumed after {kills} kills; consumer: {}\ncore log:\n{}",
            consumer_state(&broker),
            core.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let answers_before: Vec<String> = sample
        .iter()
        .map(|ev| {
            let mut id = [0u8; CLICK_ID_CHARS];
            http(api, "GET", &format!("/v1/clicks/{}", ev.click_id.encode(&mut id)), &[&auth()], "").body
        })
        .collect();
    core.kill9();
    let mut logged = Vec::new();
    clickgate::click_log::SegmentLog::open(&core.data.join("clicks"), u64::MAX, |ev| logged.push(ev.click_id)).unwrap();
    let distinct: HashSet<_> = logged.iter().collect();
    assert_eq!(distinct.len(), logged.len(), "no click is in the log twice");
    let want: HashSet<_> = events.iter().map(|e| e.click_id).collect();
    assert_eq!(distinct.len(), want.len(), "every click is in the log");
    assert!(want.iter().all(|id| distinct.contains(id)));

    core.restart();
    let answers_after: Vec<String> = sample
        .iter()
        .map(|ev| {
            let mut id = [0u8; CLICK_ID_CHARS];
            http(api, "GET", &format!("/v1/clicks/{}", ev.click_id.encode(&mut id)), &[&auth()], "").body
        })
        .collect();
    assert_eq!(answers_after, answers_before, "the rebuilt index answers as before");
    // What each start found in the log: where the kills landed.
    let log = core.log();
    let found: Vec<&str> =
        log.lines().filter(|l| l.contains("replayed into")).filter_map(|l| l.split(" events=").nth(1)?.split(' ').next()).collect();
    eprintln!("{total} clicks, {kills} kills: every click in the log once; the log held {} at the starts", found.join(", "));
}

/// Whether the durable consumer has been delivered, and has acked, everything in the stream.
fn consumer_done(broker: &Broker) -> bool {
    block_on(async {
        let js = jetstream::new(async_nats::connect(broker.url()).await.unwrap());
        let cfg = clickgate::config::Cluster::default();
        let info = js.get_stream(&cfg.stream).await.unwrap().consumer_info(&cfg.durable).await.unwrap();
        info.num_pending == 0 && info.num_ack_pending == 0
    })
}

/// The durable consumer's counters, for failure messages.
fn consumer_state(broker: &Broker) -> String {
    block_on(async {
        let js = jetstream::new(async_nats::connect(broker.url()).await.unwrap());
        let cfg = clickgate::config::Cluster::default();
        match js.get_stream(&cfg.stream).await.unwrap().consumer_info(&cfg.durable).await {
            Ok(i) => format!(
                "pending {} ack_pending {} redelivered {} waiting {} delivered {:?} ack_floor {:?}",
                i.num_pending, i.num_ack_pending, i.num_redelivered, i.num_waiting, i.delivered, i.ack_floor
            ),
            Err(e) => format!("no consumer info: {e}"),
        }
    })
}
