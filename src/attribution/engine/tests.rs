use std::collections::HashMap;

use super::*;
use crate::model::Channel;
use crate::model::ClickSigner;
use crate::model::{Reason, Reasons};

const HOUR: u64 = 3_600_000;
const T: u64 = 1_763_800_000_000;

/// An in-memory index and catalog.
#[derive(Default)]
struct Fake {
    clicks: Vec<IndexedClick>,
    coupons: HashMap<String, (Arc<str>, Status)>,
}

impl TouchSource for Fake {
    fn click(&self, id: &ClickId) -> Option<IndexedClick> {
        self.clicks.iter().find(|c| c.click_id == *id).cloned()
    }

    fn visitor_touches(&self, visitor: &VisitorId, since_ms: u64, until_ms: u64) -> Vec<IndexedClick> {
        let mut v: Vec<_> =
            self.clicks.iter().filter(|c| c.visitor_id == *visitor && (since_ms..=until_ms).contains(&c.ts_ms)).cloned().collect();
        v.sort_by_key(|c| c.ts_ms);
        v
    }

    fn coupon(&self, _program: &str, code: &str) -> Option<(Arc<str>, Status)> {
        self.coupons.get(&code.to_ascii_uppercase()).cloned()
    }

    fn is_partner(&self, partner: &str, customer_ref: &str) -> bool {
        partner.eq_ignore_ascii_case(customer_ref)
    }
}

fn signer() -> ClickSigner {
    ClickSigner::new(&[(1, b"engine-test-key-0123".to_vec())])
}

fn touch(fake: &mut Fake, partner: &str, ts_ms: u64, visitor: u8, verdict: Verdict) -> ClickId {
    let id = signer().mint(ts_ms, 1, 1);
    let mut reasons = Reasons::default();
    if verdict != Verdict::Valid {
        reasons.insert(Reason::BotUa);
    }
    fake.clicks.push(IndexedClick {
        click_id: id,
        ts_ms,
        program: "shop".into(),
        partner: partner.into(),
        link: format!("{partner}-link").into(),
        channel: Channel::Web,
        verdict,
        reasons,
        visitor_id: VisitorId([visitor; 16]),
    });
    id
}

fn facts(click_id: Option<ClickId>, visitor: Option<u8>, coupon: Option<&'static str>) -> Facts<'static> {
    Facts {
        program: "shop",
        occurred_at_ms: T,
        amount_minor: 1000,
        click_id: click_id.map(Ok),
        visitor_id: visitor.map(|v| VisitorId([v; 16])),
        coupon_code: coupon,
        customer_ref: None,
    }
}

fn settings(model: Model) -> Settings {
    Settings { model, ..Settings::default() }
}

fn shares(a: &Attribution) -> Vec<(&str, i64)> {
    a.shares.iter().map(|s| (s.partner.as_str(), s.amount_minor)).collect()
}

#[test]
fn a_click_id_credits_its_partner() {
    let mut f = Fake::default();
    let id = touch(&mut f, "alice", T - HOUR, 1, Verdict::Valid);
    let a = attribute(&settings(Model::LastClick), &facts(Some(id), None, None), &f);
    assert_eq!(a.method, Method::ClickId);
    assert_eq!(shares(&a), [("alice", 1000)]);
    assert_eq!(a.touches[0].why, Why::Counted);
}

#[test]
fn the_click_ids_visitor_journey_is_split_by_the_model() {
    let mut f = Fake::default();
    touch(&mut f, "alice", T - 48 * HOUR, 1, Verdict::Valid);
    let id = touch(&mut f, "bob", T - HOUR, 1, Verdict::Valid);
    let a = attribute(&settings(Model::Linear), &facts(Some(id), None, None), &f);
    assert_eq!(shares(&a), [("alice", 500), ("bob", 500)]);
    assert_eq!(a.touches.iter().map(|t| t.source).collect::<Vec<_>>(), [Source::ClickIdVisitor, Source::ClickId]);
    let a = attribute(&settings(Model::FirstClick), &facts(Some(id), None, None), &f);
    assert_eq!(shares(&a), [("alice", 1000)]);
}

#[test]
fn touches_that_do_not_count_say_why() {
    let mut f = Fake::default();
    let window = Settings::default().window_ms();
    touch(&mut f, "old", T - window - 1, 1, Verdict::Valid);
    touch(&mut f, "bot", T - 2 * HOUR, 1, Verdict::Flagged);
    touch(&mut f, "late", T + 1, 1, Verdict::Valid);
    touch(&mut f, "injected", T - 5_000, 1, Verdict::Valid);
    touch(&mut f, "good", T - 3 * HOUR, 1, Verdict::Valid);
    let a = attribute(&settings(Model::Linear), &facts(None, Some(1), None), &f);
    let why: HashMap<&str, Why> = a.touches.iter().map(|t| (t.partner.as_str(), t.why)).collect();
    assert_eq!(why["bot"], Why::NotValid);
    assert_eq!(why["injected"], Why::ClickInjection);
    assert_eq!(why["good"], Why::Counted);
    // Outside the window or after the sale, the index query leaves them out altogether.
    assert!(!why.contains_key("old") && !why.contains_key("late"));
    assert_eq!(shares(&a), [("good", 1000)]);
    let bot = a.touches.iter().find(|t| t.partner == "bot").unwrap();
    assert_eq!(bot.reasons, ["bot_ua"]);
}

#[test]
fn a_rejected_click_id_falls_back_to_the_visitor_then_the_coupon() {
    let mut f = Fake::default();
    f.coupons.insert("SAVE".into(), ("carol".into(), Status::Active));
    touch(&mut f, "alice", T - HOUR, 2, Verdict::Valid);
    let mut fx = facts(None, Some(2), Some("save"));
    fx.click_id = Some(Err(ClickIdError::BadSignature));
    let a = attribute(&settings(Model::LastClick), &fx, &f);
    assert_eq!((a.method, shares(&a)), (Method::Visitor, vec![("alice", 1000)]));
    assert!(a.notes[0].contains("signature does not match"));
    // No visitor touches: the coupon decides.
    let a = attribute(&settings(Model::LastClick), &facts(None, Some(9), Some("save")), &f);
    assert_eq!((a.method, shares(&a)), (Method::Coupon, vec![("carol", 1000)]));
    // Nothing at all.
    let a = attribute(&settings(Model::LastClick), &facts(None, Some(9), Some("nope")), &f);
    assert_eq!(a.method, Method::None);
    assert!(a.shares.is_empty());
    assert_eq!(a.notes.len(), 2);
}

#[test]
fn a_paused_or_expired_coupon_credits_no_one() {
    let check = |status: Status, want: Method| {
        let mut f = Fake::default();
        f.coupons.insert("SAVE".into(), ("carol".into(), status));
        let a = attribute(&settings(Model::LastClick), &facts(None, Some(9), Some("save")), &f);
        assert_eq!(a.method, want, "{status:?}");
        a
    };
    assert_eq!(shares(&check(Status::Active, Method::Coupon)), [("carol", 1000)]);
    for status in [Status::Paused, Status::Expired] {
        let a = check(status, Method::None);
        assert!(a.shares.is_empty() && a.touches.is_empty(), "{status:?}: {:?}", a.touches);
        assert!(a.notes.iter().any(|n| n.contains(status.as_str())), "{status:?}: {:?}", a.notes);
    }
}

#[test]
fn self_referral_is_rejected() {
    let mut f = Fake::default();
    f.coupons.insert("ALICE".into(), ("alice".into(), Status::Active));
    touch(&mut f, "alice", T - HOUR, 3, Verdict::Valid);
    let mut fx = facts(None, Some(3), Some("alice"));
    fx.customer_ref = Some("ALICE");
    let a = attribute(&settings(Model::LastClick), &fx, &f);
    assert_eq!(a.method, Method::None);
    assert!(a.touches.iter().all(|t| t.why == Why::SelfReferral));
}

#[test]
fn clicks_of_another_program_do_not_count() {
    let mut f = Fake::default();
    let id = touch(&mut f, "alice", T - HOUR, 4, Verdict::Valid);
    let mut fx = facts(Some(id), None, None);
    fx.program = "other";
    let a = attribute(&settings(Model::LastClick), &fx, &f);
    assert_eq!((a.method, a.touches[0].why), (Method::None, Why::OtherProgram));
}

#[test]
fn an_authentic_id_the_index_lacks_is_explained() {
    let f = Fake::default();
    let id = signer().mint(T - HOUR, 1, 1);
    let a = attribute(&settings(Model::LastClick), &facts(Some(id), None, None), &f);
    assert_eq!(a.method, Method::None);
    assert!(a.notes[0].contains("does not hold it"));
}

#[test]
fn method_names_are_their_serialized_names() {
    for m in [Method::ClickId, Method::Visitor, Method::Coupon, Method::None] {
        assert_eq!(serde_json::to_value(m).unwrap(), serde_json::Value::from(m.as_str()), "{m:?}");
    }
}
