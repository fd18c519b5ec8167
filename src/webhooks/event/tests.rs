use super::*;

use crate::webhooks::OutboxEvent;

#[test]
fn event_types_parse_strictly_and_round_trip() {
    for t in EventType::ALL {
        assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
    }
    let check = |input: &str| assert_eq!(input.parse::<EventType>(), Err(EventError::UnknownType(input.into())), "{input}");
    check("");
    check("Conversion.Attributed");
    check("conversion.attributed ");
    check("conversion_attributed");
    check("commission.*");
    check("payout");
    check("payout.reversed");
    assert!(serde_json::from_str::<EventType>("\"fraud.alerts\"").is_err());
}

#[test]
fn ids_derive_from_type_and_cause_and_nothing_else() {
    let a = EventId::derive(EventType::CommissionApproved, "commission:c_42:approve").unwrap();
    assert_eq!(a, EventId::derive(EventType::CommissionApproved, "commission:c_42:approve").unwrap(), "a retry has the same id");
    assert_ne!(a, EventId::derive(EventType::CommissionApproved, "commission:c_43:approve").unwrap());
    assert_ne!(a, EventId::derive(EventType::CommissionCreated, "commission:c_42:approve").unwrap());
    // A pinned value: changing the derivation changes every stored id, so it fails here first.
    // The value is SHA-256 of "clickgate.webhooks.event.v1\0conversion.attributed\0conversion:order-1", cut to 16 bytes.
    assert_eq!(
        EventId::derive(EventType::ConversionAttributed, "conversion:order-1").unwrap().to_string(),
        "msg_40f785364618b7e9b05e52bb2c9fe825"
    );
    let s = a.to_string();
    assert!(s.starts_with("msg_") && s.len() == 36 && !s.contains('.'), "{s}");
    assert_eq!(EventId::parse(&s), Ok(a));
    assert_eq!(EventId::derive(EventType::FraudAlert, ""), Err(EventError::BadCause));
    assert_eq!(EventId::derive(EventType::FraudAlert, &"x".repeat(CAUSE_BYTES_MAX + 1)), Err(EventError::BadCause));
}

#[test]
fn ids_parse_strictly() {
    let good = "msg_0123456789abcdef0123456789abcdef";
    assert_eq!(EventId::parse(good).unwrap().to_string(), good);
    let check = |input: &str| assert_eq!(EventId::parse(input), Err(EventError::BadId(input.into())), "{input}");
    check("");
    check("msg_");
    check("0123456789abcdef0123456789abcdef");
    check("MSG_0123456789abcdef0123456789abcdef");
    check("msg_0123456789ABCDEF0123456789abcdef");
    check("msg_0123456789abcdef0123456789abcde");
    check("msg_0123456789abcdef0123456789abcdef0");
    check("msg_0123456789abcdef0123456789abcdeg");
    check("msg_p5jXN8AQM9LWM0D4loKWxJek");
}

#[test]
fn the_body_is_the_envelope_in_a_fixed_key_order() {
    let data = r#"{"amount_minor":5000,"payout":"p_1"}"#;
    let e = OutboxEvent { kind: EventType::PayoutPaid, cause: "payout:p_1:paid", partner: None, occurred_ms: 1_667_507_170_344, data };
    let body = e.envelope().unwrap();
    assert_eq!(body, r#"{"type":"payout.paid","timestamp":"2022-11-03T20:26:10.344Z","data":{"amount_minor":5000,"payout":"p_1"}}"#);
    let back = Envelope::parse(body.as_bytes()).unwrap();
    let want: serde_json::Map<String, serde_json::Value> = serde_json::from_str(data).unwrap();
    assert_eq!((back.kind, back.timestamp.as_str(), back.data), (EventType::PayoutPaid, "2022-11-03T20:26:10.344Z", want));
    assert_eq!(e.envelope().unwrap(), body, "the same event gives the same bytes");
}

#[test]
fn events_and_envelopes_refuse_bad_input() {
    let envelope = |ms: i64| {
        OutboxEvent { kind: EventType::FraudAlert, cause: "fraud:link:7:2026-11-03", partner: None, occurred_ms: ms, data: "{}" }.envelope()
    };
    assert_eq!(envelope(-1), Err(EventError::BadTime(-1)));
    assert_eq!(envelope(i64::MAX), Err(EventError::BadTime(i64::MAX)));
    assert_eq!(rfc3339_ms(0).unwrap(), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_ms(253_402_300_799_999).unwrap(), "9999-12-31T23:59:59.999Z");

    let check = |body: &str| assert!(Envelope::parse(body.as_bytes()).is_err(), "{body}");
    check("");
    check("{}");
    check(r#"{"type":"payout.paid","timestamp":"2022-11-03T20:26:10.344Z"}"#);
    check(r#"{"type":"payout.done","timestamp":"2022-11-03T20:26:10.344Z","data":{}}"#);
    check(r#"{"type":"payout.paid","timestamp":"yesterday","data":{}}"#);
    check(r#"{"type":"payout.paid","timestamp":"2022-11-03T20:26:10.344Z","data":[]}"#);
    check(r#"{"type":"payout.paid","timestamp":"2022-11-03T20:26:10.344Z","data":{},"extra":1}"#);
}

#[test]
fn the_metrics_label_event_types_in_their_order() {
    // The events counter is indexed by `kind as usize` and labelled from a list in `metrics`,
    // which cannot name this type: the two must agree, position by position.
    assert_eq!(EventType::ALL.len(), crate::metrics::OUTBOX_EVENT_TYPES.len());
    for (i, t) in EventType::ALL.into_iter().enumerate() {
        assert_eq!(t as usize, i, "{t}");
        assert_eq!(crate::metrics::OUTBOX_EVENT_TYPES[i], t.as_str());
    }
}
