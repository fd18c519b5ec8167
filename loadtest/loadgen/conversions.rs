//! Conversions through the real API at full speed, and the plain-SQLite reference beside them.
//!
//! `conversions`: C keep-alive HTTP/1.1 connections, each posting `POST /v1/conversions` as
//! soon as its previous answer arrived, until N conversions are acknowledged (`201`). Every
//! conversion has a unique order id and the click id of a `valid` click the core has ingested
//! (from the event set `clicks --save` wrote), in that click's program and currency, so each
//! one is attributed by click id and commissioned. Without an event set, a coupon code
//! attributes them instead.
//!
//! `sqlite-reference`: plain rusqlite inserting one row per conversion in groups, one commit
//! each, WAL and `synchronous=FULL` as the core's store: what SQLite alone does on this disk.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use clickgate::config::Config;
use clickgate::events::ClickEvent;
use clickgate::model::{Currency, Verdict};

use crate::{cpu_ticks, EventSet};

/// What one conversion is attributed by.
enum Attribution {
    /// (click id, program, currency) of `valid` clicks the core holds, used in turn.
    Clicks(Vec<(String, String, Currency)>),
    /// A coupon code of a program, in its currency.
    Coupon { code: String, program: String, currency: Currency },
}

/// What `conversions` was asked to do.
pub struct Run<'a> {
    pub api_url: &'a str,
    pub admin_key: &'a str,
    pub count: usize,
    pub connections: usize,
    pub events: Option<&'a Path>,
    pub coupon: Option<(&'a str, &'a str)>,
    pub config: &'a Config,
    pub run_id: &'a str,
    pub idempotency_keys: bool,
}

/// Click ids, programs and currencies of the `valid` clicks in a saved event set.
fn valid_clicks(path: &Path, config: &Config) -> anyhow::Result<Vec<(String, String, Currency)>> {
    let set = EventSet::load(path)?;
    let demo = clickgate::app::demo_seed(&config.demo)?;
    let currency = |program: &str| demo.programs.iter().find(|p| p.id == program).map(|p| p.currency);
    let mut out = Vec::new();
    for i in 0..set.len() {
        let ev = ClickEvent::decode(set.payload(i)).with_context(|| format!("decoding event {i} of {}", path.display()))?;
        if ev.verdict != Verdict::Valid {
            continue;
        }
        let cur = currency(&ev.program).with_context(|| format!("program {} of event {i} is not in the config", ev.program))?;
        out.push((set.id(i).to_string(), ev.program.to_string(), cur));
    }
    ensure!(!out.is_empty(), "{} holds no valid click", path.display());
    Ok(out)
}

/// The request body of conversion `i`.
fn body(a: &Attribution, run_id: &str, i: usize, occurred_at: &str) -> String {
    // Amounts from 10.00 to 200.00, varied so tiers, bonuses and caps see a spread.
    let amount = 1000 + (i as u64).wrapping_mul(2_654_435_761) % 19_000;
    let order = format!("lt-{run_id}-{i:09}");
    match a {
        Attribution::Clicks(clicks) => {
            let (click, program, currency) = &clicks[i % clicks.len()];
            format!(
                r#"{{"order_id":"{order}","program":"{program}","amount_minor":{amount},"currency":"{currency}","occurred_at":"{occurred_at}","click_id":"{click}"}}"#
            )
        }
        Attribution::Coupon { code, program, currency } => format!(
            r#"{{"order_id":"{order}","program":"{program}","amount_minor":{amount},"currency":"{currency}","occurred_at":"{occurred_at}","coupon_code":"{code}"}}"#
        ),
    }
}

fn rfc3339_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Posts `count` conversions over `connections` keep-alive connections; prints one line.
pub async fn run(r: Run<'_>) -> anyhow::Result<()> {
    ensure!(r.count > 0 && r.connections > 0, "--count and --connections must be at least 1");
    let attribution = match (r.events, r.coupon) {
        (Some(path), _) => Attribution::Clicks(valid_clicks(path, r.config)?),
        (None, Some((code, program))) => {
            let demo = clickgate::app::demo_seed(&r.config.demo)?;
            let p = demo.programs.iter().find(|p| p.id == program).with_context(|| format!("no program {program} in the config"))?;
            ensure!(
                demo.coupons.iter().any(|c| c.code.eq_ignore_ascii_case(code) && c.program == program),
                "the config has no coupon {code} for program {program}"
            );
            Attribution::Coupon { code: code.to_string(), program: program.to_string(), currency: p.currency }
        }
        (None, None) => bail!("give --events (click ids of ingested clicks) or --coupon and --program"),
    };
    let clicks = match &attribution {
        Attribution::Clicks(c) => c.len(),
        Attribution::Coupon { .. } => 0,
    };
    let authority = r.api_url.trim_start_matches("http://").trim_end_matches('/').to_string();
    ensure!(!authority.contains('/') && !r.api_url.starts_with("https://"), "--api-url must be http://host:port");
    let shared = Arc::new(Shared {
        attribution,
        authority,
        bearer: format!("Bearer {}", r.admin_key),
        run_id: r.run_id.to_string(),
        count: r.count,
        next: AtomicUsize::new(0),
        idempotency_keys: r.idempotency_keys,
    });
    // Every connection is open before the clock starts.
    let mut senders = Vec::with_capacity(r.connections);
    for _ in 0..r.connections {
        let stream = TcpStream::connect(&shared.authority).await.with_context(|| format!("connecting to {}", shared.authority))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("HTTP/1.1 handshake")?;
        tokio::spawn(conn);
        senders.push(sender);
    }
    let (started, cpu0) = (Instant::now(), cpu_ticks());
    let tasks: Vec<_> = senders.into_iter().map(|s| tokio::spawn(connection(shared.clone(), s))).collect();
    let mut latencies = Vec::with_capacity(r.count);
    for t in tasks {
        latencies.extend(t.await.context("a connection task panicked")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct =
        |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    println!(
        "conversions={} acked={} seconds={seconds:.3} rate={:.0} connections={} p50_ms={:.2} p99_ms={:.2} cpu_ticks={} clicks={clicks} idempotency_keys={}",
        r.count,
        latencies.len(),
        latencies.len() as f64 / seconds,
        r.connections,
        pct(0.50),
        pct(0.99),
        cpu_ticks() - cpu0,
        r.idempotency_keys
    );
    Ok(())
}

struct Shared {
    attribution: Attribution,
    authority: String,
    bearer: String,
    run_id: String,
    count: usize,
    next: AtomicUsize,
    idempotency_keys: bool,
}

/// One connection: posts the next conversion as soon as the previous one is acknowledged.
/// Anything but a fresh `201` fails the run (a timing of refused requests means nothing).
async fn connection(s: Arc<Shared>, mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    let mut occurred_at = (rfc3339_now(), Instant::now());
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= s.count {
            return Ok(latencies);
        }
        // Conversions happen now; a second of staleness is nothing to the API's checks.
        if occurred_at.1.elapsed() > Duration::from_secs(1) {
            occurred_at = (rfc3339_now(), Instant::now());
        }
        let mut req = Request::post("/v1/conversions")
            .header(HOST, &s.authority)
            .header(AUTHORIZATION, &s.bearer)
            .header(CONTENT_TYPE, "application/json");
        if s.idempotency_keys {
            req = req.header("idempotency-key", format!("lt-{}-{i}", s.run_id));
        }
        let req = req.body(Full::new(Bytes::from(body(&s.attribution, &s.run_id, i, &occurred_at.0))))?;
        let t = Instant::now();
        sender.ready().await.context("the connection closed")?;
        let resp = sender.send_request(req).await.with_context(|| format!("posting conversion {i}"))?;
        let (status, replayed) = (resp.status(), resp.headers().contains_key("idempotent-replayed"));
        let answer = resp.into_body().collect().await.context("reading an answer")?.to_bytes();
        latencies.push(t.elapsed());
        if status != StatusCode::CREATED || replayed {
            bail!("conversion {i}: {status}{} {}", if replayed { " (replayed)" } else { "" }, String::from_utf8_lossy(&answer));
        }
    }
}

/// Plain SQLite: `rows` rows of a conversion's size, `per_commit` rows per commit, WAL and
/// `synchronous=FULL`, in a fresh file in `dir`; prints one line.
pub fn sqlite_reference(dir: &Path, rows: usize, per_commit: usize) -> anyhow::Result<()> {
    ensure!(rows > 0 && per_commit > 0, "--rows and --rows-per-commit must be at least 1");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("sqlite-reference-{}.db", std::process::id()));
    let result = (|| -> anyhow::Result<f64> {
        let mut conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE rows (id TEXT PRIMARY KEY, program TEXT NOT NULL, order_id TEXT NOT NULL, amount_minor INTEGER NOT NULL,
                 currency TEXT NOT NULL, occurred_at_ms INTEGER NOT NULL, click_id TEXT, UNIQUE (program, order_id))",
        )?;
        // Rows as the API would have stored them: a hashed id, a unique order id, a click id.
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
        let data: Vec<(String, String, String)> = (0..rows)
            .map(|i| {
                let order = format!("ref-{i:09}");
                (
                    clickgate::conversions::conversion_id("shop", &order),
                    order,
                    format!("{:047x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                )
            })
            .collect();
        let started = Instant::now();
        for chunk in data.chunks(per_commit) {
            let tx = conn.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO rows (id, program, order_id, amount_minor, currency, occurred_at_ms, click_id)
                     VALUES (?1, 'shop', ?2, ?3, 'USD', ?4, ?5)",
                )?;
                for (i, (id, order, click)) in chunk.iter().enumerate() {
                    st.execute(rusqlite::params![id, order, 1000 + i as i64, now_ms, click])?;
                }
            }
            tx.commit()?;
        }
        Ok(started.elapsed().as_secs_f64())
    })();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let seconds = result.with_context(|| format!("the SQLite reference in {}", dir.display()))?;
    println!("rows={rows} rows_per_commit={per_commit} seconds={seconds:.3} rate={:.0}", rows as f64 / seconds);
    Ok(())
}
