//! The PostgreSQL half: the real conversion writer on PostgreSQL (`storage::pg::start`, as
//! `serve` runs it with `core.database_url`), fed by concurrent tasks until every conversion
//! is acknowledged, then checked; beside plain prepared inserts of one row per conversion in
//! groups of the writer's mean group size.

use std::sync::Arc;
use std::time::Instant;

use clickgate::config::Api;
use clickgate::conversions::{NewConversion, WriterConfig};
use clickgate::storage::offline;
use clickgate::testing::PgSchema;

use crate::world::World;

/// The plain rows' table: the conversion's own columns.
const TABLES: &str = "
CREATE TABLE reference_rows (
    id TEXT PRIMARY KEY, program TEXT NOT NULL, order_id TEXT NOT NULL, amount_minor BIGINT NOT NULL, currency TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL, click_id TEXT, UNIQUE (program, order_id));
";

/// Runs both sides with `n` conversions and `concurrency` requests in flight.
pub fn bench(world: &World, n: usize, concurrency: usize) {
    let Some(schema) = PgSchema::create("bench_conversions") else {
        println!("conversions postgres skipped: no PostgreSQL; CLICKGATE_REQUIRE_SERVICES=1 makes this a failure");
        return;
    };
    let mut client = schema.client();
    let (sync, version): (String, String) = client
        .query_one("SELECT current_setting('synchronous_commit'), current_setting('server_version')", &[])
        .map(|r| (r.get(0), r.get(1)))
        .expect("settings");
    let metrics = clickgate::metrics::Metrics::new().api;
    let batch = std::env::var("CLICKGATE_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(Api::default().commit_batch_len_max);
    // As `app::build_api` sets it up.
    let config = WriterConfig {
        commit_batch_len_max: batch,
        queue_len_max: batch * 16,
        idempotency_ttl_ms: 48 * 3_600_000,
        event_retention_ms: 30 * 86_400_000,
    };
    let writer = clickgate::storage::pg::start(&schema.url, config, Box::new(world.attributor()), metrics.clone()).expect("writer");
    let conversions: Arc<Vec<NewConversion>> = Arc::new(world.conversions[..n].to_vec());
    let started = Instant::now();
    crate::feed(&writer, &conversions, concurrency);
    let seconds = started.elapsed().as_secs_f64();
    drop(writer);
    let rate = n as f64 / seconds;
    let groups = metrics.commit_batch_len.get_sample_count();
    let group_mean = metrics.commit_batch_len.get_sample_sum() / groups as f64;
    let commit_ms = metrics.commit_seconds.get_sample_sum() * 1000.0 / groups as f64;
    println!(
        "conversions postgres conversions_per_s={rate:.0} conversions={n} seconds={seconds:.2} concurrency={concurrency} \
         commit_batch_len_max={batch} commits={groups} group_mean={group_mean:.1} group_ms_mean={commit_ms:.2} \
         synchronous_commit={sync} server={version} (the real writer on one connection: attribution, commissions and \
         ledger transfers; a group's look-ups and inserts in a statement per table; each group answered after a WAL flush on a \
         second connection)"
    );

    let count = |client: &mut postgres::Client, sql: &str| -> i64 { client.query_one(sql, &[]).expect(sql).get(0) };
    assert_eq!(count(&mut client, "SELECT count(*) FROM conversions") as usize, n, "every conversion is stored");
    let commissions = count(&mut client, "SELECT count(*) FROM commissions");
    let attributed = count(&mut client, "SELECT count(*) FROM conversions WHERE method <> 'none'");
    assert_eq!(count(&mut client, "SELECT count(*) FROM commission_accruals"), attributed, "every attributed conversion commissioned once");
    let report = offline::verify_pg(&schema.url).expect("verify").ledger.expect("the ledger verifies clean");
    assert_eq!(report.transfers as i64, commissions, "one pending reserve per commission");
    println!(
        "conversions postgres checked: {n} conversions ({attributed} attributed), {commissions} commissions, {} transfers; ledger clean",
        report.transfers
    );

    client.batch_execute(TABLES).expect("tables");
    let group = group_mean.round().max(1.0) as usize;
    let insert = client
        .prepare(
            "INSERT INTO reference_rows (id, program, order_id, amount_minor, currency, occurred_at_ms, click_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .expect("prepare");
    let ids: Vec<String> = conversions.iter().map(NewConversion::id).collect();
    let started = Instant::now();
    for (rows, ids) in conversions.chunks(group).zip(ids.chunks(group)) {
        let mut tx = client.transaction().expect("begin");
        for (c, id) in rows.iter().zip(ids) {
            tx.execute(&insert, &[id, &c.program, &c.order_id, &c.amount_minor, &c.currency, &(c.occurred_at_ms as i64), &c.click_id])
                .expect("insert");
        }
        tx.commit().expect("commit");
    }
    let reference = n as f64 / started.elapsed().as_secs_f64();
    println!("conversions postgres_reference rows_per_s={reference:.0} rows={n} rows_per_commit={group} (plain prepared inserts)");
    println!(
        "conversions postgres ratio={:.3} conversions_per_s={rate:.0} reference_rows_per_s={reference:.0} rows_per_commit={group}",
        rate / reference
    );
}
