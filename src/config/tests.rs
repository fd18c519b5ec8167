use super::*;

fn check_err(toml: &str, want: &str) {
    let err = Config::parse(toml, Path::new("test.toml")).expect_err(toml).to_string();
    assert!(err.contains(want), "error {err:?} should contain {want:?}");
}

#[test]
fn shipped_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["clickgate.toml", "loadtest.toml"] {
        let c = Config::load(&root.join("config").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!c.demo.links.is_empty(), "{name} ships demo links");
    }
}

#[test]
fn empty_config_takes_defaults() {
    let c = Config::parse("", Path::new("x.toml")).unwrap();
    assert_eq!(c.listen.edge.to_string(), "127.0.0.1:8080");
    assert_eq!(c.listen.admin.to_string(), "127.0.0.1:9090");
    assert_eq!(c.listen.api.to_string(), "127.0.0.1:8081");
    assert_eq!(c.checks.dedup.window_ms, 3_600_000);
    assert_eq!(c.checks.dedup.fp_rate, 0.001);
    assert_eq!((c.api.commit_batch_len_max, c.api.writer_queue_len_max), (256, 4_096));
}

#[test]
fn the_writer_queue_may_hold_exactly_one_commit() {
    let c = Config::parse("[api]\ncommit_batch_len_max = 8192\nwriter_queue_len_max = 8192\n", Path::new("x.toml")).unwrap();
    assert_eq!(c.api.writer_queue_len_max, 8_192);
    let c = Config::parse("[api]\nwriter_queue_len_max = 1048576\n", Path::new("x.toml")).unwrap();
    assert_eq!(c.api.writer_queue_len_max, 1_048_576);
}

#[test]
fn the_database_url_is_empty_or_postgres() {
    let c = Config::parse("[core]\ndatabase_url = \"postgres://u@db/x\"\n", Path::new("x.toml")).unwrap();
    assert_eq!(c.core.database_url, "postgres://u@db/x");
    assert!(Config::parse("[core]\ndatabase_url = \"postgresql:///x?host=/run/pg\"\n", Path::new("x.toml")).is_ok());
    check_err(
        "[core]\ndatabase_url = \"mysql://db/x\"\n",
        "core.database_url: must be empty (the embedded SQLite store) or a postgres:// URL",
    );
}

#[test]
fn bad_keys_are_named() {
    check_err("[edge]\nconections_max = 5\n", "unknown field `conections_max`");
    check_err("[edge]\nconnections_max = 0\n", "edge.connections_max: must be in 1..=1000000, got 0");
    check_err("[edge]\nheaders_max = 5000\n", "edge.headers_max");
    check_err("[edge]\nconnections_max = 18446744073709551615\n", "edge.connections_max");
    check_err("[checks.bots]\nua_cache_len = 4611686018427387904\n", "checks.bots.ua_cache_len");
    check_err("[checks.velocity]\nwindow_ms = 9000000000\n", "checks.velocity.window_ms");
    check_err("[edge]\nheader_bytes_max = 5000000000\n", "edge.header_bytes_max");
    check_err("[checks]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "checks.trusted_proxies[0]");
    check_err("[checks]\ntrusted_proxies = [\"10.0.0.1/8\"]\n", "checks.trusted_proxies[0]: \"10.0.0.1/8\" has host bits set");
    check_err("[checks.ip_rules]\ndeny = [\"10.0.0.1/8\"]\n", "checks.ip_rules.deny[0]: \"10.0.0.1/8\" has host bits set");
    check_err("[checks.dedup]\nfp_rate = 0.5\n", "checks.dedup.fp_rate: must be in (0, 0.01], got 0.5");
    check_err("[checks.velocity]\nsketch_width = 1000\n", "checks.velocity.sketch_width");
    check_err("[checks.bots]\nmode = \"sometimes\"\n", "unknown variant `sometimes`");
    check_err("[[click_id.keys]]\nid = 1\nsecret = \"short\"\n", "click_id.keys[0].secret");
    check_err("[privacy]\nip = \"hash\"\n", "privacy.ip_hash_key");
    check_err("[tls]\ncert_path = \"a.pem\"\n", "tls: cert_path and key_path must be set together");
    check_err("[listen]\nedge = \"nowhere\"\n", "invalid socket address");
    check_err("[api]\nread_connections_max = 0\n", "api.read_connections_max: must be in 1..=64");
    check_err("[api]\nkey_requests_per_s = 0\n", "api.key_requests_per_s: must be in 1..=1000000");
    check_err("[api]\nkey_requests_per_s = 50\nkey_burst = 10\n", "api.key_burst: must be at least");
    check_err("[api]\nauth_failures_per_min = 0\n", "api.auth_failures_per_min: must be in 1..=10000");
    check_err("[demo]\nbogus = []\n", "unknown field `bogus`, expected one of `programs`, `partners`, `links`, `coupons`");
    check_err("[demo]\nprograms = 3\n", "invalid type: integer `3`, expected a sequence");
    check_err(
        "[api]\nwriter_queue_len_max = 100\n",
        "api.writer_queue_len_max: must be at least api.commit_batch_len_max (256) so a whole commit can queue, and at most 1048576, got 100",
    );
    check_err(
        "[api]\ncommit_batch_len_max = 8192\n",
        "api.writer_queue_len_max: must be at least api.commit_batch_len_max (8192) so a whole commit can queue, and at most 1048576, got 4096",
    );
    check_err("[api]\nwriter_queue_len_max = 1048577\n", "api.writer_queue_len_max: must be at least api.commit_batch_len_max (256) so a whole commit can queue, and at most 1048576, got 1048577");
    check_err("[events]\nspill_queue_len_max = 0\n", "events.spill_queue_len_max: must be in 16..=16777216, got 0");
}

#[test]
fn webhook_event_retention_is_bounded() {
    check_err("[webhooks]\nevent_retention_days = 7\n", "webhooks.event_retention_days: must be in 8..=3650, got 7");
    check_err("[webhooks]\nallow_private_cidrs = [\"10.0.0.300/8\"]\n", "webhooks.allow_private_cidrs: \"10.0.0.300/8\" is not a CIDR");
    check_err("[webhooks]\nattempt_timeout_ms = 16000\n", "webhooks.attempt_timeout_ms: must be in 100..=15000, got 16000");
    check_err("[webhooks]\nretry_delays_ms = [0]\n", "webhooks.retry_delays_ms: must be in 1..=86400000, got 0");
    check_err("[webhooks]\nallow_https = true\n", "unknown field");
}
