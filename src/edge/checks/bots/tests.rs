use super::*;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bots");

fn check_with(list: &str) -> BotCheck {
    BotCheck::build(&config::Bots { crawler_list: Some(list.into()), ..config::Bots::default() }).unwrap()
}

const FETCHED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/bots");

/// The production lists, fetched by `config/bots/fetch.sh`; panics, saying so, without them.
fn fetched() -> BotCheck {
    let crawlers = format!("{FETCHED}/crawler-user-agents.json");
    let generic = format!("{FETCHED}/isbot-patterns.json");
    for file in [&crawlers, &generic] {
        assert!(
            std::path::Path::new(file).exists(),
            "this test needs the fetched bot lists, and {file} is missing: run config/bots/fetch.sh (it needs npm \
             and the npm registry), or run cargo test without --include-ignored, which lists this test as ignored"
        );
    }
    let cfg = config::Bots { crawler_list: Some(crawlers.into()), generic_list: Some(generic.into()), ..config::Bots::default() };
    let b = BotCheck::build(&cfg).unwrap();
    assert_eq!(b.status.generic_skipped, 0, "every isbot pattern translates");
    b
}

/// One agent, one expected class, uncached and then through the cache.
fn check(b: &BotCheck, ua: &str, want: UaClass) {
    assert_eq!(b.classify_uncached(ua), want, "{ua:?}");
    assert_eq!(b.classify(ua), want, "cached {ua:?}");
}

/// Agents whose class does not depend on the generic list: the same with the fixture crawler
/// list and built-in tokens, and with the fetched lists.
fn families_and_generic_bots(b: &BotCheck) {
    use UaClass::*;
    // Desktop and mobile browsers.
    check(b, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", Browser);
    check(b, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0", Browser);
    check(b, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1", Browser);
    check(b, "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", Browser);
    check(
        b,
        "Mozilla/5.0 (Linux; Android 9; CUBOT X19) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        Browser,
    );
    check(b, "Mozilla/5.0 (Mobile; Nokia_8110_4G; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5", Browser);
    check(b, "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)", Browser);
    // Feature phones: Java ME, WAP browsers, handset prefixes.
    check(b, "Nokia6300/2.0 (05.00) Profile/MIDP-2.0 Configuration/CLDC-1.1", Browser);
    check(b, "NokiaN95/11.0.026; Series60/3.1 Profile/MIDP-2.0 Configuration/CLDC-1.1", Browser);
    check(b, "MOT-RAZRV3/0A.52.1BR MIB/BER2.2 Profile/MIDP-2.0 Configuration/CLDC-1.1 UP.Browser/6.2.3.4.c.1.120 (GUI) MMP/2.0", Browser);
    check(b, "SAMSUNG-SGH-E250/1.0 Profile/MIDP-2.0 Configuration/CLDC-1.1 UP.Browser/6.2.3.3.c.1.101 (GUI) MMP/2.0", Browser);
    check(b, "LG-GS290/V100 Obigo/WAP2.0 Profile/MIDP-2.1 Configuration/CLDC-1.1 Java/ASVM/1.1", Browser);
    check(b, "SonyEricssonK750i/R1CA Browser/NetFront/3.3 Profile/MIDP-2.0 Configuration/CLDC-1.1", Browser);
    check(b, "BlackBerry9700/5.0.0.351 Profile/MIDP-2.1 Configuration/CLDC-1.1 VendorID/123", Browser);
    check(b, "DoCoMo/2.0 P906i(c100;TB;W24H15)", Browser);
    // Proxy browsers: Opera Mini, UC Browser's own UCWEB agents.
    check(b, "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54", Browser);
    check(b, "Opera/9.80 (Android; Opera Mini/7.5.33361/31.1448; U; en) Presto/2.8.119 Version/11.1010", Browser);
    check(b, "UCWEB/2.0 (Java; U; MIDP-2.0; en-US; Nokia5130c-2) U2/1.0.0 UCBrowser/9.5.0.449 U2/1.0.0 Mobile", Browser);
    check(b, "UCWEB/2.0 (Linux; U; Adr 2.3; zh-CN; MI-ONEPlus) U2/1.0.0 UCBrowser/8.6.0.199 U2/1.0.0 Mobile", Browser);
    check(b, "JUC (Linux; U; 2.3.6; zh-cn; GT-S5360; 240*320) UCWEB7.9.0.94/140/352", Browser);
    // In-app browsers: Android WebView, Facebook, Instagram, LINE, WeChat.
    check(b, "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36", Browser);
    check(b, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/440.0.0.33.117;FBBV/544370735;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.1;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/5]", Browser);
    check(b, "Mozilla/5.0 (Linux; Android 12; Pixel 6 Build/SQ3A.220705.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.0.0 Mobile Safari/537.36 Instagram 312.0.0.32.112 Android (31/12; 420dpi; 1080x2209; Google/google; Pixel 6; oriole; oriole; en_US; 548323757)", Browser);
    check(
        b,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/13.20.0",
        Browser,
    );
    check(b, "Mozilla/5.0 (Linux; Android 10; V2027 Build/QP1A.190711.020; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/86.0.4240.99 XWEB/4317 MMWEBSDK/20220903 Mobile Safari/537.36 MMWEBID/6170 MicroMessenger/8.0.28.2240(0x28001C35) WeChat/arm64", Browser);
    // Generic bots no list names: a robot word, a URL or an e-mail address in the agent.
    check(b, "Mozilla/5.0 (compatible; SomethingBot/1.0; +http://example.com/bot.html)", Crawler);
    check(b, "SomethingBot/1.0 (+http://example.com/bot)", Crawler);
    check(b, "Mozilla/5.0 (compatible; ExampleCrawler/2.1)", Crawler);
    check(b, "acme-spider/0.3", Crawler);
    check(b, "Mozilla/5.0 (compatible; Acme/2.0; http://acme.example/info)", Crawler);
    check(b, "Mozilla/5.0 (compatible; Acme/2.0; https://acme.example/info)", Crawler);
    check(b, "Mozilla/5.0 (compatible; research-agent; admin@example.edu)", Crawler);
    check(b, "Fetcher/1.0 (contact: ops@example.org)", Crawler);
    check(b, "Mozilla/5.0 (compatible; Acme Uptime/1.2; www.acme.example)", Crawler);
    check(b, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", Crawler);
    check(b, "DoCoMo/2.0 N905i(c100;TB;W24H16) (compatible; Googlebot-Mobile/2.1; +http://www.google.com/bot.html)", Crawler);
    check(b, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", Crawler);
    check(b, "python-requests/2.31.0", Crawler);
    check(b, "Go-http-client/1.1", Crawler);
    check(b, "okhttp/4.12.0", Crawler);
    check(b, "curl/8.5.0", Crawler);
    // Link unfurlers, empty agents, agents of no browser family.
    check(b, "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", LinkPreview);
    check(b, "WhatsApp/2.23.20.0", LinkPreview);
    check(b, "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", LinkPreview);
    check(b, "", Empty);
    check(b, "-", Empty);
    // Of no browser family: `non_browser_ua`, or `bot_ua` when isbot's shapes match too.
    for ua in ["Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UD1A.230803.041)", "SomeApp/1.0", "\u{0}\u{ffff}\u{1F600}"] {
        assert!(matches!(b.classify_uncached(ua), NonBrowser | Crawler), "{ua:?}");
    }
}

#[test]
fn browser_families_and_generic_bots() {
    families_and_generic_bots(&check_with(&format!("{FIX}/crawler-user-agents.json")));
}

#[test]
#[ignore = "needs the bot lists fetched by config/bots/fetch.sh; run with --include-ignored"]
fn browser_families_and_generic_bots_with_fetched_lists() {
    let b = fetched();
    families_and_generic_bots(&b);
    // isbot's generic patterns add tool-like agents that carry no robot word.
    for ua in ["Java/1.8.0_151", "Apache-HttpClient/4.5.13 (Java/11.0.2)", "PostmanRuntime/7.36.0", "Mozilla/5.0 (compatible)"] {
        assert_ne!(b.classify_uncached(ua), UaClass::Browser, "{ua:?}");
    }
}

#[test]
fn lookarounds_become_alternations() {
    let re = |p: &str| regex::Regex::new(&format!("(?i:{})", without_lookaround(p).unwrap())).unwrap();
    let bot = re(r"(?<! cu)bots?(?:\b|_)");
    for (ua, want) in [("Googlebot/2.1", true), ("my_bot_x", true), ("Android 9; CUBOT X19)", false), ("Cubot", true), ("robots", true)] {
        assert_eq!(bot.is_match(ua), want, "{ua}");
    }
    let google = re(r"(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))");
    for (ua, want) in [
        ("Google-Read-Aloud", true),
        ("GoogleApp/1", false),
        ("Google Pixel 7", false),
        ("channel/google", true),
        (" channel/google", false),
        ("x google", true),
        ("google", true),
    ] {
        assert_eq!(google.is_match(ua), want, "{ua}");
    }
    let java = re("java(?!;)");
    assert!(java.is_match("Java/1.8") && java.is_match("java") && !java.is_match("(Java; U; MIDP-2.0)"));
    let http = re("(?<!lib)http");
    assert!(http.is_match("http://x") && http.is_match("xhttp") && !http.is_match("libhttp/1"));
    assert_eq!(js_classes(r"[\w\d-.]+"), r"[0-9A-Za-z_0-9\-.]+");
    assert_eq!(js_classes(r"[.-\d]"), r"[.\-0-9]");
    assert_eq!(js_classes(r"[a-z]-\d\b\."), r"[a-z]-[0-9](?-u:\b)\.");
    assert_eq!(without_lookaround("(?=x)foo"), None);
    assert_eq!(without_lookaround("a(?!b)c"), None);
    assert_eq!(without_lookaround("(?<!a+)b"), None);
}

#[test]
fn generic_list_adds_weak_evidence_that_phones_outweigh() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("isbot.json");
    std::fs::write(&list, r#"["java(?!;)", "^acme", "\\btool\\b", "(?=x)y"]"#).unwrap();
    let cfg = config::Bots { generic_list: Some(list), ..config::Bots::default() };
    let b = BotCheck::build(&cfg).unwrap();
    assert_eq!((b.status.generic_patterns, b.status.generic_skipped), (3, 1));
    check(&b, "Mozilla/5.0 (X11; Linux x86_64) Java/17 Gecko/20100101", UaClass::Crawler);
    check(&b, "acme/1.0 Mozilla/5.0", UaClass::Crawler);
    check(&b, "Mozilla/5.0 acme/1.0", UaClass::Browser);
    check(&b, "Mozilla/5.0 (a tool)", UaClass::Crawler);
    check(&b, "LG-GS290/V100 Obigo/WAP2.0 Profile/MIDP-2.1 Configuration/CLDC-1.1 Java/ASVM/1.1", UaClass::Browser);
    check(&b, "Mozilla/5.0 (a tool; +http://tool.example)", UaClass::Crawler);
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
    assert!(err.to_string().contains("is not a crawler-user-agents or isbot JSON list"), "{err}");
}

/// §11: at least 96% recall on crawler agents and at most 0.5% false positives on real browser
/// agents, over the full fetched lists. Recall is measured on every instance of every pattern,
/// holding out each pattern in turn is not possible with a regex list, so instances of the
/// list are the held-out set the patterns were not written from verbatim. The lists are fetched
/// by `config/bots/fetch.sh`, not committed: ignored unless asked for, and failing without them
/// when it runs.
/// The training figures (the held-out ones are `loadtest/bots.sh`'s): recall on every example
/// agent of the crawler list and false positives on npm user-agents' real browser agents, with
/// the production lists. The lists are fetched by `config/bots/fetch.sh`, not committed:
/// ignored unless asked for, and failing without them when it runs.
#[test]
#[ignore = "needs the bot lists fetched by config/bots/fetch.sh; run with --include-ignored"]
fn full_lists_meet_recall_and_false_positive_targets() {
    let b = fetched();
    let list = format!("{FETCHED}/crawler-user-agents.json");
    let browsers = format!("{FETCHED}/browser-user-agents.txt");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&list).unwrap()).unwrap();
    let (mut hit, mut total) = (0usize, 0usize);
    for e in &entries {
        for ua in e["instances"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
            total += 1;
            if b.classify_uncached(ua) != UaClass::Browser {
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

/// A check over a crawler list and a generic list given inline, beside the built-in tokens.
fn check_lists(crawlers: &str, generic: &str) -> BotCheck {
    let dir = tempfile::tempdir().unwrap();
    let (c, g) = (dir.path().join("crawlers.json"), dir.path().join("isbot.json"));
    std::fs::write(&c, crawlers).unwrap();
    std::fs::write(&g, generic).unwrap();
    BotCheck::build(&config::Bots { crawler_list: Some(c), generic_list: Some(g), ..config::Bots::default() }).unwrap()
}

#[test]
fn old_and_odd_browser_families_are_browsers() {
    let b = check_with(&format!("{FIX}/crawler-user-agents.json"));
    use UaClass::*;
    for ua in [
        "AmigaVoyager/3.2 (AmigaOS/MC680x0)",
        "Mozilla/6.0 (Macintosh; U; Amiga-AWeb) Safari 3.1",
        "IBrowse/2.4 (AmigaOS 3.9; 68K)",
        "HotJava/1.1.2 FCS",
        "OmniWeb622.19.3.0.170128 CFNetwork/438.16 Darwin/9.8.0 (Power%20Macintosh) (PowerMac7%2C3)",
        "Safari5533.22.3 CFNetwork/438.16 Darwin/9.8.0 (i386) (iMac8%2C1)",
        "Palmscape/3.0J [ja] (v. 3.5.2H1.5; 153x130; c8)",
        "Xiino/1.0.9E [en] (v. 4.1; 153x130; g4)",
        "Links/0.9.1 (Linux 2.4.24; i386;)",
        "Uzbl (Webkit 1.3) (Linux i686 [i686])",
        // Mosaic and Lynx are built on libwww, which is no bot; libwww-perl is.
        "VMS_Mosaic/3.8-1 (Motif;OpenVMS V7.3-2 DEC 3000 - M700)  libwww/2.12_Mosaic",
        "Lynx/2.8.8pre.3 libwww-FM/2.14 SSL-MM/1.4.1 OpenSSL/1.0.1e",
        // Chinese handsets' own format, and feature phones' WAP browsers.
        "ZTEU819_TD/1.0 Linux/3.4.0 Android/4.1 Release/2.8.2013 Browser/AppleWebKit534.30",
        "lephone K10/Dorado WAP-Browser/1.0.0",
        "portalmmm/2.0 N410i(c20;TB)",
    ] {
        check(&b, ua, Browser);
    }
    check(&b, "libwww-perl/6.72", Crawler);
    // A feature phone lists its protocols, `(HTTP PGDL;HTTPS)`; a URL needs its colon.
    check(&b, "FLY_E141TV_PLUS/ WAP Browser/MAUI(HTTP PGDL;HTTPS)Profile/Q03C1-2.40 ru-RU", Browser);
    check(&b, "Acme/1.0 (http://acme.example/about)", Crawler);
}

#[test]
fn tv_and_console_browsers_outweigh_generic_evidence() {
    let b = check_lists("[]", r#"["\\b\\w+/1\\.0;", "catch", "java(?!;)"]"#);
    use UaClass::*;
    for ua in [
        "Opera/9.80 (Linux armv6l; U; NETRANGEMMH;HbbTV/1.1.1;CE-HTML/1.0;PEAQ LF1V350; en) Presto/2.8.115 Version/11.10",
        "Mozilla/5.0 (Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/84.0.4147.140 Safari/537.36 OPR/46.0.2207.0 OMI/4.21.4.112.Catcher4.66 Model/Hisense-MT9602 VIDAA/5.0(Hisense;SmartTV;55A52FEVS;MTK9602/V0000.01.00R.N0)",
        "Mozilla/5.0 (webOS/1.0; U; en-US) AppleWebKit/525.27.1 (KHTML, like Gecko) Version/1.0 Safari/525.27.1 Pre/1.0",
        "Mozilla/5.0 (PlayStation 4 5.55) AppleWebKit/601.2 (KHTML, like Gecko)",
    ] {
        check(&b, ua, Browser);
    }
    // The same generic evidence in an agent of no such device is a tool's (a phone maker's
    // name is no TV engine's).
    check(&b, "Mozilla/5.0 (Linux; U; Android 12; zh-cn; 2201123C Build/SKQ1) AppleWebKit/537.36 (KHTML, like Gecko) XiaoMi/MiuiBrowser/17.1 Catcher/2.0", Crawler);
    check(&b, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/84.0 Safari/537.36 Catcher/2.0", Crawler);
    check(&b, "Mozilla/5.0 (X11; Linux x86_64; Acme/1.0; en) Gecko/20100101 Firefox/60.0", Crawler);
}

#[test]
fn a_bare_shape_holding_a_named_browser_is_that_browser() {
    // isbot's lone-product and bare-compatible shapes, as its list writes them.
    let shapes = r#"["^[\\w \\.\\-\\(?:\\):%]+(?:/v?\\d+(?:\\.\\d+)?(?:\\.\\d{1,10})*?)?(?:,|$)",
        "^mozilla/\\d\\.\\d\\s\\((?:compatible;)?(?:\\s?[\\w\\d-.]+[\\s/]\\d+\\.\\d+)?\\)$"]"#;
    let b = check_lists("[]", shapes);
    use UaClass::*;
    for ua in [
        "Sleipnir/2.9.9",
        "nook browser/1.0",
        "opera/9.80, DI384 TKC/0.5.20(Sagemcom_Broadband_SAS,DI384_UHD_TKC,Wired)",
        "Mozilla/4.0 (compatible; Dillo 3.0)",
    ] {
        check(&b, ua, Browser);
    }
    // The same shapes around no browser's name, or around a name that says nothing of which
    // browser it is, stay a tool's: `Mozilla/`, Internet Explorer's token alone, and a browser's
    // name inside another word (`elinks` in `WeLikeLinks`).
    check(&b, "Mozilla/4.0 (compatible; MSIE 6.0)", Crawler);
    check(&b, "Mozilla/5.0 (compatible; Acme 1.0)", Crawler);
    check(&b, "WeLikeLinks/1.0", Crawler);
}

#[test]
fn an_android_model_is_not_a_bot() {
    let b = check_lists(r#"[{"pattern": "Spider"}, {"pattern": "Discovery"}]"#, r#"["discovery", "java(?!;)"]"#);
    use UaClass::*;
    let chrome = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
    for model in ["M bot 51", "VR BOT 552 Build/MRA58K", "XBot_Senior Build/O11019", "Spider 8", "Discovery Elite", "ECHO JAVA"] {
        check(&b, &format!("Mozilla/5.0 (Linux; Android 7.0; {model}) {chrome}"), Browser);
    }
    // After a locale, too.
    check(&b, &format!("Mozilla/5.0 (Linux; U; Android 4.4.2; en-us; M bot 60 Build/KOT49H) {chrome}"), Browser);
    // What follows the model in the comment is no longer the model.
    check(&b, &format!("Mozilla/5.0 (Linux; Android 8.0; Pixel 2 Build/OPD3.170816.012; Storebot-Google/1.0) {chrome}"), Crawler);
    check(&b, &format!("Mozilla/5.0 (Linux; Android 8.0; Pixel 2; SomeBot/1.0) {chrome}"), Crawler);
    // Outside the comment, a robot word, a crawler's or a generic name still counts.
    check(&b, &format!("Mozilla/5.0 (Linux; Android 7.0; Pixel 2) {chrome} (compatible; Googlebot/2.1)"), Crawler);
    check(&b, &format!("Mozilla/5.0 (Linux; Android 7.0; Pixel 2) {chrome} Discovery/1.0"), Crawler);
    // A contact address is never a model.
    check(&b, &format!("Mozilla/5.0 (Linux; Android 7.0; ops@example.org) {chrome}"), Crawler);
}

#[test]
fn internet_explorer_add_ons_are_not_tools() {
    let b = check_lists(r#"[{"pattern": "AppInsights"}]"#, r#"["download", "optimize", "chromeframe", "firephp"]"#);
    use UaClass::*;
    assert_eq!((b.status.generic_patterns, b.status.generic_skipped), (4, 0));
    for ua in [
        "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/4.0; QQDownload 691; SLCC2; .NET CLR 2.0.50727)",
        "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0; msn OptimizedIE8;ENGB)",
        "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0; AppInsights)",
        // Chrome Frame and FirePHP are add-ons wherever they stand.
        "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; .NET CLR 2.0.50727) chromeframe/8.0.552.224",
        "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:26.0) Gecko/20100101 Firefox/26.0 FirePHP/0.7.4",
    ] {
        check(&b, ua, Browser);
    }
    // Outside Internet Explorer's comment the same words are a tool's; a URL counts anywhere.
    check(&b, "Mozilla/5.0 (Windows NT 6.1; rv:26.0) Gecko/20100101 Firefox/26.0 QQDownload/1.7", Crawler);
    check(&b, "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; Embedded Web Browser from: http://bsalsa.com/)", Crawler);
    check(&b, "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; ExampleBot/1.0)", Crawler);
}

#[test]
fn crawler_names_count_as_whole_words_and_not_inside_browser_names() {
    let b = check_lists(
        r#"[{"pattern": "Sonic"}, {"pattern": "Sogou"}, {"pattern": "AP3A\\.240617\\.008"}, {"pattern": "NING\\/"}]"#,
        r#"["sogou", "java(?!;)", "^netsurf"]"#,
    );
    use UaClass::*;
    assert_eq!((b.status.patterns, b.status.skipped), (4, 0));
    for ua in [
        "Mozilla/5.0(compatible; U; InfiNet 0.1; Viera) AppleWebKit/420 (KHTML, like Gecko)(avdn/Panasonic.tv.high.2014) Viera/3.10.15 Chrome/23.0.1271.97 Safari/537.11",
        "Mozilla/5.0 (Linux; Android 10; TLA001 Build/QP1A.190711.020; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/80.0.3987.132 Safari/537.36 SogouMSE,SogouMobileBrowser/6.1.5",
        // A build id names a firmware, which every phone running it sends.
        "Mozilla/5.0 (Linux; Android 15; CPH2655 Build/AP3A.240617.008) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.163 Mobile Safari/537.36",
        // Our browser names outrank the generic list.
        "HotJava/1.1.2 FCS",
        "NetSurf/1.2 (NetBSD; amd64)",
    ] {
        check(&b, ua, Browser);
    }
    check(&b, "Mozilla/5.0 (compatible; Sonic/1.0)", Crawler);
    check(&b, "Sogou Pic/3.0", Crawler);
    check(&b, "NING/1.0", Crawler);
    check(&b, "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/60.0 Java/1.8", Crawler);
}
