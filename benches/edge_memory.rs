//! Edge memory under IP spray: drives 10 M distinct client IPs through the whole pipeline
//! (`judge`: rate limits, IP rules, GeoIP, bots, velocity, dedup) on a simulated clock, trims
//! the rate limiters on the configured timer, and reports peak RSS against the 256 MiB goal.
//!
//! `cargo bench --bench edge_memory [-- --ips N --rate-per-s R --config PATH]`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use clickgate::catalog::CatalogStore;
use clickgate::config::Config;
use clickgate::edge::checks::Pipeline;
use clickgate::edge::{judge, Judgement};
use clickgate::storage::sqlite::SqliteCatalog as Store;

fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(field).map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))).unwrap_or(0)
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

fn main() {
    // The demo partners' e-mail fields are sealed under the process's data key, which a
    // server's start loads; the bench holds a fixed one.
    clickgate::privacy::keys::install(clickgate::privacy::DataKey::from_bytes(&[0x5a; 32])).expect("one data key");
    let root = env!("CARGO_MANIFEST_DIR");
    let ips: u64 = arg("--ips", "10000000").parse().expect("--ips N");
    let rate: u64 = arg("--rate-per-s", "200000").parse().expect("--rate-per-s R");
    let config_path = arg("--config", &format!("{root}/config/loadtest.toml"));
    let config = Config::load(std::path::Path::new(&config_path)).expect("config");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    clickgate::app::seed_demo(&store, &config.demo).expect("seed");
    let table = clickgate::app::load_links(&store).expect("links");
    let codes: Vec<String> = store.links().expect("links").into_iter().map(|l| l.spec.code).collect();
    let pipeline = Pipeline::build(&config.checks).expect("pipeline");
    let geo_on = clickgate::model::GeoDbKind::ALL.iter().filter(|k| pipeline.geo.get(**k).is_some()).count();
    let baseline_kib = status_kib("VmRSS:");

    let uas = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ];
    let start_ms: u64 = 1_763_800_000_000;
    let step_us = 1_000_000 / rate.max(1);
    let trim_ms = config.checks.rate_limit.trim_interval_ms;
    let mut next_trim = start_ms + trim_ms;
    let (mut valid, mut other) = (0u64, 0u64);
    let mut max_keys = (0usize, 0usize);
    let t = Instant::now();
    for i in 0..ips {
        // A bijection on u32 (odd multiplier): every address is distinct and spread over the space.
        let ip = IpAddr::V4(Ipv4Addr::from((i as u32).wrapping_mul(0x9E37_79B1).rotate_left(7)));
        let now_ms = start_ms + i * step_us / 1000;
        if now_ms >= next_trim {
            let keys = pipeline.rate_limits.key_counts();
            max_keys = (max_keys.0.max(keys.0), max_keys.1.max(keys.1));
            pipeline.rate_limits.trim(now_ms);
            next_trim = now_ms + trim_ms;
        }
        let code = &codes[(i % codes.len() as u64) as usize];
        match judge(&pipeline, &table, ip, uas[(i % 4) as usize], code, false, now_ms) {
            Judgement::Click { verdict: clickgate::model::Verdict::Valid, .. } => valid += 1,
            _ => other += 1,
        }
    }
    let elapsed = t.elapsed();
    let peak_kib = status_kib("VmHWM:");
    let end_kib = status_kib("VmRSS:");
    println!(
        "config={config_path} geoip_dbs_loaded={geo_on} clicks={ips} valid={valid} other={other} simulated_rate_per_s={rate} trim_interval_ms={trim_ms}"
    );
    println!("max ratelimit keys between trims: ip={} subnet={}", max_keys.0, max_keys.1);
    println!("ns_per_click={:.0} wall_s={:.1}", elapsed.as_nanos() as f64 / ips as f64, elapsed.as_secs_f64());
    println!(
        "memory distinct_ips={ips} peak_rss_mib={:.1} end_rss_mib={:.1} baseline_rss_mib={:.1} goal_mib=256",
        peak_kib as f64 / 1024.0,
        end_kib as f64 / 1024.0,
        baseline_kib as f64 / 1024.0
    );
}
