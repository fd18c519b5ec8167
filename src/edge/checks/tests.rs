//! The pipeline end to end over fixture databases and the fixture crawler list.

use std::net::IpAddr;

use super::*;
use crate::config::Config;
use crate::edge::links::LinkTable;
use crate::edge::{judge, Judgement};
use crate::storage::sqlite::SqliteCatalog;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const T0: u64 = 1_763_800_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    pipeline: Pipeline,
    table: LinkTable,
}

fn fixture(extra: &str) -> Fixture {
    fixture_geo("datacenter_asns = [15169]", extra)
}

/// The fixture with `geo` as its datacenter keys in `[checks.geoip]`.
fn fixture_geo(geo: &str, extra: &str) -> Fixture {
    let text = format!(
        r#"
[checks.ip_rules]
deny = ["203.0.113.0/24"]
allow = ["203.0.113.7"]
[checks.geoip]
country_db = "{FIX}/geoip/GeoIP2-Country-Test.mmdb"
asn_db = "{FIX}/geoip/GeoLite2-ASN-Test.mmdb"
anonymous_db = "{FIX}/geoip/GeoIP2-Anonymous-IP-Test.mmdb"
{geo}
[checks.bots]
crawler_list = "{FIX}/bots/crawler-user-agents.json"
{extra}
[[demo.programs]]
id = "p"
name = "P"
currency = "USD"
allowed_domains = ["example.com"]
fallback_url = "https://example.com/"
country_deny = ["GB"]
[[demo.partners]]
id = "alice"
name = "Alice"
[[demo.links]]
code = "demo"
program = "p"
partner = "alice"
destination = "https://example.com/x"
[[demo.links]]
code = "other"
program = "p"
partner = "alice"
destination = "https://example.com/y"
"#
    );
    let cfg = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCatalog::open(dir.path()).unwrap();
    crate::app::seed_demo(&store, &cfg.demo).unwrap();
    Fixture { pipeline: Pipeline::build(&cfg.checks).unwrap(), table: crate::app::load_links(&store).unwrap(), _dir: dir }
}

impl Fixture {
    fn run(&self, ip: &str, ua: &str, code: &str, head: bool, now_ms: u64) -> (Verdict, Vec<&'static str>, Vec<&'static str>) {
        let ip: IpAddr = ip.parse().unwrap();
        match judge(&self.pipeline, &self.table, ip, ua, code, head, now_ms) {
            Judgement::Click { findings, verdict, .. } => {
                (verdict, findings.reasons.iter().map(Reason::as_str).collect(), findings.observed.iter().map(Reason::as_str).collect())
            }
            Judgement::RateLimited { .. } => (Verdict::RateLimited, vec!["rate_limited"], vec![]),
            other => panic!("not a click: {other:?}"),
        }
    }

    fn check(&self, ip: &str, ua: &str, want: Verdict, reasons: &[&str]) {
        let (v, r, _) = self.run(ip, ua, "demo", false, T0);
        assert_eq!((v, r.as_slice()), (want, reasons), "{ip} {ua:?}");
    }
}

#[test]
fn each_reason_fires_on_its_input() {
    let f = fixture("");
    f.check("192.0.2.1", CHROME, Verdict::Valid, &[]);
    f.check("192.0.2.2", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", Verdict::Flagged, &["bot_ua"]);
    f.check("192.0.2.3", "", Verdict::Flagged, &["empty_ua"]);
    f.check("192.0.2.4", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", Verdict::Flagged, &["link_preview"]);
    f.check("192.0.2.5", "Twitterbot/1.0", Verdict::Flagged, &["link_preview"]);
    f.check("192.0.2.6", "python-requests/2.31.0", Verdict::Flagged, &["bot_ua"]);
    f.check("192.0.2.7", "SomeApp/1.0", Verdict::Flagged, &["non_browser_ua"]);
    f.check("1.0.0.1", CHROME, Verdict::Flagged, &["datacenter_asn"]);
    f.check("81.2.69.160", CHROME, Verdict::Blocked, &["datacenter_asn", "anonymous_ip", "geo_blocked"]);
    f.check("203.0.113.9", CHROME, Verdict::Blocked, &["ip_denylisted"]);
    f.check("203.0.113.7", CHROME, Verdict::Valid, &[]);
    f.check("65.0.0.1", CHROME, Verdict::Flagged, &["anonymous_ip"]);
}

#[test]
fn datacenter_asns_come_from_the_fetched_list_and_the_config_less_its_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("datacenter-asns.txt");
    std::fs::write(&list, "# asn provider\n15169 Google\n\n16509 Amazon\n  AS14061 DigitalOcean\n").unwrap();
    let list = list.display();
    // 1.0.0.1 is in AS 15169 in the fixture database; nothing in the config names it.
    let f = fixture_geo(&format!("datacenter_asn_list = \"{list}\"\ndatacenter_asns = [9009]"), "");
    f.check("1.0.0.1", CHROME, Verdict::Flagged, &["datacenter_asn"]);
    assert_eq!(f.pipeline.datacenter_asns, (4, 3));
    let f = fixture_geo(&format!("datacenter_asn_list = \"{list}\"\ndatacenter_asns_except = [15169, 1]"), "");
    f.check("1.0.0.1", CHROME, Verdict::Valid, &[]);
    assert_eq!(f.pipeline.datacenter_asns, (2, 3));
    // A missing list leaves the config's own ASNs in force.
    let f = fixture_geo(&format!("datacenter_asn_list = \"{list}.missing\"\ndatacenter_asns = [15169]"), "");
    f.check("1.0.0.1", CHROME, Verdict::Flagged, &["datacenter_asn"]);
    assert_eq!(f.pipeline.datacenter_asns, (1, 0));
}

#[test]
fn a_datacenter_list_line_that_is_no_asn_stops_the_build_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("datacenter-asns.txt");
    for (text, bad) in [
        ("15169 Google\nGoogle 15169\n", "2: not an ASN: `Google`"),
        ("0 none\n", "1: not an ASN: `0`"),
        ("4294967296 x\n", "1: not an ASN"),
    ] {
        std::fs::write(&list, text).unwrap();
        let mut cfg = config::Checks::default();
        cfg.geoip.datacenter_asn_list = Some(list.clone());
        let err = Pipeline::build(&cfg).err().expect("a bad line must stop the build").to_string();
        assert!(err.starts_with("checks.geoip.datacenter_asn_list: "), "{err}");
        assert!(err.contains(&format!("datacenter-asns.txt:{bad}")), "{err}");
    }
}

#[test]
fn duplicates_within_the_window() {
    let f = fixture("");
    assert_eq!(f.run("198.51.100.1", CHROME, "demo", false, T0).0, Verdict::Valid);
    assert_eq!(f.run("198.51.100.1", CHROME, "demo", false, T0 + 60_000).1, ["duplicate"]);
    assert_eq!(f.run("198.51.100.1", CHROME, "other", false, T0 + 60_000).0, Verdict::Valid, "another link");
    assert_eq!(f.run("198.51.100.1", "Mozilla/5.0 other", "demo", false, T0 + 60_000).0, Verdict::Valid, "another agent");
}

#[test]
fn velocity_per_ip_fires_on_the_31st_click_in_a_minute() {
    let f = fixture("[checks.dedup]\nmode = \"off\"\n");
    // Aligned to a window start, the sliding count is exact.
    let start = T0 - T0 % 60_000;
    for i in 0..50u64 {
        let ua = format!("Mozilla/5.0 variant {i}");
        let code = if i % 2 == 0 { "demo" } else { "other" };
        let (_, reasons, _) = f.run("198.51.100.77", &ua, code, false, start + i * 1000);
        assert_eq!(reasons.contains(&"velocity_ip"), i >= 30, "click {i}: {reasons:?}");
    }
    // Another client, in another /24: the first one's /24 is past velocity_link_subnet on demo.
    assert_eq!(f.run("192.0.2.78", CHROME, "demo", false, start + 50_000).0, Verdict::Valid, "another address");
}

#[test]
fn velocity_across_a_window_boundary_still_catches_fifty_in_a_minute() {
    let f = fixture("[checks.dedup]\nmode = \"off\"\n");
    // 40 s into a window: the minute straddles two window slots and the previous slot is
    // weighted by its overlap, an approximation that may fire a little late, never at 30 or fewer.
    let start = T0 - T0 % 60_000 + 40_000;
    let mut fired = None;
    for i in 0..50u64 {
        let (_, reasons, _) = f.run("198.51.100.79", &format!("Mozilla/5.0 v{i}"), "demo", false, start + i * 1200);
        if reasons.contains(&"velocity_ip") {
            fired.get_or_insert(i);
        }
    }
    let fired = fired.expect("50 clicks in a minute fire velocity_ip");
    assert!((30..50).contains(&fired), "fired at click {fired}");
}

#[test]
fn head_requests_and_unfurlers_are_not_clicks() {
    let f = fixture("");
    let (v, r, _) = f.run("198.51.100.9", CHROME, "demo", true, T0);
    assert_eq!((v, r.as_slice()), (Verdict::Flagged, ["head_request"].as_slice()));
    // The HEAD did not enter the dedup filter, so the real click after it is valid.
    assert_eq!(f.run("198.51.100.9", CHROME, "demo", false, T0 + 1).0, Verdict::Valid);
}

#[test]
fn observe_mode_counts_without_acting() {
    let f = fixture("[checks.velocity]\nmode = \"observe\"\nip_max = 1\n");
    f.run("198.51.100.5", "Mozilla/5.0 a", "demo", false, T0);
    let (v, r, observed) = f.run("198.51.100.5", "Mozilla/5.0 b", "demo", false, T0 + 1);
    assert_eq!(v, Verdict::Valid);
    assert!(r.is_empty());
    assert_eq!(observed, ["velocity_ip"]);
}

#[test]
fn rate_limit_runs_before_the_link_lookup() {
    let f = fixture("[checks.rate_limit]\nip_per_s = 1\nip_burst = 2\n");
    let ip: IpAddr = "198.51.100.200".parse().unwrap();
    for _ in 0..2 {
        assert!(matches!(judge(&f.pipeline, &f.table, ip, CHROME, "nope", false, T0), Judgement::UnknownCode { .. }));
    }
    assert!(matches!(judge(&f.pipeline, &f.table, ip, CHROME, "demo", false, T0), Judgement::RateLimited { retry_after_ms: 1000, .. }));
}

/// A clock the test moves by hand: the pipeline is given no other time.
struct ManualClock(std::cell::Cell<u64>);

impl ManualClock {
    fn at(ms: u64) -> ManualClock {
        ManualClock(std::cell::Cell::new(ms))
    }

    fn now_ms(&self) -> u64 {
        self.0.get()
    }

    fn advance_ms(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
}

/// The per-IP limit at chosen instants: `ip_per_s = 2` is one cell every 500 ms, and
/// `ip_burst = 3` cells in the bucket. `Err` carries the Retry-After in milliseconds: the time
/// until the next cell.
#[test]
fn rate_limit_bursts_refills_and_names_the_wait_exactly() {
    let f = fixture("[checks.rate_limit]\nip_per_s = 2\nip_burst = 3\nsubnet_per_s = 0\nglobal_per_s = 0\n");
    let clock = ManualClock::at(T0);
    let (ip, other): (IpAddr, IpAddr) = ("198.51.100.201".parse().unwrap(), "198.51.100.202".parse().unwrap());
    let check = |ip| {
        let mut observed = Reasons::default();
        let r = f.pipeline.rate_limit(crate::edge::checks::Client::of(ip), clock.now_ms(), &mut observed);
        assert!(observed.is_empty(), "enforce mode observes nothing");
        r
    };
    // A new address has the whole burst; the next click waits for one cell.
    assert_eq!([check(ip), check(ip), check(ip)], [Ok(()); 3]);
    assert_eq!(check(ip), Err(500));
    // A refused click takes nothing from the bucket, and another address has its own.
    assert_eq!(check(ip), Err(500));
    assert_eq!(check(other), Ok(()));
    // The wait counts down with the clock; when it is over, exactly one cell is back.
    clock.advance_ms(499);
    assert_eq!(check(ip), Err(1));
    clock.advance_ms(1);
    assert_eq!(check(ip), Ok(()));
    assert_eq!(check(ip), Err(500));
    // 1.2 s later two cells are back, and the third is 300 ms away.
    clock.advance_ms(1_200);
    assert_eq!([check(ip), check(ip)], [Ok(()); 2]);
    assert_eq!(check(ip), Err(300));
    // Every cell taken is back 1.3 s later (six taken since T0, one every 500 ms): the whole
    // burst again, and no more.
    clock.advance_ms(1_300);
    assert_eq!(clock.now_ms(), T0 + 3_000);
    assert_eq!([check(ip), check(ip), check(ip)], [Ok(()); 3]);
    assert_eq!(check(ip), Err(500));
}

mod signals;
