//! Cluster mode against a real nats-server: the edge's spool and publisher, the core's durable
//! consumer.
//!
//! Each test starts its own nats-server (`common::nats`), so each is ignored unless asked for
//! (`cargo test -- --include-ignored`), and fails without `nats-server` when it runs.

mod common;

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use clickgate::cluster::{run_consumer, run_publisher, PublishStats, Publisher};
use clickgate::config::Cluster;
use clickgate::events::spool::{Position, Spool, SpoolBatch};
use clickgate::events::ClickEvent;
use clickgate::metrics::{ClusterMetrics, Metrics};
use clickgate::model::ClickId;
use common::nats::Broker;
use tokio::sync::watch;

/// Short timeouts, so redeliveries and retries happen within a test's patience.
fn cluster(url: &str, name: &str) -> Cluster {
    Cluster {
        nats_url: url.to_string(),
        stream: format!("CLICKS_{name}"),
        subject: format!("clicks.{name}"),
        durable: format!("core_{name}"),
        publish_timeout_ms: 2_000,
        fetch_batch_len_max: 64,
        ack_wait_ms: 1_000,
        reconnect_delay_ms: 100,
        ..Cluster::default()
    }
}

fn events(range: std::ops::Range<u64>) -> Vec<ClickEvent> {
    common::nats::click_events(b"cluster-test-key", 1_763_800_000_000, range)
}

fn ids(evs: &[ClickEvent]) -> Vec<ClickId> {
    evs.iter().map(|e| e.click_id).collect()
}

/// Fails naming the first place where `got` and `want` differ, rather than printing both.
fn assert_same_order(got: &[ClickEvent], want: &[ClickEvent]) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i].click_id != want[i].click_id) {
        let at = got.iter().position(|e| e.click_id == want[i].click_id);
        panic!("click {i} of {} arrived at {at:?}; {} arrived", want.len(), got.len());
    }
    assert_eq!(got.len(), want.len(), "as many clicks arrived as were sent");
}

/// What the core's `Ingest` does, in memory: keeps each click id once, in arrival order.
#[derive(Default)]
struct CoreState {
    held: HashSet<ClickId>,
    written: Vec<ClickEvent>,
    /// Events handed to the writer, repeats included.
    delivered: usize,
    calls: usize,
}

#[derive(Clone, Default)]
struct Core(Arc<Mutex<CoreState>>);

impl Core {
    fn writer(&self) -> impl FnMut(&[ClickEvent]) -> io::Result<usize> + Send + 'static {
        let core = self.clone();
        move |batch| Ok(core.write(batch))
    }

    fn write(&self, batch: &[ClickEvent]) -> usize {
        let mut s = self.0.lock().unwrap();
        s.calls += 1;
        s.delivered += batch.len();
        let mut new = 0;
        for ev in batch {
            if s.held.insert(ev.click_id) {
                s.written.push(ev.clone());
                new += 1;
            }
        }
        new
    }

    fn written(&self) -> Vec<ClickEvent> {
        self.0.lock().unwrap().written.clone()
    }

    fn written_len(&self) -> usize {
        self.0.lock().unwrap().written.len()
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn_publisher(
    cfg: &Cluster,
    spool: &Arc<Spool>,
    metrics: &ClusterMetrics,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (cfg, spool, metrics, stop) = (cfg.clone(), spool.clone(), metrics.clone(), stop.clone());
    tokio::spawn(async move { run_publisher(&cfg, spool, metrics, stop).await.unwrap() })
}

fn spawn_consumer<W>(cfg: &Cluster, metrics: &ClusterMetrics, write: W, stop: &watch::Receiver<bool>) -> tokio::task::JoinHandle<()>
where
    W: FnMut(&[ClickEvent]) -> io::Result<usize> + Send + 'static,
{
    let (cfg, metrics, stop) = (cfg.clone(), metrics.clone(), stop.clone());
    tokio::spawn(async move { run_consumer(&cfg, metrics, write, stop).await.unwrap() })
}

/// Publishes each event as a message of its own, as from a spool of its own (a fresh spool id).
async fn publish_each(cfg: &Cluster, evs: &[ClickEvent]) {
    let batches: Vec<SpoolBatch> = (0..evs.len() as u64)
        .map(|i| SpoolBatch { events: vec![evs[i as usize].clone()], start: Position(i), end: Position(i + 1) })
        .collect();
    Publisher::new(cfg, fastrand::u64(..), Metrics::new().cluster).publish(&batches).await.unwrap();
}

async fn jetstream_of(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.unwrap())
}

/// Creates the stream and the core's durable consumer as `clickgate core`'s first start does;
/// the edge never creates either. (Under interest retention, what is published before any
/// consumer exists is not kept.)
async fn create_stream(url: &str, cfg: &Cluster) {
    let stream = jetstream_of(url).await.get_or_create_stream(clickgate::cluster::stream_config(cfg)).await.unwrap();
    stream.get_or_create_consumer(&cfg.durable, clickgate::cluster::consume::consumer_config(cfg)).await.unwrap();
}

async fn stream_messages(url: &str, cfg: &Cluster) -> u64 {
    let mut stream = jetstream_of(url).await.get_stream(&cfg.stream).await.unwrap();
    stream.info().await.unwrap().state.messages
}

async fn stream_subjects(url: &str, cfg: &Cluster) -> Option<Vec<String>> {
    let mut stream = jetstream_of(url).await.get_stream(&cfg.stream).await.ok()?;
    Some(stream.info().await.ok()?.config.subjects.clone())
}

async fn consumer_info(url: &str, cfg: &Cluster) -> jetstream::consumer::Info {
    jetstream_of(url).await.get_stream(&cfg.stream).await.unwrap().consumer_info(&cfg.durable).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn spooled_clicks_reach_the_core_in_order() {
    let broker = Broker::start();
    let cfg = cluster(&broker.url(), "order");
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 26).unwrap());
    let (edge, core_metrics) = (Metrics::new().cluster, Metrics::new().cluster);
    let all = events(0..700);
    for chunk in all.chunks(37) {
        spool.append(chunk).unwrap();
    }
    let (stop_tx, stop) = watch::channel(false);
    let publisher = spawn_publisher(&cfg, &spool, &edge, &stop);
    let core = Core::default();
    let consumer = spawn_consumer(&cfg, &core_metrics, core.writer(), &stop);

    wait_until("every click is written", || core.written_len() == all.len()).await;
    wait_until("the spool is committed", || spool.pending_bytes() == 0).await;
    wait_until("every message is acked", || core_metrics.consumed.get() >= all.len() as u64).await;
    assert_eq!(edge.broker_up.get(), 1);
    assert_eq!(core_metrics.broker_up.get(), 1);
    stop_tx.send(true).unwrap();
    publisher.await.unwrap();
    consumer.await.unwrap();

    assert_same_order(&core.written(), &all);
    assert!(core.written() == all, "events arrive unchanged");
    // At least: a publish that timed out under load and was repeated counts twice.
    assert!(edge.published.get() >= all.len() as u64);
    assert_eq!(core_metrics.poison.get(), 0);
    // Interest retention: messages every consumer acked leave the stream.
    let url = broker.url();
    wait_until("acked messages leave the stream", || futures_block(stream_messages(&url, &cfg)) == 0).await;
    assert_eq!(consumer_info(&url, &cfg).await.num_ack_pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn every_core_has_a_consumer_of_its_own_and_ingests_every_click() {
    // Two cores: a conversion may reach either, so each must hold every click. A core that is
    // down keeps its interest: the stream holds what it has not acked until it is back.
    let broker = Broker::start();
    let url = broker.url();
    let a = cluster(&url, "twocores");
    let b = Cluster { durable: "core_twocores_b".into(), ..a.clone() };
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 26).unwrap());
    let (edge, a_metrics, b_metrics) = (Metrics::new().cluster, Metrics::new().cluster, Metrics::new().cluster);
    let all = events(0..500);
    let (stop_tx, stop) = watch::channel(false);
    let (b_stop_tx, b_stop) = watch::channel(false);
    let (core_a, core_b) = (Core::default(), Core::default());
    // One core creates the stream (two creating it at once can break it on nats-server 2.9).
    let consumer_a = spawn_consumer(&a, &a_metrics, core_a.writer(), &stop);
    wait_until("core a's consumer exists", || a_metrics.broker_up.get() == 1).await;
    // The stream moves to its subject once core a's consumer is there to want its messages.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stream_subjects(&url, &a).await != Some(vec![a.subject.clone()]) {
        assert!(Instant::now() < deadline, "the stream never moved to its subject");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let consumer_b = spawn_consumer(&b, &b_metrics, core_b.writer(), &b_stop);
    let publisher = spawn_publisher(&a, &spool, &edge, &stop);
    spool.append(&all[..400]).unwrap();
    wait_until("core a has the first clicks", || core_a.written_len() == 400).await;
    wait_until("core b has the first clicks", || core_b.written_len() == 400).await;
    wait_until("messages both acked leave the stream", || futures_block(stream_messages(&url, &a)) == 0).await;

    b_stop_tx.send(true).unwrap();
    consumer_b.await.unwrap();
    spool.append(&all[400..]).unwrap();
    wait_until("core a has every click", || core_a.written_len() == all.len()).await;
    // Core b is away: its share stays in the stream.
    wait_until("the stream keeps what core b has not acked", || futures_block(stream_messages(&url, &a)) > 0).await;
    assert_eq!(core_b.written_len(), 400);

    let (_b_stop_tx2, b_stop2) = watch::channel(false);
    let consumer_b = spawn_consumer(&b, &b_metrics, core_b.writer(), &b_stop2);
    wait_until("core b catches up", || core_b.written_len() == all.len()).await;
    wait_until("the stream is empty again", || futures_block(stream_messages(&url, &a)) == 0).await;
    stop_tx.send(true).unwrap();
    _b_stop_tx2.send(true).unwrap();
    publisher.await.unwrap();
    consumer_a.await.unwrap();
    consumer_b.await.unwrap();
    assert_same_order(&core_a.written(), &all);
    assert_same_order(&core_b.written(), &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn a_broker_outage_keeps_every_click_and_their_order() {
    let mut broker = Broker::start();
    let cfg = cluster(&broker.url(), "outage");
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 26).unwrap());
    let (edge, core_metrics) = (Metrics::new().cluster, Metrics::new().cluster);
    let all = events(0..300);
    let (stop_tx, stop) = watch::channel(false);
    let publisher = spawn_publisher(&cfg, &spool, &edge, &stop);
    let core = Core::default();
    let consumer = spawn_consumer(&cfg, &core_metrics, core.writer(), &stop);

    spool.append(&all[..100]).unwrap();
    wait_until("the first clicks are written", || core.written_len() == 100).await;
    wait_until("the spool is committed", || spool.pending_bytes() == 0).await;

    let failures = edge.publish_failures.get();
    broker.kill();
    wait_until("the edge sees the broker down", || edge.broker_up.get() == 0).await;
    // Clicks keep coming: appending never waits on the broker.
    for chunk in all[100..250].chunks(10) {
        spool.append(chunk).unwrap();
    }
    wait_until("the publisher has tried and failed", || edge.publish_failures.get() > failures).await;
    assert!(spool.pending_bytes() > 0, "the clicks wait in the spool");
    assert_eq!(core.written_len(), 100, "nothing reached the core while the broker was down");

    broker.restart();
    spool.append(&all[250..]).unwrap();
    wait_until("every click is written", || core.written_len() == all.len()).await;
    wait_until("the spool is committed", || spool.pending_bytes() == 0).await;
    wait_until("the edge sees the broker up", || edge.broker_up.get() == 1).await;
    stop_tx.send(true).unwrap();
    publisher.await.unwrap();
    consumer.await.unwrap();

    assert_same_order(&core.written(), &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn a_broker_killed_mid_stream_loses_nothing() {
    let mut broker = Broker::start();
    let cfg = cluster(&broker.url(), "midstream");
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 26).unwrap());
    let (edge, core_metrics) = (Metrics::new().cluster, Metrics::new().cluster);
    let all = events(0..2_000);
    let (stop_tx, stop) = watch::channel(false);
    let publisher = spawn_publisher(&cfg, &spool, &edge, &stop);
    let core = Core::default();
    let consumer = spawn_consumer(&cfg, &core_metrics, core.writer(), &stop);

    // Clicks arrive steadily while the broker dies and comes back.
    let appender = std::thread::spawn({
        let (spool, all) = (spool.clone(), all.clone());
        move || {
            for chunk in all.chunks(20) {
                spool.append(chunk).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    wait_until("clicks flow", || core.written_len() >= 200).await;
    let failures = edge.publish_failures.get();
    broker.kill();
    wait_until("the publisher has failed", || edge.publish_failures.get() > failures).await;
    broker.restart();
    appender.join().unwrap();
    wait_until("every click is written", || core.written_len() == all.len()).await;
    wait_until("the spool is committed", || spool.pending_bytes() == 0).await;
    stop_tx.send(true).unwrap();
    publisher.await.unwrap();
    consumer.await.unwrap();

    let written: HashSet<ClickId> = ids(&core.written()).into_iter().collect();
    assert_eq!(written, ids(&all).into_iter().collect::<HashSet<_>>(), "every click arrived");
    assert_eq!(core.written_len(), all.len(), "each click written once");
}

async fn last_seq(url: &str, cfg: &Cluster) -> u64 {
    let mut stream = jetstream_of(url).await.get_stream(&cfg.stream).await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

/// An edge that crashed after publishing a batch but before committing its spool cursor reads
/// the same batch again at its next start: same spool, same positions, same events, so the same
/// message id, and the stream drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn a_republished_batch_is_stored_once_and_written_once() {
    let broker = Broker::start();
    let cfg = cluster(&broker.url(), "dup");
    let dir = tempfile::tempdir().unwrap();
    let evs = events(0..5);
    let edge = Metrics::new().cluster;
    create_stream(&broker.url(), &cfg).await;
    let (first_id, first_span) = {
        let spool = Arc::new(Spool::open(dir.path(), 1 << 26).unwrap());
        spool.append(&evs).unwrap();
        let batch = spool.reader().unwrap().next_batch(256).unwrap();
        let stats = Publisher::new(&cfg, spool.id(), edge.clone()).publish(std::slice::from_ref(&batch)).await.unwrap();
        assert_eq!(stats, PublishStats { published: 5, duplicates: 0 });
        // The edge crashes before committing the spool cursor.
        (spool.id(), (batch.start, batch.end))
    };
    let spool = Arc::new(Spool::open(dir.path(), 1 << 26).unwrap());
    assert_eq!(spool.id(), first_id, "a spool keeps its id across restarts");
    let batch = spool.reader().unwrap().next_batch(256).unwrap();
    assert_eq!((batch.start, batch.end), first_span, "the batch starts and ends where it did");
    assert_eq!(batch.events, evs, "the spool delivers the uncommitted events again");
    let stats = Publisher::new(&cfg, spool.id(), edge.clone()).publish(&[batch]).await.unwrap();
    assert_eq!(stats, PublishStats { published: 0, duplicates: 5 }, "JetStream drops the repeated batch by Nats-Msg-Id");
    assert_eq!(stream_messages(&broker.url(), &cfg).await, 1, "one message for the batch");

    // Another edge's spool at the same positions is another message.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Spool::open(other_dir.path(), 1 << 26).unwrap();
    assert_ne!(other.id(), spool.id());
    let others = events(5..10);
    let twin = SpoolBatch { events: others.clone(), start: first_span.0, end: first_span.1 };
    let stats = Publisher::new(&cfg, other.id(), edge.clone()).publish(&[twin]).await.unwrap();
    assert_eq!(stats, PublishStats { published: 5, duplicates: 0 });

    // A repeat outside the duplicate window (another message id), here in the single-event
    // format of edges before batching, reaches the core, which keeps the click once.
    let mut payload = Vec::new();
    evs[0].encode_into(&mut payload).unwrap();
    let js = jetstream_of(&broker.url()).await;
    js.send_publish(cfg.subject.clone(), PublishMessage::build().payload(payload.into()).message_id("not-a-batch-id"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(stream_messages(&broker.url(), &cfg).await, 3);

    let core_metrics = Metrics::new().cluster;
    let core = Core::default();
    let (stop_tx, stop) = watch::channel(false);
    let consumer = spawn_consumer(&cfg, &core_metrics, core.writer(), &stop);
    wait_until("all three messages are acked", || core_metrics.consumed.get() >= 11).await;
    stop_tx.send(true).unwrap();
    consumer.await.unwrap();
    let mut want = evs.clone();
    want.extend(others);
    assert_eq!(ids(&core.written()), ids(&want), "the core keeps each click once");
    assert_eq!(core.0.lock().unwrap().delivered, 11);
    assert_eq!(core_metrics.poison.get(), 0);
}

/// After a crash more clicks may wait, so the batch read from the same cursor is longer than the
/// one published before: another span, another id. The stream keeps both; the core writes every
/// click once, and none is lost to the duplicate window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn a_longer_batch_from_the_same_cursor_is_not_dropped() {
    let broker = Broker::start();
    let cfg = cluster(&broker.url(), "longer");
    let dir = tempfile::tempdir().unwrap();
    let all = events(0..30);
    create_stream(&broker.url(), &cfg).await;
    {
        let spool = Arc::new(Spool::open(dir.path(), 1 << 26).unwrap());
        spool.append(&all[..10]).unwrap();
        let batch = spool.reader().unwrap().next_batch(256).unwrap();
        Publisher::new(&cfg, spool.id(), Metrics::new().cluster).publish(&[batch]).await.unwrap();
        // More clicks land, then the edge crashes before committing its cursor.
        spool.append(&all[10..]).unwrap();
    }
    let spool = Arc::new(Spool::open(dir.path(), 1 << 26).unwrap());
    let (edge, core_metrics) = (Metrics::new().cluster, Metrics::new().cluster);
    let (stop_tx, stop) = watch::channel(false);
    let publisher = spawn_publisher(&cfg, &spool, &edge, &stop);
    let core = Core::default();
    let consumer = spawn_consumer(&cfg, &core_metrics, core.writer(), &stop);
    wait_until("every click is written", || core.written_len() == all.len()).await;
    wait_until("the spool is committed", || spool.pending_bytes() == 0).await;
    wait_until("every message is acked", || core_metrics.consumed.get() >= 40).await;
    stop_tx.send(true).unwrap();
    publisher.await.unwrap();
    consumer.await.unwrap();
    assert_eq!(last_seq(&broker.url(), &cfg).await, 2, "the longer batch was stored, not dropped");
    assert_same_order(&core.written(), &all);
    assert_eq!(core.0.lock().unwrap().delivered, 40, "the first ten came twice and were written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn a_message_that_is_no_click_is_terminated_not_redelivered() {
    let broker = Broker::start();
    let cfg = cluster(&broker.url(), "poison");
    let evs = events(0..1);
    let js = jetstream_of(&broker.url()).await;
    create_stream(&broker.url(), &cfg).await;
    // A stray message lands between two clicks.
    publish_each(&cfg, &evs).await;
    js.publish(cfg.subject.clone(), "not msgpack at all".into()).await.unwrap().await.unwrap();
    let more = events(1..2);
    publish_each(&cfg, &more).await;

    let core_metrics = Metrics::new().cluster;
    let core = Core::default();
    let (stop_tx, stop) = watch::channel(false);
    let consumer = spawn_consumer(&cfg, &core_metrics, core.writer(), &stop);
    wait_until("both clicks are written", || core.written_len() == 2).await;
    let url = broker.url();
    wait_until("nothing is pending on the consumer", || {
        let info = futures_block(consumer_info(&url, &cfg));
        info.num_ack_pending == 0 && info.num_pending == 0
    })
    .await;
    stop_tx.send(true).unwrap();
    consumer.await.unwrap();
    assert_eq!(core_metrics.poison.get(), 1);
    assert_eq!(ids(&core.written()), [evs[0].click_id, more[0].click_id]);
}

/// Runs a future to completion from synchronous test code inside the runtime.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn messages_are_acked_only_after_the_write_succeeds() {
    let broker = Broker::start();
    let cfg = cluster(&broker.url(), "ackafter");
    let evs = events(0..20);
    create_stream(&broker.url(), &cfg).await;
    publish_each(&cfg, &evs).await;

    let core = Core::default();
    // The ack floor the broker reported when the write finally succeeded.
    let floor_at_write = Arc::new(Mutex::new(None));
    let writer = {
        let (core, floor_at_write, url, cfg) = (core.clone(), floor_at_write.clone(), broker.url(), cfg.clone());
        move |batch: &[ClickEvent]| {
            if core.0.lock().unwrap().calls == 0 {
                core.0.lock().unwrap().calls += 1;
                return Err(io::Error::other("disk full"));
            }
            // On tokio's blocking pool, so waiting on the runtime here is allowed.
            let info = tokio::runtime::Handle::current().block_on(consumer_info(&url, &cfg));
            floor_at_write.lock().unwrap().get_or_insert((info.ack_floor.stream_sequence, info.num_ack_pending));
            Ok(core.write(batch))
        }
    };
    let core_metrics = Metrics::new().cluster;
    let (stop_tx, stop) = watch::channel(false);
    let consumer = spawn_consumer(&cfg, &core_metrics, writer, &stop);
    wait_until("every click is written", || core.written_len() == evs.len()).await;
    wait_until("every click is acked", || core_metrics.consumed.get() >= evs.len() as u64).await;
    stop_tx.send(true).unwrap();
    consumer.await.unwrap();

    let (floor, pending) = floor_at_write.lock().unwrap().expect("the retry wrote");
    assert_eq!(floor, 0, "nothing was acked before the write succeeded");
    assert!(pending > 0, "the failed batch was still held, unacked");
    let info = consumer_info(&broker.url(), &cfg).await;
    assert_eq!(info.ack_floor.stream_sequence, evs.len() as u64);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(ids(&core.written()), ids(&evs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn a_batch_never_written_is_redelivered_to_the_next_consumer() {
    let broker = Broker::start();
    let cfg = cluster(&broker.url(), "redeliver");
    let evs = events(0..10);
    create_stream(&broker.url(), &cfg).await;
    publish_each(&cfg, &evs).await;

    // A core whose disk fails, then which stops (or dies) without acking anything.
    let attempts = Arc::new(Mutex::new(0usize));
    let failing = {
        let attempts = attempts.clone();
        move |_: &[ClickEvent]| -> io::Result<usize> {
            *attempts.lock().unwrap() += 1;
            Err(io::Error::other("disk full"))
        }
    };
    let (stop_tx, stop) = watch::channel(false);
    let first = spawn_consumer(&cfg, &Metrics::new().cluster, failing, &stop);
    wait_until("the failing core tried", || *attempts.lock().unwrap() > 0).await;
    stop_tx.send(true).unwrap();
    first.await.unwrap();

    let core = Core::default();
    let core_metrics = Metrics::new().cluster;
    let (stop_tx, stop) = watch::channel(false);
    let second = spawn_consumer(&cfg, &core_metrics, core.writer(), &stop);
    wait_until("the next core wrote every click", || core.written_len() == evs.len()).await;
    wait_until("every click is acked", || core_metrics.consumed.get() >= evs.len() as u64).await;
    stop_tx.send(true).unwrap();
    second.await.unwrap();
    assert_eq!(ids(&core.written()), ids(&evs));
    assert_eq!(consumer_info(&broker.url(), &cfg).await.ack_floor.stream_sequence, evs.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn a_changed_ack_wait_applies_to_the_existing_durable() {
    let broker = Broker::start();
    let url = broker.url();
    let mut cfg = cluster(&url, "update");
    create_stream(&url, &cfg).await;
    publish_each(&cfg, &events(0..1)).await;

    // The first start creates the durable.
    let core_metrics = Metrics::new().cluster;
    let (stop_tx, stop) = watch::channel(false);
    let consumer = spawn_consumer(&cfg, &core_metrics, Core::default().writer(), &stop);
    wait_until("the click is acked", || core_metrics.consumed.get() >= 1).await;
    stop_tx.send(true).unwrap();
    consumer.await.unwrap();
    assert_eq!(consumer_info(&url, &cfg).await.config.ack_wait, Duration::from_secs(1));

    // A restart with another ack wait brings the durable to it.
    cfg.ack_wait_ms = 3_000;
    let (stop_tx, stop) = watch::channel(false);
    let consumer = spawn_consumer(&cfg, &Metrics::new().cluster, Core::default().writer(), &stop);
    wait_until("the durable has the new ack wait", || futures_block(consumer_info(&url, &cfg)).config.ack_wait == Duration::from_secs(3))
        .await;
    stop_tx.send(true).unwrap();
    consumer.await.unwrap();
}

/// nats-server 2.9 can break a stream that two clients create at the same moment, so only the
/// core creates it. Edge and core starting together on fresh streams, again and again, must
/// always get the clicks through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server on PATH; run with --include-ignored"]
async fn edge_and_core_starting_together_get_clicks_through() {
    let broker = Broker::start();
    let url = broker.url();
    for i in 0..20 {
        let cfg = cluster(&url, &format!("together{i}"));
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), 1 << 26).unwrap());
        let evs = events(0..5);
        spool.append(&evs).unwrap();
        let (edge, core_metrics) = (Metrics::new().cluster, Metrics::new().cluster);
        let (stop_tx, stop) = watch::channel(false);
        let publisher = spawn_publisher(&cfg, &spool, &edge, &stop);
        let core = Core::default();
        let consumer = spawn_consumer(&cfg, &core_metrics, core.writer(), &stop);
        wait_until("the clicks are written", || core.written_len() == evs.len()).await;
        stop_tx.send(true).unwrap();
        publisher.await.unwrap();
        consumer.await.unwrap();
        assert_same_order(&core.written(), &evs);
    }
}
