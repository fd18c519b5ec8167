//! The payout details on `partner add` and `program add`, validated, and `clickgate payouts`
//! on a fresh data dir: a dry run, a run, its listing and a refused confirmation.

mod common;

use common::*;
use serde_json::Value;

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, fixture_config("")).unwrap();
    let data = dir.path().join("data");
    (dir, config, data)
}

fn json_line(out: &str) -> Value {
    serde_json::from_str(out.lines().next().unwrap_or("")).unwrap_or_else(|e| panic!("{out}: {e}"))
}

#[test]
fn partner_and_program_payout_details_are_validated_and_shown() {
    let (_d, config, data) = setup();
    let program = |extra: &[&str]| {
        let mut args = vec!["program", "add", "--id", "shop", "--name", "Shop", "--currency", "EUR", "--allow-domain", "shop.example"];
        args.extend(["--fallback-url", "https://shop.example/"]);
        args.extend(extra);
        run_cli(&config, &data, &args, "")
    };
    let (code, _, err) = program(&["--payout-schedule", "daily"]);
    assert!(code == 2 && err.contains("daily"), "{err}");
    let (code, _, err) = program(&["--payout-threshold-minor", "0"]);
    assert!(code == 2 && err.contains("payout_threshold_minor"), "{err}");
    let (code, out, err) = program(&["--payout-threshold-minor", "2500", "--payout-schedule", "monthly:15"]);
    assert_eq!(code, 0, "{err}");
    let p = json_line(&out);
    assert_eq!((p["payout_threshold_minor"].as_i64(), p["payout_schedule"].as_str()), (Some(2500), Some("monthly:15")));

    let partner = |args: &[&str]| {
        let mut all = vec!["partner", "add", "--name", "Dana", "--email", "dana@example.com"];
        all.extend(args);
        run_cli(&config, &data, &all, "")
    };
    let (code, _, err) = partner(&["--id", "dana", "--payout-method", "stripe"]);
    assert!(code == 2 && err.contains("stripe_account"), "{err}");
    let (code, _, err) = partner(&["--id", "dana", "--payout-method", "stripe", "--stripe-account", "acct_no-dash"]);
    assert!(code == 2 && err.contains("acct_no-dash"), "{err}");
    let (code, _, err) = partner(&["--id", "dana", "--payout-method", "paypal", "--paypal-email", "not-an-email"]);
    assert!(code == 2 && err.contains("paypal_email"), "{err}");
    let (code, _, err) = partner(&["--id", "dana", "--payout-method", "cheque"]);
    assert!(code == 2 && err.contains("cheque"), "{err}");
    let (code, out, err) = partner(&["--id", "dana", "--payout-method", "stripe", "--stripe-account", "acct_1Dana"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_line(&out)["stripe_account"], "acct_1Dana");
    let (code, out, _) = run_cli(&config, &data, &["partner", "list"], "");
    assert_eq!(code, 0);
    let dana = out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|p| p["id"] == "dana").unwrap();
    assert_eq!((dana["payout_method"].as_str(), dana["stripe_account"].as_str()), (Some("stripe"), Some("acct_1Dana")));

    // The update paths: a partner's payout details and a program's threshold and schedule.
    let set = |args: &[&str]| run_cli(&config, &data, args, "");
    let (code, _, err) = set(&["partner", "set-payout", "--id", "dana", "--payout-method", "paypal"]);
    assert!(code == 2 && err.contains("paypal_email"), "{err}");
    let (code, _, err) = set(&["partner", "set-payout", "--id", "nobody", "--payout-method", "manual"]);
    assert!(code == 2 && err.contains("nobody"), "{err}");
    let (code, out, err) =
        set(&["partner", "set-payout", "--id", "dana", "--payout-method", "paypal", "--paypal-email", "d@pay.example.com"]);
    assert_eq!(code, 0, "{err}");
    let dana = json_line(&out);
    assert_eq!(
        (dana["payout_method"].as_str(), dana["paypal_email"].as_str(), dana["stripe_account"].as_str()),
        (Some("paypal"), Some("d@pay.example.com"), None)
    );
    let (code, _, err) =
        set(&["program", "set-payout", "--id", "shop", "--payout-threshold-minor", "100", "--payout-schedule", "weekly:any"]);
    assert!(code == 2 && err.contains("weekly:any"), "{err}");
    let (code, out, err) =
        set(&["program", "set-payout", "--id", "shop", "--payout-threshold-minor", "100", "--payout-schedule", "weekly:fri"]);
    assert_eq!(code, 0, "{err}");
    let p = json_line(&out);
    assert_eq!((p["payout_threshold_minor"].as_i64(), p["payout_schedule"].as_str()), (Some(100), Some("weekly:fri")));
    let (_, out, _) = run_cli(&config, &data, &["partner", "list"], "");
    let dana = out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|p| p["id"] == "dana").unwrap();
    assert_eq!(dana["paypal_email"], "d@pay.example.com", "stored");
}

#[test]
fn payouts_commands_run_list_and_refuse_an_unknown_run() {
    let (_d, config, data) = setup();
    let (code, _, err) = run_cli(&config, &data, &["migrate"], "");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_cli(&config, &data, &["payouts", "run", "--dry-run"], "");
    assert_eq!(code, 0, "{err}");
    let dry = json_line(&out);
    assert_eq!((dry["dry_run"].as_bool(), dry["plan"]["payouts"].as_array().map(Vec::len)), (Some(true), Some(0)));
    let (code, out, err) = run_cli(&config, &data, &["payouts", "run", "--currency", "USD"], "");
    assert_eq!(code, 0, "{err}");
    let run = json_line(&out);
    let id = run["run_id"].as_str().unwrap();
    assert!(id.starts_with("pr_") && run["resumed"] == false, "{run}");
    let (code, out, _) = run_cli(&config, &data, &["payouts", "list", "--run", id], "");
    assert_eq!((code, out.as_str()), (0, ""), "the run paid nobody");
    let (code, _, err) = run_cli(&config, &data, &["payouts", "confirm", "pr_0000000000000000"], "");
    assert!(code == 2 && err.contains("not found"), "{err}");
    let (code, _, err) = run_cli(&config, &data, &["payouts", "list", "--status", "lost"], "");
    assert!(code == 2 && err.contains("lost"), "{err}");
}
