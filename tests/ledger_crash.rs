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

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::stream::{Stream, StreamConfig, StreamLog};
use common::*;

const ADMIN_KEY: &str = "demo-admin-key";
/// After a restart, the stream must be answered again within this long.
const RESUME_MAX: Duration = Duration::from_secs(60);

/// The shipped demo config, with bob's commissions locked for one day instead of 30 and the
/// approval sweep every second: conversions that happened over the last two days are then
/// about half approved while the stream runs, so refunds void some commissions, reverse
/// approved ones and claw back paid ones.
fn config_text() -> String {
    let demo = std::fs::read_to_string(format!("{ROOT}/config/clickgate.toml")).unwrap();
    let bob = "[demo.programs.commission.partners.bob]\npercent_bps = 500\nlock_days = 30\n";
    assert!(demo.contains(bob), "config/clickgate.toml no longer has bob's 5% rule as this test expects");
    demo.replace(bob, &bob.replace("lock_days = 30", "lock_days = 1")) + "\n[commission]\napprove_interval_ms = 1000\n"
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

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

    let mut server = Server::start(&config_text());
    let (config, data) = (server.config.clone(), server.data_dir());
    let stream = Stream::start(StreamConfig {
        api: server.api,
        admin_key: ADMIN_KEY.into(),
        clients,
        seed,
        program: "demo".into(),
        currency: "USD".into(),
        coupon: "BOB10".into(),
        occurred_ago_ms_max: 2 * 86_400_000 - 3_600_000,
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
            payouts.settle(&config, &data, &format!("crash-{seed}-{k}"));
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
    let db = data.join("clickgate.db");
    let store = check_store(&db, &log, &payouts);
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
    for f in &figures {
        say(f);
    }
    for s in &log.server_error_samples {
        say(&format!("5xx sample: {s}"));
    }
    assert!(store.problems.is_empty(), "seed {seed}: {} problems in the store:\n{}", store.problems.len(), store.problems.join("\n"));
    assert_eq!(code, 0, "seed {seed}: clickgate ledger verify failed:\n{out}{err}");
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

/// The last lines of a log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `clickgate payouts settle` runs: the payouts they made and the commissions they paid.
#[derive(Default)]
struct Payouts {
    runs: u32,
    paid: u64,
    /// Payout id → (amount, commissions paid), as each settlement reported it.
    made: BTreeMap<String, (i64, u64)>,
}

impl Payouts {
    fn settle(&mut self, config: &Path, data: &Path, reference: &str) {
        let args = ["payouts", "settle", "--partner", "bob", "--currency", "USD", "--reference", reference];
        let (code, out, err) = run_cli(config, data, &args, "");
        assert_eq!(code, 0, "payouts settle: {out}{err}");
        let line = out.trim();
        let r: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("payouts settle printed {line:.200}: {e}"));
        if let Some(settled) = r.get("settled") {
            let commissions = settled["commissions"].as_u64().unwrap_or_else(|| panic!("payouts settle printed {line:.200}"));
            let id = settled["payout_id"].as_str().unwrap().to_string();
            assert_eq!(settled["reference"].as_str(), Some(reference), "{line:.200}");
            self.made.insert(id, (settled["amount_minor"].as_i64().unwrap(), commissions));
            self.paid += commissions;
        }
        self.runs += 1;
    }
}

#[derive(Debug, Default)]
struct Counts {
    conversions: u64,
    commissions: u64,
    approved: u64,
    paid: u64,
    transfers: u64,
}

/// What the store holds against what was acknowledged.
struct StoreCheck {
    counts: Counts,
    problems: Vec<String>,
}

/// A commission as stored, with its events and transfers counted by step.
#[derive(Debug, Default)]
struct Stored {
    conversion_id: String,
    amount_minor: i64,
    taken_minor: i64,
    status: String,
    /// Event kind → count.
    events: BTreeMap<String, i64>,
    /// Transfer step (`reserve:0`, `reserve:n`, `void`, `approve`, `payable`, `reverse-to`,
    /// `clawback-to`) → (count, amount of the last one).
    transfers: BTreeMap<String, (i64, i64)>,
    /// The payout that holds or paid it.
    payout_id: Option<String>,
    /// What was left of it when its payout posted.
    paid_minor: i64,
}

/// A payout as stored, with its transfers by step (`send`, `paid`) as (count, amount), and
/// what partner_payable held and no payout had in transit just before it was sent.
#[derive(Debug, Default)]
struct StoredPayout {
    partner: String,
    amount_minor: i64,
    status: String,
    transfers: BTreeMap<String, (i64, i64)>,
    available_before_send: Option<i64>,
}

/// Checks the store file against the acknowledged stream and the payouts settled.
fn check_store(db: &Path, log: &StreamLog, settled: &Payouts) -> StoreCheck {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut problems = Vec::new();
    let mut bad = |p: String| {
        if problems.len() < 50 {
            problems.push(p);
        }
    };
    let rows = |sql: &str| -> Vec<Vec<rusqlite::types::Value>> {
        let mut st = conn.prepare(sql).unwrap();
        let n = st.column_count();
        st.query_map([], |r| (0..n).map(|i| r.get(i)).collect()).unwrap().collect::<Result<_, _>>().unwrap()
    };
    let s = |v: &rusqlite::types::Value| match v {
        rusqlite::types::Value::Text(t) => t.clone(),
        other => format!("{other:?}"),
    };
    let i = |v: &rusqlite::types::Value| match v {
        rusqlite::types::Value::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    };

    let integrity = rows("PRAGMA integrity_check");
    if integrity.len() != 1 || s(&integrity[0][0]) != "ok" {
        bad(format!("PRAGMA integrity_check: {:?}", integrity.iter().map(|r| s(&r[0])).collect::<Vec<_>>()));
    }

    // Conversions: every acknowledged one once, nothing else.
    let acked: HashMap<&str, _> = log.conversions.iter().map(|c| (c.id.as_str(), c)).collect();
    if acked.len() != log.conversions.len() {
        bad(format!("{} conversions acknowledged under {} ids", log.conversions.len(), acked.len()));
    }
    let mut stored = HashMap::new();
    for r in rows("SELECT id, order_id, amount_minor, refunded_minor, status FROM conversions") {
        if stored.insert(s(&r[0]), (s(&r[1]), i(&r[2]), i(&r[3]), s(&r[4]))).is_some() {
            bad(format!("conversion {} is stored twice", s(&r[0])));
        }
    }
    for c in &log.conversions {
        let Some((order_id, amount, refunded, status)) = stored.get(&c.id) else {
            bad(format!("acknowledged conversion {} (order {}) is missing", c.id, c.order_id));
            continue;
        };
        if (order_id.as_str(), *amount) != (c.order_id.as_str(), c.amount_minor) {
            bad(format!("conversion {}: stored order {order_id} of {amount}, acknowledged {} of {}", c.id, c.order_id, c.amount_minor));
        }
        // Every refund sent was retried until acknowledged, so the sum is exact.
        if *refunded != c.refunded_minor() {
            bad(format!("conversion {}: refunded_minor {refunded}, acknowledged refunds {:?}", c.id, c.refunds_minor));
        }
        let want_status = if c.refunded_minor() == c.amount_minor { "refunded" } else { "pending" };
        if status != want_status {
            bad(format!("conversion {}: status {status}, want {want_status}", c.id));
        }
    }
    for (id, (order_id, ..)) in &stored {
        if !acked.contains_key(id.as_str()) {
            bad(format!("conversion {id} (order {order_id}) is stored but was never acknowledged"));
        }
    }
    let dups = rows("SELECT program, order_id, count(*) FROM conversions GROUP BY program, order_id HAVING count(*) > 1");
    for r in dups {
        bad(format!("order {} of {} is stored {} times", s(&r[1]), s(&r[0]), i(&r[2])));
    }

    // Each conversion accrued its commissions once.
    let mut accruals: HashMap<String, i64> = HashMap::new();
    for r in rows("SELECT conversion_id FROM commission_accrued") {
        *accruals.entry(s(&r[0])).or_default() += 1;
    }
    for c in &log.conversions {
        match accruals.get(&c.id) {
            Some(1) => {}
            n => bad(format!("conversion {} is in commission_accrued {} times", c.id, n.copied().unwrap_or(0))),
        }
    }
    if accruals.len() != acked.len() {
        bad(format!("{} conversions accrued, {} acknowledged", accruals.len(), acked.len()));
    }

    // Commissions, their events and their transfers.
    let mut commissions: BTreeMap<String, Stored> = BTreeMap::new();
    for r in rows("SELECT id, conversion_id, amount_minor, voided_minor + reversed_minor, status, payout_id FROM commissions") {
        let payout_id = match &r[5] {
            rusqlite::types::Value::Null => None,
            v => Some(s(v)),
        };
        let c = Stored {
            conversion_id: s(&r[1]),
            amount_minor: i(&r[2]),
            taken_minor: i(&r[3]),
            status: s(&r[4]),
            payout_id,
            ..Stored::default()
        };
        commissions.insert(s(&r[0]), c);
    }
    for r in rows("SELECT commission_id, amount_minor FROM commission_events WHERE kind = 'paid'") {
        if let Some(c) = commissions.get_mut(&s(&r[0])) {
            c.paid_minor += i(&r[1]);
        }
    }
    let mut payouts: BTreeMap<String, StoredPayout> = BTreeMap::new();
    for r in rows("SELECT id, partner, amount_minor, status FROM payouts") {
        payouts.insert(s(&r[0]), StoredPayout { partner: s(&r[1]), amount_minor: i(&r[2]), status: s(&r[3]), ..StoredPayout::default() });
    }
    for r in rows("SELECT commission_id, kind, count(*) FROM commission_events GROUP BY commission_id, kind") {
        match commissions.get_mut(&s(&r[0])) {
            Some(c) => {
                c.events.insert(s(&r[1]), i(&r[2]));
            }
            None => bad(format!("commission events of unknown commission {}", s(&r[0]))),
        }
    }
    for r in rows("SELECT cause, count(*) FROM ledger_transfers GROUP BY cause HAVING count(*) > 1") {
        bad(format!("transfer cause {} is in the ledger {} times", s(&r[0]), i(&r[1])));
    }
    let mut transfers = 0u64;
    // Per partner, partner_payable (the stream is all USD) as (posted credits less debits, pending debits), and
    // the pending transfers still open, by id: what a payout's plan saw before it was sent.
    let mut payable: HashMap<String, (i64, i64)> = HashMap::new();
    let mut open: HashMap<Vec<u8>, i64> = HashMap::new();
    let sql = "SELECT cause, amount_minor, kind, id, pending_id, debit_kind, debit_owner, credit_kind, credit_owner FROM ledger_transfers
               ORDER BY seq";
    for r in rows(sql) {
        transfers += 1;
        let cause = s(&r[0]);
        let amount = i(&r[1]);
        let blob = |v: &rusqlite::types::Value| match v {
            rusqlite::types::Value::Blob(b) => b.clone(),
            other => panic!("not a blob: {other:?}"),
        };
        let parts: Vec<&str> = cause.splitn(3, ':').collect();
        if parts.len() == 3 && parts[0] == "payout" {
            let Some(p) = payouts.get_mut(parts[1]) else {
                bad(format!("transfer {cause} belongs to no stored payout"));
                continue;
            };
            if parts[2] == "send" && p.available_before_send.is_none() {
                let (posted, pending) = payable.get(&p.partner).copied().unwrap_or_default();
                p.available_before_send = Some(posted - pending);
            }
            let e = p.transfers.entry(parts[2].to_string()).or_default();
            *e = (e.0 + 1, amount);
        }
        let (kind, debit_payable, credit_payable) = (s(&r[2]), s(&r[5]) == "partner_payable", s(&r[7]) == "partner_payable");
        if debit_payable || credit_payable {
            let owner = if debit_payable { s(&r[6]) } else { s(&r[8]) };
            let sign = if debit_payable { -1 } else { 1 };
            let b = payable.entry(owner).or_default();
            match kind.as_str() {
                "single" => b.0 += sign * amount,
                "pending" => {
                    open.insert(blob(&r[3]), amount);
                    if debit_payable {
                        b.1 += amount;
                    }
                }
                "post" | "void" => {
                    let held = open.remove(&blob(&r[4])).unwrap_or(0);
                    if debit_payable {
                        b.1 -= held;
                    }
                    if kind == "post" {
                        b.0 += sign * amount;
                    }
                }
                k => bad(format!("transfer {cause} is of unknown kind {k}")),
            }
        }
        if parts.len() == 3 && parts[0] == "payout" {
            continue;
        }
        let Some(c) = (parts.len() == 3 && parts[0] == "commission").then(|| commissions.get_mut(parts[1])).flatten() else {
            bad(format!("transfer {cause} belongs to no stored commission or payout"));
            continue;
        };
        let step = match parts[2] {
            "reserve:0" => "reserve:0",
            r if r.starts_with("reserve:") => "reserve:n",
            r if r.starts_with("void:") => "void",
            r if r.starts_with("reverse-to:") => "reverse-to",
            r if r.starts_with("clawback-to:") => "clawback-to",
            r => r,
        };
        let e = c.transfers.entry(step.to_string()).or_default();
        *e = (e.0 + 1, i(&r[1]));
    }
    for r in rows("SELECT subject, kind, count(*) FROM ledger_transfers WHERE subject IS NOT NULL AND kind IN ('post', 'single') GROUP BY subject, kind HAVING count(*) > 1") {
        bad(format!("{} has {} {} transfers", s(&r[0]), i(&r[2]), s(&r[1])));
    }

    let mut by_conversion: HashMap<&str, Vec<(&str, i64)>> = HashMap::new();
    let mut counts = Counts { commissions: commissions.len() as u64, transfers, ..Counts::default() };
    for (id, c) in &commissions {
        by_conversion.entry(c.conversion_id.as_str()).or_default().push((id.as_str(), c.amount_minor));
        let ev = |k: &str| c.events.get(k).copied().unwrap_or(0);
        let tr = |k: &str| c.transfers.get(k).map_or(0, |t| t.0);
        // One reserve at creation, of the whole amount; each void frees the reserve and
        // reserves what is left unless nothing is; approval posts and moves to payable.
        let voids_to_zero = i64::from(c.status == "voided");
        let want = [
            ("reserve:0", ev("created")),
            ("reserve:n", ev("voided") - voids_to_zero),
            ("void", ev("voided")),
            ("approve", ev("approved")),
            ("payable", ev("approved")),
            ("reverse-to", ev("reversed")),
            ("clawback-to", ev("clawed_back")),
        ];
        if ev("created") != 1 || tr("reserve:0") != 1 || c.transfers.get("reserve:0").map(|t| t.1) != Some(c.amount_minor) {
            bad(format!(
                "commission {id} of {}: created {} times, reserve:0 transfers {:?}",
                c.amount_minor,
                ev("created"),
                c.transfers.get("reserve:0")
            ));
        }
        if ev("approved") > 1 || ev("paid") > 1 {
            bad(format!("commission {id}: approved {} times, paid {} times", ev("approved"), ev("paid")));
        }
        for (step, n) in want {
            if tr(step) != n {
                bad(format!("commission {id}: {} {step} transfers for events {:?}", tr(step), c.events));
            }
        }
        let known: usize = want.iter().map(|(step, _)| usize::from(c.transfers.contains_key(*step))).sum();
        if known != c.transfers.len() {
            bad(format!("commission {id}: transfers of unknown steps: {:?}", c.transfers));
        }
        counts.approved += u64::from(ev("approved") > 0);
        counts.paid += u64::from(ev("paid") > 0);
        // Paid by a payout that posted, and only so: settlements run with the server down, so
        // nothing a payout holds is refunded before it posts.
        let paid_by = c.payout_id.as_deref().and_then(|p| payouts.get(p)).filter(|p| p.status == "paid");
        if (ev("paid") == 1) != paid_by.is_some() {
            bad(format!("commission {id}: {} paid events, held by payout {:?}", ev("paid"), c.payout_id));
        }
        // Refunds take back each commission pro rata, cumulatively, rounding down.
        if let Some(conv) = acked.get(c.conversion_id.as_str()) {
            let want = clickgate::commission::prorate(c.amount_minor, conv.refunded_minor(), conv.amount_minor);
            if c.taken_minor != want {
                bad(format!(
                    "commission {id}: {} voided or reversed after refunds {:?} of {}, want {want}",
                    c.taken_minor, conv.refunds_minor, conv.amount_minor
                ));
            }
        }
    }
    for c in &log.conversions {
        let mut named: Vec<(&str, i64)> = c.commissions.iter().map(|(id, a)| (id.as_str(), *a)).collect();
        named.sort();
        let mut got = by_conversion.remove(c.id.as_str()).unwrap_or_default();
        got.sort();
        if got != named {
            bad(format!("conversion {}: stored commissions {got:?}, its answer named {named:?}", c.id));
        }
    }
    for (id, cms) in by_conversion {
        bad(format!("commissions {cms:?} belong to conversion {id}, never acknowledged"));
    }
    if counts.paid != settled.paid {
        bad(format!("{} commissions have a paid event, the settlements reported {}", counts.paid, settled.paid));
    }
    // Each settled payout is paid: one pending transfer and its post, each of its amount, which
    // is what its commissions had left when it posted, capped by what partner_payable held
    // after what the partner owed just before it was sent.
    if payouts.len() != settled.made.len() {
        bad(format!("{} payouts stored, {} settled", payouts.len(), settled.made.len()));
    }
    for (id, p) in &payouts {
        let paid_sum: i64 = commissions.values().filter(|c| c.payout_id.as_deref() == Some(id.as_str())).map(|c| c.paid_minor).sum();
        let held = commissions.values().filter(|c| c.payout_id.as_deref() == Some(id.as_str())).count() as u64;
        let want_amount = p.available_before_send.map(|a| paid_sum.min(a));
        let transfers: Vec<(&str, (i64, i64))> = p.transfers.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let ok = p.status == "paid"
            && transfers == [("paid", (1, p.amount_minor)), ("send", (1, p.amount_minor))]
            && want_amount == Some(p.amount_minor)
            && settled.made.get(id) == Some(&(p.amount_minor, held));
        if !ok {
            bad(format!(
                "payout {id} is {} of {}: transfers {transfers:?}, its commissions had {paid_sum} left, payable held {:?}, settled {:?}",
                p.status,
                p.amount_minor,
                p.available_before_send,
                settled.made.get(id)
            ));
        }
    }

    // Debits equal credits per currency, posted and pending; the chain head is the last row.
    for r in rows(
        "SELECT currency, sum(debits_posted), sum(credits_posted), sum(debits_pending), sum(credits_pending) FROM ledger_balances GROUP BY currency",
    ) {
        if i(&r[1]) != i(&r[2]) || i(&r[3]) != i(&r[4]) {
            bad(format!("{}: posted debits {} credits {}, pending debits {} credits {}", s(&r[0]), i(&r[1]), i(&r[2]), i(&r[3]), i(&r[4])));
        }
    }
    let head = rows("SELECT seq FROM ledger_head");
    if head.len() != 1 || i(&head[0][0]) as u64 != transfers {
        bad(format!("ledger head {head:?} for {transfers} transfers"));
    }
    counts.conversions = stored.len() as u64;
    StoreCheck { counts, problems }
}
