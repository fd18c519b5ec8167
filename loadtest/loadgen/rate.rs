//! `edge-rate`: the edge's click mix offered at a constant rate, for latency below saturation.
//!
//! wrk keeps every connection busy, so its latencies are those of a saturated server. This mode
//! is open-loop as wrk2 is: each of C keep-alive connections has its own schedule, one request
//! every C/R seconds, staggered across connections, and a request's latency runs from the time
//! the schedule meant it to be sent, not from when it was sent. A server that stalls therefore
//! pays for every request its stall delayed (no coordinated omission), and a generator that
//! falls behind shows it as an achieved rate below the offered one.
//!
//! One thread drives every connection and never sleeps (`drive`), so a request leaves within
//! a few microseconds of its slot: the generator's own share of the latency stays small next
//! to the millisecond being measured.
//!
//! The mix is `loadtest/mix.lua`'s, ported: the same client pool from the same LCG and seed
//! (100k addresses, 2% in AWS ranges, a visitor cookie for every other one), 5% crawler agents,
//! Zipf (s = 1) over `lt00`..`lt19` and 5% exact repeats of a recent request.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

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

/// Parses one response from the front of `buf`: its status and its whole length, or `None`
/// while the head or the `Content-Length` body is still incomplete.
fn parse_response(buf: &[u8]) -> anyhow::Result<Option<(u16, usize)>> {
    let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        ensure!(buf.len() <= HEAD_BYTES_MAX, "a response head over {HEAD_BYTES_MAX} bytes");
        return Ok(None);
    };
    let head_end = at + 4;
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
    Ok((buf.len() >= head_end + body).then_some((status, head_end + body)))
}

/// One keep-alive connection and its schedule: slot `k` is due at `start + offset + k * period`.
struct Conn {
    stream: Option<TcpStream>,
    offset: Duration,
    /// The next slot to send.
    slot: u64,
    /// The slot whose answer is awaited, with its scheduled time.
    in_flight: Option<Instant>,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Tally {
    /// Microseconds from each measured request's scheduled send to its response.
    latencies_us: Vec<u32>,
    non3xx: usize,
    errors: usize,
    sent: usize,
}

fn connect(addr: SocketAddr, poll: &Poll, token: usize) -> std::io::Result<TcpStream> {
    let std_stream = std::net::TcpStream::connect(addr)?;
    std_stream.set_nodelay(true)?;
    std_stream.set_nonblocking(true)?;
    let mut stream = TcpStream::from_std(std_stream);
    poll.registry().register(&mut stream, Token(token), Interest::READABLE)?;
    Ok(stream)
}

/// Writes a whole request to a non-blocking socket. A request is a few hundred bytes and a
/// connection has one in flight at most, so the send buffer has room; a short write spins for
/// more rather than queueing the rest.
fn write_all(stream: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Drives every connection from one thread that never sleeps: it sends each slot's request on
/// time (or as soon as its connection's previous answer is in) and polls for answers without
/// blocking. A thread per connection would sleep to its slot and wake tens of microseconds
/// late, more on a core shared by 64 of them; a timer wheel rounds to a millisecond. Spinning
/// costs the generator its whole core, which the harness gives it.
fn drive(opts: &Options<'_>, requests: &[Vec<u8>]) -> anyhow::Result<Tally> {
    let period = Duration::from_secs_f64(opts.connections as f64 / opts.rate);
    let mut poll = Poll::new().context("creating the poller")?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Conn> = Vec::with_capacity(opts.connections);
    for i in 0..opts.connections {
        let stream = connect(opts.addr, &poll, i).with_context(|| format!("connecting to {}", opts.addr))?;
        let offset = period.mul_f64(i as f64 / opts.connections as f64);
        conns.push(Conn { stream: Some(stream), offset, slot: 0, in_flight: None, buf: Vec::with_capacity(4096) });
    }
    // Every connection is open before the schedule starts, so none begins behind it.
    let start = Instant::now() + Duration::from_millis(50);
    let measured_from = start + opts.warmup;
    let end = measured_from + opts.duration;
    let mut tally = Tally {
        latencies_us: Vec::with_capacity((opts.duration.as_secs_f64() * opts.rate) as usize + opts.connections),
        ..Tally::default()
    };
    let mut next = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        let mut waiting = false;
        for (i, c) in conns.iter_mut().enumerate() {
            if c.in_flight.is_some() {
                waiting = true;
                continue;
            }
            let due = start + c.offset + period.mul_f64(c.slot as f64);
            if due >= end || due > now {
                waiting |= due < end;
                continue;
            }
            c.slot += 1;
            if due >= measured_from {
                tally.sent += 1;
            }
            if c.stream.is_none() {
                match connect(opts.addr, &poll, i) {
                    Ok(s) => c.stream = Some(s),
                    Err(_) => {
                        tally.errors += usize::from(due >= measured_from);
                        continue;
                    }
                }
            }
            let Some(stream) = c.stream.as_mut() else { continue };
            let req = &requests[next % requests.len()];
            next += 1;
            if write_all(stream, req).is_err() {
                tally.errors += usize::from(due >= measured_from);
                drop_conn(&poll, c);
                continue;
            }
            c.in_flight = Some(due);
            waiting = true;
        }
        if !waiting {
            break;
        }
        poll.poll(&mut events, Some(Duration::ZERO)).context("polling the connections")?;
        for ev in &events {
            let c = &mut conns[ev.token().0];
            let Some(stream) = c.stream.as_mut() else { continue };
            let mut failed = false;
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let done = Instant::now();
            match (c.in_flight, parse_response(&c.buf)) {
                (Some(due), Ok(Some((status, len)))) => {
                    c.buf.drain(..len);
                    c.in_flight = None;
                    if due >= measured_from {
                        tally.latencies_us.push(done.saturating_duration_since(due).as_micros().min(u32::MAX as u128) as u32);
                        tally.non3xx += usize::from(!(300..400).contains(&status));
                    }
                    if failed || !c.buf.is_empty() {
                        // Closed after the answer, or bytes nobody asked for: start afresh.
                        drop_conn(&poll, c);
                    }
                }
                (Some(due), Err(_)) | (Some(due), Ok(None)) if failed => {
                    tally.errors += usize::from(due >= measured_from);
                    c.in_flight = None;
                    drop_conn(&poll, c);
                }
                (None, _) if failed || !c.buf.is_empty() => drop_conn(&poll, c),
                (_, Err(_)) => {
                    tally.errors += usize::from(c.in_flight.is_some_and(|due| due >= measured_from));
                    c.in_flight = None;
                    drop_conn(&poll, c);
                }
                _ => {}
            }
        }
    }
    Ok(tally)
}

fn drop_conn(poll: &Poll, c: &mut Conn) {
    if let Some(mut s) = c.stream.take() {
        let _ = poll.registry().deregister(&mut s);
    }
    c.buf.clear();
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
    let tally = drive(opts, &reqs)?;
    let (mut latencies, non3xx, errors, sent) = (tally.latencies_us, tally.non3xx, tally.errors, tally.sent);
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
