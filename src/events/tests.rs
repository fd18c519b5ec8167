use super::*;
use crate::model::Reason;

fn event(n: u64) -> ClickEvent {
    let mut reasons = Reasons::default();
    reasons.insert(Reason::Duplicate);
    let ts_ms = 1_763_800_000_000 + n;
    // Every optional field set, so a codec that drops one shows.
    ClickEvent {
        channel: Channel::Qr,
        sub_ids: Some(Box::new([Some("a".into()), None, None, None, Some("e".into())])),
        verdict: Verdict::Flagged,
        reasons,
        visitor_id: crate::model::VisitorId([n as u8; 16]),
        new_visitor: true,
        country: Some(*b"GB"),
        asn: 15169,
        ua_hash: 42,
        ua: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0".into()),
        client_tag: Some(0xdead_beef_0000_0001),
        ip: Some(truncate_ip("192.0.2.77".parse().unwrap())),
        ..crate::testing::click(crate::testing::click_signer().mint(ts_ms, 3, 4), ts_ms)
    }
}

#[test]
fn round_trips_with_named_fields() {
    let ev = event(1);
    let mut buf = Vec::new();
    ev.encode_into(&mut buf).unwrap();
    assert_eq!(ClickEvent::decode(&buf).unwrap(), ev);
    // Named fields: the encoding carries the keys, so readers do not depend on field order.
    let as_map: std::collections::BTreeMap<String, rmpv_like::Any> = rmp_serde::from_slice(&buf).unwrap();
    assert!(as_map.contains_key("click_id") && as_map.contains_key("verdict"));
}

#[test]
fn an_added_field_does_not_break_an_old_reader() {
    #[derive(serde::Serialize)]
    struct Newer<'a> {
        #[serde(flatten)]
        ev: &'a ClickEvent,
        fraud_score: f32,
    }
    let ev = event(2);
    let buf = rmp_serde::to_vec_named(&Newer { ev: &ev, fraud_score: 0.5 }).unwrap();
    assert_eq!(ClickEvent::decode(&buf).unwrap(), ev);
}

#[test]
fn truncates_ips() {
    assert_eq!(truncate_ip("192.0.2.77".parse().unwrap()).to_string(), "192.0.2.0");
    assert_eq!(truncate_ip("2001:db8:1:2:3::9".parse().unwrap()).to_string(), "2001:db8:1::");
}

mod rmpv_like {
    /// Accepts any msgpack value, to look at the keys of an encoded event.
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    pub enum Any {
        B(bool),
        I(i64),
        U(u64),
        F(f64),
        S(String),
        L(Vec<Any>),
        M(std::collections::BTreeMap<String, Any>),
        N(Option<()>),
    }
}
