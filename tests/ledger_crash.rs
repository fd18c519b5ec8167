//! Crash test of the conversion writer and the ledger: conversions stream at full speed into
//! `clickgate serve` while it is killed with SIGKILL at random moments and restarted on the
//! same data dir. Afterwards every conversion the API acknowledged must be in the store exactly
//! once, with the commissions its answer named, each reserved by exactly one transfer; every
//! acknowledged refund must be applied once; every payout settled by hand (`clickgate payouts
//! settle`, run while the server is down) must have paid its commissions once, by one pending
//! transfer and its post; and the store must pass `PRAGMA integrity_check` and `clickgate
//! ledger verify`.
//!
//! Each kill comes 100-600 ms (seeded) after the stream was last answered again following a
//! restart, so every kill lands with requests and grouped commits in flight.
//!
//! `CLICKGATE_CRASH_KILLS` sets the number of kills (default 12; `loadtest/crash.sh` runs 200),
//! `CLICKGATE_CRASH_SEED` the seed of the kill moments, amounts and mix (printed either way),
//! `CLICKGATE_CRASH_CLIENTS` the number of concurrent clients (default 24). The figures are
//! written to stderr past the test harness's capture, so `cargo test` shows them.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::crash::{check_store, config_text, env_or, tail, Db, Payouts, Value};
use common::stream::{Stream, StreamConfig};
use common::*;

const ADMIN_KEY: &str = "demo-admin-key";
/// After a restart, the stream must be answered again within this long.
const RESUME_MAX: Duration = Duration::from_secs(60);

/// Writes past the test harness's output capture, so the figures show in a plain `cargo test`.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "ledger_crash: {line}");
}

#[test]
fn acknowledged_conversions_survive_sigkill_exactly_once() {
    let kills: u32 = env_or("CLICKGATE_CRASH_KILLS", 12);
    let seed: u64 = env_or("CLICKGATE_CRASH_SEED", fastrand::u64(..));
    let clients: usize = env_or("CLICKGATE_CRASH_CLIENTS", 24);
    // The harness has just written "test <name> ... " without a newline.
    let _ = writeln!(std::io::stderr().lock());
    say(&format!("seed {seed} (CLICKGATE_CRASH_SEED={seed} repeats the mix), {kills} kills, {clients} clients"));
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(seed);

    let mut server = Server::start(&config_text(""));
    let (config, data) = (server.config.clone(), server.data_dir());
    let stream = Stream::start(StreamConfig {
        apis: vec![server.api],
        admin_key: ADMIN_KEY.into(),
        clients,
        seed,
        program: "demo".into(),
        currency: "USD".into(),
        coupon: "BOB10".into(),
        occurred_ago_ms_max: 2 * 86_400_000 - 3_600_000,
        hedge_per_mille: 0,
    });
    let mut payouts = Payouts::default();
    let mut resume = Vec::with_capacity(kills as usize);
    for k in 1..=kills {
        // Kill mid-stream, with grouped commits in flight.
        std::thread::sleep(Duration::from_millis(rng.u64(100..=600)));
        server.kill9();
        let answered = stream.answered();
        // Now and then an admin settles bob's approved commissions by hand while the server is down.
        if k % 3 == 0 {
            payouts.settle(&config, &data, &[], &format!("crash-{seed}-{k}"));
        }
        server.restart();
        // The next kill waits until the stream moves again: a kill while the server is still
        // busy with work from before the stream resumes (such as an approval sweep that every
        // kill rolled back) would test nothing and could repeat forever.
        let ready = Instant::now();
        while stream.answered() == answered {
            let waited = ready.elapsed();
            assert!(
                waited < RESUME_MAX,
                "seed {seed}: no request answered within {waited:?} of restart {k}; log:\n{}",
                tail(&server.log())
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        resume.push(ready.elapsed());
    }
    resume.sort();
    std::thread::sleep(Duration::from_millis(500));
    let log = stream.finish(Duration::from_secs(180)).unwrap_or_else(|e| panic!("seed {seed}: {e}\nserver log:\n{}", tail(&server.log())));
    let streamed = started.elapsed();
    let status = server.terminate();
    assert!(status.success(), "seed {seed}: clickgate serve exited with {status} on SIGTERM; log:\n{}", tail(&server.log()));

    let checked = Instant::now();
    let mut db = rusqlite::Connection::open_with_flags(data.join("clickgate.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut store = check_store(&mut db, &log, &payouts);
    let integrity = db.rows("PRAGMA integrity_check");
    if integrity != [vec![Value::Text("ok".into())]] {
        store.problems.insert(0, format!("PRAGMA integrity_check: {integrity:?}"));
    }
    let (code, out, err) = run_cli(&config, &data, &["ledger", "verify"], "");
    let figures = [
        format!("kills {kills}; conversions acknowledged {}; refunds acknowledged {}", log.conversions.len(), log.refunds_acked),
        format!("exact retries of acknowledged requests replayed: {}", log.replays_checked),
        format!(
            "first answer after a restart (ready): median {} ms, max {} ms",
            resume.get(resume.len() / 2).map_or(0, Duration::as_millis),
            resume.last().map_or(0, Duration::as_millis)
        ),
        format!(
            "requests failed by kills and retried {} ({} failed attempts); committed before a kill but unanswered {}; 5xx answers {}",
            log.retried_requests, log.failed_attempts, log.committed_unanswered, log.server_errors
        ),
        format!(
            "stored: conversions {}, commissions {} (approved {}, paid {} by {} payouts), transfers {}",
            store.counts.conversions,
            store.counts.commissions,
            store.counts.approved,
            store.counts.paid,
            payouts.runs,
            store.counts.transfers
        ),
        format!("verify: {}", out.lines().find(|l| l.starts_with("ledger")).unwrap_or("(no ledger line)")),
        format!(
            "elapsed {:.1} s (stream {:.1} s, checks {:.1} s)",
            started.elapsed().as_secs_f64(),
            streamed.as_secs_f64(),
            checked.elapsed().as_secs_f64()
        ),
    ];
    store.report(say, &figures, &log, seed, (code, &out, &err));
    assert!(out.contains("sqlite integrity_check: ok\n"), "seed {seed}: {out}");
    assert!(out.contains("ledger clean:"), "seed {seed}: {out}");
    assert!(log.conversions.len() as u64 > u64::from(kills), "seed {seed}: too few conversions to have tested anything");
    say(&format!(
        "summary kills={kills} conversions_acked={} refunds_acked={} retried={} transfers={} elapsed_s={:.1}",
        log.conversions.len(),
        log.refunds_acked,
        log.retried_requests,
        store.counts.transfers,
        started.elapsed().as_secs_f64()
    ));
}
