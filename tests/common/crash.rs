//! The crash tests' config, and their checks of a store against what the API acknowledged:
//! every acknowledged conversion stored and accrued exactly once with the commissions its
//! answer named, each reserved by exactly one transfer; every transfer cause once and matching its commission's
//! events or its payout; refunds applied once; every payout settled by hand paid once; debits
//! equal to credits and the ledger head on the last transfer. The same queries run on the
//! embedded SQLite file and on a PostgreSQL schema, through `Db`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::stream::StreamLog;
use super::{run_cli_env, ROOT};

/// The shipped demo config, with bob's commissions locked for one day instead of 30, the
/// approval sweep every second, and `extra` appended: conversions that happened over the last
/// two days are then about half approved while a stream runs, so refunds void some
/// commissions, reverse approved ones and claw back paid ones.
pub fn config_text(extra: &str) -> String {
    let demo = std::fs::read_to_string(format!("{ROOT}/config/clickgate.toml")).unwrap();
    let bob = "[demo.programs.commission.partners.bob]\npercent_bps = 500\nlock_days = 30\n";
    assert!(demo.contains(bob), "config/clickgate.toml no longer has bob's 5% rule as the crash tests expect");
    demo.replace(bob, &bob.replace("lock_days = 30", "lock_days = 1")) + "\n[commission]\napprove_interval_ms = 1000\n" + extra
}

/// The value of environment variable `name`, or `default` when it is unset.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The last lines of a log, for failure messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A column's value, as either store returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A store the checks query: SQL both dialects run, with what differs named here.
pub trait Db {
    /// Every row `sql` returns.
    fn rows(&mut self, sql: &str) -> Vec<Vec<Value>>;
    /// The table that records which conversions accrued their commissions.
    fn accrued_table(&self) -> &'static str;
}

impl Db for rusqlite::Connection {
    fn rows(&mut self, sql: &str) -> Vec<Vec<Value>> {
        use rusqlite::types::ValueRef;
        let mut st = self.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let n = st.column_count();
        let rows = st.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(v) => Value::Integer(v),
                        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                        ValueRef::Real(v) => panic!("{sql}: a real {v} where the checks expect none"),
                    })
                })
                .collect()
        });
        rows.and_then(|r| r.collect()).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn accrued_table(&self) -> &'static str {
        "commission_accrued"
    }
}

impl Db for postgres::Client {
    fn rows(&mut self, sql: &str) -> Vec<Vec<Value>> {
        use postgres::types::Type;
        let rows = self.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        let t = r.columns()[i].type_();
                        let v = if *t == Type::INT8 {
                            r.get::<_, Option<i64>>(i).map(Value::Integer)
                        } else if *t == Type::INT4 {
                            r.get::<_, Option<i32>>(i).map(|v| Value::Integer(v.into()))
                        } else if *t == Type::INT2 {
                            r.get::<_, Option<i16>>(i).map(|v| Value::Integer(v.into()))
                        } else if *t == Type::TEXT || *t == Type::VARCHAR || *t == Type::NAME {
                            r.get::<_, Option<String>>(i).map(Value::Text)
                        } else if *t == Type::BYTEA {
                            r.get::<_, Option<Vec<u8>>>(i).map(Value::Blob)
                        } else {
                            // sum() of a BIGINT is NUMERIC: the queries cast what they add up.
                            panic!("{sql}: column {i} is of type {t}, which the checks do not read")
                        };
                        v.unwrap_or(Value::Null)
                    })
                    .collect()
            })
            .collect()
    }

    fn accrued_table(&self) -> &'static str {
        "commission_accruals"
    }
}

/// `clickgate payouts settle` runs: the payouts they made and the commissions they paid.
#[derive(Default)]
pub struct Payouts {
    pub runs: u32,
    pub paid: u64,
    /// Payout id → (amount, commissions paid), as each settlement reported it.
    pub made: BTreeMap<String, (i64, u64)>,
}

impl Payouts {
    /// Settles bob's approved USD commissions by hand, on the store `env` names (none: the data
    /// dir's file).
    pub fn settle(&mut self, config: &Path, data: &Path, env: &[(&str, String)], reference: &str) {
        let args = ["payouts", "settle", "--partner", "bob", "--currency", "USD", "--reference", reference];
        let (code, out, err) = run_cli_env(config, data, &args, "", env);
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
pub struct Counts {
    pub conversions: u64,
    pub commissions: u64,
    pub approved: u64,
    pub paid: u64,
    pub transfers: u64,
}

/// What the store holds against what was acknowledged.
pub struct StoreCheck {
    pub counts: Counts,
    /// The first 50 problems found.
    pub problems: Vec<String>,
}

impl StoreCheck {
    /// Says a run's figures and its 5xx samples through `say`, then fails the test on any
    /// problem this check found, or on a `clickgate ledger verify` (`verify`: its exit code,
    /// stdout and stderr) that did not exit 0.
    pub fn report(&self, say: fn(&str), figures: &[String], log: &StreamLog, seed: u64, verify: (i32, &str, &str)) {
        for f in figures {
            say(f);
        }
        for s in &log.server_error_samples {
            say(&format!("5xx sample: {s}"));
        }
        assert!(self.problems.is_empty(), "seed {seed}: {} problems in the store:\n{}", self.problems.len(), self.problems.join("\n"));
        let (code, out, err) = verify;
        assert_eq!(code, 0, "seed {seed}: clickgate ledger verify failed:\n{out}{err}");
    }
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

/// Checks the store against the acknowledged stream and the payouts settled.
pub fn check_store(db: &mut dyn Db, log: &StreamLog, settled: &Payouts) -> StoreCheck {
    let accrued_table = db.accrued_table();
    let mut problems = Vec::new();
    let mut bad = |p: String| {
        if problems.len() < 50 {
            problems.push(p);
        }
    };
    let mut rows = |sql: &str| db.rows(sql);
    let s = |v: &Value| match v {
        Value::Text(t) => t.clone(),
        other => format!("{other:?}"),
    };
    let i = |v: &Value| match v {
        Value::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    };

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
    for r in rows(&format!("SELECT conversion_id FROM {accrued_table}")) {
        *accruals.entry(s(&r[0])).or_default() += 1;
    }
    for c in &log.conversions {
        match accruals.get(&c.id) {
            Some(1) => {}
            n => bad(format!("conversion {} is in {accrued_table} {} times", c.id, n.copied().unwrap_or(0))),
        }
    }
    if accruals.len() != acked.len() {
        bad(format!("{} conversions accrued, {} acknowledged", accruals.len(), acked.len()));
    }

    // Commissions, their events and their transfers.
    let mut commissions: BTreeMap<String, Stored> = BTreeMap::new();
    for r in rows("SELECT id, conversion_id, amount_minor, voided_minor + reversed_minor, status, payout_id FROM commissions") {
        let payout_id = match &r[5] {
            Value::Null => None,
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
        let blob = |v: &Value| match v {
            Value::Blob(b) => b.clone(),
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
        "SELECT currency, CAST(sum(debits_posted) AS BIGINT), CAST(sum(credits_posted) AS BIGINT), CAST(sum(debits_pending) AS BIGINT),
                CAST(sum(credits_pending) AS BIGINT) FROM ledger_balances GROUP BY currency",
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
