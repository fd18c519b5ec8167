//! The replay over a real click log: clients told apart by their tags inside one truncated
//! /24, the warm-up filling the state without being counted, and clicks kept as logged.

use std::net::IpAddr;

use super::*;
use crate::config::Config;
use crate::edge::handler::{client_tag, kept_ua};
use crate::events::{truncate_ip, ClickEvent};
use crate::model::{ClickSigner, Reason, VisitorId};
use crate::storage::sqlite::SqliteCatalog;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const T0: u64 = 1_763_800_000_000;
const KEY: [u8; 16] = *b"client-tag-key-0";

struct Fixture {
    dir: tempfile::TempDir,
    table: LinkTable,
    signer: ClickSigner,
}

/// A catalog with link `demo`, and no GeoIP or bot list: only the rules a test gives.
fn fixture() -> Fixture {
    let text = r#"
[[demo.programs]]
id = "p"
name = "P"
currency = "USD"
allowed_domains = ["example.com"]
fallback_url = "https://example.com/"
[[demo.partners]]
id = "alice"
name = "Alice"
[[demo.links]]
code = "demo"
program = "p"
partner = "alice"
destination = "https://example.com/x"
"#;
    let cfg = Config::parse(text, Path::new("test.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCatalog::open(dir.path()).unwrap();
    crate::app::seed_demo(&store, &cfg.demo).unwrap();
    Fixture { table: crate::app::load_links(&store).unwrap(), dir, signer: crate::testing::click_signer() }
}

fn pipeline(checks: &str) -> Pipeline {
    let cfg = Config::parse(checks, Path::new("rules.toml")).unwrap();
    Pipeline::build(&cfg.checks).unwrap()
}

impl Fixture {
    /// A valid click as the edge logs it with `privacy.ip = "truncate"`.
    fn click(&self, ts_ms: u64, ip: &str, ua: Option<&str>) -> ClickEvent {
        let ip: IpAddr = ip.parse().unwrap();
        ClickEvent {
            program: "p".into(),
            visitor_id: VisitorId::random(),
            new_visitor: true,
            ua_hash: xxhash_rust::xxh3::xxh3_64(ua.unwrap_or(CHROME).as_bytes()),
            ua: ua.map(|u| kept_ua(u).into()),
            client_tag: Some(client_tag(&KEY, ip)),
            ip: Some(truncate_ip(ip)),
            ..crate::testing::click(self.signer.mint(ts_ms, 1, 1), ts_ms)
        }
    }

    fn log(&self, events: &[ClickEvent]) -> std::path::PathBuf {
        let dir = self.dir.path().join("clicks");
        let mut log = SegmentLog::open(&dir, 1 << 20, |_| {}).unwrap();
        log.append_batch(events).unwrap();
        dir
    }
}

fn all(since_ms: u64) -> Window {
    Window { since_ms, until_ms: u64::MAX, warmup_ms: 3_600_000 }
}

#[test]
fn clients_inside_one_truncated_slash_24_count_apart_by_their_tags() {
    let f = fixture();
    // Ten people in one /24, one click each, and one address clicking three times.
    let mut events: Vec<ClickEvent> = (0..10).map(|i| f.click(T0 + i, &format!("198.51.100.{}", 10 + i), Some(CHROME))).collect();
    events.extend((0..3).map(|i| f.click(T0 + 100 + i, "198.51.100.99", Some(CHROME))));
    let dir = f.log(&events);
    let p = pipeline("[checks.velocity]\nip_max = 2\nsubnet_max = 0\nlink_ip_max = 0\n[checks.dedup]\nmode = \"off\"\n");
    let r = replay(&p, &f.table, &dir, all(T0)).unwrap();
    assert_eq!(r.read.events, 13);
    assert_eq!((r.tally.clicks, r.tally.changed), (13, 1), "{:?}", r.tally);
    assert_eq!(r.tally.verdicts["valid->flagged"], 1, "only the third click of the repeating address");
    assert_eq!(r.tally.reasons_added["velocity_ip"], 1);
    assert_eq!(r.flips.len(), 1);
    assert_eq!(r.flips.get(&events[12].click_id), Some(&false));

    // Without tags every truncated address is one client, and the /24 trips the same rule.
    let untagged: Vec<ClickEvent> = events.iter().cloned().map(|e| ClickEvent { client_tag: None, ..e }).collect();
    let f2 = fixture();
    let dir = f2.log(&untagged);
    let r = replay(
        &pipeline("[checks.velocity]\nip_max = 2\nsubnet_max = 0\nlink_ip_max = 0\n[checks.dedup]\nmode = \"off\"\n"),
        &f2.table,
        &dir,
        all(T0),
    )
    .unwrap();
    assert_eq!(r.tally.changed, 11, "a tag is what keeps them apart: {:?}", r.tally);
}

#[test]
fn the_warm_up_fills_the_state_and_is_not_counted_and_unreplayable_clicks_are_kept() {
    let f = fixture();
    let mut events = vec![f.click(T0, "192.0.2.1", Some(CHROME)), f.click(T0 + 10, "192.0.2.1", Some(CHROME))];
    // After --since: the same address again (a duplicate of the warm-up's clicks under the new
    // dedup), a click logged before events kept the agent, and one on a link that is gone.
    events.push(f.click(T0 + 60_000, "192.0.2.1", Some(CHROME)));
    events.push(f.click(T0 + 60_001, "192.0.2.2", None));
    events.push(ClickEvent { link: "gone".into(), ..f.click(T0 + 60_002, "192.0.2.3", Some(CHROME)) });
    let dir = f.log(&events);
    let p = pipeline("[checks.dedup]\nwindow_ms = 3600000\n");
    let r = replay(&p, &f.table, &dir, all(T0 + 60_000)).unwrap();
    assert_eq!(r.warmup, 2);
    assert_eq!((r.tally.clicks, r.tally.kept, r.tally.changed), (3, 2, 1), "{:?}", r.tally);
    assert_eq!(r.tally.reasons_added.get(Reason::Duplicate.as_str()), Some(&1));
    assert_eq!(r.flips.get(&events[2].click_id), Some(&false));

    // Without the warm-up the first click after --since meets an empty filter.
    let p = pipeline("[checks.dedup]\nwindow_ms = 3600000\n");
    let r = replay(&p, &f.table, &dir, Window { warmup_ms: 0, ..all(T0 + 60_000) }).unwrap();
    assert_eq!((r.warmup, r.tally.changed), (0, 0), "{:?}", r.tally);
}

#[test]
fn an_empty_agent_is_replayed_as_empty_and_a_window_bounds_the_clicks() {
    let f = fixture();
    let mut e = f.click(T0, "192.0.2.1", None);
    e.ua_hash = xxhash_rust::xxh3::xxh3_64(b"");
    let later = f.click(T0 + 5_000, "192.0.2.9", Some(CHROME));
    let dir = f.log(&[e.clone(), later]);
    let r = replay(&pipeline(""), &f.table, &dir, Window { since_ms: T0, until_ms: T0 + 1_000, warmup_ms: 0 }).unwrap();
    assert_eq!((r.tally.clicks, r.tally.kept), (1, 0), "{:?}", r.tally);
    assert_eq!(r.tally.reasons_added.get("empty_ua"), Some(&1), "{:?}", r.tally);
    assert_eq!(r.flips.get(&e.click_id), Some(&false));
}
