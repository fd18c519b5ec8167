//! Benchmarks of the per-click fraud-check pipeline. What each group measures, how to run it and
//! the numbers measured so far are in `benches/README.md`.
//!
//! ```text
//! cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Before the criterion groups run, `bloom_false_positive_rate` prints one non-timed line with
//! the dedup stage's measured Bloom false-positive rate (and a WARNING when it is above the
//! configured rate). Run without `--bench` (as `cargo test --benches` does) everything is
//! scaled down and each benchmark runs once, as a smoke test.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use bloomfilter::Bloom;
use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use clickgate::app::SpoolWriter;
use clickgate::config::{self, Config};
use clickgate::edge::checks::bots::BotCheck;
use clickgate::edge::checks::dedup::DedupCheck;
use clickgate::edge::checks::geo::{datacenter_asns, GeoCheck, GeoDbs};
use clickgate::edge::checks::ip_rules::{CidrSet, IpRules};
use clickgate::edge::checks::rate_limit::RateLimits;
use clickgate::edge::checks::velocity::{VelocityCheck, WindowedSketch};
use clickgate::edge::checks::{Check, Click, Client, Findings, Pipeline, ProgramRules};
use clickgate::edge::links::LinkTable;
use clickgate::edge::{handler, judge, EdgeState, Judgement};
use clickgate::events::sink::{BatchWriter, ClickConsumer};
use clickgate::events::spool::Spool;
use clickgate::events::{truncate_ip, ClickEvent};
use clickgate::metrics::Metrics;
use clickgate::model::{ClickSigner, VisitorId};
use clickgate::model::{GeoDbKind, Reason, Reasons, Verdict};
use clickgate::storage::sqlite::SqliteCatalog as Store;

/// Unix ms the simulated clock starts at (2025-11-22).
const T0_MS: u64 = 1_763_800_000_000;
/// The simulated clock advances this much per click: 50k clicks/s.
const CLICK_STEP_US: u64 = 20;
/// Share of clicks with a bot (crawler, tool or link-preview) user agent, in percent.
const BOT_PERCENT: u32 = 5;
/// A 16-byte click-id signing key (test value).
const SIGNING_KEY: &[u8] = b"0123456789abcdef";

/// Sizes: the real ones under `cargo bench`, small ones for the once-through test mode.
#[derive(Clone, Copy)]
struct Scale {
    /// Distinct client IPs in the click mix.
    ips: usize,
    /// Pre-generated clicks (a power of two); the benches cycle through them.
    clicks: usize,
    /// Distinct keys in the race groups.
    race_keys: u64,
    /// Length of each race key stream (a power of two).
    race_stream: usize,
    /// Dedup capacity C (and probes) of the Bloom false-positive measurement.
    bloom_capacity: usize,
}

const FULL: Scale = Scale { ips: 100_000, clicks: 1 << 18, race_keys: 1_000_000, race_stream: 1 << 20, bloom_capacity: 1_000_000 };
const SMOKE: Scale = Scale { ips: 2_000, clicks: 1 << 12, race_keys: 10_000, race_stream: 1 << 12, bloom_capacity: 16_000 };

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The first of `paths` (relative to the crate root) that exists.
fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(|p| root().join(p)).find(|p| p.exists())
}

thread_local! {
    /// Microseconds since `T0_MS` on the simulated clock.
    static SIM_US: Cell<u64> = const { Cell::new(0) };
}

/// The simulated wall clock: advances `CLICK_STEP_US` per call and returns Unix ms.
///
/// One clock for the whole run, never reset: governor (the rate limits) takes its start instant
/// from the last time set on the building thread, and a clock that went back before it would
/// freeze the limiters' time at that start, so bursts would drain and clicks come back 429.
fn tick() -> u64 {
    SIM_US.with(|c| {
        let us = c.get() + CLICK_STEP_US;
        c.set(us);
        T0_MS + us / 1000
    })
}

// ---------------------------------------------------------------------------------------------
// The click mix
// ---------------------------------------------------------------------------------------------

/// One pre-generated request.
#[derive(Clone, Copy)]
struct Req {
    ip: IpAddr,
    ua: u16,
    code: u8,
}

/// A realistic, deterministic mix of requests.
struct Mix {
    reqs: Vec<Req>,
    /// Browser agents first (`..browsers`), then bot agents.
    uas: Vec<String>,
    browsers: usize,
    codes: Vec<String>,
}

impl Mix {
    fn ua(&self, r: &Req) -> &str {
        &self.uas[r.ua as usize]
    }

    fn code(&self, r: &Req) -> &str {
        &self.codes[r.code as usize]
    }

    /// The request at position `i` of an endless cycle through the mix.
    fn at(&self, i: usize) -> &Req {
        &self.reqs[i & (self.reqs.len() - 1)]
    }
}

/// Samples index `r` with weight `1 / (r + 1)^s`.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let cumulative = (0..n)
            .map(|r| {
                acc += 1.0 / ((r + 1) as f64).powf(s);
                acc
            })
            .collect();
        Zipf { cumulative }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let total = *self.cumulative.last().expect("non-empty");
        let x = rng.f64() * total;
        self.cumulative.partition_point(|&c| c <= x).min(self.cumulative.len() - 1)
    }
}

fn browser_uas() -> (Vec<String>, PathBuf) {
    let path = first_existing(&["config/bots/browser-user-agents.txt", "tests/fixtures/bots/browser-user-agents.txt"])
        .expect("config/bots/browser-user-agents.txt or tests/fixtures/bots/browser-user-agents.txt");
    let text = std::fs::read_to_string(&path).expect("read browser user agents");
    let uas: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    assert!(!uas.is_empty(), "{} is empty", path.display());
    (uas, path)
}

/// Bot agents: the first instance of every crawler-list entry, plus common tools and link
/// unfurlers (which the pipeline treats as previews, not clicks) and an empty agent.
fn bot_uas() -> Vec<String> {
    let mut uas: Vec<String> = [
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Go-http-client/1.1",
        "okhttp/4.12.0",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "WhatsApp/2.23.20.0",
        "Twitterbot/1.0",
        "TelegramBot (like TwitterBot)",
        "",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if let Some(path) = first_existing(&["config/bots/crawler-user-agents.json", "tests/fixtures/bots/crawler-user-agents.json"]) {
        let text = std::fs::read_to_string(&path).expect("read crawler list");
        let entries: Vec<serde_json::Value> = serde_json::from_str(&text).expect("crawler list is a JSON array");
        uas.extend(
            entries.iter().filter_map(|e| e.get("instances")?.as_array()?.first()?.as_str()).filter(|s| s.len() < 512).map(String::from),
        );
    }
    uas.truncate(2_000);
    uas
}

fn random_public_v4(rng: &mut fastrand::Rng) -> Ipv4Addr {
    loop {
        let a = rng.u32(..);
        let first = a >> 24;
        if (1..=223).contains(&first) && first != 10 && first != 127 && first != 100 && first != 172 && first != 192 {
            return Ipv4Addr::from(a);
        }
    }
}

fn random_v6(rng: &mut fastrand::Rng) -> Ipv6Addr {
    // Global unicast 2000::/3.
    Ipv6Addr::from((rng.u128(..) & !(0b111u128 << 125)) | (0b001u128 << 125))
}

fn build_mix(scale: Scale) -> Mix {
    let mut rng = fastrand::Rng::with_seed(0xC11C_6A7E);
    let (mut uas, browser_path) = browser_uas();
    let browsers = uas.len();
    let bots = bot_uas();
    uas.extend(bots);
    assert!(uas.len() <= u16::MAX as usize);
    let codes: Vec<String> = (0..20).map(|i| format!("lt{i:02}")).collect();

    // Distinct client IPs: ~90% IPv4, ~10% IPv6, and a few from the denied 203.0.113.0/24.
    let mut seen = HashSet::with_capacity(scale.ips);
    let mut ips = Vec::with_capacity(scale.ips);
    while ips.len() < scale.ips {
        let ip = match rng.u32(0..1000) {
            0..=1 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, rng.u8(..))),
            2..=99 => IpAddr::V6(random_v6(&mut rng)),
            _ => IpAddr::V4(random_public_v4(&mut rng)),
        };
        if seen.insert(ip) {
            ips.push(ip);
        }
    }
    // Each client keeps its browser; popular browsers are popular (the list is most frequent first).
    let browser_zipf = Zipf::new(browsers, 1.0);
    let ip_browser: Vec<u16> = (0..scale.ips).map(|_| browser_zipf.sample(&mut rng) as u16).collect();
    let code_zipf = Zipf::new(codes.len(), 1.0);
    let reqs = (0..scale.clicks)
        .map(|_| {
            let i = rng.usize(..scale.ips);
            let ua = if rng.u32(0..100) < BOT_PERCENT { rng.usize(browsers..uas.len()) as u16 } else { ip_browser[i] };
            Req { ip: ips[i], ua, code: code_zipf.sample(&mut rng) as u8 }
        })
        .collect();
    println!(
        "click mix: {} requests over {} distinct IPs, {} browser UAs from {}, {} bot UAs (~{BOT_PERCENT}%), codes lt00..lt19 (Zipf s=1), clock +{CLICK_STEP_US}us per click",
        scale.clicks,
        scale.ips,
        browsers,
        browser_path.strip_prefix(root()).unwrap_or(&browser_path).display(),
        uas.len() - browsers,
    );
    Mix { reqs, uas, browsers, codes }
}

// ---------------------------------------------------------------------------------------------
// Shared setup
// ---------------------------------------------------------------------------------------------

struct Env {
    scale: Scale,
    cfg: Config,
    table: LinkTable,
    mix: Mix,
    rules: ProgramRules,
}

fn load_table(cfg: &Config) -> LinkTable {
    let dir = root().join("target").join(format!("bench-pipeline-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let table = {
        let store = Store::open(&dir).expect("open bench store");
        clickgate::app::seed_demo(&store, &cfg.demo).expect("seed the loadtest demo links");
        clickgate::app::load_links(&store).expect("load link table")
    };
    let _ = std::fs::remove_dir_all(&dir);
    table
}

impl Env {
    fn new(scale: Scale) -> Env {
        let cfg = Config::load(&root().join("config/loadtest.toml")).expect("config/loadtest.toml");
        let table = load_table(&cfg);
        assert_eq!(table.len(), 20, "the loadtest config seeds lt00..lt19");
        let mix = build_mix(scale);
        let rules = ProgramRules { country_deny: Box::new([*b"KP", *b"IR"]), ..ProgramRules::default() };
        Env { scale, cfg, table, mix, rules }
    }

    fn click<'a>(&'a self, r: &Req, now_ms: u64) -> Click<'a> {
        Click {
            ip: r.ip,
            client: Client::of(r.ip),
            ua: self.mix.ua(r),
            head: false,
            link_id: u32::from(r.code) + 1,
            program: &self.rules,
            now_ms,
        }
    }
}

fn describe_pipeline(p: &Pipeline) -> String {
    let dbs: Vec<&str> = GeoDbKind::ALL.iter().filter(|k| p.geo.get(**k).is_some()).map(|k| k.as_str()).collect();
    format!("geo dbs loaded: [{}], crawler list: {} ({} patterns)", dbs.join(", "), p.bots_status.source, p.bots_status.patterns)
}

#[derive(Default)]
struct Tally {
    n: u64,
    rate_limited: u64,
    unknown: u64,
    inactive: u64,
    verdicts: [u64; 4],
    reasons: [u64; Reason::ALL.len()],
}

impl Tally {
    fn add(&mut self, j: &Judgement<'_>) {
        self.n += 1;
        match j {
            Judgement::RateLimited { .. } => self.rate_limited += 1,
            Judgement::UnknownCode { .. } => self.unknown += 1,
            Judgement::Inactive { .. } => self.inactive += 1,
            Judgement::Click { findings, verdict, .. } => {
                self.verdicts[Verdict::ALL.iter().position(|v| v == verdict).expect("known verdict")] += 1;
                for r in findings.reasons.iter() {
                    self.reasons[r as usize] += 1;
                }
            }
        }
    }

    fn line(&self) -> String {
        let pct = |x: u64| 100.0 * x as f64 / self.n.max(1) as f64;
        let mut s = String::new();
        for (v, n) in Verdict::ALL.iter().zip(self.verdicts) {
            s.push_str(&format!("{} {:.1}%  ", v.as_str(), pct(n)));
        }
        s.push_str(&format!(
            "429 {:.1}%  unknown {:.1}%  inactive {:.1}% | reasons:",
            pct(self.rate_limited),
            pct(self.unknown),
            pct(self.inactive)
        ));
        for r in Reason::ALL {
            let n = self.reasons[r as usize];
            if n > 0 {
                s.push_str(&format!(" {} {:.2}%", r.as_str(), pct(n)));
            }
        }
        s
    }
}

fn throughput_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    g
}

// ---------------------------------------------------------------------------------------------
// 1. click/*: the whole per-click decision
// ---------------------------------------------------------------------------------------------

/// Builds the pipeline from the loadtest config and runs two passes of the mix through it, so
/// the timed runs see steady state; prints what the passes decided.
fn warmed_pipeline(env: &Env, label: &str) -> Pipeline {
    let started = Instant::now();
    let pipeline = Pipeline::build(&env.cfg.checks).expect("build pipeline from config/loadtest.toml");
    let built = started.elapsed();
    println!("{label}: Pipeline::build took {built:.2?}; {}", describe_pipeline(&pipeline));
    for pass in 1..=2 {
        let state = if pass == 1 { "fresh state" } else { "steady state" };
        println!("{label} pass {pass} ({state}): {}", tally_pass(env, &pipeline).line());
    }
    pipeline
}

/// One pass of the mix through `judge`, continuing the clock; what it decided.
fn tally_pass(env: &Env, pipeline: &Pipeline) -> Tally {
    let mut tally = Tally::default();
    for r in &env.mix.reqs {
        tally.add(&judge(pipeline, &env.table, r.ip, env.mix.ua(r), env.mix.code(r), false, tick()));
    }
    tally
}

/// The client tags' key (`EdgeState::client_tag_key`).
const CLIENT_TAG_KEY: [u8; 16] = *b"bench client tag";

/// A `ClickEvent` as `edge::handler` builds it for a click.
fn click_event(signer: &ClickSigner, j: &Judgement<'_>, ip: IpAddr, ua: &str, now_ms: u64) -> Option<ClickEvent> {
    let Judgement::Click { link, findings, verdict } = j else { return None };
    Some(ClickEvent {
        click_id: signer.mint(now_ms, link.link_id, link.partner_id),
        ts_ms: now_ms,
        program: link.program.clone(),
        partner: link.partner.clone(),
        link: link.code.clone(),
        channel: link.channel,
        sub_ids: None,
        verdict: *verdict,
        reasons: findings.reasons,
        observed: findings.observed,
        visitor_id: VisitorId::random(),
        new_visitor: true,
        country: findings.country,
        asn: findings.asn,
        ua_hash: xxh3_64(ua.as_bytes()),
        ua: (!ua.is_empty()).then(|| clickgate::edge::handler::kept_ua(ua).into()),
        client_tag: Some(clickgate::edge::handler::client_tag(&CLIENT_TAG_KEY, ip)),
        ip: Some(truncate_ip(ip)),
        ip_hash: None,
    })
}

fn bench_click(c: &mut Criterion, env: &Env) {
    let mix = &env.mix;
    let mut g = throughput_group(c, "click");
    // One pipeline for the three variants; its state (sketch, filters, limiter keys) carries on.
    let pipeline = warmed_pipeline(env, "click");
    let signer = ClickSigner::new(&[(1, SIGNING_KEY.to_vec())]);

    let mut i = 0usize;
    g.bench_function("full", |b| {
        b.iter(|| {
            let r = mix.at(i);
            i += 1;
            black_box(judge(&pipeline, &env.table, r.ip, mix.ua(r), mix.code(r), false, tick()));
        })
    });

    // What the handler adds for a click before building the event: the signed click id.
    g.bench_function("full_with_mint", |b| {
        b.iter(|| {
            let r = mix.at(i);
            i += 1;
            let now = tick();
            let j = judge(&pipeline, &env.table, r.ip, mix.ua(r), mix.code(r), false, now);
            if let Judgement::Click { link, .. } = &j {
                black_box(signer.mint(now, link.link_id, link.partner_id));
            }
            black_box(j);
        })
    });

    let mut buf = Vec::with_capacity(512);
    g.bench_function("full_with_mint_and_encode", |b| {
        b.iter(|| {
            let r = mix.at(i);
            i += 1;
            let now = tick();
            let ua = mix.ua(r);
            let j = judge(&pipeline, &env.table, r.ip, ua, mix.code(r), false, now);
            if let Some(ev) = click_event(&signer, &j, r.ip, ua, now) {
                buf.clear();
                ev.encode_into(&mut buf).expect("encode click event");
                black_box(&buf);
            }
            black_box(j);
        })
    });
    println!("click after timing: {}", tally_pass(env, &pipeline).line());
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// handler/*: one whole edge request, with its hand-off to the click queue
// ---------------------------------------------------------------------------------------------

/// A writer that takes every batch and keeps nothing: the queue's consumer at no cost.
struct NullWriter;

impl BatchWriter for NullWriter {
    fn write_batch(&self, _batch: &[ClickEvent]) -> std::io::Result<()> {
        Ok(())
    }
}

/// The edge's state as `app::serve` builds it from the loadtest config, its queue in front of
/// `writer` and spilling to `overflow`.
fn edge_state(env: &Env, writer: Arc<dyn BatchWriter>, overflow: Arc<dyn BatchWriter>) -> (Arc<EdgeState>, ClickConsumer, Metrics) {
    let dir = root().join("target").join(format!("bench-pipeline-edge-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let metrics = Metrics::new();
    let built = {
        let store = Store::open(&dir).expect("open bench store");
        clickgate::app::seed_demo(&store, &env.cfg.demo).expect("seed the loadtest demo links");
        let signer = Arc::new(ClickSigner::new(&[(1, SIGNING_KEY.to_vec())]));
        let table = clickgate::app::load_links(&store).expect("load the loadtest links");
        clickgate::app::build_edge(&env.cfg, table, signer, writer, overflow, &metrics, false).expect("build the edge state")
    };
    let _ = std::fs::remove_dir_all(&dir);
    (built.0, built.1, metrics)
}

/// A `GET /r/{code}` from the mix, as hyper hands it to the handler (no cookie: a new visitor).
fn edge_request(env: &Env, r: &Req) -> hyper::Request<()> {
    hyper::Request::get(format!("/r/{}", env.mix.code(r)))
        .header(hyper::header::USER_AGENT, env.mix.ua(r))
        .body(())
        .expect("a valid request")
}

fn run_handler(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, name: &str, env: &Env, state: &Arc<EdgeState>) {
    let mut i = 0usize;
    g.bench_function(name, |b| {
        b.iter_batched(
            || {
                let r = *env.mix.at(i);
                i += 1;
                (r.ip, edge_request(env, &r))
            },
            |(ip, req)| handler::handle(state, ip, req),
            BatchSize::SmallInput,
        )
    });
}

fn sink_line(m: &Metrics) -> String {
    let s = &m.sink;
    format!("written {} spilled {} dropped {}", s.written.get(), s.spilled.get(), s.dropped.get())
}

fn bench_handler(c: &mut Criterion, env: &Env) {
    let mut g = throughput_group(c, "handler");

    // The queue's consumer runs (on a thread of its own, as a tokio worker would) into a writer
    // that keeps nothing: the request's cost, with the hand-off that normally happens.
    let (state, consumer, metrics) = edge_state(env, Arc::new(NullWriter), Arc::new(NullWriter));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let consumer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
        rt.block_on(consumer.run(stop_rx));
    });
    run_handler(&mut g, "redirect", env, &state);
    drop(state);
    let _ = stop_tx.send(true);
    consumer.join().expect("the consumer thread");
    println!("handler/redirect: {}", sink_line(&metrics));

    // The queue is full and stays full (its consumer never runs): every click goes to the
    // overflow, the real spool, as in `serve` while the core is behind.
    let dir = root().join("target").join(format!("bench-pipeline-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spool = Arc::new(Spool::open(&dir, u64::MAX / 2).expect("open the bench spool"));
    let overflow =
        Arc::new(SpoolWriter { spool: spool.clone(), spooled: prometheus::IntCounter::new("spooled", "spooled").expect("a counter") });
    let (state, consumer, metrics) = edge_state(env, Arc::new(NullWriter), overflow);
    for i in 0..env.cfg.events.click_queue_len_max {
        let r = *env.mix.at(i);
        black_box(handler::handle(&state, r.ip, edge_request(env, &r)));
    }
    run_handler(&mut g, "redirect_queue_full", env, &state);
    // The consumer, run only now, writes the queue and returns once every click handed over
    // is where it goes.
    drop(state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    stop_tx.send(true).expect("the consumer holds the receiver");
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime").block_on(consumer.run(stop_rx));
    println!("handler/redirect_queue_full: {}; spool bytes {}", sink_line(&metrics), spool.pending_bytes());
    drop(spool);
    let _ = std::fs::remove_dir_all(&dir);
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 2. check/*: each stage alone
// ---------------------------------------------------------------------------------------------

/// About 1000 random CIDRs (IPv4 /16../24, IPv6 /32../48) plus the loadtest's 203.0.113.0/24.
fn deny_list(n: usize) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(0xDE_17);
    let mut out = vec!["203.0.113.0/24".to_string()];
    while out.len() < n {
        if rng.u32(0..10) == 0 {
            let len = rng.u32(32..=48);
            let net = u128::from(random_v6(&mut rng)) & (u128::MAX << (128 - len));
            out.push(format!("{}/{len}", Ipv6Addr::from(net)));
        } else {
            let len = rng.u32(16..=24);
            let net = u32::from(random_public_v4(&mut rng)) & (u32::MAX << (32 - len));
            out.push(format!("{}/{len}", Ipv4Addr::from(net)));
        }
    }
    out
}

/// Real GeoLite2 Country + ASN databases when fetched, else the MaxMind test fixtures.
fn geo_config(env: &Env) -> (config::GeoIp, &'static str) {
    let base = config::GeoIp { datacenter_asns: env.cfg.checks.geoip.datacenter_asns.clone(), ..config::GeoIp::default() };
    let (country, asn) = (root().join("geoip/GeoLite2-Country.mmdb"), root().join("geoip/GeoLite2-ASN.mmdb"));
    if country.exists() && asn.exists() {
        let cfg = config::GeoIp { country_db: Some(country), asn_db: Some(asn), anonymous_db: None, ..base };
        (cfg, "real GeoLite2-Country + GeoLite2-ASN from geoip/ (no anonymous-IP database: GeoLite2 has none)")
    } else {
        let f = root().join("tests/fixtures/geoip");
        let cfg = config::GeoIp {
            country_db: Some(f.join("GeoIP2-Country-Test.mmdb")),
            asn_db: Some(f.join("GeoLite2-ASN-Test.mmdb")),
            anonymous_db: Some(f.join("GeoIP2-Anonymous-IP-Test.mmdb")),
            ..base
        };
        (cfg, "MaxMind TEST fixtures from tests/fixtures/geoip (almost every address misses: not representative)")
    }
}

/// Percentile of sorted durations.
fn pct_of(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() - 1) as f64 * p).round() as usize).copied().unwrap_or_default()
}

/// Not a criterion timing: the uncached classification cost of every distinct agent in the mix
/// (best of 3 after one warm-up call), and how many agents share a slot of the direct-mapped
/// verdict cache (they evict each other, so each of them can miss again).
fn ua_cost_report(env: &Env, bots: &BotCheck, cache_len: usize) {
    let mix = &env.mix;
    // (first call, best of the next 3, agent): the first call is the one that may have to
    // build new lazy-DFA states in the regex's cache; the repeats find them there.
    let mut costs: Vec<(Duration, Duration, usize)> = (0..mix.uas.len())
        .map(|u| {
            let ua = &mix.uas[u];
            let t = Instant::now();
            black_box(bots.classify_uncached(black_box(ua)));
            let first = t.elapsed();
            let best = (0..3)
                .map(|_| {
                    let t = Instant::now();
                    black_box(bots.classify_uncached(black_box(ua)));
                    t.elapsed()
                })
                .min()
                .unwrap_or_default();
            (first, best, u)
        })
        .collect();
    for (label, range) in [("browser", 0..mix.browsers), ("bot", mix.browsers..mix.uas.len())] {
        for (which, pick) in [("first call", 0), ("repeat", 1)] {
            let mut d: Vec<Duration> = costs.iter().filter(|c| range.contains(&c.2)).map(|c| if pick == 0 { c.0 } else { c.1 }).collect();
            d.sort_unstable();
            let mean = d.iter().sum::<Duration>() / d.len().max(1) as u32;
            println!(
                "check/bots: uncached classify of the {} distinct {label} agents, {which}: mean {mean:.2?}, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
                d.len(),
                pct_of(&d, 0.5),
                pct_of(&d, 0.99),
                pct_of(&d, 1.0)
            );
        }
    }
    costs.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    for (first, best, u) in costs.iter().take(3) {
        let ua: String = mix.uas[*u].chars().take(100).collect();
        println!("check/bots: slow agent, first call {first:.2?}, repeat {best:.2?}: {ua:?}");
    }
    // The mix replayed through the cache (second pass timed call by call): what misses cost.
    let mut calls: Vec<Duration> = Vec::with_capacity(mix.reqs.len());
    for pass in 0..2 {
        for r in &mix.reqs {
            let t = Instant::now();
            black_box(bots.classify(black_box(mix.ua(r))));
            if pass == 1 {
                calls.push(t.elapsed());
            }
        }
    }
    let total: Duration = calls.iter().sum();
    let slow: Vec<Duration> = calls.iter().copied().filter(|d| *d > Duration::from_micros(5)).collect();
    println!(
        "check/bots: mix replayed through the verdict cache: mean {:.2?} per call; {} calls ({:.2}%) over 5us took {:.1}% of the time",
        total / calls.len().max(1) as u32,
        slow.len(),
        100.0 * slow.len() as f64 / calls.len().max(1) as f64,
        100.0 * slow.iter().sum::<Duration>().as_secs_f64() / total.as_secs_f64().max(1e-12)
    );
    // Agents in the mix that share a verdict-cache slot with another agent in the mix.
    let slots = cache_len.max(1).next_power_of_two();
    let mut per_slot: HashMap<usize, usize> = HashMap::new();
    let mut seen_uas = HashSet::new();
    for r in &mix.reqs {
        if seen_uas.insert(r.ua) {
            *per_slot.entry(xxh3_64(mix.ua(r).as_bytes()) as usize & (slots - 1)).or_default() += 1;
        }
    }
    let shared: usize = per_slot.values().filter(|&&n| n > 1).sum();
    println!(
        "check/bots: {} distinct agents in the mix, {shared} of them share one of the {slots} direct-mapped cache slots with another",
        seen_uas.len()
    );
}

/// Times `check.run` over the click mix with the simulated clock.
fn bench_stage(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, name: &str, env: &Env, check: &dyn Check) {
    let mut i = 0usize;
    g.bench_function(name, |b| {
        b.iter(|| {
            let r = env.mix.at(i);
            i += 1;
            let mut findings = Findings::default();
            check.run(&env.click(r, tick()), &mut findings);
            black_box(findings);
        })
    });
}

fn bench_checks(c: &mut Criterion, env: &Env) {
    let checks = &env.cfg.checks;
    let mix = &env.mix;
    let mut g = throughput_group(c, "check");

    // Rate limits: governor keyed by IP and subnet, plus the global limit.
    let limits = RateLimits::new(&checks.rate_limit);
    let mut i = 0usize;
    g.bench_function("rate_limit", |b| {
        b.iter(|| {
            let r = mix.at(i);
            i += 1;
            let mut observed = Reasons::default();
            let _ = black_box(limits.check(Client::of(r.ip), tick(), &mut observed));
        })
    });
    let (ip_keys, subnet_keys) = limits.key_counts();
    println!("check/rate_limit: governor holds {ip_keys} IP keys and {subnet_keys} subnet keys (never trimmed here)");
    drop(limits);

    // IP rules with a deny list of ~1000 CIDRs.
    let deny = deny_list(1_000);
    let rules = IpRules::build(&config::IpRules { deny: deny.clone(), ..config::IpRules::default() }).expect("valid deny list");
    let hits = mix.reqs.iter().filter(|r| rules.deny.contains(r.ip)).count();
    println!("check/ip_rules: {} deny CIDRs; {:.2}% of the mix is denied", deny.len(), 100.0 * hits as f64 / mix.reqs.len() as f64);
    bench_stage(&mut g, "ip_rules", env, &rules);
    drop(rules);

    // GeoIP: country (per-program rules), ASN (datacenter list), anonymous IP if present.
    let (geo_cfg, which) = geo_config(env);
    println!("check/geo: using {which}");
    let dbs = Arc::new(GeoDbs::open(&geo_cfg));
    let geo = GeoCheck::new(dbs, &geo_cfg, datacenter_asns(&geo_cfg, &[]), Arc::new(CidrSet::default()));
    let (mut with_country, mut with_asn) = (0usize, 0usize);
    for r in &mix.reqs {
        let mut f = Findings::default();
        geo.run(&env.click(r, T0_MS), &mut f);
        with_country += usize::from(f.country.is_some());
        with_asn += usize::from(f.asn != 0);
    }
    let pct = |n: usize| 100.0 * n as f64 / mix.reqs.len() as f64;
    println!("check/geo: {:.1}% of the mix has a country, {:.1}% an ASN", pct(with_country), pct(with_asn));
    println!("check/geo: lookup cache of {} slots (checks.geoip.cache_len) for the mix's {} IPs", geo_cfg.cache_len, env.scale.ips);
    bench_stage(&mut g, "geo", env, &geo);
    drop(geo);
    // The same without the lookup cache (a cache_len of 0 turns it off): every call walks the trees.
    let uncached_cfg = config::GeoIp { cache_len: 0, ..geo_cfg };
    let geo = GeoCheck::new(
        Arc::new(GeoDbs::open(&uncached_cfg)),
        &uncached_cfg,
        datacenter_asns(&uncached_cfg, &[]),
        Arc::new(CidrSet::default()),
    );
    bench_stage(&mut g, "geo_uncached", env, &geo);
    drop(geo);

    // Bots: the loadtest crawler and generic lists (one automaton, one regex set) behind the
    // verdict cache.
    let bots = BotCheck::build(&checks.bots).expect("bot list");
    let s = &bots.status;
    println!(
        "check/bots: crawler list {} ({} patterns, {} skipped), generic list {} ({} patterns, {} skipped), UA cache {} slots",
        s.source, s.patterns, s.skipped, s.generic_source, s.generic_patterns, s.generic_skipped, checks.bots.ua_cache_len
    );
    ua_cost_report(env, &bots, checks.bots.ua_cache_len);
    bench_stage(&mut g, "bots", env, &bots);
    let mut i = 0usize;
    g.bench_function("bots_classify_cached", |b| {
        b.iter(|| {
            let r = mix.at(i);
            i += 1;
            black_box(bots.classify(black_box(mix.ua(r))));
        })
    });
    let mut i = 0usize;
    g.bench_function("bots_classify_uncached", |b| {
        b.iter(|| {
            let r = mix.at(i);
            i += 1;
            black_box(bots.classify_uncached(black_box(mix.ua(r))));
        })
    });
    // Uncached cost of a browser agent (the common miss: a new browser version) alone.
    let mut i = 0usize;
    g.bench_function("bots_classify_uncached_browser_only", |b| {
        b.iter(|| {
            i += 1;
            black_box(bots.classify_uncached(black_box(&mix.uas[i % mix.browsers])));
        })
    });
    // Uncached cost of a bot agent alone (a sprayer rotating agents misses the cache every time).
    let mut i = 0usize;
    let bot_count = mix.uas.len() - mix.browsers;
    let mut rng = fastrand::Rng::with_seed(0xA6E7);
    g.bench_function("bots_classify_uncached_bot_only", |b| {
        b.iter(|| {
            i += 1;
            black_box(bots.classify_uncached(black_box(&mix.uas[mix.browsers + i % bot_count])));
        })
    });
    // Uncached cost of never-seen variants of crawler agents (a known agent plus a random suffix).
    let bot_variants: Vec<String> = (0..4096)
        .map(|k| {
            let suffix: String = (0..8).map(|_| rng.alphanumeric()).collect();
            format!("{} {suffix}", mix.uas[mix.browsers + k % bot_count])
        })
        .collect();
    let mut i = 0usize;
    g.bench_function("bots_classify_uncached_bot_variants", |b| {
        b.iter(|| {
            i += 1;
            black_box(bots.classify_uncached(black_box(&bot_variants[i % bot_variants.len()])));
        })
    });
    // Uncached cost of never-seen random agents (what a sprayer that randomises the agent sends).
    let random_uas: Vec<String> = (0..4096).map(|_| (0..120).map(|_| char::from(rng.u8(b' '..=b'~'))).collect()).collect();
    let mut i = 0usize;
    g.bench_function("bots_classify_uncached_random", |b| {
        b.iter(|| {
            i += 1;
            black_box(bots.classify_uncached(black_box(&random_uas[i % random_uas.len()])));
        })
    });
    drop(bots);

    // Velocity: the count-min sketches, four counters per click and the link baseline.
    let velocity = VelocityCheck::new(&checks.velocity);
    bench_stage(&mut g, "velocity", env, &velocity);
    println!("check/velocity: sketches hold {} bytes (VelocityCheck::bytes)", velocity.bytes());
    drop(velocity);

    // Dedup: (link, IP, UA) key hash + sharded Bloom filters.
    let dedup = DedupCheck::new(&checks.dedup);
    bench_stage(&mut g, "dedup", env, &dedup);
    println!("check/dedup: filters hold {} bytes (DedupCheck::bytes)", dedup.bytes());
    drop(dedup);

    // Click id: HMAC-SHA256 over 23 bytes.
    let signer = ClickSigner::new(&[(1, SIGNING_KEY.to_vec())]);
    let mut i = 0u32;
    g.bench_function("click_id_mint", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(signer.mint(tick(), i % 20 + 1, i % 5 + 1));
        })
    });

    // Event encoding (rmp-serde with field names), for the click/full_with_mint_and_encode delta.
    let link = env.table.get("lt00").expect("lt00");
    let mut findings = Findings::default();
    findings.country = Some(*b"DE");
    findings.asn = 3320;
    let j = Judgement::Click { link, findings, verdict: Verdict::Valid };
    let ip: IpAddr = "198.51.100.23".parse().expect("ip");
    let ev = click_event(&signer, &j, ip, &mix.uas[0], T0_MS).expect("a click");
    let mut buf = Vec::with_capacity(512);
    ev.encode_into(&mut buf).expect("encode");
    println!("check/event_encode: one ClickEvent is {} bytes", buf.len());
    g.bench_function("event_encode", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&ev).encode_into(&mut buf).expect("encode");
            black_box(&buf);
        })
    });
    g.finish();
}

/// Not a criterion timing: what the first click of a new window pays. Both stages clear memory
/// inline on the request that first sees the new window (velocity: one sketch slot; dedup: one
/// shard's filter, per shard). Single-shot wall times, so only the order of magnitude counts.
fn rollover_report(env: &Env) {
    let checks = &env.cfg.checks;
    let ip: IpAddr = "198.51.100.7".parse().expect("ip");
    let timed = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };

    let w = checks.velocity.window_ms;
    let velocity = VelocityCheck::new(&checks.velocity);
    let t = (T0_MS / w + 1) * w;
    for s in 0..2 {
        velocity.count(Client::of(ip), 1, t + s * w); // Both slots claimed once (the first claim clears too).
    }
    let steady = (1..200)
        .map(|k| {
            timed(&mut || {
                black_box(velocity.count(Client::of(ip), 1, t + w + k));
            })
        })
        .min()
        .unwrap_or_default();
    let first = timed(&mut || {
        black_box(velocity.count(Client::of(ip), 1, t + 2 * w));
    });
    let second = timed(&mut || {
        black_box(velocity.count(Client::of(ip), 1, t + 3 * w));
    });
    println!(
        "rollover/velocity: first click of a new window took {first:.2?} and {second:.2?} (clears one slot of a {} byte sketch inline); a steady click {steady:.2?}",
        WindowedSketch::new(w, checks.velocity.sketch_width, checks.velocity.sketch_depth).bytes()
    );

    let w = checks.dedup.window_ms;
    let dedup = DedupCheck::new(&checks.dedup);
    let t = (T0_MS / w + 1) * w;
    let key = |i: u64| xxh3_64(&(i | 1 << 50).to_le_bytes());
    for i in 0..100_000 {
        dedup.seen(key(i), t);
    }
    let steady = (0..200)
        .map(|i| {
            timed(&mut || {
                black_box(dedup.seen(key(200_000 + i), t));
            })
        })
        .min()
        .unwrap_or_default();
    let mut firsts: Vec<Duration> = (0..200)
        .map(|i| {
            timed(&mut || {
                black_box(dedup.seen(key(300_000 + i), t + w));
            })
        })
        .collect();
    firsts.sort_unstable();
    println!(
        "rollover/dedup: first 200 clicks of a new window: max {:.2?}, p90 {:.2?}, p50 {:.2?} ({} shards each clear a filter inline on first use); a steady click {steady:.2?}",
        pct_of(&firsts, 1.0),
        pct_of(&firsts, 0.9),
        pct_of(&firsts, 0.5),
        checks.dedup.shards
    );
}

// ---------------------------------------------------------------------------------------------
// 3. race/*: the lock-free structures against naive mutex-guarded maps
// ---------------------------------------------------------------------------------------------

/// The obvious alternative to the sketch: an exact per-key count in a fixed window.
struct NaiveCounter {
    window_ms: u64,
    map: Mutex<HashMap<u128, (u64, u32)>>,
}

impl NaiveCounter {
    fn add(&self, key: u128, now_ms: u64) -> u32 {
        let window = now_ms / self.window_ms;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry(key).or_insert((window, 0));
        if e.0 != window {
            *e = (window, 0);
        }
        e.1 += 1;
        e.1
    }
}

/// The obvious alternative to the Bloom filters: an exact set (that never forgets).
struct NaiveSeen {
    set: Mutex<HashSet<u64>>,
}

impl NaiveSeen {
    fn seen(&self, key: u64) -> bool {
        !self.set.lock().unwrap_or_else(|e| e.into_inner()).insert(key)
    }
}

/// Runs `op` `iters` times in total, split over two threads that start together, and returns
/// the wall time: criterion then reports wall time per operation (aggregate throughput).
fn two_threads(iters: u64, cursors: &[AtomicUsize; 2], op: &(dyn Fn(usize) + Sync)) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let n = if t == 0 { iters - iters / 2 } else { iters / 2 };
                let barrier = &barrier;
                s.spawn(move || {
                    let mut at = cursors[t].load(Ordering::Relaxed);
                    barrier.wait();
                    for _ in 0..n {
                        op(at);
                        at = at.wrapping_add(1);
                    }
                    cursors[t].store(at, Ordering::Relaxed);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for w in workers {
            w.join().expect("worker");
        }
        start.elapsed()
    })
}

/// Benchmarks `op` single-threaded and on two contending threads.
fn race_pair(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, name: &str, stream_len: usize, op: &(dyn Fn(usize) + Sync)) {
    let mut at = 0usize;
    g.bench_function(format!("{name}_1t"), |b| {
        b.iter(|| {
            op(at);
            at = at.wrapping_add(1);
        })
    });
    // The two threads walk different halves of the key stream.
    let cursors = [AtomicUsize::new(0), AtomicUsize::new(stream_len / 2)];
    g.bench_function(format!("{name}_2t"), |b| b.iter_custom(|iters| two_threads(iters, &cursors, op)));
}

/// Slots of a std (hashbrown) table with `capacity` usable entries: a power of two, 7/8 full at
/// most; each slot holds an entry and one control byte.
fn table_slots(capacity: usize) -> usize {
    if capacity < 8 {
        capacity + 1
    } else {
        (capacity * 8 / 7).next_power_of_two()
    }
}

fn race_keys(scale: Scale) -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(0x5EED);
    (0..scale.race_stream).map(|_| rng.u64(0..scale.race_keys)).collect()
}

fn bench_races(c: &mut Criterion, scale: Scale) {
    let keys = race_keys(scale);
    let mask = keys.len() - 1;
    let now = T0_MS;

    // Velocity: sketch add (xxh3-128 of the key, as VelocityCheck hashes) vs exact map.
    let vcfg = config::Velocity::default();
    let sketch = WindowedSketch::new(vcfg.window_ms, vcfg.sketch_width, vcfg.sketch_depth);
    let naive = NaiveCounter { window_ms: vcfg.window_ms, map: Mutex::new(HashMap::new()) };
    let vkey = |v: u64| (0xffffu128 << 32) | u128::from(v);
    for v in 0..scale.race_keys {
        sketch.add(xxh3_128(&vkey(v).to_le_bytes()), now);
        naive.add(vkey(v), now);
    }
    {
        let map = naive.map.lock().expect("map");
        println!(
            "race/velocity: {} keys; sketch {} bytes fixed vs naive map ~{} bytes ({} slots x 33) and growing with keys",
            scale.race_keys,
            sketch.bytes(),
            table_slots(map.capacity()) * (std::mem::size_of::<(u128, (u64, u32))>() + 1),
            table_slots(map.capacity())
        );
    }
    let mut g = throughput_group(c, "race/velocity");
    race_pair(&mut g, "sketch", keys.len(), &|i| {
        black_box(sketch.add(xxh3_128(&vkey(keys[i & mask]).to_le_bytes()), now));
    });
    race_pair(&mut g, "mutex_hashmap", keys.len(), &|i| {
        black_box(naive.add(vkey(keys[i & mask]), now));
    });
    g.finish();
    drop((sketch, naive));

    // Dedup: DedupCheck::seen (16 mutex-guarded Bloom shards) vs one mutex-guarded HashSet.
    let dkeys: Vec<u64> = keys.iter().map(|v| xxh3_64(&v.to_le_bytes())).collect();
    let dedup = DedupCheck::new(&config::Dedup::default());
    let naive = NaiveSeen { set: Mutex::new(HashSet::new()) };
    for v in 0..scale.race_keys {
        let k = xxh3_64(&v.to_le_bytes());
        dedup.seen(k, now);
        naive.seen(k);
    }
    {
        let set = naive.set.lock().expect("set");
        println!(
            "race/dedup: {} keys; Bloom filters {} bytes fixed vs naive set ~{} bytes ({} slots x 9) and never forgetting",
            scale.race_keys,
            dedup.bytes(),
            table_slots(set.capacity()) * (std::mem::size_of::<u64>() + 1),
            table_slots(set.capacity())
        );
    }
    let mut g = throughput_group(c, "race/dedup");
    race_pair(&mut g, "bloom_shards", dkeys.len(), &|i| {
        black_box(dedup.seen(dkeys[i & mask], now));
    });
    race_pair(&mut g, "mutex_hashset", dkeys.len(), &|i| {
        black_box(naive.seen(dkeys[i & mask]));
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. The dedup Bloom filters' false-positive rate (not a timing)
// ---------------------------------------------------------------------------------------------

/// A distinct dedup-like key for each `i` (an xxh3 digest, as `dedup::dedup_key` produces).
fn fp_key(i: u64) -> u64 {
    xxh3_64(&i.to_le_bytes())
}

/// Probe keys are drawn from a range the fill never uses.
const PROBE_BASE: u64 = 1 << 40;

/// One bare `bloomfilter::Bloom` at its design capacity, probed with `check` only.
fn bare_filter_fp(items: usize, fp_rate: f64, seed: &[u8; 32], probes: u64) -> (f64, u32, u64) {
    let mut b: Bloom<u64> = Bloom::new_for_fp_rate_with_seed(items, fp_rate, seed).expect("bloom");
    for i in 0..items as u64 {
        b.set(&fp_key(i));
    }
    let hits = (0..probes).filter(|j| b.check(&fp_key(PROBE_BASE + j))).count();
    (hits as f64 / probes as f64, b.number_of_hash_functions(), b.len())
}

/// Measures the dedup stage's false-positive rate at its design capacity and prints one line
/// (`bloom fp_rate measured=...`), details, and a WARNING when measured exceeds configured.
fn bloom_false_positive_rate(scale: Scale) {
    let started = Instant::now();
    let capacity = scale.bloom_capacity;
    let probes = capacity as u64;
    let cfg = config::Dedup { capacity, ..config::Dedup::default() };
    let configured = cfg.fp_rate;
    let shards = cfg.shards;
    let shard_capacity = capacity.div_ceil(shards);
    let dedup = DedupCheck::new(&cfg);
    let now = T0_MS;

    // Fill one window with C - shards keys, exactly shard_capacity - 1 per shard, so no shard
    // reaches its capacity and rotates early (keys choose their shard by their top bits).
    let mut per_shard = vec![0usize; shards];
    let (mut filled, mut fill_hits, mut i) = (0usize, 0usize, 0u64);
    while filled < shards * (shard_capacity - 1) {
        let k = fp_key(i);
        i += 1;
        let s = (k >> 48) as usize & (shards - 1);
        if per_shard[s] == shard_capacity - 1 {
            continue;
        }
        per_shard[s] += 1;
        filled += 1;
        fill_hits += usize::from(dedup.seen(k, now));
    }
    // Probe distinct keys never inserted. `seen` is check-and-set, so the first new probe in a
    // shard takes it to capacity and rotates it: every later probe is checked against the full
    // filter (now `previous`) and against `current`, which holds the earlier probes.
    let hits = (0..probes).filter(|j| dedup.seen(fp_key(PROBE_BASE + j), now)).count();
    let measured = hits as f64 / probes as f64;
    println!("bloom fp_rate measured={measured:.6} configured={configured} capacity={capacity} probes={probes} bytes={}", dedup.bytes());

    // The same filter alone: DedupCheck's seed ([7; 32]: both SipHash keys equal) and a seed
    // with two different halves, each at design capacity and probed without inserting.
    let bare_probes = probes.min(1_000_000);
    let (fp_same, k, m) = bare_filter_fp(shard_capacity, configured, &[7u8; 32], bare_probes);
    let distinct: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
    let (fp_distinct, _, _) = bare_filter_fp(shard_capacity, configured, &distinct, bare_probes);
    let theory = |k: f64| (1.0 - (-k * shard_capacity as f64 / m as f64).exp()).powf(k);
    println!(
        "bloom detail: {shards} shards x 2 filters of n={shard_capacity} keys, m={m} bits, k={k}; filled {filled} keys ({} false hits while filling); one window, no early rotation during the fill",
        fill_hits
    );
    println!(
        "bloom detail: one bare filter at design capacity, {bare_probes} check-only probes: seed [7;32] (as DedupCheck) {fp_same:.6}, seed with distinct halves {fp_distinct:.6}, theory k={k} {:.6} / k={} {:.6}",
        theory(f64::from(k)),
        k - 1,
        theory(f64::from(k - 1)),
    );
    if measured > configured {
        let mut why = String::from(
            "every fresh click is checked against two filters (the full previous one and the filling current one), so their rates add up",
        );
        if fp_same > 2.0 * fp_distinct {
            why = format!(
                "one bare filter seeded like DedupCheck ([7u8; 32]) already gives {fp_same:.6} against {fp_distinct:.6} with a seed whose halves differ: \
                 bloomfilter keys its two SipHashers from the seed's two halves, equal halves make h2 == h1 and the k probes \
                 collapse onto multiples of one hash; also {why}"
            );
        }
        println!(
            "WARNING: dedup false-positive rate {measured:.6} exceeds the configured {configured} ({:.1}x): {why}",
            measured / configured
        );
    }
    println!("bloom measurement took {:.2?}", started.elapsed());
}

fn main() {
    // Seeded demo partners are sealed under the process's data key, which a server's start
    // loads; this process holds a fixed one.
    clickgate::privacy::keys::install(clickgate::privacy::DataKey::from_bytes(&[0x5a; 32])).expect("one data key");
    let args: Vec<String> = std::env::args().collect();
    let bench_mode = args.iter().any(|a| a == "--bench");
    let list_mode = args.iter().any(|a| a == "--list");
    let scale = if bench_mode { FULL } else { SMOKE };
    if !bench_mode && !list_mode {
        println!("(test mode: scaled-down inputs, each benchmark runs once)");
    }
    if !list_mode {
        bloom_false_positive_rate(scale);
    }
    let mut c = Criterion::default().configure_from_args();
    let env = Env::new(scale);
    if !list_mode {
        rollover_report(&env);
    }
    bench_click(&mut c, &env);
    bench_handler(&mut c, &env);
    bench_checks(&mut c, &env);
    bench_races(&mut c, env.scale);
    c.final_summary();
}
