use std::sync::{Barrier, Mutex};

use super::*;
use crate::events::spool::Spool;
use crate::model::VisitorId;

/// Click `n`: its `ts_ms` is `n`, so a writer's log shows which clicks it got, in what order.
fn click(n: u64) -> ClickEvent {
    let id = crate::testing::click_signer().mint(1_763_800_000_000 + n, 1, 1);
    ClickEvent { visitor_id: VisitorId([7; 16]), ..crate::testing::click(id, n) }
}

fn metrics() -> SinkMetrics {
    SinkMetrics {
        queue_depth: IntGauge::new("q", "q").unwrap(),
        spill_depth: IntGauge::new("s", "s").unwrap(),
        written: IntCounter::new("w", "w").unwrap(),
        spilled: IntCounter::new("p", "p").unwrap(),
        dropped: IntCounter::new("d", "d").unwrap(),
    }
}

/// What a writer was asked to do, in order.
#[derive(Debug, PartialEq)]
enum Op {
    Write(Vec<u64>),
    Sync,
}

/// Records every call; its first `write_batch` can be held at a gate.
#[derive(Default)]
struct Recorder {
    ops: Mutex<Vec<Op>>,
    /// When set, the first write meets the test at `entered`, then waits for `release`.
    gate: Option<(Barrier, Barrier)>,
    fail: bool,
}

impl Recorder {
    fn gated() -> Recorder {
        Recorder { gate: Some((Barrier::new(2), Barrier::new(2))), ..Recorder::default() }
    }

    /// The `ts_ms` of every event written, in order.
    fn written(&self) -> Vec<u64> {
        self.ops.lock().unwrap().iter().flat_map(|op| if let Op::Write(b) = op { b.clone() } else { Vec::new() }).collect()
    }

    /// Whether the last call was a sync (so everything written is covered by one).
    fn synced_last(&self) -> bool {
        self.ops.lock().unwrap().last() == Some(&Op::Sync)
    }
}

impl BatchWriter for Recorder {
    fn write_batch(&self, batch: &[ClickEvent]) -> std::io::Result<()> {
        let first = {
            let mut ops = self.ops.lock().unwrap();
            ops.push(Op::Write(batch.iter().map(|e| e.ts_ms).collect()));
            ops.len() == 1
        };
        if let (true, Some((entered, release))) = (first, &self.gate) {
            entered.wait();
            release.wait();
        }
        if self.fail {
            return Err(std::io::Error::other("refused"));
        }
        Ok(())
    }

    fn sync(&self) -> std::io::Result<()> {
        self.ops.lock().unwrap().push(Op::Sync);
        Ok(())
    }
}

fn batching() -> Batching {
    Batching { len_max: 64, linger: Duration::ZERO }
}

/// Runs the consumer to its end on a runtime of its own, `stop` already flipped.
fn finish(consumer: ClickConsumer) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    stop_tx.send(true).unwrap();
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(consumer.run(stop_rx));
}

#[test]
fn sends_complete_while_the_spill_writer_is_blocked_and_only_what_fits_nowhere_drops() {
    let (main, spill) = (Arc::new(Recorder::default()), Arc::new(Recorder::gated()));
    let m = metrics();
    let (sink, consumer) = channel(main.clone(), spill.clone(), 16, 16, batching(), m.clone()).unwrap();
    // The consumer does not run yet: 16 clicks fill the main queue.
    (0..16).for_each(|n| sink.send(click(n)));
    assert_eq!((sink.queue_len(), m.spill_depth.get(), m.dropped.get()), (16, 0, 0));
    // Click 16 spills; the spill thread takes it and blocks in the writer.
    sink.send(click(16));
    let (entered, release) = spill.gate.as_ref().unwrap();
    entered.wait();
    // 100 more, from another thread, while the spill writer is held: a send that waited for
    // it would never return, and the channel below would report that instead of a result.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        (17..117).for_each(|n| sink.send(click(n)));
        done_tx.send(()).unwrap();
        sink
    });
    done_rx.recv_timeout(Duration::from_secs(120)).expect("send waited on the blocked spill writer");
    let sink = sender.join().unwrap();
    // The spill queue took 17..=32; the other 84 fitted nowhere.
    assert_eq!((m.spill_depth.get(), m.dropped.get(), m.spilled.get()), (16, 84, 0));
    release.wait();
    drop(sink);
    finish(consumer);
    assert_eq!(main.written(), (0..16).collect::<Vec<_>>());
    assert_eq!(spill.written(), (16..33).collect::<Vec<_>>());
    assert_eq!((m.written.get(), m.spilled.get(), m.dropped.get(), m.spill_depth.get()), (16, 17, 84, 0));
    assert!(main.synced_last() && spill.synced_last());
}

/// The spool as the overflow writer, as `app::SpoolWriter` puts it.
struct SpoolOverflow(Arc<Spool>);

impl BatchWriter for SpoolOverflow {
    fn write_batch(&self, batch: &[ClickEvent]) -> std::io::Result<()> {
        Ok(self.0.append(batch)?)
    }

    fn sync(&self) -> std::io::Result<()> {
        Ok(self.0.sync()?)
    }
}

#[test]
fn spilled_clicks_reach_the_spool_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 30).unwrap());
    let main = Arc::new(Recorder::default());
    let m = metrics();
    // With a linger, as in `serve`: the spill thread sleeps after each write instead of parking.
    let lingering = Batching { linger: Duration::from_millis(1), ..batching() };
    let (sink, consumer) = channel(main.clone(), Arc::new(SpoolOverflow(spool.clone())), 16, 1024, lingering, m.clone()).unwrap();
    (0..1016).for_each(|n| sink.send(click(n)));
    drop(sink);
    finish(consumer);
    assert_eq!((m.written.get(), m.spilled.get(), m.dropped.get()), (16, 1000, 0));
    let mut reader = spool.reader().unwrap();
    let read: Vec<u64> = reader.next_batch(2000).unwrap().events.iter().map(|e| e.ts_ms).collect();
    assert_eq!(read, (16..1016).collect::<Vec<_>>());
}

#[test]
fn shutdown_writes_both_queues_and_keeps_clicks_sent_after_the_stop() {
    let (main, spill) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let m = metrics();
    let (sink, consumer) = channel(main.clone(), spill.clone(), 64, 64, batching(), m.clone()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(consumer.run(stop_rx));
    });
    (0..50).for_each(|n| sink.send(click(n)));
    stop_tx.send(true).unwrap();
    // The consumer closes the main queue on the stop; a connection still draining keeps
    // sending, and those clicks go to the spill queue.
    while !sink.tx.is_closed() {
        std::thread::yield_now();
    }
    (50..100).for_each(|n| sink.send(click(n)));
    drop(sink);
    runner.join().unwrap();
    // `run` returned only after both writers had every click and a final sync.
    assert_eq!(main.written(), (0..50).collect::<Vec<_>>());
    assert_eq!(spill.written(), (50..100).collect::<Vec<_>>());
    assert!(main.synced_last() && spill.synced_last());
    assert_eq!((m.written.get(), m.spilled.get(), m.dropped.get()), (50, 50, 0));
}

#[test]
fn a_refused_spill_write_counts_its_clicks_as_dropped() {
    let main = Arc::new(Recorder::default());
    let spill = Arc::new(Recorder { fail: true, ..Recorder::default() });
    let m = metrics();
    let (sink, consumer) = channel(main, spill.clone(), 16, 64, batching(), m.clone()).unwrap();
    (0..40).for_each(|n| sink.send(click(n)));
    drop(sink);
    finish(consumer);
    assert_eq!(spill.written(), (16..40).collect::<Vec<_>>(), "the spill thread tried every spilled click");
    assert_eq!((m.written.get(), m.spilled.get(), m.dropped.get()), (16, 0, 24));
}

#[test]
fn each_lone_spill_wakes_the_parked_thread() {
    // One click at a time, each waited for: the spill thread has found the queue empty and
    // parked (or is about to) before every send, so a lost wake-up would leave a click waiting
    // until shutdown, and the wait below would give up.
    let (main, spill) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let m = metrics();
    let (sink, consumer) = channel(main, spill.clone(), 16, 16, batching(), m.clone()).unwrap();
    (0..16).for_each(|n| sink.send(click(n)));
    for n in 16..516 {
        sink.send(click(n));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while m.spilled.get() < n - 15 {
            assert!(std::time::Instant::now() < deadline, "click {n} was never written: the spill thread was not woken");
            std::thread::yield_now();
        }
    }
    assert_eq!(spill.written(), (16..516).collect::<Vec<_>>());
    drop(sink);
    finish(consumer);
}

/// Records the thread each batch is written on and that thread's nice value.
#[derive(Default)]
struct ThreadProbe(Mutex<Vec<(Option<String>, i32)>>);

impl BatchWriter for ThreadProbe {
    fn write_batch(&self, _batch: &[ClickEvent]) -> std::io::Result<()> {
        let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid()))?;
        self.0.lock().unwrap().push((std::thread::current().name().map(str::to_owned), nice));
        Ok(())
    }
}

#[test]
fn batches_are_written_on_the_writer_thread_below_the_request_threads_priority() {
    let (main, spill) = (Arc::new(ThreadProbe::default()), Arc::new(Recorder::default()));
    let (sink, consumer) = channel(main.clone(), spill, 16, 16, batching(), metrics()).unwrap();
    (0..10).for_each(|n| sink.send(click(n)));
    drop(sink);
    finish(consumer);
    let seen = main.0.lock().unwrap();
    assert!(!seen.is_empty(), "nothing was written");
    let own = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
    for (name, nice) in seen.iter() {
        assert_eq!(name.as_deref(), Some("clickgate-clicks"), "a batch was written off the writer thread");
        // Lowered to WRITER_NICE, or left where it was when the test already runs nicer.
        assert!(*nice >= WRITER_NICE.max(own), "writer nice {nice}, test thread {own}");
    }
}
