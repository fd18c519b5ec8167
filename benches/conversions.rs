//! Conversions/s attributed, commissioned and committed with fsync (PRODUCT.md §10, "Core": at
//! least 20k/s on the embedded SQLite ledger with grouped commits), each beside plain SQLite
//! (and PostgreSQL) inserting one row per conversion with the same grouping and fsync.
//!
//! ```text
//! cargo bench --bench conversions                           # full: 200 k conversions (~3 min after the build)
//! CLICKGATE_BENCH_QUICK=1 cargo bench --bench conversions   # seconds
//! cargo test --release --bench conversions                  # the same scaled-down run, as CI's smoke test
//! CLICKGATE_BENCH_ONLY=sqlite|postgres                      # one backend
//! CLICKGATE_BENCH_CONCURRENCY=N                             # writers in flight (default 512)
//! CLICKGATE_BENCH_CONVERSIONS=N                             # conversions (default 200 k; 2 k quick)
//! CLICKGATE_BENCH_BATCH=N                                   # commit_batch_len_max (default: the server's)
//! ```
//!
//! Prints plain `conversions ...` lines, quoted by benches/README.md:
//! - `conversions sqlite`: the real `Conversions` writer (grouped commits, WAL, each group
//!   answered after an fdatasync of the WAL that follows its commit) with the server's `CoreAttributor` over a real click index and
//!   catalog, and real commission rules (tiers, bonuses, a cap, a fixed fee, an override), fed
//!   by N concurrent tasks until every conversion is acknowledged. Then the ledger is verified
//!   (`ledger::verify`) and the rows are counted, so the figure is of work done.
//! - `conversions sqlite_reference`: plain rusqlite in the same settings, one row per conversion,
//!   in groups of the size the writer's groups had, one commit each; then the ratio.
//! - `conversions postgres`: the real writer on PostgreSQL (`storage::pg::start`), fed the
//!   same way, then checked; against plain inserts in groups of its mean group size. Skipped
//!   with a message when no server answers at 127.0.0.1:5432 (user postgres, database test),
//!   unless `CLICKGATE_REQUIRE_SERVICES=1`; runs in a schema of its own, dropped after.

#[path = "conversions/pg.rs"]
mod pg;
#[path = "conversions/world.rs"]
mod world;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clickgate::api::answered;
use clickgate::config::Api;
use clickgate::conversions::{Conversions, Fingerprinted, NewConversion, Op, WriterConfig};
use clickgate::ledger;
use clickgate::storage::sqlite::SqliteTx;
use rusqlite::{params, Connection};

use world::World;

struct Scale {
    conversions: usize,
    /// Rows of the one-commit-per-row reference (about 300/s here).
    single_rows: usize,
    /// Conversions through PostgreSQL.
    pg_conversions: usize,
}

const FULL: Scale = Scale { conversions: 200_000, single_rows: 1_000, pg_conversions: 20_000 };
const QUICK: Scale = Scale { conversions: 2_000, single_rows: 50, pg_conversions: 300 };

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

/// CPU ns a thread of this process has used (user + system), found by its name.
fn thread_cpu_ns(name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if name.starts_with(comm.trim()) && !comm.trim().is_empty() {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            return stat.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    0
}

/// Bytes this process has caused to be written to storage (`write_bytes` of /proc/self/io):
/// the WAL appends and the checkpoints' copies into the database file.
fn disk_write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Clock ticks (USER_HZ, 100 on Linux) the whole machine was busy, and this process's.
fn busy_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let machine = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let own: Vec<u64> = own.rsplit_once(") ").map_or("", |(_, r)| r).split_whitespace().filter_map(|v| v.parse().ok()).collect();
    (machine, own.get(11).unwrap_or(&0) + own.get(12).unwrap_or(&0))
}

/// Cores other processes kept busy since `before` (a shared machine slows every figure).
fn other_cores(before: (u64, u64), seconds: f64) -> f64 {
    let after = busy_ticks();
    ((after.0 - before.0) as f64 - (after.1 - before.1) as f64) / 100.0 / seconds
}

/// Bytes of the store file with its WAL.
fn store_bytes(dir: &Path) -> u64 {
    let db = clickgate::storage::sqlite::path(dir);
    let wal = db.with_extension("db-wal");
    [db, wal].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

/// What the writer did.
struct Ours {
    rate: f64,
    group_mean: f64,
}

fn bench_sqlite(world: &World, concurrency: usize, root: &Path) -> Ours {
    let dir = tempfile::tempdir_in(root).expect("temp dir");
    let metrics = clickgate::metrics::Metrics::new().api;
    let batch = std::env::var("CLICKGATE_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(Api::default().commit_batch_len_max);
    // As `app::build_api` sets it up.
    let config = WriterConfig {
        commit_batch_len_max: batch,
        queue_len_max: batch * 16,
        idempotency_ttl_ms: 48 * 3_600_000,
        event_retention_ms: 30 * 86_400_000,
    };
    let writer = clickgate::storage::sqlite::start(dir.path(), config, Box::new(world.attributor()), metrics.clone()).expect("writer");
    let conversions: Arc<Vec<NewConversion>> = Arc::new(world.conversions.clone());
    let n = conversions.len();
    let (writer_cpu0, written0, busy0) = (thread_cpu_ns("clickgate-conversions"), disk_write_bytes(), busy_ticks());
    let started = Instant::now();
    feed(&writer, &conversions, concurrency);
    let seconds = started.elapsed().as_secs_f64();
    let other = other_cores(busy0, seconds);
    let writer_cpu_us = (thread_cpu_ns("clickgate-conversions") - writer_cpu0) as f64 / 1000.0 / n as f64;
    let written = (disk_write_bytes() - written0) / n as u64;
    drop(writer);
    let groups = metrics.commit_batch_len.get_sample_count();
    let group_mean = metrics.commit_batch_len.get_sample_sum() / groups as f64;
    let commit_ms = metrics.commit_seconds.get_sample_sum() * 1000.0 / groups as f64;
    let rate = n as f64 / seconds;
    println!(
        "conversions sqlite conversions_per_s={rate:.0} conversions={n} seconds={seconds:.2} concurrency={concurrency} \
         commit_batch_len_max={batch} commits={groups} group_mean={group_mean:.1} wal_fsyncs={} (each acknowledges every commit \
         before it; checkpoints add theirs) commit_ms_mean={commit_ms:.2} writer_cpu_us_per_conversion={writer_cpu_us:.1} \
         disk_write_bytes_per_conversion={written} store_bytes_per_conversion={} other_cpu_cores={other:.2}",
        metrics.wal_syncs.get(),
        store_bytes(dir.path()) / n as u64
    );
    check_sqlite(dir.path(), n);
    Ours { rate, group_mean }
}

/// Sends every conversion to the writer from `concurrency` tasks, as the API does per request
/// (the fingerprint, then the write), until each is acknowledged as new.
fn feed(writer: &Conversions, conversions: &Arc<Vec<NewConversion>>, concurrency: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let next = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (writer, conversions, next) = (writer.clone(), conversions.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(c) = conversions.get(i) else { break };
                        let job = Op::Record(Fingerprinted::new(c.clone()));
                        // Rendered as the API renders it, on this task as the API's would.
                        let (answer, replayed) = answered(writer.write(job, None, now_ms()).await.expect("conversion written"));
                        assert!(answer.status == 201 && !replayed, "conversion {i}: {answer:?}");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("submitting task");
        }
    });
}

/// Verifies the ledger and that every conversion left its rows: the figure is of work done.
fn check_sqlite(dir: &Path, n: usize) {
    let conn = Connection::open(clickgate::storage::sqlite::path(dir)).expect("open the store");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(count("SELECT count(*) FROM conversions") as usize, n, "every conversion is stored");
    let methods: Vec<(String, i64)> = conn
        .prepare("SELECT method, count(*) FROM conversions GROUP BY method ORDER BY method")
        .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .expect("methods");
    let attributed: i64 = methods.iter().filter(|(m, _)| m != "none").map(|(_, c)| c).sum();
    let (accruals, shares) =
        (count("SELECT count(*) FROM commission_accrued"), count("SELECT coalesce(sum(conversions), 0) FROM partner_days"));
    let (commissions, bonuses) =
        (count("SELECT count(*) FROM commissions"), count("SELECT count(*) FROM commissions WHERE item LIKE 'bonus:%'"));
    let events = count("SELECT count(*) FROM commission_events");
    assert_eq!(accruals, attributed, "every attributed conversion was commissioned once");
    assert!(commissions > 0 && events == commissions, "one creation event per commission");
    let tx = conn.unchecked_transaction().expect("read transaction");
    let report = ledger::verify(&mut SqliteTx::new(&tx).expect("ledger")).expect("the ledger verifies clean");
    assert_eq!(report.transfers as i64, commissions, "one pending reserve per commission");
    assert_eq!(report.pending_open as i64, commissions, "every reserve is open");
    for c in &report.currencies {
        let sum: i64 = tx
            .query_row("SELECT coalesce(sum(amount_minor), 0) FROM commissions WHERE currency = ?1", [c.currency.as_str()], |r| r.get(0))
            .expect("sum");
        assert_eq!(c.pending_minor, i128::from(sum), "the ledger holds what the commissions say");
    }
    let methods: Vec<String> = methods.iter().map(|(m, c)| format!("{m}={c}")).collect();
    println!(
        "conversions sqlite checked: {n} conversions ({}), {shares} shares, {commissions} commissions ({bonuses} bonuses), \
         {} transfers; ledger clean, head seq {}",
        methods.join(" "),
        report.transfers,
        report.head_seq
    );
}

/// Plain SQLite: one row per conversion, `group` rows per commit, WAL and `synchronous=FULL`.
fn reference_sqlite(conversions: &[NewConversion], group: usize, root: &Path) -> (f64, u64) {
    let dir = tempfile::tempdir_in(root).expect("temp dir");
    let mut conn = Connection::open(dir.path().join("reference.db")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL").expect("WAL");
    conn.pragma_update(None, "synchronous", "FULL").expect("FULL");
    conn.execute_batch(
        "CREATE TABLE rows (id TEXT PRIMARY KEY, program TEXT NOT NULL, order_id TEXT NOT NULL, amount_minor INTEGER NOT NULL,
             currency TEXT NOT NULL, occurred_at_ms INTEGER NOT NULL, click_id TEXT, UNIQUE (program, order_id))",
    )
    .expect("table");
    let ids: Vec<String> = conversions.iter().map(NewConversion::id).collect();
    let (started, written0) = (Instant::now(), disk_write_bytes());
    for (rows, ids) in conversions.chunks(group).zip(ids.chunks(group)) {
        let tx = conn.transaction().expect("begin");
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO rows (id, program, order_id, amount_minor, currency, occurred_at_ms, click_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .expect("prepare");
            for (c, id) in rows.iter().zip(ids) {
                st.execute(params![id, c.program, c.order_id, c.amount_minor, c.currency, c.occurred_at_ms as i64, c.click_id])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let rate = conversions.len() as f64 / started.elapsed().as_secs_f64();
    let written = (disk_write_bytes() - written0) / conversions.len() as u64;
    let stored: i64 = conn.query_row("SELECT count(*) FROM rows", [], |r| r.get(0)).expect("count");
    assert_eq!(stored as usize, conversions.len());
    (rate, written)
}

fn main() {
    // Personal fields (customer references, payout details, stored answers) are sealed under
    // the process's data key, which a server's start loads; the bench holds a fixed one.
    clickgate::privacy::keys::install(clickgate::privacy::DataKey::from_bytes(&[0x5a; 32])).expect("one data key");
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var_os("CLICKGATE_BENCH_QUICK").is_some() || !args.iter().any(|a| a == "--bench");
    let mut scale = if quick { QUICK } else { FULL };
    if let Some(n) = std::env::var("CLICKGATE_BENCH_CONVERSIONS").ok().and_then(|v| v.parse().ok()) {
        scale.conversions = n;
    }
    if quick {
        println!("(quick mode: scaled-down inputs)");
    }
    let concurrency = std::env::var("CLICKGATE_BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let only = std::env::var("CLICKGATE_BENCH_ONLY").unwrap_or_default();
    // On the target directory's disk, not a tmpfs: the fsync must be real.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(root).expect("target tmp dir");
    let world_dir = tempfile::tempdir_in(root).expect("temp dir");
    let t = Instant::now();
    let world = World::build(world_dir.path(), scale.conversions, 42);
    println!(
        "conversions world: {} clicks ingested and indexed, {} conversions, 2 programs, 200 partners, 400 coupons ({:.1} s)",
        world.clicks,
        world.conversions.len(),
        t.elapsed().as_secs_f64()
    );
    if only.is_empty() || only == "sqlite" {
        let ours = bench_sqlite(&world, concurrency, root);
        let group = (ours.group_mean.round() as usize).max(1);
        let (reference, written) = reference_sqlite(&world.conversions, group, root);
        println!(
            "conversions sqlite_reference rows_per_s={reference:.0} rows={} rows_per_commit={group} disk_write_bytes_per_row={written} \
             (plain inserts, WAL, synchronous=FULL)",
            world.conversions.len()
        );
        println!(
            "conversions sqlite ratio={:.3} conversions_per_s={:.0} reference_rows_per_s={reference:.0} rows_per_commit={group}",
            ours.rate / reference,
            ours.rate
        );
        for (rows, per_commit) in [(world.conversions.len(), 100), (scale.single_rows.min(world.conversions.len()), 1)] {
            let (r, written) = reference_sqlite(&world.conversions[..rows], per_commit, root);
            println!(
                "conversions sqlite_reference rows_per_s={r:.0} rows={rows} rows_per_commit={per_commit} disk_write_bytes_per_row={written} \
                 (PRODUCT.md §10's figures)"
            );
        }
    }
    if only.is_empty() || only == "postgres" {
        pg::bench(&world, scale.pg_conversions.min(world.conversions.len()), concurrency);
    }
}
