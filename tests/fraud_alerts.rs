//! Fraud alerts over real sockets: flagged clicks through the edge make the core raise a
//! `fraud.alert` event in the outbox, once per partner and window.

mod common;

use std::time::{Duration, Instant};

use common::*;

const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn wait_for(s: &Server, series: &str, want: f64) -> f64 {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let v = s.metric(series);
        if v >= want || Instant::now() > until {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_partners_flagged_share_raises_one_fraud_alert_event() {
    let mut s = Server::start(&fixture_config("[fraud_alerts]\npartner_min_clicks = 5\npartner_flagged_share = 0.5\n"));
    for i in 0..4 {
        assert!(s.get("/r/demo", &format!("192.0.2.{}", 60 + i), CHROME).starts_with("HTTP/1.1 302"));
    }
    for i in 0..12 {
        assert!(s.get("/r/demo", &format!("192.0.2.{}", 80 + i), GOOGLEBOT).starts_with("HTTP/1.1 302"));
    }
    let series = "clickgate_fraud_alerts_total{kind=\"partner_flagged_share\"}";
    assert_eq!(wait_for(&s, series, 1.0), 1.0, "{}", s.log());
    assert_eq!(s.metric("clickgate_fraud_alerts_total{kind=\"link_surge\"}"), 0.0);
    // The writer commits the event after the metric moves; wait for it before stopping.
    let until = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let db = rusqlite::Connection::open(s.data_dir().join("clickgate.db")).unwrap();
        let mut stmt = db.prepare("SELECT type, cause, partner, data FROM webhook_events WHERE type = 'fraud.alert'").unwrap();
        let rows: Vec<(String, String, Option<String>, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect();
        if !rows.is_empty() || Instant::now() > until {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    s.terminate();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (_, cause, partner, data) = &rows[0];
    assert!(cause.starts_with("fraud:partner_flagged_share:alice:"), "{cause}");
    assert_eq!(*partner, None, "alerts go to operators' endpoints, never to the partner's");
    let data: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["kind"], "partner_flagged_share");
    assert_eq!((data["partner"].as_str(), data["program"].as_str()), (Some("alice"), Some("demo")));
    // It fired when the share first reached one half: 4 valid and 4 flagged clicks.
    assert_eq!((data["clicks"].as_u64(), data["not_valid"].as_u64()), (Some(8), Some(4)), "{data}");
}
