//! The parts of `loadtest/cluster.sh`, the multi-node fault test, that shell cannot do.
//!
//! - `cluster-drive`: clicks through every edge and conversions through every core at once, at
//!   fixed rates, for a while. Each click is a browser's `GET /r/{code}` from one of many client
//!   addresses (`X-Forwarded-For`; the edges trust loopback), over keep-alive connections spread
//!   over the edges; the `cgid` of every `302` is written to `clicks.txt`, and every answer that
//!   is not a redirect (or no answer at all) is counted. Each conversion carries the click id of
//!   a click redirected a few seconds before and its program's coupon, so it is commissioned
//!   whether or not the core it reaches has ingested that click yet. It is posted with an
//!   `Idempotency-Key` to one core; when that fails (the core is down, the database is down, no
//!   answer in time), the same request with the same key goes to the next core, and so on, until
//!   one acknowledges it. The acknowledged conversions' ids go to `conversions.txt`.
//! - `click-log`: reads a core's click log beside (or after) its writer and says, for the click
//!   ids in a file, how many are in it, how many are missing, and how many times a click is in it
//!   more than once.
//! - `consumers`: waits until the named durable consumers of a stream have nothing pending and
//!   nothing unacked (the cores have drained it); also names the server leading the stream.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;

use clickgate::config::Config;
use clickgate::model::{Currency, CLICK_ID_CHARS};

/// How long a click's connect plus answer may take before it counts as unanswered.
const CLICK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one conversion attempt may take before it is tried on the next core.
const CONVERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two attempts of one conversion.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// A click is used by a conversion once it is this old: past the programs' default
/// `attribution.min_click_to_conversion_ms` (10 s), and long ingested by every running core.
const CLICK_AGE_MIN: Duration = Duration::from_secs(12);
/// Recent clicks kept for conversions to name.
const RECENT_CLICKS_MAX: usize = 32_768;
/// A desktop Chrome, which no bot check flags.
const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// What `cluster-drive` was asked to do.
pub struct Drive {
    pub edges: Vec<SocketAddr>,
    pub apis: Vec<SocketAddr>,
    pub duration: Duration,
    pub click_rate: f64,
    pub click_connections: usize,
    pub conversion_rate: f64,
    pub conversion_workers: usize,
    /// How long one conversion may go unacknowledged, over all its attempts, before the run fails.
    pub conversion_deadline: Duration,
    pub config: Config,
    pub admin_key: String,
    pub run_id: String,
    pub out: PathBuf,
}

/// A link to click, with what a conversion through it names.
struct Target {
    code: String,
    program: String,
    currency: Currency,
    coupon: String,
}

/// Counters and records shared by the tasks.
#[derive(Default)]
struct Tally {
    clicks_sent: AtomicU64,
    redirects: AtomicU64,
    /// Redirects without a `cgid` (a paused link's fallback): no click to find later.
    no_cgid: AtomicU64,
    /// Answers other than 3xx, by status.
    non_3xx: Mutex<HashMap<u16, u64>>,
    /// Requests that got no answer at all (connection refused or cut, or a timeout).
    no_answer: AtomicU64,
    cgids: Mutex<Vec<String>>,
    /// (cgid, target index, when) of recent redirects, for conversions to name.
    recent: Mutex<std::collections::VecDeque<(String, usize, Instant)>>,
    conversions_started: AtomicU64,
    conversion_attempts_failed: AtomicU64,
    conversions_replayed: AtomicU64,
    conversions_rejected: AtomicU64,
    conversions_unacked: AtomicU64,
    conversions_by_click: AtomicU64,
    acked: Mutex<Vec<String>>,
}

fn targets(config: &Config) -> anyhow::Result<Vec<Target>> {
    let seed = clickgate::app::demo_seed(&config.demo)?;
    let mut out = Vec::new();
    for l in &seed.links {
        let program =
            seed.programs.iter().find(|p| p.id == l.program).with_context(|| format!("link {}: no program {}", l.code, l.program))?;
        let coupon = seed
            .coupons
            .iter()
            .find(|c| c.program == l.program)
            .with_context(|| format!("the config has no coupon of program {}, which conversions fall back on", l.program))?;
        out.push(Target { code: l.code.clone(), program: l.program.clone(), currency: program.currency, coupon: coupon.code.clone() });
    }
    ensure!(!out.is_empty(), "the config has no [[demo.links]] to click on");
    Ok(out)
}

/// Runs the clicks and the conversions for `duration`, waits for every conversion it started to
/// be acknowledged (or to pass its deadline), writes `clicks.txt` and `conversions.txt` to `out`
/// and prints one line.
pub async fn drive(d: Drive) -> anyhow::Result<()> {
    ensure!(!d.edges.is_empty() && !d.apis.is_empty(), "give at least one --edge and one --api");
    ensure!(d.click_rate > 0.0 && d.click_connections > 0, "--click-rate and --click-connections must be above 0");
    ensure!(d.conversion_rate > 0.0 && d.conversion_workers > 0, "--conversion-rate and --conversion-workers must be above 0");
    std::fs::create_dir_all(&d.out).with_context(|| format!("creating {}", d.out.display()))?;
    let d = Arc::new(d);
    let targets = Arc::new(targets(&d.config)?);
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let stop_at = started + d.duration;

    let mut clickers = Vec::new();
    for i in 0..d.click_connections {
        let (d, targets, tally) = (d.clone(), targets.clone(), tally.clone());
        clickers.push(tokio::spawn(async move { clicker(&d, &targets, &tally, i, stop_at).await }));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut converters = Vec::new();
    for i in 0..d.conversion_workers {
        let (d, targets, tally, next) = (d.clone(), targets.clone(), tally.clone(), next.clone());
        converters.push(tokio::spawn(async move { converter(&d, &targets, &tally, &next, i, started, stop_at).await }));
    }
    for c in clickers {
        c.await.context("a click task panicked")?;
    }
    let clicks_done = started.elapsed();
    for c in converters {
        c.await.context("a conversion task panicked")??;
    }

    let cgids = std::mem::take(&mut *tally.cgids.lock());
    let acked = std::mem::take(&mut *tally.acked.lock());
    write_lines(&d.out.join("clicks.txt"), &cgids)?;
    write_lines(&d.out.join("conversions.txt"), &acked)?;
    let non_3xx = tally.non_3xx.lock();
    let non_3xx_total: u64 = non_3xx.values().sum::<u64>() + tally.no_answer.load(Ordering::Relaxed);
    let mut statuses: Vec<_> = non_3xx.iter().collect();
    statuses.sort();
    let statuses = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect::<Vec<_>>().join(",");
    let distinct = cgids.iter().collect::<HashSet<_>>().len();
    println!(
        "clicks_sent={} redirects={} cgids={} distinct_cgids={distinct} no_cgid={} edge_non_3xx={non_3xx_total} no_answer={} statuses={} \
         conversions_started={} conversions_acked={} conversions_by_click={} conversions_replayed={} attempts_failed={} \
         conversions_rejected={} conversions_unacked={} click_seconds={:.1} seconds={:.1}",
        tally.clicks_sent.load(Ordering::Relaxed),
        tally.redirects.load(Ordering::Relaxed),
        cgids.len(),
        tally.no_cgid.load(Ordering::Relaxed),
        tally.no_answer.load(Ordering::Relaxed),
        if statuses.is_empty() { "none" } else { &statuses },
        tally.conversions_started.load(Ordering::Relaxed),
        acked.len(),
        tally.conversions_by_click.load(Ordering::Relaxed),
        tally.conversions_replayed.load(Ordering::Relaxed),
        tally.conversion_attempts_failed.load(Ordering::Relaxed),
        tally.conversions_rejected.load(Ordering::Relaxed),
        tally.conversions_unacked.load(Ordering::Relaxed),
        clicks_done.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut text = String::with_capacity(lines.len() * 48);
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("HTTP/1.1 handshake")?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One keep-alive connection to edge `i % edges`, clicking at its share of the rate until
/// `stop_at`. A connection that fails is opened again for the next click.
async fn clicker(d: &Drive, targets: &[Target], tally: &Tally, i: usize, stop_at: Instant) {
    let edge = d.edges[i % d.edges.len()];
    let interval = Duration::from_secs_f64(d.click_connections as f64 / d.click_rate);
    let mut rng = fastrand::Rng::with_seed(0x636c_7573 ^ i as u64);
    // Each connection starts at its own offset in the interval, so the clicks spread evenly.
    let mut next_at = tokio::time::Instant::now() + interval.mul_f64(i as f64 / d.click_connections as f64);
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut logged = 0;
    while Instant::now() < stop_at {
        tokio::time::sleep_until(next_at).await;
        next_at += interval;
        let t = rng.usize(..targets.len());
        // Addresses from 10.0.0.0/8 (no rule denies them), each used a few times at most.
        let ip = format!("10.{}.{}.{}", rng.u8(..), rng.u8(..), rng.u8(1..255));
        tally.clicks_sent.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::time::timeout(CLICK_TIMEOUT, click(&mut sender, edge, &targets[t].code, &ip)).await;
        match answer {
            Ok(Ok((status, location))) if status.is_redirection() => {
                tally.redirects.fetch_add(1, Ordering::Relaxed);
                match location.as_deref().and_then(cgid_of) {
                    Some(cgid) => {
                        tally.cgids.lock().push(cgid.to_string());
                        let mut recent = tally.recent.lock();
                        if recent.len() == RECENT_CLICKS_MAX {
                            recent.pop_front();
                        }
                        recent.push_back((cgid.to_string(), t, Instant::now()));
                    }
                    None => {
                        tally.no_cgid.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(Ok((status, _))) => {
                *tally.non_3xx.lock().entry(status.as_u16()).or_default() += 1;
                if logged < 5 {
                    logged += 1;
                    eprintln!("edge {edge}: /r/{} answered {status}", targets[t].code);
                }
            }
            Ok(Err(e)) => {
                tally.no_answer.fetch_add(1, Ordering::Relaxed);
                sender = None;
                if logged < 5 {
                    logged += 1;
                    eprintln!("edge {edge}: /r/{} got no answer: {e:#}", targets[t].code);
                }
            }
            Err(_) => {
                tally.no_answer.fetch_add(1, Ordering::Relaxed);
                sender = None;
                if logged < 5 {
                    logged += 1;
                    eprintln!("edge {edge}: /r/{} got no answer within {CLICK_TIMEOUT:?}", targets[t].code);
                }
            }
        }
    }
}

/// One click on `sender` (connected first when it is not); the status and `Location`.
async fn click(
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    edge: SocketAddr,
    code: &str,
    ip: &str,
) -> anyhow::Result<(StatusCode, Option<String>)> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(connect(edge).await?);
    }
    let s = sender.as_mut().expect("connected above");
    s.ready().await.context("the connection closed")?;
    let req = Request::get(format!("/r/{code}"))
        .header(HOST, "go.example")
        .header("x-forwarded-for", ip)
        .header(USER_AGENT, BROWSER)
        .body(Full::new(Bytes::new()))?;
    let resp = s.send_request(req).await.context("sending a click")?;
    let status = resp.status();
    let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    resp.into_body().collect().await.context("reading a click's answer")?;
    Ok((status, location))
}

/// The `cgid` query parameter of a `Location`.
fn cgid_of(location: &str) -> Option<&str> {
    let query = location.split_once('?')?.1;
    let query = query.split('#').next()?;
    query.split('&').find_map(|kv| kv.strip_prefix("cgid=")).filter(|v| v.len() == CLICK_ID_CHARS)
}

/// Posts conversions at this worker's share of the rate until `stop_at`, each until a core
/// acknowledges it.
async fn converter(
    d: &Drive,
    targets: &[Target],
    tally: &Tally,
    next: &AtomicUsize,
    w: usize,
    started: Instant,
    stop_at: Instant,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(d.conversion_workers as f64 / d.conversion_rate);
    let mut rng = fastrand::Rng::with_seed(0x636f_6e76 ^ w as u64);
    let mut next_at = tokio::time::Instant::now() + interval.mul_f64(w as f64 / d.conversion_workers as f64);
    let bearer = format!("Bearer {}", d.admin_key);
    while Instant::now() < stop_at {
        tokio::time::sleep_until(next_at).await;
        next_at += interval;
        let i = next.fetch_add(1, Ordering::Relaxed);
        // A click redirected at least CLICK_AGE_MIN ago, else only the coupon.
        let picked = {
            let recent = tally.recent.lock();
            let old = recent.partition_point(|(_, _, at)| at.elapsed() >= CLICK_AGE_MIN);
            (old > 0).then(|| recent[rng.usize(..old)].clone())
        };
        let (click, target) = match picked {
            Some((cgid, t, _)) => (Some(cgid), &targets[t]),
            None => (None, &targets[rng.usize(..targets.len())]),
        };
        if click.is_some() {
            tally.conversions_by_click.fetch_add(1, Ordering::Relaxed);
        }
        let amount = 1000 + (i as u64).wrapping_mul(2_654_435_761) % 19_000;
        let occurred = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
        let mut body = format!(
            r#"{{"order_id":"cl-{}-{i:07}","program":"{}","amount_minor":{amount},"currency":"{}","occurred_at":"{occurred}","coupon_code":"{}""#,
            d.run_id, target.program, target.currency, target.coupon
        );
        if let Some(c) = &click {
            let _ = write!(body, r#","click_id":"{c}""#);
        }
        body.push('}');
        let key = format!("cl-{}-{i}", d.run_id);
        tally.conversions_started.fetch_add(1, Ordering::Relaxed);
        let first_try = Instant::now();
        let mut attempt = 0usize;
        loop {
            let api = d.apis[(i + attempt) % d.apis.len()];
            attempt += 1;
            let answer = tokio::time::timeout(CONVERSION_TIMEOUT, post(api, &bearer, &key, &body)).await;
            let why = match answer {
                Ok(Ok((StatusCode::CREATED, replayed, text))) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&text).with_context(|| format!("conversion {i}: an answer that is no JSON: {text}"))?;
                    let id = v["id"].as_str().with_context(|| format!("conversion {i}: an answer without an id: {text}"))?;
                    tally.acked.lock().push(id.to_string());
                    if replayed {
                        tally.conversions_replayed.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                // The core or its store is down, or it is shutting down: try again, on the next core.
                Ok(Ok((status, _, text))) if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
                    format!("{status} {}", text.trim())
                }
                Ok(Ok((status, _, text))) => {
                    tally.conversions_rejected.fetch_add(1, Ordering::Relaxed);
                    eprintln!("conversion {i} on {api}: {status} {}", text.trim());
                    break;
                }
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => format!("no answer within {CONVERSION_TIMEOUT:?}"),
            };
            tally.conversion_attempts_failed.fetch_add(1, Ordering::Relaxed);
            if attempt <= 3 || attempt % 20 == 0 {
                eprintln!("[{:.1}s] conversion {i} attempt {attempt} on {api}: {why}; retrying", started.elapsed().as_secs_f64());
            }
            if first_try.elapsed() > d.conversion_deadline {
                tally.conversions_unacked.fetch_add(1, Ordering::Relaxed);
                eprintln!("conversion {i}: not acknowledged within {:?}; giving up", d.conversion_deadline);
                break;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    Ok(())
}

/// One `POST /v1/conversions` on a connection of its own: status, replayed, body.
async fn post(api: SocketAddr, bearer: &str, key: &str, body: &str) -> anyhow::Result<(StatusCode, bool, String)> {
    let mut sender = connect(api).await?;
    sender.ready().await.context("the connection closed")?;
    let req = Request::post("/v1/conversions")
        .header(HOST, api.to_string())
        .header(AUTHORIZATION, bearer)
        .header(CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from(body.to_string())))?;
    let resp = sender.send_request(req).await.context("posting a conversion")?;
    let (status, replayed) = (resp.status(), resp.headers().contains_key("idempotent-replayed"));
    let text = resp.into_body().collect().await.context("reading a conversion's answer")?.to_bytes();
    Ok((status, replayed, String::from_utf8_lossy(&text).into_owned()))
}

/// Reads the click log in `dir` and compares it with the click ids in `cgids` (one a line);
/// prints one line.
pub fn click_log(dir: &Path, cgids: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(cgids).with_context(|| format!("reading {}", cgids.display()))?;
    let wanted: HashSet<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let mut counts: HashMap<[u8; CLICK_ID_CHARS], u32> = HashMap::with_capacity(wanted.len());
    let mut id = [0u8; CLICK_ID_CHARS];
    let report = clickgate::click_log::SegmentLog::read(dir, |ev| {
        ev.click_id.encode(&mut id);
        *counts.entry(id).or_default() += 1;
    })
    .with_context(|| format!("reading the click log in {}", dir.display()))?;
    let as_text = |k: &[u8; CLICK_ID_CHARS]| String::from_utf8_lossy(k).into_owned();
    let present: HashSet<String> = counts.keys().map(as_text).collect();
    let missing: Vec<&&str> = wanted.iter().filter(|w| !present.contains(**w)).collect();
    let repeated: Vec<(String, u32)> = counts.iter().filter(|(_, n)| **n > 1).map(|(k, n)| (as_text(k), *n)).collect();
    let duplicates: u64 = repeated.iter().map(|(_, n)| u64::from(*n - 1)).sum();
    let extra = present.iter().filter(|p| !wanted.contains(p.as_str())).count();
    for m in missing.iter().take(10) {
        eprintln!("missing from {}: {m}", dir.display());
    }
    for (k, n) in repeated.iter().take(10) {
        eprintln!("in {} {n} times: {k}", dir.display());
    }
    println!(
        "logged={} distinct={} wanted={} found={} missing={} duplicates={duplicates} extra={extra} undecodable={} segments={}",
        report.events,
        counts.len(),
        wanted.len(),
        wanted.len() - missing.len(),
        missing.len(),
        report.undecodable,
        report.segments
    );
    Ok(())
}

/// Waits up to `wait` until every consumer in `durables` on `stream` has nothing pending and
/// nothing unacked; prints their state either way and fails when the wait ran out.
pub async fn consumers(js: &async_nats::jetstream::Context, stream: &str, durables: &[String], wait: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        let mut line = String::new();
        let mut done = true;
        let state = async {
            let mut s = js.get_stream(stream).await.with_context(|| format!("stream {stream} not found"))?;
            let info = s.info().await.with_context(|| format!("reading stream {stream}'s state"))?;
            let leader = info.cluster.as_ref().and_then(|c| c.leader.as_deref()).unwrap_or("none");
            let _ = write!(line, "messages={} last_seq={} leader={leader}", info.state.messages, info.state.last_sequence);
            for d in durables {
                let c = s.consumer_info(d).await.with_context(|| format!("durable consumer {d} not found on {stream}"))?;
                let _ = write!(
                    line,
                    " {d}.pending={} {d}.ack_pending={} {d}.redelivered={}",
                    c.num_pending, c.num_ack_pending, c.num_redelivered
                );
                done &= c.num_pending == 0 && c.num_ack_pending == 0;
            }
            anyhow::Ok(())
        }
        .await;
        match state {
            Ok(()) if done => {
                println!("drained=1 {line}");
                return Ok(());
            }
            Ok(()) if Instant::now() >= deadline => {
                println!("drained=0 {line}");
                bail!("the consumers did not drain stream {stream} within {wait:?}: {line}");
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
