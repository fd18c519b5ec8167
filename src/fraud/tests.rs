use super::*;
use crate::model::Reasons;

const HOUR: u64 = 3_600_000;
const T0: u64 = 1_763_798_400_000; // a window start (a whole hour)

fn click(ts_ms: u64, partner: &str, link: &str, verdict: Verdict, observed: &[Reason]) -> ClickEvent {
    let mut o = Reasons::default();
    observed.iter().for_each(|r| o.insert(*r));
    ClickEvent {
        program: "shop".into(),
        partner: partner.into(),
        link: link.into(),
        verdict,
        observed: o,
        new_visitor: true,
        ..crate::testing::click(crate::testing::click_signer().mint(ts_ms, 1, 1), ts_ms)
    }
}

fn watch() -> FraudWatch {
    FraudWatch::new(&FraudAlerts { partner_min_clicks: 10, link_surge_clicks: 5, ..FraudAlerts::default() })
}

#[test]
fn a_partner_whose_flagged_share_reaches_the_threshold_alerts_once_per_window() {
    let mut w = watch();
    let mut out = Vec::new();
    // Nine valid clicks, then flagged ones: the share reaches one half at the 18th click.
    for i in 0..9 {
        w.observe(&click(T0 + i, "alice", "a1", Verdict::Valid, &[]), &mut out);
    }
    let mut fired_at = None;
    for i in 9..40 {
        w.observe(&click(T0 + i, "alice", "a1", Verdict::Flagged, &[]), &mut out);
        if !out.is_empty() {
            fired_at.get_or_insert(i + 1);
        }
    }
    assert_eq!(fired_at, Some(18), "9 valid and 9 flagged is a share of 0.5");
    assert_eq!(out.len(), 1, "once per window: {out:?}");
    let a = &out[0];
    assert_eq!((a.kind, a.clicks, a.not_valid, &*a.partner, a.window_start_ms), (AlertKind::PartnerFlaggedShare, 18, 9, "alice", T0));
    assert_eq!(a.cause(), format!("fraud:partner_flagged_share:alice:{T0}"));
    assert_eq!(a.link, None);

    // The next window starts over, and fires again on the same behaviour.
    out.clear();
    for i in 0..20 {
        w.observe(&click(T0 + HOUR + i, "alice", "a1", Verdict::Flagged, &[]), &mut out);
    }
    assert_eq!(out.iter().map(|a| a.window_start_ms).collect::<Vec<_>>(), [T0 + HOUR]);
}

#[test]
fn too_few_clicks_or_a_low_share_raise_nothing() {
    let mut w = watch();
    let mut out = Vec::new();
    for i in 0..9 {
        w.observe(&click(T0 + i, "bob", "b1", Verdict::Blocked, &[]), &mut out);
    }
    assert!(out.is_empty(), "9 clicks are under partner_min_clicks");
    let mut w = watch();
    for i in 0..100 {
        let v = if i % 3 == 0 { Verdict::Flagged } else { Verdict::Valid };
        w.observe(&click(T0 + i, "bob", "b1", v, &[]), &mut out);
    }
    assert!(out.is_empty(), "a third is under one half: {out:?}");
}

#[test]
fn a_link_surge_alerts_on_clicks_velocity_link_caught_even_in_observe() {
    let mut w = watch();
    let mut out = Vec::new();
    for i in 0..4 {
        w.observe(&click(T0 + i, "carol", "c1", Verdict::Valid, &[Reason::VelocityLink]), &mut out);
        w.observe(&click(T0 + i, "carol", "c2", Verdict::Valid, &[Reason::VelocityLink]), &mut out);
    }
    assert!(out.is_empty(), "4 caught clicks a link, under 5");
    w.observe(&click(T0 + 10, "carol", "c1", Verdict::Valid, &[Reason::VelocityLink]), &mut out);
    assert_eq!(out.len(), 1);
    let a = &out[0];
    assert_eq!((a.kind, a.link.as_deref(), a.surging, a.clicks), (AlertKind::LinkSurge, Some("c1"), 5, 5));
    assert_eq!(a.cause(), format!("fraud:link_surge:c1:{T0}"));
    let json = serde_json::to_string(a).unwrap();
    assert_eq!(
        json,
        format!(
            r#"{{"clicks":5,"kind":"link_surge","link":"c1","not_valid":0,"partner":"carol","program":"shop","surging":5,"window_start_ms":{T0}}}"#
        )
    );
}
