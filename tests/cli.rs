//! The binary's subcommands: `check` replays, link management, config errors.

mod common;

use common::*;

fn setup(extra: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, fixture_config(extra)).unwrap();
    let data = dir.path().join("data");
    (dir, config, data)
}

fn line(ip: &str, ua: &str, ts: u64) -> String {
    serde_json::json!({"ip": ip, "ua": ua, "code": "demo", "ts": ts}).to_string()
}

#[test]
fn check_replays_a_log_and_names_every_reason() {
    let (_d, config, data) = setup("");
    let t = 1_763_800_019_000u64; // one second before a window start (Unix milliseconds)
    let mut input = vec![
        line("192.0.2.1", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", t),
        line("192.0.2.2", "", t),
        line("192.0.2.3", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", t),
        line("192.0.2.4", "Twitterbot/1.0", t),
        line("192.0.2.5", CHROME, t),
        line("192.0.2.5", CHROME, t + 1_000),
        line("1.0.0.1", CHROME, t + 1_000),
        line("81.2.69.160", CHROME, t + 1_000),
        line("203.0.113.9", CHROME, t + 1_000),
    ];
    for i in 0..50 {
        input.push(line("192.0.2.9", &format!("Mozilla/5.0 v{i}"), t + (1 + i) * 1_000));
    }
    input.push(r#"{"ip":"not an ip","ua":"x","code":"demo","ts":1763800020000}"#.to_string());
    input.push(r#"{"ip":"192.0.2.10","ua":"Mozilla/5.0 h","code":"demo","ts":"2026-11-22T10:00:00Z","method":"HEAD"}"#.to_string());
    let (code, out, err) = run_cli(&config, &data, &["check"], &(input.join("\n") + "\n"));
    assert_eq!(code, 1, "one bad line makes the exit code 1: {err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), input.len(), "one output line per input line");
    let reasons =
        |i: usize| -> Vec<String> { lines[i]["reasons"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect() };
    let want = [
        (0, "bot_ua"),
        (1, "empty_ua"),
        (2, "link_preview"),
        (3, "link_preview"),
        (5, "duplicate"),
        (6, "datacenter_asn"),
        (7, "geo_blocked"),
        (8, "ip_denylisted"),
    ];
    for (i, reason) in want {
        assert!(reasons(i).contains(&reason.to_string()), "line {i}: {:?}", lines[i]);
    }
    assert_eq!(lines[4]["verdict"], "valid");
    assert_eq!(lines[7]["verdict"], "blocked");
    assert_eq!(lines[7]["country"], "GB");
    assert_eq!(lines[6]["asn"], 15169);
    let velocity: Vec<usize> = (9..59).filter(|&i| reasons(i).contains(&"velocity_ip".to_string())).collect();
    assert_eq!(velocity.first(), Some(&(9 + 30)), "the 31st click in a minute is the first flagged");
    assert_eq!(velocity.len(), 20);
    assert!(lines[59]["error"].as_str().unwrap().contains("bad input line"), "{:?}", lines[59]);
    assert_eq!(lines[59]["line"], 60);
    assert_eq!(reasons(60), ["head_request"]);
}

/// `check` reads times as `attribute` does: Unix milliseconds or RFC 3339, and an integer that
/// looks like Unix seconds is an error on its line, never a verdict at the wrong time.
#[test]
fn check_refuses_a_time_in_seconds() {
    let (_d, config, data) = setup("");
    let input = [
        line("192.0.2.5", CHROME, 1_763_800_019),
        serde_json::json!({"ip": "192.0.2.5", "ua": CHROME, "code": "demo", "ts": 1_763_800_019.5}).to_string(),
        line("192.0.2.5", CHROME, 1_763_800_019_000),
        serde_json::json!({"ip": "192.0.2.6", "ua": CHROME, "code": "demo", "ts": "2025-11-22T08:27:00+00:00"}).to_string(),
    ];
    let (code, out, err) = run_cli(&config, &data, &["check"], &(input.join("\n") + "\n"));
    assert_eq!(code, 1, "a refused line makes the exit code 1: {err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(
        lines[0]["error"],
        "ts: 1763800019 looks like Unix seconds: give Unix milliseconds or RFC 3339 text \
         (an integer below 100000000000, 1973-03-03 in milliseconds, is refused)"
    );
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(lines[1]["error"], "ts: expected Unix milliseconds (a non-negative integer) or an RFC 3339 string, got 1763800019.5");
    // Line 3 is line 1's click in milliseconds: valid, not a duplicate, since a refused line
    // never reaches the pipeline.
    assert_eq!(lines[2]["verdict"], "valid", "{:?}", lines[2]);
    assert_eq!(lines[3]["verdict"], "valid", "{:?}", lines[3]);
}

/// The edge's rate limit through the real binary with `ts` as the clock: the same burst, wait
/// and refill at chosen instants however fast the replay runs.
#[test]
fn check_replays_rate_limits_with_ts_as_the_clock() {
    // Repeats are not flagged as duplicates here: only the rate limit decides.
    let (_d, config, data) =
        setup("[checks.rate_limit]\nip_per_s = 2\nip_burst = 3\nsubnet_per_s = 0\nglobal_per_s = 0\n[checks.dedup]\nmode = \"off\"\n");
    let at = |ip: &str, ms: &str| {
        serde_json::json!({"ip": ip, "ua": CHROME, "code": "demo", "ts": format!("2025-11-22T08:00:{ms}Z")}).to_string()
    };
    let input = [
        at("192.0.2.1", "00.000"),
        at("192.0.2.1", "00.000"),
        at("192.0.2.1", "00.000"),
        at("192.0.2.1", "00.000"),
        at("192.0.2.2", "00.000"),
        at("192.0.2.1", "00.499"),
        at("192.0.2.1", "00.500"),
        at("192.0.2.1", "00.500"),
        at("192.0.2.1", "01.700"),
        at("192.0.2.1", "01.700"),
        at("192.0.2.1", "01.700"),
    ];
    let (code, out, err) = run_cli(&config, &data, &["check"], &(input.join("\n") + "\n"));
    assert_eq!(code, 0, "{err}");
    let got: Vec<(String, Option<u64>)> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["verdict"].as_str().unwrap().to_string(), v["retry_after_ms"].as_u64()))
        .collect();
    let ok = || ("valid".to_string(), None);
    let limited = |ms| ("rate_limited".to_string(), Some(ms));
    assert_eq!(got, [ok(), ok(), ok(), limited(500), ok(), limited(1), ok(), limited(500), ok(), ok(), limited(300)]);
}

#[test]
fn link_creation_refuses_malicious_destinations() {
    let (_d, config, data) = setup("");
    for (dest, want) in [
        ("https://evil.com/", "not in the program's allowlist"),
        ("https://example.com@evil.com/", "userinfo"),
        ("javascript:alert(1)", "scheme \"javascript\" is not allowed"),
        ("//evil.com/x", "scheme-relative"),
        ("https://example.com/a\r\nSet-Cookie: x=1", "CR/LF"),
    ] {
        let (code, _, err) = run_cli(
            &config,
            &data,
            &["link", "add", "--code", "bad", "--program", "demo", "--partner", "alice", "--destination", dest],
            "",
        );
        assert_ne!(code, 0, "{dest:?} was accepted");
        assert!(err.contains(want), "{dest:?}: {err}");
    }
    let (code, out, err) = run_cli(
        &config,
        &data,
        &["link", "add", "--code", "good", "--program", "demo", "--partner", "alice", "--destination", "https://shop.example.com/x"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"code\":\"good\""));
    let (_, list, _) = run_cli(&config, &data, &["link", "list"], "");
    assert_eq!(list.lines().count(), 2, "{list}");
    // `--expires-at` reads times as `check` and `attribute` do, and stores seconds.
    let dest = "https://shop.example.com/y";
    for (code, at, stored) in [("exp-rfc", "2026-12-31T23:00:00Z", 1_798_758_000_i64), ("exp-ms", "1798758000999", 1_798_758_000)] {
        let args = ["link", "add", "--code", code, "--program", "demo", "--partner", "alice", "--destination", dest, "--expires-at", at];
        let (status, out, err) = run_cli(&config, &data, &args, "");
        assert_eq!(status, 0, "{at}: {err}");
        assert!(out.contains(&format!("\"expires_at\":{stored}")), "{at}: {out}");
    }
    for (at, want) in [("1798758000", "looks like Unix seconds"), ("next tuesday", "is not RFC 3339")] {
        let args =
            ["link", "add", "--code", "exp-bad", "--program", "demo", "--partner", "alice", "--destination", dest, "--expires-at", at];
        let (status, _, err) = run_cli(&config, &data, &args, "");
        assert_ne!(status, 0, "{at} was accepted");
        assert!(err.contains(want), "{at}: {err}");
    }
}

#[test]
fn programs_and_partners_are_managed_from_the_cli() {
    let (_d, config, data) = setup("");
    let add = [
        "program",
        "add",
        "--id",
        "cafe",
        "--name",
        "Cafe",
        "--currency",
        "EUR",
        "--allow-domain",
        "cafe.example.org",
        "--fallback-url",
        "https://cafe.example.org/",
    ];
    assert_eq!(run_cli(&config, &data, &add, "").0, 0);
    let (code, _, err) = run_cli(&config, &data, &add, "");
    assert_ne!(code, 0);
    assert!(err.contains("program \"cafe\" already exists"), "{err}");
    assert_eq!(run_cli(&config, &data, &["partner", "add", "--id", "carol", "--name", "Carol"], "").0, 0);
    assert_eq!(run_cli(&config, &data, &["program", "pause", "cafe"], "").0, 0);
    let (_, list, _) = run_cli(&config, &data, &["program", "list"], "");
    assert!(list.lines().any(|l| l.contains("\"id\":\"cafe\"") && l.contains("\"status\":\"paused\"")), "{list}");
    let (code, _, err) = run_cli(&config, &data, &["partner", "expire", "nobody"], "");
    assert_ne!(code, 0);
    assert!(err.contains("partner \"nobody\" not found"), "{err}");
}

#[test]
fn a_bad_config_key_fails_at_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[checks.dedup]\nfp_rate = 2.0\n").unwrap();
    let (code, _, err) = run_cli(&config, &dir.path().join("d"), &["serve"], "");
    assert_eq!(code, 2);
    assert!(err.contains("checks.dedup.fp_rate: must be in (0, 0.01], got 2"), "{err}");
}

/// The shipped demo config over the real GeoLite2 databases fetched by `geoip/fetch.sh`, which
/// are not committed: ignored unless asked for, and failing without them when it runs.
#[test]
#[ignore = "needs the GeoLite2 databases fetched by geoip/fetch.sh; run with --include-ignored"]
fn real_geolite2_databases_flag_hosting_asns_and_deny_countries() {
    let geo = std::path::Path::new(ROOT).join("geoip");
    for db in ["GeoLite2-ASN.mmdb", "GeoLite2-Country.mmdb"] {
        assert!(
            geo.join(db).exists(),
            "this test needs the GeoLite2 databases, and {} is missing: run geoip/fetch.sh (it needs npm and the npm \
             registry), or run cargo test without --include-ignored, which lists this test as ignored",
            geo.join(db).display()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = std::path::Path::new(ROOT).join("config/clickgate.toml");
    let input = [
        r#"{"ip":"8.8.8.8","ua":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 a","code":"demo","ts":1763800000000}"#,
        r#"{"ip":"3.80.1.1","ua":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 b","code":"demo","ts":1763800000000}"#,
        r#"{"ip":"175.45.176.1","ua":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 c","code":"demo","ts":1763800000000}"#,
    ];
    let (code, out, err) = run_cli(&config, &dir.path().join("data"), &["check"], &(input.join("\n") + "\n"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["asn"], 15169, "{:?}", lines[0]);
    assert_eq!(lines[0]["reasons"], serde_json::json!(["datacenter_asn"]));
    assert_eq!(lines[1]["reasons"], serde_json::json!(["datacenter_asn"]), "AWS");
    // The demo program denies KP; 175.45.176.0/22 is North Korea's address block.
    assert_eq!(lines[2]["country"], "KP", "{:?}", lines[2]);
    assert_eq!(lines[2]["verdict"], "blocked");
    assert_eq!(lines[2]["reasons"], serde_json::json!(["geo_blocked"]));
}

/// `clickgate migrate` brings a fresh data dir to the schema and says which version; a second
/// run changes nothing; a file a newer build migrated is refused and left as it is.
#[test]
fn migrate_reports_the_version_and_refuses_a_newer_store() {
    let (_d, config, data) = setup("");
    for _ in 0..2 {
        let (code, out, err) = run_cli(&config, &data, &["migrate"], "");
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("sqlite ") && out.trim_end().ends_with("schema version 10"), "{out}");
    }
    let db = data.join("clickgate.db");
    rusqlite::Connection::open(&db).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let (code, _, err) = run_cli(&config, &data, &["migrate"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("schema version 99") && err.contains("this build knows 1..=10"), "{err}");
    let version: i64 = rusqlite::Connection::open(&db).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 99, "a refused store is left as it was");
}
