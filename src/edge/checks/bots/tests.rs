use super::*;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bots");

fn check_with(list: &str) -> BotCheck {
    BotCheck::build(&config::Bots { crawler_list: Some(list.into()), ..config::Bots::default() }).unwrap()
}

#[test]
fn classifies_fixture_agents() {
    let b = check_with(&format!("{FIX}/crawler-user-agents.json"));
    assert!(b.status.patterns > 30);
    for (ua, want) in [
        ("", UaClass::Empty),
        ("  ", UaClass::Empty),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", UaClass::Crawler),
        ("curl/8.5.0", UaClass::Crawler),
        ("Wget/1.21.4", UaClass::Crawler),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", UaClass::LinkPreview),
        ("WhatsApp/2.23.20.0", UaClass::LinkPreview),
        ("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", UaClass::LinkPreview),
        ("LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)", UaClass::LinkPreview),
        ("TelegramBot (like TwitterBot)", UaClass::LinkPreview),
        ("Dalvik/2.1.0 (Linux; U; Android 14)", UaClass::NonBrowser),
    ] {
        assert_eq!(b.classify(ua), want, "{ua:?}");
        assert_eq!(b.classify(ua), want, "cached {ua:?}");
    }
}

#[test]
fn fixture_browsers_are_not_flagged() {
    let b = check_with(&format!("{FIX}/crawler-user-agents.json"));
    let text = std::fs::read_to_string(format!("{FIX}/browser-user-agents.txt")).unwrap();
    for ua in text.lines().filter(|l| !l.is_empty()) {
        assert_eq!(b.classify(ua), UaClass::Browser, "{ua}");
    }
}

#[test]
fn every_fixture_instance_matches_its_list() {
    let b = check_with(&format!("{FIX}/crawler-user-agents.json"));
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIX}/crawler-user-agents.json")).unwrap()).unwrap();
    for e in entries {
        for ua in e["instances"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
            let class = b.classify(ua);
            assert!(matches!(class, UaClass::Crawler | UaClass::LinkPreview), "{ua} classified {class:?}");
        }
    }
}

#[test]
fn missing_list_falls_back_and_malformed_list_fails() {
    let b = check_with("/nonexistent/crawlers.json");
    assert_eq!(b.status.source, "fallback");
    assert_eq!(b.classify("Mozilla/5.0 (compatible; Googlebot/2.1)"), UaClass::Crawler);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let err = BotCheck::build(&config::Bots { crawler_list: Some(bad), ..config::Bots::default() }).err().unwrap();
    assert!(err.to_string().contains("is not a crawler-user-agents JSON list"), "{err}");
}

/// §11: at least 96% recall on crawler agents and at most 0.5% false positives on real browser
/// agents, over the full fetched lists. Recall is measured on every instance of every pattern,
/// holding out each pattern in turn is not possible with a regex list, so instances of the
/// list are the held-out set the patterns were not written from verbatim. The lists are fetched
/// by `config/bots/fetch.sh`, not committed: ignored unless asked for, and failing without them
/// when it runs.
#[test]
#[ignore = "needs the bot lists fetched by config/bots/fetch.sh; run with --include-ignored"]
fn full_lists_meet_recall_and_false_positive_targets() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/config/bots");
    let list = format!("{root}/crawler-user-agents.json");
    let browsers = format!("{root}/browser-user-agents.txt");
    for file in [&list, &browsers] {
        assert!(
            std::path::Path::new(file).exists(),
            "this test needs the fetched bot lists, and {file} is missing: run config/bots/fetch.sh (it needs npm \
             and the npm registry), or run cargo test without --include-ignored, which lists this test as ignored"
        );
    }
    let b = check_with(&list);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&list).unwrap()).unwrap();
    let (mut hit, mut total) = (0usize, 0usize);
    for e in &entries {
        for ua in e["instances"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
            total += 1;
            if matches!(b.classify_uncached(ua), UaClass::Crawler | UaClass::LinkPreview | UaClass::NonBrowser) {
                hit += 1;
            }
        }
    }
    let text = std::fs::read_to_string(&browsers).unwrap();
    let humans: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let fp = humans.iter().filter(|ua| b.classify_uncached(ua) != UaClass::Browser).count();
    let recall = hit as f64 / total as f64;
    let fp_rate = fp as f64 / humans.len() as f64;
    eprintln!("bot recall {recall:.4} on {total} crawler agents; false positives {fp_rate:.4} on {} browser agents", humans.len());
    assert!(recall >= 0.96, "recall {recall}");
    assert!(fp_rate <= 0.005, "false-positive rate {fp_rate}");
}

#[test]
fn literal_patterns_are_recognised() {
    assert_eq!(as_literal(r"Googlebot\/").as_deref(), Some("Googlebot/"));
    assert_eq!(as_literal("bingbot").as_deref(), Some("bingbot"));
    assert_eq!(as_literal(r"Mediapartners \(Googlebot\)").as_deref(), Some("Mediapartners (Googlebot)"));
    assert_eq!(as_literal("[wW]get"), None);
    assert_eq!(as_literal("^curl"), None);
    assert_eq!(as_literal(r"BlogTraffic\/\d"), None);
}

#[test]
fn oversized_agents_are_not_matched() {
    let b = check_with(&format!("{FIX}/crawler-user-agents.json"));
    let long = format!("Mozilla/5.0 {}", "x".repeat(600));
    assert_eq!(b.classify(&long), UaClass::NonBrowser);
}

#[test]
fn verdict_cache_holds_a_realistic_agent_set() {
    let b = check_with(&format!("{FIX}/crawler-user-agents.json"));
    let text = std::fs::read_to_string(format!("{FIX}/browser-user-agents.txt")).unwrap();
    let agents: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    for ua in &agents {
        b.classify(ua);
    }
    let cached = agents
        .iter()
        .filter(|ua| {
            let h = xxhash_rust::xxh3::xxh3_64(ua.as_bytes());
            let v = b.cache[(h as usize) & (b.cache.len() - 1)].load(Ordering::Relaxed);
            v & !7 == h & !7
        })
        .count();
    assert_eq!(cached, agents.len(), "every agent's verdict is cached after one pass");
}
