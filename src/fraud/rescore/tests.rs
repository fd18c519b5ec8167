use super::*;
use crate::attribution::engine::{Method, Share, Source, Touch};
use crate::attribution::Model;
use crate::model::{ClickId, Reason};

fn id(n: u8) -> ClickId {
    ClickId([n; crate::model::CLICK_ID_BYTES])
}

fn reasons(rs: &[Reason]) -> Reasons {
    let mut out = Reasons::default();
    rs.iter().for_each(|r| out.insert(*r));
    out
}

fn touch(source: Source, click: Option<u8>, partner: &str, counted: bool, why: Why) -> Touch {
    Touch {
        source,
        click_id: click.map(id),
        partner: partner.into(),
        link: None,
        channel: None,
        ts_ms: 1,
        verdict: None,
        reasons: vec![],
        counted,
        why,
        share_minor: None,
    }
}

fn attribution(touches: Vec<Touch>, partners: &[&str]) -> Attribution {
    Attribution {
        method: Method::ClickId,
        model: Model::Linear,
        window_days: 30,
        half_life_hours: None,
        shares: partners.iter().map(|p| Share { partner: p.to_string(), amount_minor: 100 }).collect(),
        touches,
        notes: vec![],
    }
}

#[test]
fn the_tally_counts_pairs_reasons_and_flips() {
    let mut t = Tally::default();
    let valid = (Verdict::Valid, Reasons::default());
    let bot = (Verdict::Flagged, reasons(&[Reason::BotUa]));
    let denied = (Verdict::Blocked, reasons(&[Reason::IpDenylisted, Reason::BotUa]));
    assert_eq!(t.add(valid, bot), Some(false), "valid → flagged flips to not valid");
    assert_eq!(t.add(bot, valid), Some(true), "flagged → valid flips to valid");
    assert_eq!(t.add(bot, denied), None, "flagged → blocked stays not valid");
    assert_eq!(t.add(valid, valid), None);
    t.keep(Verdict::Flagged);
    assert_eq!((t.clicks, t.changed, t.kept), (5, 3, 1));
    assert_eq!(t.verdicts["valid->flagged"], 1);
    assert_eq!(t.verdicts["flagged->valid"], 1);
    assert_eq!(t.verdicts["flagged->blocked"], 1);
    assert_eq!(t.verdicts["valid->valid"], 1);
    assert_eq!(t.verdicts["flagged->flagged"], 1, "a kept click counts as unchanged");
    assert_eq!(t.reasons_added, [("bot_ua", 1), ("ip_denylisted", 1)].into_iter().collect());
    assert_eq!(t.reasons_removed, [("bot_ua", 1)].into_iter().collect());
}

#[test]
fn a_partner_loses_only_when_every_counted_click_turned_invalid() {
    let a = attribution(
        vec![
            touch(Source::ClickId, Some(1), "alice", true, Why::Counted),
            touch(Source::ClickIdVisitor, Some(2), "alice", true, Why::Counted),
            touch(Source::ClickIdVisitor, Some(3), "bob", true, Why::Counted),
            touch(Source::ClickIdVisitor, Some(4), "bob", false, Why::OutsideWindow),
        ],
        &["alice", "bob"],
    );
    let flips: Flips = [(id(1), false), (id(3), false), (id(4), false)].into_iter().collect();
    let changes = credit_changes("c1", &a, &flips);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].partner.as_str(), changes[0].direction), ("bob", Direction::Loses));
    assert_eq!(changes[0].clicks.len(), 1, "only the counted click is named");

    let flips: Flips = [(id(1), false), (id(2), false)].into_iter().collect();
    let changes = credit_changes("c1", &a, &flips);
    assert_eq!(changes.iter().map(|c| (c.partner.as_str(), c.direction)).collect::<Vec<_>>(), [("alice", Direction::Loses)]);
    assert_eq!(changes[0].clicks.len(), 2);
}

#[test]
fn a_coupon_credit_never_rests_on_clicks_and_clicks_now_valid_are_gains() {
    let a = attribution(
        vec![
            touch(Source::Coupon, None, "bob", true, Why::Counted),
            touch(Source::Visitor, Some(5), "bob", true, Why::Counted),
            touch(Source::Visitor, Some(6), "carol", false, Why::NotValid),
            touch(Source::Visitor, Some(7), "carol", false, Why::NotValid),
            touch(Source::Visitor, Some(8), "dave", false, Why::NotValid),
        ],
        &["bob"],
    );
    let flips: Flips = [(id(5), false), (id(6), true), (id(7), true)].into_iter().collect();
    let changes = credit_changes("c2", &a, &flips);
    assert_eq!(
        changes.iter().map(|c| (c.partner.as_str(), c.direction, c.clicks.len())).collect::<Vec<_>>(),
        [("carol", Direction::Gains, 2)]
    );
}

#[test]
fn the_audit_reason_names_the_rules_and_drops_control_characters() {
    assert_eq!(audit_reason("abc123", " ring\nof /24 "), "rescore:abc123:ring of /24");
    assert_eq!(audit_reason("d", &"x".repeat(500)).len(), "rescore:d:".len() + 200);
}
