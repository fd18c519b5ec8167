//! Subnets as units, link-level surges and carrier-grade NAT, through the whole pipeline.

use super::*;

/// Dedup off, so the velocity rules are seen alone; `extra` adds velocity keys.
fn velocity_only(extra: &str) -> Fixture {
    fixture(&format!("[checks.dedup]\nmode = \"off\"\n[checks.velocity]\n{extra}\n"))
}

/// A window-aligned start, so sliding counts are exact.
fn aligned() -> u64 {
    T0 - T0 % 60_000
}

#[test]
fn addresses_inside_one_ipv6_64_are_one_client() {
    let f = fixture("");
    assert_eq!(f.run("2001:db8:1:2::1", CHROME, "demo", false, T0).0, Verdict::Valid);
    assert_eq!(f.run("2001:db8:1:2:ffff::9", CHROME, "demo", false, T0 + 1).1, ["duplicate"], "same /64");
    assert_eq!(f.run("2001:db8:1:3::1", CHROME, "demo", false, T0 + 2).0, Verdict::Valid, "another /64");

    // A new interface id and agent on every click: the 11th on one link trips velocity_link_ip.
    let f = velocity_only("");
    for i in 0..12u64 {
        let ip = format!("2001:db8:7:7:{:x}::{:x}", i + 1, i * 7 + 3);
        let (_, reasons, _) = f.run(&ip, &format!("Mozilla/5.0 v{i}"), "demo", false, aligned() + i * 1000);
        assert_eq!(reasons.contains(&"velocity_link_ip"), i >= 10, "click {i}: {reasons:?}");
    }
}

#[test]
fn rotation_inside_a_24_trips_the_link_subnet_rule_in_its_own_mode() {
    for (mode, enforced) in [("observe", false), ("enforce", true)] {
        let f = velocity_only(&format!("link_subnet_mode = \"{mode}\""));
        for i in 0..25u64 {
            let ip = format!("198.51.100.{}", i + 1);
            let (verdict, reasons, observed) = f.run(&ip, &format!("Mozilla/5.0 v{i}"), "demo", false, aligned() + i * 1000);
            let fired = i >= 20;
            let (in_reasons, in_observed) = (reasons.contains(&"velocity_link_subnet"), observed.contains(&"velocity_link_subnet"));
            assert_eq!((in_reasons, in_observed), (fired && enforced, fired && !enforced), "{mode} click {i}");
            assert_eq!(verdict == Verdict::Flagged, fired && enforced, "{mode} click {i}");
        }
        // The same /24 on another link counts apart.
        assert_eq!(f.run("198.51.100.200", CHROME, "other", false, aligned() + 30_000).0, Verdict::Valid);
    }
}

/// A distinct address for click `i`, each in its own /24.
fn spread(i: u64) -> String {
    format!("198.18.{}.{}", i % 250, i / 250 + 1)
}

#[test]
fn a_surge_over_a_links_own_baseline_fires_velocity_link() {
    let f = velocity_only("link_surge_mode = \"enforce\"\nlink_surge_min = 20");
    let start = aligned();
    let mut n = 0;
    let mut click = |at: u64| {
        n += 1;
        let (_, reasons, _) = f.run(&spread(n), &format!("Mozilla/5.0 v{n}"), "demo", false, at);
        reasons.contains(&"velocity_link")
    };
    // Thirty minutes of ten clicks a minute: the baseline, never a surge.
    for m in 0..30u64 {
        for k in 0..10u64 {
            assert!(!click(start + m * 60_000 + k * 6_000), "steady minute {m}");
        }
    }
    // Then a hundred clicks in one minute: above the floor (20) and four times the baseline
    // (about 10 a minute), the rule fires well before the minute ends.
    let spray = start + 30 * 60_000;
    let first = (0..100u64).find(|k| click(spray + k * 600)).expect("a spray of 100 a minute fires velocity_link");
    assert!((25..60).contains(&first), "fired at spray click {first}");
}

#[test]
fn a_busy_link_right_after_start_is_not_a_surge() {
    let f = velocity_only("link_surge_mode = \"enforce\"\nlink_surge_min = 20");
    for i in 0..250u64 {
        // Fifty a minute from the first click on: busy, but steady since the process started.
        let (_, reasons, _) = f.run(&spread(i), &format!("Mozilla/5.0 v{i}"), "demo", false, aligned() + i * 1200);
        assert!(!reasons.contains(&"velocity_link"), "click {i}");
    }
}

#[test]
fn carrier_nat_addresses_are_not_deduplicated_but_still_counted() {
    // 1.128.0.0/11 is AS1221 in the fixture ASN database.
    let f = fixture("[checks.dedup]\nshared_address_asns = [1221]\n");
    for i in 0..5u64 {
        assert_eq!(f.run("1.128.0.1", CHROME, "demo", false, T0 + i).0, Verdict::Valid, "diner {i} at one table");
    }
    let f = fixture("[checks.dedup]\nshared_address_asns = [7018]\n");
    assert_eq!(f.run("1.128.0.1", CHROME, "demo", false, T0).0, Verdict::Valid);
    assert_eq!(f.run("1.128.0.1", CHROME, "demo", false, T0 + 1).1, ["duplicate"], "another carrier's list");
    // Velocity still counts a carrier address: the 11th click on one link is flagged.
    let f = fixture("[checks.dedup]\nshared_address_asns = [1221]\n");
    let flagged = (0..11u64).filter(|i| f.run("1.128.0.1", CHROME, "demo", false, aligned() + i).0 == Verdict::Flagged).count();
    assert_eq!(flagged, 1);
}

#[test]
fn a_rule_with_its_own_mode_takes_the_stricter_of_its_stages() {
    use crate::config::Mode::{Enforce, Observe, Off};
    for (stage, rule, want) in [
        (Enforce, Enforce, (true, false)),
        (Enforce, Observe, (false, true)),
        (Observe, Enforce, (false, true)),
        (Enforce, Off, (false, false)),
        (Off, Enforce, (false, false)),
    ] {
        let mut f = Findings { mode: stage, ..Findings::default() };
        f.hit_as(rule, Reason::VelocityLink, Action::Flag);
        assert_eq!((f.reasons.contains(Reason::VelocityLink), f.observed.contains(Reason::VelocityLink)), want, "{stage:?} {rule:?}");
        assert_eq!(f.flag, want.0);
        assert_eq!(f.mode, stage, "the stage's mode is restored");
    }
}

#[test]
fn bad_signal_settings_are_refused_by_name() {
    for (text, key) in [
        ("[checks.velocity]\nlink_surge_factor = 0.5\n", "checks.velocity.link_surge_factor"),
        ("[checks.velocity]\nwindow_ms = 60000\nlink_baseline_window_ms = 60000\n", "checks.velocity.link_baseline_window_ms"),
        ("[checks.velocity]\nlink_subnet_mode = \"sometimes\"\n", "link_subnet_mode"),
        ("[checks.dedup]\nshared_address_asns = [\"AS1221\"]\n", "shared_address_asns"),
    ] {
        let err =
            Config::parse(text, std::path::Path::new("test.toml")).err().unwrap_or_else(|| panic!("{text:?} was accepted")).to_string();
        assert!(err.contains(key), "{text:?}: {err}");
    }
}
