//! Crash test of payout runs: before each kill, 150 new partners earn; `clickgate payouts run`
//! pays them (and whatever a killed run left) through the local Stripe and is killed with
//! SIGKILL at a random moment (seeded). At the end, runs are started until one finishes with
//! nothing left. Afterwards each partner was paid exactly once: one transfer per partner in the
//! Stripe server's record, one per idempotency key, of the partner's whole amount; every payout
//! is `paid`; nothing is left payable or in transit; and `clickgate ledger verify` is clean.
//!
//! It runs on SQLite, and on PostgreSQL with `--include-ignored`. The lock lease is 1 s here, so the next process takes a killed run's lock over and resumes
//! it. `CLICKGATE_PAYOUT_CRASH_KILLS` sets the number of kills (default 6),
//! `CLICKGATE_PAYOUT_CRASH_SEED` the seed of the kill moments (printed either way).

mod common;
#[macro_use]
mod payouts_support;

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use clickgate::ledger::AccountKind;
use clickgate::payouts::{PayoutFilter, PayoutMethod, PayoutStatus};
use clickgate::testing::stripe::StripeServer;
use payouts_support::*;

const KEY: &str = "sk_test_51PayoutCrashLocalKey";
/// New partners per kill.
const PARTNERS: usize = 150;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn a_payout_run_killed_at_random_moments_and_rerun_pays_each_partner_exactly_once() {
    killed_and_rerun(Backend::Sqlite);
}

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn on_postgres_a_payout_run_killed_at_random_moments_and_rerun_pays_each_partner_exactly_once() {
    killed_and_rerun(Backend::Pg);
}

fn killed_and_rerun(backend: Backend) {
    let kills = env_or("CLICKGATE_PAYOUT_CRASH_KILLS", 6);
    let seed = env_or("CLICKGATE_PAYOUT_CRASH_SEED", fastrand::u64(..));
    eprintln!("payout crash test: {kills} kills, seed {seed} (CLICKGATE_PAYOUT_CRASH_SEED={seed} replays it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let server = StripeServer::start(KEY).unwrap();
    let mut w = World::new(backend);
    let database_url = w.schema.as_ref().map(|s| s.url.clone()).unwrap_or_default();
    let mut want = BTreeMap::new();
    // Before each kill, new partners earn: every run has work when its kill comes.
    let mut earn_round = |w: &mut World, round: u64| {
        let mut new = Vec::new();
        for i in 0..PARTNERS {
            let id = format!("p{round}x{i:03}");
            w.add_partner(&id, PayoutMethod::Stripe, Some(&format!("acct_{round}x{i}")), None);
            new.push((id.clone(), 5_000 + i as i64));
            want.insert(id, 5_000 + i as i64);
        }
        let sales: Vec<(&str, &str, i64)> = new.iter().map(|(p, a)| ("shop", p.as_str(), a * 10)).collect();
        w.earn_all(&sales);
    };
    let config = w.dir.path().join("clickgate.toml");
    let toml = format!(
        "[payouts]\nlock_lease_ms = 1000\nbatch_len_max = 16\n[payouts.stripe]\napi_base = \"{}\"\nbackoff_base_ms = 1\nbackoff_max_ms = 2\n",
        server.base()
    );
    std::fs::write(&config, toml).unwrap();
    let data_dir = w.dir.path().to_path_buf();
    let run = || {
        let mut c = Command::new(common::BIN);
        c.args(["--config", config.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap(), "payouts", "run"])
            .env("CLICKGATE_STRIPE_SECRET_KEY", KEY)
            .env("CLICKGATE_DATABASE_URL", &database_url)
            .env("CLICKGATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        c
    };

    let mut progress = Vec::new();
    for round in 0..kills {
        earn_round(&mut w, round);
        let mut child = run().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(10..300)));
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        progress.push(format!("{}{}", server.transfer_count(), if running { "" } else { " (had exited)" }));
        // The killed run's lease runs out, so the next process takes its lock over.
        std::thread::sleep(Duration::from_millis(1100));
    }
    eprintln!("payout crash test: transfers after each kill: {}", progress.join(", "));
    // Runs until one finishes with nothing left: each resumes what a killed one left.
    let mut finished = false;
    for _ in 0..5 {
        let out = run().output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if out.status.success() && report["resumed"] == false && report["plan"]["payouts"].as_array().is_some_and(|p| p.is_empty()) {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(finished, "no run finished with nothing left to pay");

    let transfers = server.transfers();
    let keys: HashSet<&str> = transfers.iter().map(|t| t.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), transfers.len(), "a key made two transfers");
    let mut paid: BTreeMap<String, i64> = BTreeMap::new();
    for t in &transfers {
        let partner = t.metadata["partner"].clone();
        assert!(paid.insert(partner.clone(), t.amount).is_none(), "partner {partner} was paid twice");
    }
    assert_eq!(paid, want, "each partner is paid their whole amount, once");
    let desk = w.desk(None, None);
    let mut payouts = Vec::new();
    loop {
        let after = payouts.last().map(|p: &clickgate::payouts::Payout| p.id.clone());
        let page = desk.payouts(&PayoutFilter { limit: 1000, after, ..Default::default() }).unwrap();
        if page.is_empty() {
            break;
        }
        payouts.extend(page);
    }
    assert_eq!(payouts.len(), want.len(), "one payout per partner");
    assert!(payouts.iter().all(|p| p.status == PayoutStatus::Paid), "every payout is paid");
    for (partner, amount) in &want {
        assert_eq!(w.balance(AccountKind::PartnerPaid, partner).credits_posted, *amount, "{partner}");
        assert_eq!(w.available(partner), 0, "{partner}");
    }
    let env = [("CLICKGATE_DATABASE_URL", database_url.clone())];
    let (code, out, err) = common::run_cli_env(&config, w.dir.path(), &["ledger", "verify"], "", &env);
    assert_eq!(code, 0, "ledger verify: {out}{err}");
    assert_eq!(w.verify().pending_open, 0);
}
