//! The webhook events the writer's jobs put in the outbox, on every backend.

use super::backend::Backend;
use super::*;

/// Each change writes its webhook events in its own transaction, once: a new conversion its
/// attribution per partner and its commissions; a retry, a confirm and a replayed refund
/// nothing; a refund inside the lock a void, the approval sweep an approval, a refund after
/// approval a reversal. Every body is an envelope of its row's type, every id is distinct, and
/// events past their retention (30 days here) go with the next group.
pub(super) fn every_change_writes_its_webhook_events_once(b: Backend) {
    let c = b.start();
    let id = conv("o-1", 1000).id();
    let t = |transition| Op::Transition { id: id.clone(), transition };
    let (t0, day) = (1_763_800_000_000, 86_400_000);
    let types = || {
        let kinds = ["conversion.attributed", "commission.created", "commission.approved", "commission.reversed"];
        kinds.map(|k| b.count(&format!("SELECT count(*) FROM webhook_events WHERE type = '{k}' AND partner = 'bob'")))
    };
    // Each write in its own runtime call: the PostgreSQL reads below block, so they run outside.
    let write = |op: Op, k: Option<IdempotencyKey>, now_ms: u64| rt().block_on(c.answer(op, k, now_ms)).unwrap();
    write(record_op("o-1", 1000), None, t0);
    assert_eq!(types(), [1, 1, 0, 0]);
    write(record_op("o-1", 1000), None, t0 + 1);
    write(t(Transition::Confirm), None, t0 + 2);
    assert_eq!(types(), [1, 1, 0, 0], "a retry and a confirm change no commission");
    write(t(Transition::Refund(Some(300))), key("r1", "300"), t0 + 3);
    write(t(Transition::Refund(Some(300))), key("r1", "300"), t0 + 4);
    assert_eq!(types(), [1, 1, 0, 1], "one void, not replayed");
    let mut ids = std::collections::BTreeSet::new();
    for seq in 1..=3 {
        let column = |c: &str| b.text(&format!("SELECT {c} FROM webhook_events WHERE seq = {seq}"));
        let (kind, cause, data) = (column("type"), column("cause"), column("data"));
        let at = b.count(&format!("SELECT occurred_ms FROM webhook_events WHERE seq = {seq}"));
        let event =
            crate::webhooks::OutboxEvent { kind: kind.parse().unwrap(), cause: &cause, partner: Some("bob"), occurred_ms: at, data: &data };
        let body = event.envelope().unwrap();
        let envelope = crate::webhooks::Envelope::parse(body.as_bytes()).unwrap();
        assert_eq!(envelope.kind.as_str(), kind, "{body}");
        assert_eq!(envelope.data["partner"], "bob", "{body}");
        assert!(!body.contains("BOB10"), "a coupon code is customer data and stays out: {body}");
        ids.insert(event.id().unwrap());
    }
    assert_eq!(ids.len(), 3, "every event has an id of its own");
    write(Op::Approve { limit: 100 }, None, t0 + 30 * day);
    write(Op::Approve { limit: 100 }, None, t0 + 30 * day + 1);
    assert_eq!(types(), [1, 1, 1, 1], "approved once");
    write(t(Transition::Refund(None)), key("r2", "rest"), t0 + 31 * day);
    assert_eq!(types(), [0, 0, 1, 1], "the rest reversed; the first day's events are past their retention");
    assert_eq!(b.count("SELECT count(DISTINCT cause) FROM webhook_events"), 2);

    // Every event is past its retention: the next event still numbers after all before it,
    // since the delivery worker's cursor only moves forward.
    let last = b.count("SELECT max(seq) FROM webhook_events");
    write(Op::Approve { limit: 100 }, None, t0 + 100 * day);
    let alert = crate::conversions::EmitEvent {
        kind: crate::webhooks::EventType::FraudAlert,
        cause: "fraud:link_surge:c1:0".into(),
        partner: None,
        occurred_ms: (t0 + 100 * day) as i64,
        data: "{}".into(),
    };
    write(Op::Emit(alert), None, t0 + 100 * day + 1);
    assert!(b.count("SELECT min(seq) FROM webhook_events WHERE type = 'fraud.alert'") > last, "an event numbered below the cursor");
    assert_eq!(b.count("SELECT count(*) FROM webhook_events WHERE type = 'fraud.alert'"), 1);
}
