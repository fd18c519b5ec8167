//! Flood scenarios for `loadtest/fraud.sh`: a seeded generator of labelled human and attack
//! clicks in `clickgate check`'s input format, and a scorer that joins `check`'s verdicts with
//! the labels.
//!
//! ```text
//! fraud_eval gen --asn-db geoip/GeoLite2-ASN.mmdb --browsers config/bots/browser-user-agents.txt \
//!     --links 200 --seed 1 --scale 1.0 --out DIR        # DIR/clicks.jsonl, DIR/labels.txt
//! clickgate check < DIR/clicks.jsonl | fraud_eval score --labels DIR/labels.txt
//! ```
//!
//! `fraud_eval log` writes the lines into a data dir's click log instead, as the edge would have
//! logged them under that config (agent, client tag, truncated address; clicks refused by a
//! rate limit are not logged, as on the edge), for `loadtest/rescore.sh`:
//!
//! ```text
//! fraud_eval log --config config/clickgate.toml --data-dir DIR < DIR/clicks.jsonl
//! ```
//!
//! Addresses come from the real ASN database: consumer ISPs' networks for people, mobile
//! carriers' for carrier-grade NAT, hosting providers' for datacenter traffic. Agents come from
//! the fetched list of real browser agents; scripted clients use the agents their libraries
//! send. Every line of `clicks.jsonl` has one line in `labels.txt` at the same position:
//! `human`, `human_cgnat` (people sharing one carrier address and phone model), `human_repeat`
//! (a person's genuine second click, listed apart), or `attack:<scenario>`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use anyhow::{bail, Context};
use maxminddb::{Reader, WithinOptions};
use serde::Deserialize;

/// 2026-01-05T12:00:00Z: the start of the generated traffic.
const T0_MS: u64 = 1_767_614_400_000;
/// The human traffic spreads over two hours.
const SPAN_MS: u64 = 2 * 3_600_000;
const MINUTE: u64 = 60_000;

/// Consumer broadband and mobile ISPs: Comcast, Charter, AT&T, Verizon, Cox, Deutsche Telekom,
/// Orange, BT, Telefonica, Vodafone DE, Free, Jio, Airtel, Vivo, Telstra.
const CONSUMER_ASNS: &[u32] = &[7922, 20115, 7018, 701, 22773, 3320, 3215, 2856, 3352, 3209, 12322, 55836, 45609, 26599, 1221];
/// Mobile carriers whose subscribers share carrier-grade NAT addresses: T-Mobile US, Verizon
/// Wireless, Jio, Airtel, Vodafone India, Telkomsel.
const CARRIER_ASNS: &[u32] = &[21928, 6167, 55836, 45609, 55410, 23693];
/// Hosting and cloud networks, including second ASNs of providers whose first is better known
/// (AWS 14618 and 8987, Google 396982, OVH 35540, Hetzner 213230, DigitalOcean 200130).
const HOSTING_ASNS: &[u32] = &[16509, 14618, 8987, 15169, 396982, 8075, 14061, 200130, 16276, 35540, 24940, 213230, 63949, 20473];

/// What scripted clients and headless browsers send.
const SCRIPTED_AGENTS: &[&str] = &[
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Python-urllib/3.12",
    "Go-http-client/1.1",
    "Go-http-client/2.0",
    "Wget/1.21.4",
    "axios/1.7.2",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Java/17.0.10",
    "Apache-HttpClient/4.5.14 (Java/17.0.10)",
    "libwww-perl/6.77",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "aiohttp/3.9.5",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.60 Safari/537.36",
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Puppeteer",
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("gen") => gen(Gen::parse(args)?),
        Some("score") => {
            let (flag, path) = (args.next(), args.next());
            let (Some("--labels"), Some(path)) = (flag.as_deref(), path) else { bail!("usage: fraud_eval score --labels FILE < verdicts") };
            score(&PathBuf::from(path))
        }
        Some("log") => {
            let mut config = None;
            let mut data_dir = None;
            while let Some(arg) = args.next() {
                let value = args.next().with_context(|| format!("{arg} needs a value"))?;
                match arg.as_str() {
                    "--config" => config = Some(PathBuf::from(value)),
                    "--data-dir" => data_dir = Some(PathBuf::from(value)),
                    _ => bail!("unknown argument {arg}"),
                }
            }
            log(&config.context("--config")?, &data_dir.context("--data-dir")?)
        }
        _ => bail!(
            "usage: fraud_eval gen … | fraud_eval score --labels FILE | fraud_eval log …; see the doc comment of examples/fraud_eval.rs"
        ),
    }
}

struct Gen {
    asn_db: PathBuf,
    browsers: PathBuf,
    links: usize,
    seed: u64,
    scale: f64,
    out: PathBuf,
}

impl Gen {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Gen> {
        let (mut asn_db, mut browsers, mut out) = (None, None, None);
        let (mut links, mut seed, mut scale) = (200, 1, 1.0);
        while let Some(arg) = args.next() {
            let value = args.next().with_context(|| format!("{arg} needs a value"))?;
            match arg.as_str() {
                "--asn-db" => asn_db = Some(value.into()),
                "--browsers" => browsers = Some(value.into()),
                "--out" => out = Some(value.into()),
                "--links" => links = value.parse().context("--links")?,
                "--seed" => seed = value.parse().context("--seed")?,
                "--scale" => scale = value.parse().context("--scale")?,
                _ => bail!("unknown argument {arg}"),
            }
        }
        if links == 0 || !(scale > 0.0 && scale <= 20.0) {
            bail!("--links must be positive and --scale in (0, 20]");
        }
        Ok(Gen {
            asn_db: asn_db.context("--asn-db is required")?,
            browsers: browsers.context("--browsers is required")?,
            links,
            seed,
            scale,
            out: out.context("--out is required")?,
        })
    }
}

/// Networks of a set of ASNs, by family, to draw addresses from.
struct Pool {
    v4: Vec<(u32, u8)>,
    v6: Vec<(u128, u8)>,
}

impl Pool {
    fn v4(&self, rng: &mut fastrand::Rng) -> Ipv4Addr {
        let (net, prefix) = self.v4[rng.usize(..self.v4.len())];
        // Prefixes are at most /30, so there is a host between the network and broadcast.
        let size = 1u64 << (32 - u32::from(prefix));
        Ipv4Addr::from(net | rng.u64(1..size - 1) as u32)
    }

    /// A /64 inside one of the pool's IPv6 networks.
    fn v6_64(&self, rng: &mut fastrand::Rng) -> u128 {
        let (net, prefix) = self.v6[rng.usize(..self.v6.len())];
        let free = 64u32.saturating_sub(u32::from(prefix));
        let sub = if free == 0 { 0 } else { u128::from(rng.u64(..) >> (64 - free)) << 64 };
        net | sub
    }

    fn v6(&self, rng: &mut fastrand::Rng) -> Ipv6Addr {
        Ipv6Addr::from(self.v6_64(rng) | u128::from(rng.u64(1..)))
    }

    fn any(&self, rng: &mut fastrand::Rng, v6_share: f64) -> IpAddr {
        if !self.v6.is_empty() && rng.f64() < v6_share {
            IpAddr::V6(self.v6(rng))
        } else {
            IpAddr::V4(self.v4(rng))
        }
    }
}

#[derive(Deserialize)]
struct AsnRecord {
    autonomous_system_number: Option<u32>,
}

/// Every network of the database whose ASN is in one of `sets`, one pool per set.
fn pools(path: &PathBuf, sets: &[&[u32]]) -> anyhow::Result<Vec<Pool>> {
    let reader = Reader::open_readfile(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out: Vec<Pool> = sets.iter().map(|_| Pool { v4: Vec::new(), v6: Vec::new() }).collect();
    for root in ["0.0.0.0/0", "::/0"] {
        for item in reader.within(root.parse()?, WithinOptions::default())? {
            let item = item?;
            let Some(rec) = item.decode::<AsnRecord>()? else { continue };
            let Some(asn) = rec.autonomous_system_number else { continue };
            let net = item.network()?;
            for (i, set) in sets.iter().enumerate() {
                if !set.contains(&asn) {
                    continue;
                }
                match net.network() {
                    // IPv4 inside the IPv6 tree (::a.b.c.d and friends) is walked as IPv4 already.
                    IpAddr::V4(a) if net.prefix() <= 30 => out[i].v4.push((u32::from(a), net.prefix())),
                    // Global unicast only, without the 6to4 and Teredo ranges that alias IPv4.
                    IpAddr::V6(a) if (16..=64).contains(&net.prefix()) && global_native(a) => out[i].v6.push((u128::from(a), net.prefix())),
                    _ => {}
                }
            }
        }
    }
    for (pool, set) in out.iter().zip(sets) {
        if pool.v4.is_empty() {
            bail!("the ASN database has no IPv4 network of any of {set:?}");
        }
    }
    Ok(out)
}

fn global_native(a: Ipv6Addr) -> bool {
    let [s0, s1, ..] = a.segments();
    s0 & 0xe000 == 0x2000 && s0 != 0x2002 && !(s0 == 0x2001 && s1 == 0)
}

/// One generated click and its label.
struct Click {
    ts: u64,
    ip: IpAddr,
    ua: String,
    link: usize,
    label: String,
}

/// A Zipf(1) draw over `n` ranks by inverse transform on the harmonic numbers.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut acc = 0.0;
        Zipf {
            cumulative: (1..=n)
                .map(|k| {
                    acc += 1.0 / k as f64;
                    acc
                })
                .collect(),
        }
    }

    fn draw(&self, rng: &mut fastrand::Rng) -> usize {
        let x = rng.f64() * self.cumulative[self.cumulative.len() - 1];
        self.cumulative.partition_point(|&c| c < x).min(self.cumulative.len() - 1)
    }
}

fn gen(g: Gen) -> anyhow::Result<()> {
    let [consumer, carrier, hosting]: [Pool; 3] =
        pools(&g.asn_db, &[CONSUMER_ASNS, CARRIER_ASNS, HOSTING_ASNS])?.try_into().map_err(|_| anyhow::anyhow!("three pools"))?;
    let browsers: Vec<String> = std::fs::read_to_string(&g.browsers)
        .with_context(|| format!("reading {}", g.browsers.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let phones: Vec<&String> =
        browsers.iter().filter(|b| b.contains("Mobile") && (b.contains("iPhone") || b.contains("Android"))).collect();
    if browsers.is_empty() || phones.is_empty() {
        bail!("{} holds no browser (or no phone) agents", g.browsers.display());
    }
    let mut rng = fastrand::Rng::with_seed(g.seed);
    let zipf = Zipf::new(g.links);
    let n = |base: f64| ((base * g.scale).round() as usize).max(1);
    let mut clicks = Vec::new();
    let browser = |rng: &mut fastrand::Rng| browsers[rng.usize(..browsers.len())].clone();

    // People on their own address; a few click the same link again within minutes.
    for _ in 0..n(32_000.0) {
        let (ts, link, ip, ua) = (T0_MS + rng.u64(..SPAN_MS), zipf.draw(&mut rng), consumer.any(&mut rng, 0.3), browser(&mut rng));
        if rng.f64() < 0.03 {
            let again = ts + rng.u64(30_000..20 * MINUTE);
            clicks.push(Click { ts: again, ip, ua: ua.clone(), link, label: "human_repeat".into() });
        }
        clicks.push(Click { ts, ip, ua, link, label: "human".into() });
    }
    // People behind carrier-grade NAT: a few hundred carrier addresses, each shared all
    // afternoon; groups of friends with one phone model scan one link within minutes.
    let cgnat: Vec<IpAddr> = (0..n(300.0)).map(|_| IpAddr::V4(carrier.v4(&mut rng))).collect();
    let mut people = 0;
    while people < n(8_000.0) {
        let (ip, link, start) = (cgnat[rng.usize(..cgnat.len())], zipf.draw(&mut rng), T0_MS + rng.u64(..SPAN_MS));
        let ua = phones[rng.usize(..phones.len())].clone();
        let size = rng.usize(2..=8);
        for _ in 0..size {
            clicks.push(Click { ts: start + rng.u64(..5 * MINUTE), ip, ua: ua.clone(), link, label: "human_cgnat".into() });
        }
        people += size;
    }

    let attack_start = |rng: &mut fastrand::Rng| T0_MS + rng.u64(10 * MINUTE..SPAN_MS - 70 * MINUTE);
    let push = |clicks: &mut Vec<Click>, name: &str, ts: u64, ip: IpAddr, ua: String, link: usize| {
        clicks.push(Click { ts, ip, ua, link, label: format!("attack:{name}") });
    };
    // Click spam: one address, one agent, one link, for ten minutes.
    let (start, ip, ua, link) = (attack_start(&mut rng), IpAddr::V4(consumer.v4(&mut rng)), browser(&mut rng), rng.usize(..g.links));
    for _ in 0..n(1_500.0) {
        push(&mut clicks, "click_spam", start + rng.u64(..10 * MINUTE), ip, ua.clone(), link);
    }
    // Rotation inside one /24: a new host and agent on every click.
    let (start, net, link) = (attack_start(&mut rng), u32::from(consumer.v4(&mut rng)) & !0xff, rng.usize(..g.links));
    for _ in 0..n(1_500.0) {
        let ip = IpAddr::V4(Ipv4Addr::from(net | rng.u32(1..255)));
        push(&mut clicks, "rotation_v4_24", start + rng.u64(..10 * MINUTE), ip, browser(&mut rng), link);
    }
    // Rotation inside one IPv6 /64: a new interface id and agent on every click.
    let (start, net, link) = (attack_start(&mut rng), consumer.v6_64(&mut rng), rng.usize(..g.links));
    for _ in 0..n(1_500.0) {
        let ip = IpAddr::V6(Ipv6Addr::from(net | u128::from(rng.u64(1..))));
        push(&mut clicks, "rotation_v6_64", start + rng.u64(..10 * MINUTE), ip, browser(&mut rng), link);
    }
    // Datacenter traffic: cloud addresses with browser agents, a few clicks each, across links.
    for _ in 0..n(500.0) {
        let (ip, ua, start) = (hosting.any(&mut rng, 0.2), browser(&mut rng), T0_MS + rng.u64(..SPAN_MS));
        for _ in 0..rng.usize(1..=5) {
            push(&mut clicks, "datacenter", start + rng.u64(..MINUTE), ip, ua.clone(), zipf.draw(&mut rng));
        }
    }
    // Scripted clients and headless browsers on consumer addresses.
    for _ in 0..n(500.0) {
        let (ip, start) = (consumer.any(&mut rng, 0.3), T0_MS + rng.u64(..SPAN_MS));
        let ua = SCRIPTED_AGENTS[rng.usize(..SCRIPTED_AGENTS.len())].to_string();
        for _ in 0..rng.usize(1..=5) {
            push(&mut clicks, "scripted", start + rng.u64(..MINUTE), ip, ua.clone(), zipf.draw(&mut rng));
        }
    }
    // Refreshers: a page reloaded every 15–45 s for an hour.
    for _ in 0..n(10.0) {
        let (ip, ua, link) = (consumer.any(&mut rng, 0.3), browser(&mut rng), zipf.draw(&mut rng));
        let mut ts = attack_start(&mut rng);
        let end = ts + 60 * MINUTE;
        while ts < end {
            push(&mut clicks, "refresher", ts, ip, ua.clone(), link);
            ts += rng.u64(15_000..45_000);
        }
    }
    // A residential-proxy spray: thousands of distinct consumer addresses, each clicking one
    // link once, within five minutes.
    let (start, link) = (attack_start(&mut rng), rng.usize(..g.links.min(20)));
    for _ in 0..n(3_000.0) {
        let (ip, ua) = (consumer.any(&mut rng, 0.3), browser(&mut rng));
        push(&mut clicks, "residential_spray", start + rng.u64(..5 * MINUTE), ip, ua, link);
    }

    // `check`'s clock only moves forward: the lines go out in time order.
    clicks.sort_by_key(|c| c.ts);
    std::fs::create_dir_all(&g.out)?;
    let mut lines = BufWriter::new(std::fs::File::create(g.out.join("clicks.jsonl"))?);
    let mut labels = BufWriter::new(std::fs::File::create(g.out.join("labels.txt"))?);
    for c in &clicks {
        let line = serde_json::json!({"ip": c.ip, "ua": c.ua, "code": link_code(c.link), "ts": c.ts});
        serde_json::to_writer(&mut lines, &line)?;
        lines.write_all(b"\n")?;
        writeln!(labels, "{}", c.label)?;
    }
    lines.flush()?;
    labels.flush()?;
    eprintln!("fraud_eval: {} clicks over {} links in {}", clicks.len(), g.links, g.out.display());
    Ok(())
}

/// Judges `check`'s input lines from stdin with the config's pipeline and appends each click
/// to the data dir's click log as the edge would, in batches of 4,096.
fn log(config: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use clickgate::edge::handler::{client_tag, kept_ua};
    use clickgate::edge::{judge, Judgement};
    use clickgate::events::{truncate_ip, ClickEvent};
    use clickgate::model::{ClickSigner, Reasons, VisitorId};

    #[derive(Deserialize)]
    struct Line {
        ip: IpAddr,
        ua: String,
        code: String,
        ts: u64,
    }
    let config = clickgate::config::Config::load(config)?;
    let store = clickgate::app::open_store(&config, data_dir)?;
    let table = clickgate::app::load_links(&store)?;
    let pipeline = clickgate::edge::checks::Pipeline::build(&config.checks)?;
    let signer = ClickSigner::new(&[(1, b"fraud_eval click-id key".to_vec())]);
    let tag_key = signer.derive_key(b"client tag");
    let dir = clickgate::ingest::Ingest::log_dir(data_dir, &config.core);
    let mut log = clickgate::click_log::SegmentLog::open(&dir, config.core.segment_bytes_max, |_| {})?;
    let (mut batch, mut logged, mut valid, mut limited) = (Vec::with_capacity(4096), 0u64, 0u64, 0u64);
    for line in std::io::stdin().lock().lines() {
        let l: Line = serde_json::from_str(&line?)?;
        let (link, findings, verdict) = match judge(&pipeline, &table, l.ip, &l.ua, &l.code, false, l.ts) {
            Judgement::Click { link, findings, verdict } => (link, findings, verdict),
            Judgement::RateLimited { .. } => {
                limited += 1;
                continue;
            }
            _ => bail!("link {} is unknown or inactive", l.code),
        };
        valid += u64::from(verdict == clickgate::model::Verdict::Valid);
        batch.push(ClickEvent {
            click_id: signer.mint(l.ts, link.link_id, link.partner_id),
            ts_ms: l.ts,
            program: link.program.clone(),
            partner: link.partner.clone(),
            link: link.code.clone(),
            channel: link.channel,
            sub_ids: None,
            verdict,
            reasons: findings.reasons,
            observed: Reasons::default(),
            visitor_id: VisitorId::random(),
            new_visitor: true,
            country: findings.country,
            asn: findings.asn,
            ua_hash: xxhash_rust::xxh3::xxh3_64(l.ua.as_bytes()),
            ua: (!l.ua.is_empty()).then(|| kept_ua(&l.ua).into()),
            client_tag: Some(client_tag(&tag_key, l.ip)),
            ip: Some(truncate_ip(l.ip)),
            ip_hash: None,
        });
        if batch.len() == 4096 {
            log.append_batch(&batch)?;
            logged += batch.len() as u64;
            batch.clear();
        }
    }
    log.append_batch(&batch)?;
    logged += batch.len() as u64;
    eprintln!("fraud_eval: logged {logged} clicks ({valid} valid; {limited} refused by a rate limit, not logged) in {}", dir.display());
    Ok(())
}

/// The code of link `i`, as `loadtest/fraud.sh` creates them.
fn link_code(i: usize) -> String {
    format!("f{:04}", i + 1)
}

#[derive(Deserialize)]
struct Verdict {
    verdict: Option<String>,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    observed: Vec<String>,
    error: Option<String>,
}

#[derive(Default)]
struct Row {
    clicks: u64,
    caught: u64,
    observed_only: u64,
    reasons: BTreeMap<String, u64>,
}

fn score(labels: &PathBuf) -> anyhow::Result<()> {
    let labels = std::fs::read_to_string(labels).with_context(|| format!("reading {}", labels.display()))?;
    let mut labels = labels.lines();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let label = labels.next().with_context(|| format!("verdict line {} has no label", n + 1))?;
        let v: Verdict = serde_json::from_str(&line).with_context(|| format!("verdict line {}", n + 1))?;
        if let Some(e) = v.error {
            bail!("check rejected line {}: {e}", n + 1);
        }
        let verdict = v.verdict.with_context(|| format!("verdict line {} has no verdict", n + 1))?;
        let row = rows.entry(label.to_string()).or_default();
        row.clicks += 1;
        if verdict != "valid" {
            row.caught += 1;
            let why = if verdict == "rate_limited" { vec!["rate_limited".to_string()] } else { v.reasons };
            for r in why {
                *row.reasons.entry(r).or_default() += 1;
            }
        } else if !v.observed.is_empty() {
            row.observed_only += 1;
            for r in v.observed {
                *row.reasons.entry(format!("observe:{r}")).or_default() += 1;
            }
        }
    }
    if labels.next().is_some() {
        bail!("fewer verdicts than labels: check stopped early");
    }
    println!("| scenario | clicks | not valid | share | valid but observed | top reasons |");
    println!("|---|---:|---:|---:|---:|---|");
    // (clicks, not valid, not valid or caught by a rule in observe mode)
    let (mut attack, mut human) = ((0u64, 0u64, 0u64), (0u64, 0u64, 0u64));
    for (label, row) in &rows {
        let mut top: Vec<_> = row.reasons.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = top.iter().take(3).map(|(r, n)| format!("{r} {n}")).collect();
        println!(
            "| {label} | {} | {} | {:.4} | {} | {} |",
            row.clicks,
            row.caught,
            row.caught as f64 / row.clicks as f64,
            row.observed_only,
            top.join(", ")
        );
        let acc = if label.starts_with("attack:") {
            &mut attack
        } else if label == "human_repeat" {
            continue;
        } else {
            &mut human
        };
        acc.0 += row.clicks;
        acc.1 += row.caught;
        acc.2 += row.caught + row.observed_only;
    }
    let repeats = rows.get("human_repeat").map_or((0, 0), |r| (r.clicks, r.caught));
    let share = |n: u64, of: u64| n as f64 / of.max(1) as f64;
    println!(
        "fraud attack_recall={:.4} human_fp={:.4} observed_attack_recall={:.4} observed_human_fp={:.4} attack_clicks={} human_clicks={} repeats_not_valid={}/{}",
        share(attack.1, attack.0),
        share(human.1, human.0),
        share(attack.2, attack.0),
        share(human.2, human.0),
        attack.0,
        human.0,
        repeats.1,
        repeats.0
    );
    Ok(())
}
