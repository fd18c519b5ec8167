//! `clickgate link import`: bulk links from CSV, each row validated as `link add` validates one.

mod common;

use common::*;

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, fixture_config("")).unwrap();
    let data = dir.path().join("data");
    (dir, config, data)
}

fn links(config: &std::path::Path, data: &std::path::Path) -> Vec<serde_json::Value> {
    let (code, out, err) = run_cli(config, data, &["link", "list"], "");
    assert_eq!(code, 0, "{err}");
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

const MIXED: &str = "\
code,program,partner,destination,channel,utm_source,utm_medium,utm_campaign,expires_at,status
spring-1,demo,alice,https://example.com/spring,email,news,email,spring,,
spring-2,demo,alice,https://example.com/spring?b=2,qr,,,,2030-01-01T00:00:00Z,paused
evil,demo,alice,https://evil.test/phish,web,,,,,
nobody,demo,mallory,https://example.com/x,web,,,,,
nowhere,nope,alice,https://example.com/x,web,,,,,
spring-1,demo,alice,https://example.com/again,web,,,,,
odd,demo,alice,https://example.com/x,telepathy,,,,,
short,demo,alice
\"crlf\",demo,alice,\"https://example.com/a\r\nSet-Cookie: x=1\",web,,,,,
secs,demo,alice,https://example.com/x,web,,,,1767225600,
spring-3,demo,alice,https://example.com/spring?c=3,social,,,,,expired
";

/// The rejected rows of `MIXED`, as the lines of stderr that name them.
fn check_rejections(err: &str) {
    let rejected: Vec<&str> = err.lines().filter(|l| l.contains("links.csv:")).collect();
    let lines: Vec<u64> = rejected.iter().map(|l| l.split(':').nth(1).unwrap().parse().unwrap()).collect();
    // The CR/LF row spans lines 10 and 11 inside its quotes, so the next row is line 12.
    assert_eq!(lines, [4, 5, 6, 7, 8, 9, 10, 12], "{err}");
    for (line, why) in [
        (4, "allowlist"),
        (5, "partner \"mallory\" not found"),
        (6, "program \"nope\" not found"),
        (7, "already exists"),
        (8, "telepathy"),
        (9, "fields"),
        (10, "destination"),
        (12, "seconds"),
    ] {
        let l = rejected.iter().find(|l| l.contains(&format!("links.csv:{line}:"))).unwrap();
        assert!(l.contains(why), "line {line} should say {why:?}: {l}");
    }
}

/// Without --skip-bad, one bad row keeps the whole file out, and every bad row is named.
#[test]
fn a_file_with_bad_rows_imports_none_and_names_each_bad_row() {
    let (dir, config, data) = setup();
    let file = dir.path().join("links.csv");
    std::fs::write(&file, MIXED).unwrap();
    let (code, _, err) = run_cli(&config, &data, &["link", "import", file.to_str().unwrap()], "");
    assert_eq!(code, 1, "rejections make the exit code 1: {err}");
    check_rejections(&err);
    assert!(err.contains("0 added, 8 rejected; nothing was imported, 3 good rows held back"), "{err}");
    assert!(!err.contains("(skipped)"), "{err}");
    assert_eq!(links(&config, &data).len(), 1, "only the demo link");
}

#[test]
fn with_skip_bad_the_good_rows_land_and_each_skipped_row_is_named_by_its_line() {
    let (dir, config, data) = setup();
    let file = dir.path().join("links.csv");
    std::fs::write(&file, MIXED).unwrap();
    let (code, _, err) = run_cli(&config, &data, &["link", "import", "--skip-bad", file.to_str().unwrap()], "");
    assert_eq!(code, 1, "rejections make the exit code 1: {err}");
    check_rejections(&err);
    assert_eq!(err.lines().filter(|l| l.ends_with("(skipped)")).count(), 8, "{err}");
    assert!(err.contains("3 added, 8 rejected and skipped"), "{err}");

    let all = links(&config, &data);
    let by_code = |c: &str| all.iter().find(|l| l["code"] == c).unwrap_or_else(|| panic!("{c} missing from {all:?}")).clone();
    assert_eq!(all.len(), 4, "the demo link and three imported: {all:?}");
    let (s1, s2, s3) = (by_code("spring-1"), by_code("spring-2"), by_code("spring-3"));
    assert_eq!(
        (s1["channel"].as_str(), s1["utm_campaign"].as_str(), s1["status"].as_str()),
        (Some("email"), Some("spring"), Some("active"))
    );
    assert_eq!(s1["destination"], "https://example.com/spring", "the first spring-1 wins; the repeat was rejected");
    assert_eq!((s2["status"].as_str(), s2["expires_at"].as_i64()), (Some("paused"), Some(1_893_456_000)));
    assert_eq!(s3["status"], "expired");

    // Importing the same file again adds nothing and rejects every row.
    let (code, _, err) = run_cli(&config, &data, &["link", "import", "--skip-bad", file.to_str().unwrap()], "");
    assert_eq!(code, 1);
    assert!(err.contains("0 added, 11 rejected and skipped"), "{err}");
    assert_eq!(links(&config, &data).len(), 4);
}

#[test]
fn a_bad_header_refuses_the_file_before_writing_anything() {
    let (_dir, config, data) = setup();
    for (csv, why) in [
        ("code,program,partner,destination,utm_campgain\na,demo,alice,https://example.com/,x\n", "unknown column \"utm_campgain\""),
        ("code,program,partner\na,demo,alice\n", "column \"destination\" is required"),
        ("code,code,program,partner,destination\na,b,demo,alice,https://example.com/\n", "appears twice"),
    ] {
        let (code, _, err) = run_cli(&config, &data, &["link", "import", "-"], csv);
        assert_ne!(code, 0, "{csv:?}");
        assert!(err.contains(why), "{csv:?}: {err}");
    }
    assert_eq!(links(&config, &data).len(), 1, "only the demo link");
}

#[test]
fn columns_may_come_in_any_order_and_optional_ones_may_be_left_out() {
    let (_dir, config, data) = setup();
    let mut csv = String::from("destination,partner,code,program\n");
    for i in 0..2_000 {
        csv.push_str(&format!("https://example.com/p/{i},alice,bulk-{i},demo\n"));
    }
    let (code, _, err) = run_cli(&config, &data, &["link", "import", "-"], &csv);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2000 added, 0 rejected"), "{err}");
    let all = links(&config, &data);
    assert_eq!(all.len(), 2_001);
    let l = all.iter().find(|l| l["code"] == "bulk-1999").unwrap();
    assert_eq!(
        (l["destination"].as_str(), l["channel"].as_str(), l["status"].as_str()),
        (Some("https://example.com/p/1999"), Some("web"), Some("active"))
    );
}
