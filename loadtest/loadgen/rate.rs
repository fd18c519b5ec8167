//! `edge-rate`: the edge's click mix offered at a constant rate, for latency below saturation.
//!
//! wrk keeps every connection busy, so its latencies are those of a saturated server. This mode
//! is open-loop as wrk2 is: each of C keep-alive connections has its own schedule, one request
//! every C/R seconds, staggered across connections, and a request's latency runs from the time
//! the schedule meant it to be sent, not from when it was sent. A server that stalls therefore
//! pays for every request its stall delayed (no coordinated omission), and a generator that
//! falls behind shows it as an achieved rate below the offered one.
//!
//! Each connection is a thread that sleeps until its next slot, writes one request and reads
//! one response: a thread wakes within tens of microseconds on Linux, where tokio's timer wheel
//! rounds to a millisecond, which would be most of the latency measured.
//!
//! The mix is `loadtest/mix.lua`'s, ported: the same client pool from the same LCG and seed
//! (100k addresses, 2% in AWS ranges, a visitor cookie for every other one), 5% crawler agents,
//! Zipf (s = 1) over `lt00`..`lt19` and 5% exact repeats of a recent request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};

const POOL_N: usize = 100_000;
const DC_N: usize = 2_000;
const BOT_P: f64 = 0.05;
const DUP_P: f64 = 0.05;
const RING_N: usize = 4096;
const CODES_N: usize = 20;
const PUBLIC_OCTETS: [u32; 59] = [
    24, 31, 49, 58, 59, 60, 61, 62, 67, 73, 79, 80, 81, 82, 86, 87, 90, 94, 96, 97, 101, 106, 109, 110, 111, 112, 113, 115, 116, 117, 118,
    119, 120, 121, 122, 123, 124, 125, 171, 175, 177, 179, 180, 181, 183, 186, 187, 189, 190, 200, 201, 210, 211, 217, 218, 219, 220, 221,
    222,
];
const DC_RANGES: [(u32, u32, u32); 2] = [(3, 80, 16), (52, 0, 32)];
const ALPHABET: &[u8] = b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
const LAST_CHARS: &[u8] = b"-FVk";
/// A response head longer than this is an error, not something to wait for.
const HEAD_BYTES_MAX: usize = 16 * 1024;

pub struct Options<'a> {
    pub addr: SocketAddr,
    pub rate: f64,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub pool_seed: u64,
    pub request_seed: u64,
    pub browsers: &'a Path,
    pub bots: &'a Path,
}

/// The mix's pool, from the same 32-bit LCG as mix.lua, so a seed gives the same clients.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = (1_664_525 * self.0 + 1_013_904_223) % 4_294_967_296;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() as f64 / 4_294_967_296.0 * n as f64) as usize
    }
}

struct Client {
    ip: String,
    cookie: Option<String>,
    datacenter: bool,
}

fn pool(seed: u64) -> Vec<Client> {
    let mut lcg = Lcg(seed % 4_294_967_296);
    let mut seen = std::collections::HashSet::with_capacity(POOL_N);
    let mut clients: Vec<Client> = Vec::with_capacity(POOL_N);
    while clients.len() < POOL_N - DC_N {
        let a = PUBLIC_OCTETS[lcg.below(PUBLIC_OCTETS.len())];
        let ip = format!("{a}.{}.{}.{}", lcg.below(256), lcg.below(256), 1 + lcg.below(254));
        if seen.insert(ip.clone()) {
            clients.push(Client { ip, cookie: None, datacenter: false });
        }
    }
    while clients.len() < POOL_N {
        let (a, low, count) = DC_RANGES[lcg.below(DC_RANGES.len())];
        let ip = format!("{a}.{}.{}.{}", low as usize + lcg.below(count as usize), lcg.below(256), 1 + lcg.below(254));
        if seen.insert(ip.clone()) {
            clients.push(Client { ip, cookie: None, datacenter: true });
        }
    }
    for i in (1..POOL_N).rev() {
        let j = lcg.below(i + 1);
        clients.swap(i, j);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        // mix.lua counts from 1 and gives a cookie to even positions.
        if (i + 1) % 2 == 0 {
            let mut c = String::from("cg_vid=");
            for _ in 0..21 {
                c.push(ALPHABET[lcg.below(64)] as char);
            }
            c.push(LAST_CHARS[lcg.below(4)] as char);
            client.cookie = Some(c);
        }
    }
    clients
}

/// Zipf (s = 1) over the link codes, as a cumulative table.
fn zipf_cdf() -> Vec<f64> {
    let weights: Vec<f64> = (1..=CODES_N).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

fn read_lines(path: &Path, what: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the {what} file {}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && l.bytes().all(|b| (32..=126).contains(&b)))
        .map(str::to_owned)
        .collect();
    ensure!(!lines.is_empty(), "no usable lines in the {what} file {}", path.display());
    Ok(lines)
}

#[derive(Default)]
struct MixCounts {
    generated: usize,
    dup: usize,
    bot: usize,
    dc: usize,
    cookie: usize,
}

/// Every request of the run, built before it starts so the connections only write bytes.
fn requests(opts: &Options<'_>, host: &str, count: usize) -> anyhow::Result<(Vec<Vec<u8>>, MixCounts)> {
    let clients = pool(opts.pool_seed);
    let browsers = read_lines(opts.browsers, "browser user-agent")?;
    let bots = read_lines(opts.bots, "bot user-agent")?;
    let cdf = zipf_cdf();
    let mut rng = fastrand::Rng::with_seed(opts.request_seed);
    let mut ring: Vec<(usize, bool, usize, usize)> = Vec::with_capacity(RING_N);
    let mut ring_pos = 0;
    let mut counts = MixCounts::default();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (client, bot, agent, code) = if !ring.is_empty() && rng.f64() < DUP_P {
            counts.dup += 1;
            ring[rng.usize(0..ring.len())]
        } else {
            let client = rng.usize(0..POOL_N);
            let bot = rng.f64() < BOT_P;
            let agent = if bot { rng.usize(0..bots.len()) } else { rng.usize(0..browsers.len()) };
            let u = rng.f64();
            let code = cdf.iter().position(|&c| u < c).unwrap_or(CODES_N - 1);
            let draw = (client, bot, agent, code);
            if ring.len() < RING_N {
                ring.push(draw);
            } else {
                ring[ring_pos] = draw;
            }
            ring_pos = (ring_pos + 1) % RING_N;
            draw
        };
        let c = &clients[client];
        counts.generated += 1;
        counts.bot += usize::from(bot);
        counts.dc += usize::from(c.datacenter);
        let ua = if bot { &bots[agent] } else { &browsers[agent] };
        let mut req = format!("GET /r/lt{code:02} HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: {}\r\nUser-Agent: {ua}\r\n", c.ip);
        if let Some(cookie) = &c.cookie {
            counts.cookie += 1;
            req.push_str("Cookie: ");
            req.push_str(cookie);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        out.push(req.into_bytes());
    }
    Ok((out, counts))
}

/// Reads one response: its status, after its head and a `Content-Length` body.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        ensure!(buf.len() <= HEAD_BYTES_MAX, "a response head over {HEAD_BYTES_MAX} bytes");
        let n = stream.read(&mut chunk)?;
        ensure!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("a response head that is not UTF-8")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {:?}", head.lines().next().unwrap_or("")))?;
    let mut body = 0usize;
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                body = value.trim().parse().context("a bad Content-Length")?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("a chunked response: the mix's answers carry a Content-Length");
            }
        }
    }
    let mut have = buf.len() - head_end;
    while have < body {
        let n = stream.read(&mut chunk)?;
        ensure!(n > 0, "the server closed the connection mid-body");
        have += n;
    }
    Ok(status)
}

struct ConnResult {
    /// Microseconds from each measured request's scheduled send to its response.
    latencies_us: Vec<u32>,
    non3xx: usize,
    errors: usize,
    sent: usize,
}

fn connection(opts: &Options<'_>, index: usize, start: Instant, requests: &[Vec<u8>], next: &AtomicUsize) -> ConnResult {
    let period = Duration::from_secs_f64(opts.connections as f64 / opts.rate);
    let measured_from = start + opts.warmup;
    let end = measured_from + opts.duration;
    let mut intended = start + period.mul_f64(index as f64 / opts.connections as f64);
    let expected = (opts.duration.as_secs_f64() * opts.rate / opts.connections as f64) as usize + 1;
    let mut out = ConnResult { latencies_us: Vec::with_capacity(expected), non3xx: 0, errors: 0, sent: 0 };
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    while intended < end {
        let now = Instant::now();
        if intended > now {
            std::thread::sleep(intended - now);
        }
        let s = match stream.take() {
            Some(s) => s,
            None => match TcpStream::connect(opts.addr) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s
                }
                Err(_) => {
                    out.errors += 1;
                    intended += period;
                    continue;
                }
            },
        };
        let mut s = s;
        let req = &requests[next.fetch_add(1, Ordering::Relaxed) % requests.len()];
        let answer = s.write_all(req).map_err(anyhow::Error::from).and_then(|()| read_response(&mut s, &mut buf));
        let done = Instant::now();
        let reusable = answer.is_ok();
        if intended >= measured_from {
            out.sent += 1;
            match answer {
                Ok(status) => {
                    out.latencies_us.push(done.saturating_duration_since(intended).as_micros().min(u32::MAX as u128) as u32);
                    if !(300..400).contains(&status) {
                        out.non3xx += 1;
                    }
                }
                Err(_) => out.errors += 1,
            }
        }
        if reusable {
            stream = Some(s);
        }
        intended += period;
    }
    out
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

pub fn run(opts: &Options<'_>) -> anyhow::Result<()> {
    ensure!(opts.rate > 0.0 && opts.rate.is_finite(), "--rate must be a positive number");
    ensure!(opts.connections > 0, "--connections must be at least 1");
    ensure!(!opts.duration.is_zero(), "--duration must be at least 1 s");
    ensure!(
        opts.rate / opts.connections as f64 <= 100_000.0,
        "--rate over --connections is more than one request each 10 us per connection"
    );
    let total = ((opts.duration + opts.warmup).as_secs_f64() * opts.rate) as usize + opts.connections;
    let (reqs, counts) = requests(opts, &opts.addr.to_string(), total)?;
    let next = AtomicUsize::new(0);
    let reqs = Arc::new(reqs);
    // Threads start together, slightly after now, so none begins behind its schedule.
    let start = Instant::now() + Duration::from_millis(50);
    let results: Vec<ConnResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..opts.connections)
            .map(|i| {
                let (reqs, next) = (&reqs, &next);
                scope.spawn(move || connection(opts, i, start, reqs, next))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(ConnResult { latencies_us: Vec::new(), non3xx: 0, errors: 1, sent: 0 })).collect()
    });
    let mut latencies: Vec<u32> = Vec::new();
    let (mut non3xx, mut errors, mut sent) = (0, 0, 0);
    for r in results {
        latencies.extend_from_slice(&r.latencies_us);
        non3xx += r.non3xx;
        errors += r.errors;
        sent += r.sent;
    }
    latencies.sort_unstable();
    let answered = latencies.len();
    println!("mix: generated={} dup={} bot={} dc={} cookie={}", counts.generated, counts.dup, counts.bot, counts.dc, counts.cookie);
    println!(
        "rate offered_rps={:.0} achieved_rps={:.0} requests={sent} answered={answered} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} non3xx={non3xx} errors={errors}",
        opts.rate,
        answered as f64 / opts.duration.as_secs_f64(),
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 90.0),
        percentile_ms(&latencies, 99.0),
        percentile_ms(&latencies, 99.9),
        latencies.last().map_or(f64::NAN, |&m| f64::from(m) / 1000.0),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_has_mix_luas_shape() {
        let clients = pool(42);
        assert_eq!(clients.len(), POOL_N);
        assert_eq!(clients.iter().filter(|c| c.datacenter).count(), DC_N);
        assert_eq!(clients.iter().filter(|c| c.cookie.is_some()).count(), POOL_N / 2);
        let distinct: std::collections::HashSet<&str> = clients.iter().map(|c| c.ip.as_str()).collect();
        assert_eq!(distinct.len(), POOL_N);
        assert!(clients.iter().filter(|c| c.datacenter).all(|c| c.ip.starts_with("3.") || c.ip.starts_with("52.")));
    }

    #[test]
    fn zipf_puts_about_28_percent_on_the_first_code() {
        let cdf = zipf_cdf();
        assert!((cdf[0] - 0.2787).abs() < 0.001, "{}", cdf[0]);
        assert!((cdf[CODES_N - 1] - 1.0).abs() < 1e-9);
    }
}
