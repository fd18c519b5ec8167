//! One edge request through the real handler (`edge::handler::handle`: route, the check
//! pipeline, respond, emit) with an `EdgeState` built by `app::build_edge` as `serve` builds it:
//! every check on except the fetched lists (GeoIP, bot lists), demo links `f0`..`f2`.
//!
//! The input: byte 0 picks the peer (a trusted proxy or not, IPv4 or IPv6), byte 1 the method,
//! and the rest is lines: the request target (a bare code is taken as `/r/{code}`), then
//! User-Agent, Cookie, X-Forwarded-For and Forwarded; an empty line leaves that header out.
//! Whatever the bytes, the handler answers, and a `Location` only ever points at the
//! program's own domain.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use clickgate::config::Config;
use clickgate::edge::{handler, EdgeState};
use clickgate::events::sink::BatchWriter;
use clickgate::events::ClickEvent;
use clickgate::metrics::Metrics;
use clickgate::model::ClickSigner;
use clickgate::storage::sqlite::SqliteCatalog;
use hyper::header::{HeaderName, HeaderValue, COOKIE, FORWARDED, LOCATION, USER_AGENT};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[checks]
trusted_proxies = ["127.0.0.0/8", "::1/128"]

[checks.rate_limit]
ip_per_s = 50
ip_burst = 200
subnet_per_s = 2000
subnet_burst = 5000

[checks.ip_rules]
deny = ["203.0.113.0/24", "2001:db8:dead::/48"]

[checks.dedup]
capacity = 100000

[events]
click_queue_len_max = 1024
spill_queue_len_max = 1024

[[demo.programs]]
id = "shop"
name = "Fuzz Shop"
currency = "EUR"
allowed_domains = ["example.com"]
fallback_url = "https://shop.example.com/"
blocked_action = "redirect"

[[demo.partners]]
id = "p1"
name = "Partner 1"

[[demo.links]]
code = "f0"
program = "shop"
partner = "p1"
destination = "https://shop.example.com/item/1"
channel = "web"
utm_source = "clickgate"
utm_medium = "referral"
utm_campaign = "fuzz"

[[demo.links]]
code = "f1"
program = "shop"
partner = "p1"
destination = "https://shop.example.com/item/2?ref=x"
channel = "qr"

[[demo.links]]
code = "f2"
program = "shop"
partner = "p1"
destination = "https://shop.example.com/"
channel = "email"
"#;

/// Takes every batch and keeps nothing: the queue's consumer at no cost.
struct NullWriter;

impl BatchWriter for NullWriter {
    fn write_batch(&self, _batch: &[ClickEvent]) -> std::io::Result<()> {
        Ok(())
    }
}

fn state() -> &'static Arc<EdgeState> {
    static STATE: OnceLock<Arc<EdgeState>> = OnceLock::new();
    STATE.get_or_init(|| {
        let cfg = Config::parse(CONFIG, Path::new("fuzz-edge.toml")).expect("the fuzz edge config is valid");
        let dir = clickgate_fuzz::scratch_dir("edge");
        let metrics = Metrics::new();
        let state = {
            let store = SqliteCatalog::open(&dir).expect("open the scratch catalogue");
            clickgate::app::seed_demo(&store, &cfg.demo).expect("seed the fuzz links");
            let signer = Arc::new(ClickSigner::new(&[(1, b"fuzz-signing-key-0123456789abcdef".to_vec())]));
            let table = clickgate::app::load_links(&store).expect("load the fuzz links");
            let (state, consumer) =
                clickgate::app::build_edge(&cfg, table, signer, Arc::new(NullWriter), Arc::new(NullWriter), &metrics, false)
                    .expect("build the edge state");
            // Without a consumer the queue fills and further clicks are counted as dropped,
            // which is a path of its own worth running.
            std::mem::forget(consumer);
            state
        };
        let _ = std::fs::remove_dir_all(&dir);
        state
    })
}

fn peer(b: u8) -> IpAddr {
    match b % 6 {
        0 => IpAddr::V4(Ipv4Addr::LOCALHOST),
        1 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        2 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, b)),
        3 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, b)),
        4 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, u16::from(b), 0, 0, 0, 1)),
        _ => IpAddr::V4(Ipv4Addr::new(8, 8, u8::from(b > 127), b)),
    }
}

fn method(b: u8) -> hyper::Method {
    match b % 8 {
        0..=4 => hyper::Method::GET,
        5 | 6 => hyper::Method::HEAD,
        _ => hyper::Method::POST,
    }
}

fuzz_target!(|data: &[u8]| {
    let [p, m, rest @ ..] = data else { return };
    let mut lines = rest.split(|&b| b == b'\n');
    let target = lines.next().unwrap_or_default();
    let target: Vec<u8> = if target.first() == Some(&b'/') { target.to_vec() } else { [b"/r/".as_slice(), target].concat() };
    let mut req = hyper::Request::builder().method(method(*m));
    match hyper::Uri::try_from(target) {
        Ok(uri) => req = req.uri(uri),
        // hyper refuses such a request line before any handler runs.
        Err(_) => return,
    }
    let names: [HeaderName; 4] = [USER_AGENT, COOKIE, HeaderName::from_static("x-forwarded-for"), FORWARDED];
    for (name, value) in names.into_iter().zip(lines.by_ref()) {
        if value.is_empty() {
            continue;
        }
        // hyper refuses a header value with control bytes while parsing; those never arrive.
        let Ok(value) = HeaderValue::from_bytes(value) else { return };
        req = req.header(name, value);
    }
    let Ok(req) = req.body(()) else { return };
    let response = handler::handle(state(), peer(*p), req);
    if let Some(location) = response.headers().get(LOCATION) {
        let location = location.to_str().expect("a Location the edge builds is ASCII");
        assert!(location.starts_with("https://shop.example.com/"), "Location {location:?} leaves the program's domain");
    }
});
