use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::click_log::SegmentLog;
use crate::config::Core;
use crate::index::tests::{event, event_at, T0_MS};
use crate::model::Channel;

fn config(index_clicks_max: usize) -> Core {
    Core { segment_bytes_max: 64 * 1024, compact_segment_bytes_min: 16 * 1024, index_clicks_max, ..Core::default() }
}

fn metrics() -> CoreMetrics {
    crate::metrics::Metrics::new().core
}

/// Every frame in the log at `dir`, in order (the ingest holding it must be dropped).
fn log_ids(dir: &Path) -> Vec<ClickId> {
    let mut ids = Vec::new();
    SegmentLog::open(dir, 64 * 1024, |ev| ids.push(ev.click_id)).unwrap();
    ids
}

/// Bytes in the files of `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

fn assert_each_once(ids: &[ClickId]) -> HashSet<ClickId> {
    let set: HashSet<ClickId> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "a click id is written more than once");
    set
}

#[test]
fn a_redelivered_click_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = metrics();
    let ingest = Ingest::open(dir.path(), &config(10_000), m.clone(), T0_MS).unwrap();
    let mut batch: Vec<ClickEvent> = (0..100).map(event).collect();
    batch.extend([event(5), event(6)]);
    assert_eq!(ingest.ingest(&batch).unwrap(), IngestStats { written: 100, duplicates: 2 });
    assert_eq!(ingest.ingest(&batch).unwrap(), IngestStats { written: 0, duplicates: 102 });
    assert_eq!(ingest.ingest(&[event(100), event(3)]).unwrap(), IngestStats { written: 1, duplicates: 1 });
    assert_eq!((m.ingested.get(), m.duplicates.get(), m.batches.get()), (101, 105, 2));
    assert_eq!((m.index_clicks.get(), m.index_visitors.get(), m.log_segments.get()), (101, 7, 1));
    assert!(m.log_bytes.get() > 101 * 100);
    let stats = ingest.click_stats(StatsScope::Program("shop"), 0, u32::MAX);
    assert_eq!(stats.iter().map(|d| d.total).sum::<u64>(), 51, "each click counted once");
    drop(ingest);
    let ids = log_ids(dir.path());
    assert_eq!(ids.len(), 101);
    assert_each_once(&ids);
}

/// Clicks by id, touches by visitor, counters by scope.
type Answers = (Vec<Option<IndexedClick>>, Vec<Vec<IndexedClick>>, Vec<Vec<DayClicks>>);

/// Everything the store answers about `events`, for comparing before and after a restart.
fn answers(ingest: &Ingest, events: &[ClickEvent]) -> Answers {
    let clicks = events.iter().map(|ev| ingest.click(&ev.click_id)).collect();
    let touches = (0..7).map(|v| ingest.visitor_touches(&event_at(0, 0, v).visitor_id, 0, u64::MAX)).collect();
    let scopes = [StatsScope::Partner("alice"), StatsScope::Partner("bob"), StatsScope::Partner("carol")];
    let scopes = scopes.into_iter().chain([StatsScope::Program("shop"), StatsScope::Program("cafe")]);
    let links = ["l0", "l1", "l2", "l3", "l4"].map(StatsScope::Link);
    let channels = Channel::ALL.iter().flat_map(|&c| {
        [ChannelFilter::All, ChannelFilter::Program("shop"), ChannelFilter::Partner("bob")].map(|f| StatsScope::Channel(c, f))
    });
    let stats = scopes.chain(links).chain(channels).map(|s| ingest.click_stats(s, 0, u32::MAX)).collect();
    (clicks, touches, stats)
}

#[test]
fn a_restart_rebuilds_the_same_index_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let config = Core { ingest_batch_len_max: 128, ..config(1000) };
    // One click a minute for a little over two days, so counters span three UTC days, and
    // more clicks than the index holds, so evictions must replay the same way too.
    let events: Vec<ClickEvent> = (0..3000).map(|n| event_at(n, T0_MS + n * 60_000, n % 7)).collect();
    let ingest = Ingest::open(dir.path(), &config, metrics(), T0_MS).unwrap();
    let mut written = Vec::new();
    for batch in events.chunks(500) {
        assert_eq!(ingest.ingest(batch).unwrap().written, 500);
        written.extend_from_slice(batch);
    }
    // Click 0 was evicted long ago: a redelivery now is new to the index and written again.
    assert!(!ingest.contains(&events[0].click_id));
    assert_eq!(ingest.ingest(&events[..1]).unwrap().written, 1);
    written.push(events[0].clone());
    assert_eq!(ingest.clicks_held(), 1000);
    let before = answers(&ingest, &events);

    // The counters hold what was written, by UTC day.
    let mut want: HashMap<u32, DayClicks> = HashMap::new();
    for ev in written.iter().filter(|ev| &*ev.partner == "bob") {
        let day = (ev.ts_ms / DAY_MS) as u32;
        let d = want.entry(day).or_insert_with(|| DayClicks { day, ..DayClicks::default() });
        d.total += 1;
        d.unique += u64::from(!ev.reasons.contains(Reason::Duplicate));
        d.by_verdict[ev.verdict as usize] += 1;
        ev.reasons.iter().for_each(|r| d.by_reason[r as usize] += 1);
    }
    let mut want: Vec<DayClicks> = want.into_values().collect();
    want.sort_by_key(|d| d.day);
    assert_eq!(want.len(), 3);
    assert!(want.iter().all(|d| d.unique < d.total && d.by_reason[Reason::VelocityIp as usize] > 0));
    assert_eq!(before.2[1], want);
    let day1 = want[1].day;
    assert_eq!(ingest.click_stats(StatsScope::Partner("bob"), day1, day1), vec![want[1].clone()]);
    assert_eq!(ingest.click_stats(StatsScope::Partner("bob"), day1 + 1, day1), vec![]);
    assert_eq!(ingest.click_stats(StatsScope::Partner("nobody"), 0, u32::MAX), vec![]);
    // Every click in one link and one channel; a channel held to a partner or a program counts
    // that one's clicks of it.
    let total = |days: &[DayClicks]| days.iter().map(|d| d.total).sum::<u64>();
    let links: u64 = ["l0", "l1", "l2", "l3", "l4"].iter().map(|l| total(&ingest.click_stats(StatsScope::Link(l), 0, u32::MAX))).sum();
    let channels: u64 =
        Channel::ALL.iter().map(|&c| total(&ingest.click_stats(StatsScope::Channel(c, ChannelFilter::All), 0, u32::MAX))).sum();
    assert_eq!((links, channels), (written.len() as u64, written.len() as u64));
    for c in Channel::ALL {
        let bob = written.iter().filter(|ev| &*ev.partner == "bob" && ev.channel == c).count() as u64;
        let shop = written.iter().filter(|ev| &*ev.program == "shop" && ev.channel == c).count() as u64;
        assert_eq!(total(&ingest.click_stats(StatsScope::Channel(c, ChannelFilter::Partner("bob")), 0, u32::MAX)), bob);
        assert_eq!(total(&ingest.click_stats(StatsScope::Channel(c, ChannelFilter::Program("shop")), 0, u32::MAX)), shop);
    }
    drop(ingest);

    let m = metrics();
    let ingest = Ingest::open(dir.path(), &config, m.clone(), T0_MS).unwrap();
    assert!(before == answers(&ingest, &events), "the index and counters answer as before the restart");
    assert_eq!((m.index_clicks.get(), m.index_evictions.get()), (1000, 2001));
    assert_eq!(ingest.ingest(&events[2500..]).unwrap().written, 0, "held ids stay held across a restart");
}

#[test]
fn concurrent_batches_with_overlapping_ids_write_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = Arc::new(Ingest::open(dir.path(), &config(100_000), metrics(), T0_MS).unwrap());
    let events: Arc<Vec<ClickEvent>> = Arc::new((0..4000).map(event).collect());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (ingest, events) = (ingest.clone(), events.clone());
            std::thread::spawn(move || {
                // Thread t sends clicks t*700 .. t*700+1900: each range overlaps the next ones.
                let mine = &events[t * 700..t * 700 + 1900];
                let mut written = 0;
                for (i, batch) in mine.chunks(97).enumerate() {
                    let r = ingest.ingest(batch).unwrap();
                    assert_eq!(r.written + r.duplicates, batch.len());
                    written += r.written;
                    // A reader in between sees whole batches.
                    if i % 5 == 0 {
                        assert!(ingest.contains(&batch[0].click_id));
                    }
                }
                written
            })
        })
        .collect();
    let written: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(written, 3 * 700 + 1900);
    assert_eq!(ingest.clicks_held(), written);
    drop(ingest);
    let ids = log_ids(dir.path());
    let set = assert_each_once(&ids);
    assert_eq!(set, events[..written].iter().map(|e| e.click_id).collect());
}

#[test]
fn maintain_expires_old_segments_and_compacts_small_ones() {
    let dir = tempfile::tempdir().unwrap();
    let day = DAY_MS;
    let small = Core { segment_bytes_max: 4096, compact_segment_bytes_min: 1024, retention_days: 3, ..config(100_000) };
    let ingest = Ingest::open(dir.path(), &small, metrics(), T0_MS).unwrap();
    // Ten days, 40 clicks a day in batches of 10: about 2.5 KB per batch, so one batch per segment.
    let events: Vec<ClickEvent> = (0..400).map(|n| event_at(n, T0_MS + n / 40 * day + n, n % 7)).collect();
    for batch in events.chunks(10) {
        ingest.ingest(batch).unwrap();
    }
    drop(ingest);

    // A larger segment size now: the old 2.5 KB segments are small, and get merged.
    let big = Core { segment_bytes_max: 64 * 1024, compact_segment_bytes_min: 16 * 1024, ..small };
    let m = metrics();
    let now = T0_MS + 10 * day;
    let ingest = Ingest::open(dir.path(), &big, m.clone(), now).unwrap();
    let segments_before = m.log_segments.get();
    assert_eq!(segments_before, 40);
    let first_day = ((now - 3 * day).div_ceil(day)) as u32;
    let stats_before = ingest.click_stats(StatsScope::Program("shop"), 0, u32::MAX);
    assert_eq!(stats_before.first().unwrap().day, first_day, "days retention may have cut into are not reported");
    ingest.maintain(now).unwrap();
    // Days 0..=6 end before the horizon (day 7 + 0..40 ms): their 7 x 4 segments go.
    assert_eq!(m.segments_expired.get(), 28);
    assert!(m.segments_compacted.get() >= 11, "the 11 sealed survivors are merged");
    assert_eq!(m.log_segments.get(), 2, "one merged segment and the active one");
    assert_eq!(ingest.click_stats(StatsScope::Program("shop"), 0, u32::MAX), stats_before);
    let held: Vec<ClickId> = events[280..].iter().map(|e| e.click_id).collect();
    drop(ingest);
    let ids = log_ids(dir.path());
    assert_eq!(ids, held, "what is left is the newest 12 segments' clicks, in order, once each");
    let ingest = Ingest::open(dir.path(), &big, metrics(), now).unwrap();
    assert_eq!(ingest.click_stats(StatsScope::Program("shop"), 0, u32::MAX), stats_before, "and a restart agrees");
}

// ---------------------------------------------------------------------------------------------
// kill -9: the test runs itself again as a child process that ingests until it is killed,
// then the log must hold every acknowledged click exactly once.
// ---------------------------------------------------------------------------------------------

/// Set in the child process: the same test, run as the writer that is killed.
const CHILD: &str = "CLICKGATE_TEST_CHILD";
const KILL9_DIR: &str = "CLICKGATE_TEST_KILL9_DIR";
const KILL9_FROM: &str = "CLICKGATE_TEST_KILL9_FROM";
const KILL9_SEGMENT_BYTES: &str = "CLICKGATE_TEST_KILL9_SEGMENT_BYTES";

/// Rounds alternate small and large segments, so each large round's compactions merge the
/// small round's segments while the writer may be killed.
fn kill9_config(segment_bytes_max: u64) -> Core {
    Core { segment_bytes_max, compact_segment_bytes_min: segment_bytes_max, index_clicks_max: 1_000_000, ..Core::default() }
}

/// The writer half of `kill_9_mid_ingest_loses_and_duplicates_nothing`, run in the child
/// process that test starts: ingests from `KILL9_FROM` on, printing what it acknowledges,
/// until it is killed.
fn kill9_writer() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{CHILD} is set but {k} is not: the parent test sets both"));
    let (dir, from, segment) = (var(KILL9_DIR), var(KILL9_FROM), var(KILL9_SEGMENT_BYTES));
    let mut k: u64 = from.parse().unwrap();
    let ingest = Ingest::open(Path::new(&dir), &kill9_config(segment.parse().unwrap()), metrics(), T0_MS).unwrap();
    let mut rng = fastrand::Rng::with_seed(k);
    // libtest may have printed "test <name> ... " without a newline: acknowledgements start on
    // a line of their own.
    println!();
    for i in 0..100_000 {
        // Each batch overlaps the next by half, as a broker redelivering would.
        let len = rng.u64(1..=300);
        let batch: Vec<ClickEvent> = (k..k + len + len / 2).map(event).collect();
        ingest.ingest(&batch).unwrap();
        // What is acknowledged: every click before this number, and the active segment's
        // bytes up to this length.
        let active = ingest.segments().pop().unwrap();
        println!("ACK {} {} {}", k + len + len / 2, active.file_name(), active.bytes);
        k += len;
        if i % 8 == 7 {
            ingest.maintain(T0_MS).unwrap();
        }
    }
    panic!("the writer ingested 100,000 batches without being killed");
}

/// Runs as the parent: starts this same test in a child process (its own test binary, with
/// `CLICKGATE_TEST_CHILD` set) four times, kills it with SIGKILL at a random moment, cuts what
/// it wrote but did not acknowledge, and checks the log. In the child, runs `kill9_writer`.
#[test]
fn kill_9_mid_ingest_loses_and_duplicates_nothing() {
    if std::env::var_os(CHILD).is_some() {
        return kill9_writer();
    }
    // The test's name as libtest knows it: its path without the crate's name.
    let name = format!("{}::kill_9_mid_ingest_loses_and_duplicates_nothing", module_path!().split_once("::").unwrap().1);
    let dir = tempfile::tempdir().unwrap();
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut acked, mut torn_rounds) = (0u64, 0);
    for round in 0..4 {
        // Start a little before the last acknowledgement: those clicks are redelivered.
        let from = acked.saturating_sub(rng.u64(0..500));
        let segment_bytes: u64 = if round % 2 == 0 { 16 << 10 } else { 256 << 10 };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env(KILL9_DIR, dir.path())
            .env(KILL9_FROM, from.to_string())
            .env(KILL9_SEGMENT_BYTES, segment_bytes.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(ack) = line.strip_prefix("ACK ") {
                    let mut parts = ack.split(' ');
                    let n: u64 = parts.next().unwrap().parse().unwrap();
                    let (file, bytes) = (parts.next().unwrap().to_string(), parts.next().unwrap().parse::<u64>().unwrap());
                    last = Some((n, file, bytes));
                    let _ = tx.send(());
                }
            }
            last
        });
        // Let it acknowledge a few batches, then kill it at a random moment.
        for _ in 0..rng.usize(1..40) {
            if rx.recv_timeout(Duration::from_secs(60)).is_err() {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.u64(0..20_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        // Lines written before the kill are still in the pipe: they were acknowledged too.
        let (last, active, active_bytes) =
            reader.join().unwrap().unwrap_or_else(|| panic!("round {round} (seed {seed}): the writer acknowledged nothing"));
        acked = acked.max(last);
        // Power loss on top: what was written but not acknowledged may be gone, cut anywhere
        // (mid-frame too) after the acknowledged length; files started later may lose anything.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let (path, name) = (entry.as_ref().unwrap().path(), entry.unwrap().file_name().into_string().unwrap());
            let size = std::fs::metadata(&path).unwrap().len();
            let keep = match name.cmp(&active) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => rng.u64(active_bytes..=size),
                std::cmp::Ordering::Greater => rng.u64(0..=size),
            };
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(keep).unwrap();
        }
        eprintln!("kill -9 round {round} (seed {seed}): started at click {from}, {acked} clicks acknowledged so far");

        let before = dir_bytes(dir.path());
        let ingest = Ingest::open(dir.path(), &kill9_config(segment_bytes), metrics(), T0_MS).unwrap();
        torn_rounds += usize::from(dir_bytes(dir.path()) < before);
        let missing: Vec<u64> = (0..acked).filter(|&n| !ingest.contains(&event(n).click_id)).collect();
        assert!(missing.is_empty(), "round {round} (seed {seed}): acknowledged clicks lost: {:?}", &missing[..missing.len().min(10)]);
        assert_eq!(ingest.click(&event(acked - 1).click_id), Some(crate::index::tests::indexed(&event(acked - 1))));
        drop(ingest);
        let ids = log_ids(dir.path());
        let set = assert_each_once(&ids);
        assert!(set.len() as u64 >= acked);
    }
    // Whether a cut landed mid-frame is chance; the torn-tail case is also tested directly in
    // `click_log::tests`.
    let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let merged = names.iter().filter(|n| n.contains('-')).count();
    eprintln!(
        "kill -9: a torn tail was cut after {torn_rounds} of 4 kills and power cuts; {} segments, {merged} made by compaction",
        names.len()
    );
    // Two opens of the same log answer alike.
    let sample: Vec<ClickEvent> = (0..acked).step_by(97).map(event).collect();
    let a = answers(&Ingest::open(dir.path(), &kill9_config(64 << 10), metrics(), T0_MS).unwrap(), &sample);
    let b = answers(&Ingest::open(dir.path(), &kill9_config(64 << 10), metrics(), T0_MS).unwrap(), &sample);
    assert!(a == b);
}

#[test]
fn an_event_that_cannot_be_framed_fails_its_batch_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let m = metrics();
    let ingest = Ingest::open(dir.path(), &config(10_000), m.clone(), T0_MS).unwrap();
    let mut huge = event(2);
    huge.link = "x".repeat(100_000).into();
    let err = ingest.ingest(&[event(1), huge, event(3)]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("more than a frame"), "{err}");
    assert_eq!((ingest.clicks_held(), m.ingested.get(), m.duplicates.get(), m.batches.get()), (0, 0, 0, 0));
    assert_eq!(ingest.ingest(&[event(1), event(3)]).unwrap(), IngestStats { written: 2, duplicates: 0 });
    drop(ingest);
    assert_eq!(log_ids(dir.path()), vec![event(1).click_id, event(3).click_id]);
}
