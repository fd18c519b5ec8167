//! The core's click ingest and attribution index: events/s ingested into a real click log on
//! disk (one write and one fdatasync per batch of 4096), the log's replay on restart, and
//! lookups on an index of 1 M clicks with its memory per click.
//!
//! ```text
//! cargo bench --bench core_ingest                             # full: 2 M events, 1 M indexed (~1.5 min)
//! CLICKGATE_BENCH_QUICK=1 cargo bench --bench core_ingest     # seconds, for CI (a smoke test:
//! cargo test --release --bench core_ingest                    #  fresh tables' page faults dominate)
//! CLICKGATE_BENCH_ONLY=index|ingest   CLICKGATE_BENCH_INDEX_CLICKS=N   # one part; the index size
//! ```
//!
//! Prints plain `core ...` lines, quoted by benches/README.md:
//! - `core ingest_events_per_s`: `Ingest::ingest` with the default config (2 M-click index, 64 MiB
//!   segments), wall time, median of three runs into fresh logs; then once more with an index of
//!   half the events, timing only the second half, when every insert evicts (`phase=full_index`).
//!   `cpu_us_per_event` is this thread's CPU time (user + system), steadier than wall time on a
//!   shared machine; the difference is mostly waiting for the fsync.
//! - `core ingest breakdown`: encoding, index inserts and one batch's write + fdatasync, alone.
//! - `core rebuild_events_per_s`: `Ingest::open` replaying the log of one run.
//! - `core index_*`: inserts, lookups by click id and by visitor (30-day window), bytes per
//!   click from `ClickIndex::heap_bytes` and from the RSS growth while it was built.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use clickgate::config::Core;
use clickgate::events::ClickEvent;
use clickgate::index::{ClickIndex, RECORD_BYTES};
use clickgate::ingest::Ingest;
use clickgate::model::Channel;
use clickgate::model::{ClickId, ClickSigner, VisitorId};
use clickgate::model::{Reason, Reasons, Verdict};

/// Unix ms the simulated clock starts at (2025-11-22).
const T0_MS: u64 = 1_763_800_000_000;

struct Scale {
    /// Events ingested per run.
    events: usize,
    /// Events per `ingest` call.
    batch: usize,
    /// Clicks in the lookup index.
    index_clicks: usize,
    /// Lookups timed per kind.
    lookups: usize,
}

const FULL: Scale = Scale { events: 2_000_000, batch: 4096, index_clicks: 1_000_000, lookups: 2_000_000 };
const QUICK: Scale = Scale { events: 40_960, batch: 4096, index_clicks: 50_000, lookups: 100_000 };

fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    kib * 1024
}

/// A realistic mix: 5 programs, 200 partners, 2 000 links (each link belongs to one partner of
/// one program), Zipf-ish link popularity, 60 % of clicks from 500 k returning visitors, six
/// channels, a sub-id on a third of clicks, and about 5 % flagged (duplicates, bots,
/// datacenter networks), one click every 250 µs of simulated time.
fn generate(n: usize, seed: u64) -> Vec<ClickEvent> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let signer = ClickSigner::new(&[(1, b"0123456789abcdef".to_vec())]);
    let programs: Vec<Arc<str>> = (0..5).map(|i| Arc::from(format!("program-{i}"))).collect();
    let partners: Vec<Arc<str>> = (0..200).map(|i| Arc::from(format!("partner-{i:03}"))).collect();
    let links: Vec<(Arc<str>, u32, u32)> = (0..2000u32).map(|i| (Arc::from(format!("lnk{i:05}")), i % 200, i % 5)).collect();
    let channels = [Channel::Web, Channel::Social, Channel::Email, Channel::Qr, Channel::Offline, Channel::Marketplace];
    let returning: Vec<VisitorId> = (0..500_000).map(|_| VisitorId(rng.u128(..).to_le_bytes())).collect();
    (0..n)
        .map(|i| {
            let ts_ms = T0_MS + i as u64 / 4;
            // Zipf-ish: squaring a uniform favours low link numbers.
            let u = rng.f64();
            let link = ((u * u) * links.len() as f64) as usize;
            let (code, partner, program) = &links[link];
            let (mut reasons, roll) = (Reasons::default(), rng.u32(0..1000));
            let verdict = match roll {
                0..=24 => {
                    reasons.insert(Reason::Duplicate);
                    Verdict::Flagged
                }
                25..=39 => {
                    reasons.insert(Reason::BotUa);
                    Verdict::Flagged
                }
                40..=49 => {
                    reasons.insert(Reason::DatacenterAsn);
                    Verdict::Flagged
                }
                _ => Verdict::Valid,
            };
            let (visitor_id, new_visitor) = if rng.u8(0..10) < 6 {
                (returning[rng.usize(..returning.len())], false)
            } else {
                (VisitorId(rng.u128(..).to_le_bytes()), true)
            };
            ClickEvent {
                click_id: signer.mint(ts_ms, link as u32, *partner),
                ts_ms,
                program: programs[*program as usize].clone(),
                partner: partners[*partner as usize].clone(),
                link: code.clone(),
                channel: channels[rng.usize(..channels.len())],
                sub_ids: (rng.u8(0..3) == 0).then(|| Box::new([Some(format!("cmp{}", rng.u16(0..500)).into()), None, None, None, None])),
                verdict,
                reasons,
                observed: Reasons::default(),
                visitor_id,
                new_visitor,
                country: Some(*b"DE"),
                asn: 3320,
                ua_hash: rng.u64(..),
                // Events carry the agent and a client tag, as the edge writes them.
                ua: Some(
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
                        .into(),
                ),
                client_tag: Some(rng.u64(..)),
                ip: Some(IpAddr::V4(Ipv4Addr::from(rng.u32(..) & 0xffff_ff00))),
                ip_hash: None,
            }
        })
        .collect()
}

/// CPU time this thread has used, in ns (user and system, so the kernel's copying and the
/// fsync's CPU part count, waiting on the disk does not). Steadier than wall time on a busy box.
fn thread_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Inserts in batches, as ingest does.
fn insert_all(index: &mut ClickIndex, events: &[ClickEvent]) {
    for batch in events.chunks(4096) {
        let refs: Vec<&ClickEvent> = batch.iter().collect();
        index.insert_batch(&refs, |_, inserted| assert!(inserted));
    }
}

fn bench_index(scale: &Scale, events: &[ClickEvent]) {
    let clicks = scale.index_clicks.min(events.len());
    let rss_before = rss_bytes();
    let t = Instant::now();
    let mut index = ClickIndex::new(clicks, 32);
    insert_all(&mut index, &events[..clicks]);
    let build_s = t.elapsed().as_secs_f64();
    let rss_delta = rss_bytes().saturating_sub(rss_before);
    let heap = index.heap_bytes();
    println!(
        "core index_bytes_per_click={:.0} heap_estimate_bytes={heap} rss_delta_bytes={rss_delta} rss_bytes_per_click={:.0} record_bytes={RECORD_BYTES} clicks={clicks} visitors={} sources={}",
        heap as f64 / clicks as f64,
        rss_delta as f64 / clicks as f64,
        index.visitors(),
        index.sources()
    );
    println!("core index_inserts_per_s={:.0} phase=filling clicks={clicks} (no log)", clicks as f64 / build_s);

    let mut rng = fastrand::Rng::with_seed(7);
    let ids: Vec<ClickId> = (0..scale.lookups).map(|_| events[rng.usize(..clicks)].click_id).collect();
    let t = Instant::now();
    let mut found = 0usize;
    for id in &ids {
        found += black_box(index.click(id)).is_some() as usize;
    }
    let s = t.elapsed().as_secs_f64();
    assert_eq!(found, ids.len(), "every looked-up id is held");
    println!("core index_lookups_per_s={:.0} lookup=click_id clicks={clicks} lookups={}", ids.len() as f64 / s, ids.len());

    let visitors: Vec<VisitorId> = (0..scale.lookups).map(|_| events[rng.usize(..clicks)].visitor_id).collect();
    let window_ms = 30 * 86_400_000;
    let until = events[clicks - 1].ts_ms;
    let t = Instant::now();
    let mut touches = 0usize;
    for v in &visitors {
        touches += black_box(index.visitor_touches(v, until.saturating_sub(window_ms), until)).len();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "core index_lookups_per_s={:.0} lookup=visitor_touches clicks={clicks} lookups={} touches_per_lookup={:.2}",
        visitors.len() as f64 / s,
        visitors.len(),
        touches as f64 / visitors.len() as f64
    );

    drop((ids, visitors));
    // Steady state: the index is full, so every insert evicts the oldest click.
    let more = &events[clicks..(2 * clicks).min(events.len())];
    let t = Instant::now();
    insert_all(&mut index, more);
    let s = t.elapsed().as_secs_f64();
    println!(
        "core index_inserts_per_s={:.0} phase=full clicks={clicks} inserts={} (each evicts; no log) heap_estimate_bytes={} rss_bytes_per_click={:.0}",
        more.len() as f64 / s,
        more.len(),
        index.heap_bytes(),
        rss_bytes().saturating_sub(rss_before) as f64 / clicks as f64
    );
}

fn bench_ingest(scale: &Scale, events: &[ClickEvent], root: &Path) {
    let index_clicks_max = std::env::var("CLICKGATE_BENCH_INDEX_CLICKS").ok().and_then(|v| v.parse().ok());
    let config = Core { index_clicks_max: index_clicks_max.unwrap_or(Core::default().index_clicks_max), ..Core::default() };
    println!("core ingest config: index_clicks_max={} segment_bytes_max={}", config.index_clicks_max, config.segment_bytes_max);
    let mut rates = Vec::new();
    let (mut kept, mut cpus) = (None, Vec::new());
    for run in 0..3 {
        let dir = tempfile::tempdir_in(root).expect("temp dir");
        let metrics = clickgate::metrics::Metrics::new().core;
        let ingest = Ingest::open(dir.path(), &config, metrics.clone(), T0_MS).expect("open");
        let (t, cpu) = (Instant::now(), thread_cpu_ns());
        for batch in events.chunks(scale.batch) {
            let r = ingest.ingest(batch).expect("ingest");
            assert_eq!(r.written, batch.len());
        }
        let s = t.elapsed().as_secs_f64();
        let cpu_us = (thread_cpu_ns() - cpu) as f64 / 1000.0 / events.len() as f64;
        rates.push(events.len() as f64 / s);
        cpus.push(cpu_us);
        let batch_ms = metrics.batch_seconds.get_sample_sum() * 1000.0 / metrics.batch_seconds.get_sample_count() as f64;
        println!(
            "core ingest run={run} events={} batch={} seconds={s:.3} events_per_s={:.0} cpu_us_per_event={cpu_us:.2} batch_ms_mean={batch_ms:.2} log_bytes={} segments={}",
            events.len(),
            scale.batch,
            events.len() as f64 / s,
            metrics.log_bytes.get(),
            metrics.log_segments.get()
        );
        drop(ingest);
        kept = Some(dir);
    }
    println!(
        "core ingest_events_per_s={:.0} cpu_us_per_event={:.2} events={} batch={} fsync=per_batch (median of 3 runs)",
        median(rates),
        median(cpus),
        events.len(),
        scale.batch
    );

    // Steady state: an index of half the events, filled by the first half (not timed), so that
    // every timed insert evicts, as in a core that has run for a while.
    let (fill, timed) = events.split_at(events.len() / 2);
    let steady = Core { index_clicks_max: fill.len().max(1000), ..config.clone() };
    let dir = tempfile::tempdir_in(root).expect("temp dir");
    let ingest = Ingest::open(dir.path(), &steady, clickgate::metrics::Metrics::new().core, T0_MS).expect("open");
    fill.chunks(scale.batch).for_each(|b| assert_eq!(ingest.ingest(b).expect("ingest").written, b.len()));
    let (t, cpu) = (Instant::now(), thread_cpu_ns());
    timed.chunks(scale.batch).for_each(|b| assert_eq!(ingest.ingest(b).expect("ingest").written, b.len()));
    let s = t.elapsed().as_secs_f64();
    println!(
        "core ingest_events_per_s={:.0} cpu_us_per_event={:.2} events={} batch={} fsync=per_batch phase=full_index index_clicks_max={} (every insert evicts)",
        timed.len() as f64 / s,
        (thread_cpu_ns() - cpu) as f64 / 1000.0 / timed.len() as f64,
        timed.len(),
        scale.batch,
        steady.index_clicks_max
    );
    drop((ingest, dir));

    // Where a batch's time goes, measured piece by piece on the same events.
    let mut buf = Vec::with_capacity(4 << 20);
    let mut full_batch = Vec::new();
    let t = Instant::now();
    for batch in events.chunks(scale.batch) {
        buf.clear();
        for ev in batch {
            ev.encode_into(&mut buf).expect("encode");
        }
        black_box(crc32fast::hash(&buf));
        if full_batch.is_empty() && batch.len() == scale.batch {
            full_batch = buf.clone();
        }
    }
    let buf = full_batch;
    let encode_ns = t.elapsed().as_nanos() as f64 / events.len() as f64;
    let mut index = ClickIndex::new(config.index_clicks_max, config.index_visitor_touches_max);
    let t = Instant::now();
    insert_all(&mut index, events);
    let index_ns = t.elapsed().as_nanos() as f64 / events.len() as f64;
    drop(index);
    let dir = tempfile::tempdir_in(root).expect("temp dir");
    let mut file = std::fs::File::create(dir.path().join("fsync")).expect("file");
    let rounds = 50;
    let t = Instant::now();
    for _ in 0..rounds {
        std::io::Write::write_all(&mut file, &buf).expect("write");
        file.sync_data().expect("fsync");
    }
    let fsync_ms = t.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    println!(
        "core ingest breakdown: encode+crc={encode_ns:.0}ns/event index_insert={index_ns:.0}ns/event write+fdatasync={fsync_ms:.2}ms/batch of {} bytes",
        buf.len()
    );

    let dir = kept.expect("a run");
    let t = Instant::now();
    let ingest = Ingest::open(dir.path(), &config, clickgate::metrics::Metrics::new().core, T0_MS).expect("reopen");
    let s = t.elapsed().as_secs_f64();
    println!(
        "core rebuild_events_per_s={:.0} events={} seconds={s:.3} clicks_held={}",
        events.len() as f64 / s,
        events.len(),
        ingest.clicks_held()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var_os("CLICKGATE_BENCH_QUICK").is_some() || !args.iter().any(|a| a == "--bench");
    let scale = if quick { QUICK } else { FULL };
    if quick {
        println!("(quick mode: scaled-down inputs)");
    }
    let t = Instant::now();
    let events = generate(scale.events.max(2 * scale.index_clicks), 42);
    println!("core events generated={} seconds={:.1}", events.len(), t.elapsed().as_secs_f64());
    let only = std::env::var("CLICKGATE_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "index" {
        bench_index(&scale, &events);
    }
    if only == "index" {
        return;
    }
    // On the target directory's disk, not a tmpfs: the fsync must be real.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(root).expect("target tmp dir");
    bench_ingest(&scale, &events[..scale.events], root);
}
