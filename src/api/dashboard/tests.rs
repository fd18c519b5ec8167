use serde_json::json;

use super::chart::{bars, svg, Bar};
use super::html::*;
use super::session::{token_of, Sessions};
use super::*;

fn sessions(max: usize, secure: bool) -> Sessions {
    let config = crate::config::Api { dashboard_sessions_max: max, dashboard_session_ttl_s: 600, ..Default::default() };
    Sessions::new(&config, secure)
}

#[test]
fn escape_replaces_the_five_characters_and_nothing_else() {
    let check = |input: &str, want: &str| assert_eq!(escape(input), want, "{input:?}");
    check("", "");
    check("plain text, é ü 💸", "plain text, é ü 💸");
    check("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;");
    check("\"><img src=x onerror=y>", "&quot;&gt;&lt;img src=x onerror=y&gt;");
    check("it's", "it&#39;s");
    check("a & b", "a &amp; b");
    check("&amp;", "&amp;amp;");
}

#[test]
fn money_uses_the_currencys_minor_units() {
    let check = |minor: i64, currency: &str, want: &str| assert_eq!(money(minor, currency), want);
    check(1_234, "USD", "12.34 USD");
    check(5, "USD", "0.05 USD");
    check(-1_500, "EUR", "-15.00 EUR");
    check(500, "JPY", "500 JPY");
    check(1_234, "KWD", "1.234 KWD");
    check(0, "USD", "0.00 USD");
    check(i64::MIN, "USD", "-92233720368547758.08 USD");
}

#[test]
fn a_percentage_has_two_decimals_or_a_dash() {
    assert_eq!(percent(Some(0.125)), "12.50 %");
    assert_eq!(percent(None), "–");
}

#[test]
fn the_shell_escapes_its_title_and_signs_out_only_with_a_session() {
    let page = shell("<b>", None, "<p>x</p>");
    assert!(page.contains("<title>&lt;b&gt; · clickgate</title>") && page.contains("<h1>&lt;b&gt;</h1><p>x</p>"), "{page}");
    assert!(!page.contains("logout"));
    assert!(shell("t", Some("ab\"c"), "").contains("name=\"csrf\" value=\"ab&quot;c\""));
}

#[test]
fn a_session_lives_until_its_expiry_or_its_end() {
    let s = sessions(10, false);
    let (token, session) = s.start("cgk_key", 1_000).unwrap();
    assert_eq!(token.len(), 64);
    assert_eq!(session.expires_ms, 601_000);
    assert_eq!(s.get(&token, 600_999).map(|s| s.key), Some("cgk_key".to_string()));
    assert!(s.get(&token, 601_000).is_none(), "expired");
    assert!(s.is_empty(), "an expired session is dropped when seen");
    let (token, _) = s.start("cgk_key", 1_000).unwrap();
    s.end(&token);
    assert!(s.get(&token, 2_000).is_none(), "ended");
    assert!(s.get(&"0".repeat(64), 2_000).is_none(), "unknown");
}

#[test]
fn the_map_never_passes_its_maximum_and_drops_the_oldest_first() {
    let s = sessions(3, false);
    let tokens: Vec<String> = (0..3).map(|i| s.start("k", 1_000 + i).unwrap().0).collect();
    let (fourth, _) = s.start("k", 5_000).unwrap();
    assert_eq!(s.len(), 3);
    assert!(s.get(&tokens[0], 5_000).is_none(), "the one closest to expiry went");
    assert!(s.get(&tokens[1], 5_000).is_some() && s.get(&fourth, 5_000).is_some());
    // Expired sessions go before any live one.
    let later = 1_000 + 600_000 + 1;
    let (fifth, _) = s.start("k", later).unwrap();
    assert!(s.get(&fourth, later).is_some() && s.get(&fifth, later).is_some());
    assert!(s.len() <= 3);
}

#[test]
fn tokens_are_random_and_csrf_tokens_differ_from_them() {
    let s = sessions(10, false);
    let (a, sa) = s.start("k", 0).unwrap();
    let (b, _) = s.start("k", 0).unwrap();
    assert_ne!(a, b);
    assert_ne!(a, sa.csrf);
}

#[test]
fn the_cookie_is_http_only_strict_scoped_and_secure_under_tls() {
    let plain = sessions(1, false).cookie("abc");
    assert_eq!(plain, "cg_session=abc; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=600");
    assert!(sessions(1, true).cookie("abc").ends_with("; Secure"));
    assert!(sessions(1, true).clear_cookie().contains("Max-Age=0"));
    assert_eq!(sessions(1, false).login_cookie("t"), "cg_login=t; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=3600");
}

#[test]
fn the_token_is_read_from_a_cookie_header_and_nothing_else_passes() {
    let t = "a".repeat(64);
    let token_of = |h: &str| token_of(h, "cg_session").map(str::to_string);
    assert_eq!(token_of(&format!("x=1; cg_session={t}; y=2")), Some(t.clone()));
    assert_eq!(token_of(&format!("cg_session={t}")), Some(t.clone()));
    assert_eq!(token_of("cg_session=short"), None);
    assert_eq!(token_of(&format!("cg_session={}", "z".repeat(64))), None);
    assert_eq!(token_of(&format!("other={t}")), None);
    assert_eq!(super::session::token_of(&format!("cg_login={t}"), "cg_login"), Some(t.as_str()));
}

#[test]
fn every_day_of_the_period_is_a_bar_with_the_reports_figures() {
    let report = json!({
        "from": "2026-11-29", "to": "2026-12-02",
        "days": [
            {"date": "2026-11-30", "clicks": {"by_verdict": {"valid": 3, "flagged": 2, "blocked": 7}}},
            {"date": "2026-12-02", "clicks": {"by_verdict": {"valid": 1, "flagged": 0}}},
        ],
    });
    let b = bars(&report);
    let want = |date: &str, valid, flagged| Bar { date: date.into(), valid, flagged };
    assert_eq!(b, vec![want("2026-11-29", 0, 0), want("2026-11-30", 3, 2), want("2026-12-01", 0, 0), want("2026-12-02", 1, 0)]);
    let drawn = svg(&b);
    assert!(drawn.contains("data-date=\"2026-11-30\" data-valid=\"3\" data-flagged=\"2\""), "{drawn}");
    assert!(drawn.contains("<title>2026-11-30: 3 valid, 2 flagged</title>"), "{drawn}");
    assert!(drawn.contains("data-max=\"5\""), "the scale is the tallest stack: {drawn}");
    assert_eq!(drawn.matches("<g class=\"day\"").count(), 4);
    assert!(!drawn.contains("style="), "colours are attributes, so the CSP needs no inline style");
}

#[test]
fn a_report_without_a_period_draws_no_bars() {
    assert!(bars(&json!({})).is_empty());
    assert!(svg(&[]).contains("data-max=\"1\""));
}

#[test]
fn the_policy_allows_nothing_inline_and_nothing_from_elsewhere() {
    for part in ["default-src 'none'", "style-src 'self'", "script-src 'self'", "img-src 'self' data:", "form-action 'self'"] {
        assert!(CSP.contains(part), "{part}");
    }
    assert!(CSP.contains("frame-ancestors 'none'") && CSP.contains("base-uri 'none'"));
    assert!(!CSP.contains("unsafe"), "{CSP}");
}

#[test]
fn only_dates_pass_into_the_apis_period() {
    assert_eq!(period("from=2026-11-01&to=2026-11-30&x=1"), "from=2026-11-01&to=2026-11-30");
    assert_eq!(period("from=<script>&to=2026-11-30"), "to=2026-11-30");
    assert_eq!(period(""), "");
}

#[test]
fn a_partner_page_escapes_what_the_api_answers() {
    let p = pages::Partner {
        who: json!({"id": "bob", "name": "<Bob>"}),
        report: json!({"from": "2026-12-01", "to": "2026-12-01", "days": [], "totals": {"clicks": {"total": 0, "by_verdict": {}}, "conversions": 0}}),
        balance: json!({"balances": [{"currency": "USD", "pending_minor": 0, "approved_minor": -250, "in_transit_minor": 0, "paid_minor": 1000}]}),
        payouts: json!({"payouts": []}),
        links: json!({"links": [{"code": "bob", "destination": "https://example.com/?a=1&b=\"2\"", "status": "active"}]}),
    };
    let page = pages::partner(&p, "https://go.example", false, "tok");
    assert!(page.contains("<h1>&lt;Bob&gt;</h1>") && !page.contains("<Bob>"));
    assert!(page.contains("to https://example.com/?a=1&amp;b=&quot;2&quot;"), "{page}");
    assert!(page.contains("data-figure=\"balance.USD.approved_minor\" data-value=\"-250\">-2.50 USD"), "{page}");
    assert!(page.contains("class=\"negative\""), "a negative payable balance is explained");
    assert!(page.contains("value=\"https://go.example/r/bob\"") && page.contains("src=\"/dashboard/links/bob/qr.svg\""));
}
