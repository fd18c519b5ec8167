use serde_json::json;

use super::*;

fn redacted(v: Value) -> Value {
    let mut v = v;
    redact(&mut v);
    v
}

#[test]
fn redaction_hides_every_sensitive_field_at_any_depth() {
    let partner = json!({
        "id": "alice", "name": "Alice", "email": "alice@example.com", "payout_method": "paypal",
        "paypal_email": "pay@example.com", "stripe_account": "acct_123",
    });
    assert_eq!(
        redacted(partner),
        json!({
            "id": "alice", "name": "Alice", "email": REDACTED, "payout_method": "paypal",
            "paypal_email": REDACTED, "stripe_account": REDACTED,
        })
    );
    let nested = json!({"conversion": {"customer_ref": "c-77", "amount_minor": 10}, "keys": [{"secret": "cgk_x", "name": "n"}]});
    assert_eq!(
        redacted(nested),
        json!({"conversion": {"customer_ref": REDACTED, "amount_minor": 10}, "keys": [{"secret": REDACTED, "name": "n"}]})
    );
}

#[test]
fn redaction_keeps_nulls_and_redacts_empty_values() {
    assert_eq!(redacted(json!({"stripe_account": null, "email": ""})), json!({"stripe_account": null, "email": REDACTED}));
    assert_eq!(redacted(json!("alice@example.com")), json!("alice@example.com"), "only named fields are redacted");
}

#[test]
fn an_entry_is_redacted_whatever_its_maker_passes() {
    let e = Entry::new(&Actor::Cli, Action::PartnerUpdate, "alice", 5, Some(json!({"email": "a@x.io"})), Some(json!({"email": "b@x.io"})));
    assert_eq!((e.before, e.after), (Some(json!({"email": REDACTED})), Some(json!({"email": REDACTED}))));
    assert_eq!(snapshot(&json!({"row_id": 4, "id": "p", "email": "a@x.io"})), json!({"id": "p", "email": REDACTED}));
}

#[test]
fn actions_name_their_object_type_and_parse_strictly() {
    for a in Action::ALL {
        assert_eq!(Action::parse(a.as_str()), Some(*a));
        assert!(a.as_str().starts_with(a.object_type()) && a.as_str()[a.object_type().len()..].starts_with('.'), "{a}");
    }
    assert_eq!(Action::CommissionRulesPut.object_type(), "commission_rules");
    assert_eq!(Action::parse("partner.delete"), None);
    assert_eq!(Action::parse("PARTNER.CREATE"), None);
}

#[test]
fn an_object_filter_is_a_type_or_a_type_and_an_id() {
    let q = |s: &str| Query::default().object(s).map(|q| (q.object_type, q.object_id));
    assert_eq!(q("partner").unwrap(), (Some("partner".into()), None));
    assert_eq!(q("coupon:shop:SPRING10").unwrap(), (Some("coupon".into()), Some("shop:SPRING10".into())));
    assert!(matches!(q("invoice:1"), Err(AuditError::Invalid { field: "object", .. })));
    assert!(matches!(q("link:"), Err(AuditError::Invalid { field: "object", .. })));
}

#[test]
fn a_query_admits_what_its_filters_name() {
    let r = Record::from_row(3, 1_000, "cli".into(), "link.pause", "a1".into(), Some("{}".into()), None).unwrap();
    assert_eq!((r.object_type, r.action), ("link", "link.pause"));
    let q = |f: fn(&mut Query)| {
        let mut q = Query::default();
        f(&mut q);
        q.admits(&r)
    };
    assert!(q(|_| {}));
    assert!(q(|q| q.since_ms = Some(1_000)));
    assert!(!q(|q| q.since_ms = Some(1_001)));
    assert!(!q(|q| q.actor = Some("admin".into())));
    assert!(!q(|q| q.object_type = Some("partner".into())));
    assert!(!q(|q| q.object_id = Some("a2".into())));
    assert!(Record::from_row(4, 0, "cli".into(), "link.delete", "a1".into(), None, None).is_err(), "an unknown action is refused");
}
