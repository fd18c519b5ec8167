//! The PostgreSQL half: attribution and `lifecycle::accrue` on `PgLedger` in groups, one
//! transaction per group and a savepoint per conversion (as the SQLite writer runs its jobs;
//! in PostgreSQL a failed statement spoils the transaction, so a job needs its savepoint),
//! beside plain inserts of one row per conversion in the same groups.

use std::time::Instant;

use clickgate::core::conversions::{Attributor, NewConversion};
use clickgate::core::lifecycle::{self, Sale};
use clickgate::ledger::{self, parse_currency, PgLedger, PgStatements};

use crate::world::World;

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The columns of the SQLite writer's `conversions` table, for a comparable row.
const TABLES: &str = "
CREATE TABLE conversions (
    id TEXT PRIMARY KEY, program TEXT NOT NULL, order_id TEXT NOT NULL, amount_minor BIGINT NOT NULL, currency TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL, day BIGINT NOT NULL, received_at_ms BIGINT NOT NULL, click_id TEXT, visitor_id TEXT,
    coupon_code TEXT, customer_ref TEXT, origin TEXT NOT NULL, method TEXT NOT NULL, attribution TEXT NOT NULL,
    status TEXT NOT NULL, UNIQUE (program, order_id));
CREATE TABLE reference_rows (
    id TEXT PRIMARY KEY, program TEXT NOT NULL, order_id TEXT NOT NULL, amount_minor BIGINT NOT NULL, currency TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL, click_id TEXT, UNIQUE (program, order_id));
";

/// A schema of its own, dropped at the end.
struct Schema {
    client: postgres::Client,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Err(e) = self.client.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)) {
            eprintln!("could not drop bench schema {}: {e}", self.name);
        }
    }
}

fn connect() -> Option<Schema> {
    let url = std::env::var("CLICKGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_URL.to_string());
    let client = url.parse::<postgres::Config>().and_then(|mut c| {
        c.connect_timeout(std::time::Duration::from_secs(3));
        c.connect(postgres::NoTls)
    });
    let mut client = match client {
        Ok(c) => c,
        Err(e) if std::env::var("CLICKGATE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("no PostgreSQL at {url} and CLICKGATE_REQUIRE_SERVICES=1: {e}")
        }
        Err(e) => {
            println!("conversions postgres skipped: no PostgreSQL at {url} ({e}); CLICKGATE_REQUIRE_SERVICES=1 makes this a failure");
            return None;
        }
    };
    let name = format!("bench_conversions_{}", std::process::id());
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}; SET search_path TO {name}"))
        .expect("schema");
    let mut schema = Schema { client, name };
    lifecycle::pg::migrate(&mut schema.client).expect("migrate the ledger and commission tables");
    schema.client.batch_execute(TABLES).expect("tables");
    Some(schema)
}

/// Runs both sides with `n` conversions in groups of `group`.
pub fn bench(world: &World, n: usize, group: usize) {
    let Some(mut schema) = connect() else { return };
    let client = &mut schema.client;
    let (sync, version): (String, String) = client
        .query_one("SELECT current_setting('synchronous_commit'), current_setting('server_version')", &[])
        .map(|r| (r.get(0), r.get(1)))
        .expect("settings");
    let attributor = world.attributor();
    let conversions = &world.conversions[..n];
    let insert = client
        .prepare(
            "INSERT INTO conversions (id, program, order_id, amount_minor, currency, occurred_at_ms, day, received_at_ms, click_id,
                 visitor_id, coupon_code, customer_ref, origin, method, attribution, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'api', $13, $14, 'pending')",
        )
        .expect("prepare");
    // Each of the ledger's and commissions' statements prepared once on this connection.
    let mut statements = PgStatements::default();
    let started = Instant::now();
    for jobs in conversions.chunks(group) {
        let mut tx = client.transaction().expect("begin");
        for c in jobs {
            let mut job = tx.savepoint("job").expect("savepoint");
            record(&mut job, &insert, &mut statements, &attributor, c);
            job.commit().expect("release");
        }
        tx.commit().expect("commit");
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "conversions postgres conversions_per_s={rate:.0} conversions={n} rows_per_commit={group} synchronous_commit={sync} \
         server={version} (one connection; attribution, commissions and ledger transfers, a savepoint per conversion)"
    );

    let mut tx = client.transaction().expect("begin");
    let count = |tx: &mut postgres::Transaction<'_>, sql: &str| -> i64 { tx.query_one(sql, &[]).expect(sql).get(0) };
    assert_eq!(count(&mut tx, "SELECT count(*) FROM conversions") as usize, n, "every conversion is stored");
    let commissions = count(&mut tx, "SELECT count(*) FROM commissions");
    let attributed = count(&mut tx, "SELECT count(*) FROM conversions WHERE method <> 'none'");
    assert_eq!(count(&mut tx, "SELECT count(*) FROM commission_accruals"), attributed, "every attributed conversion commissioned once");
    let report = ledger::verify(&mut PgLedger::new(&mut tx)).expect("the ledger verifies clean");
    assert_eq!(report.transfers as i64, commissions, "one pending reserve per commission");
    tx.commit().expect("end");
    println!(
        "conversions postgres checked: {n} conversions ({attributed} attributed), {commissions} commissions, {} transfers; ledger clean",
        report.transfers
    );

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

/// One conversion as the SQLite writer records it: attribute, store the row, and for an
/// attributed one accrue its commissions with their ledger transfers.
fn record(
    job: &mut postgres::Transaction<'_>,
    insert: &postgres::Statement,
    statements: &mut PgStatements,
    attributor: &dyn Attributor,
    c: &NewConversion,
) {
    let id = c.id();
    let attribution = attributor.attribute(c);
    let method = serde_json::to_value(attribution.method).expect("method").as_str().unwrap_or_default().to_string();
    let now_ms = crate::now_ms();
    job.execute(
        insert,
        &[
            &id,
            &c.program,
            &c.order_id,
            &c.amount_minor,
            &c.currency,
            &(c.occurred_at_ms as i64),
            &((c.occurred_at_ms / 86_400_000) as i64),
            &(now_ms as i64),
            &c.click_id,
            &c.visitor_id,
            &c.coupon_code,
            &c.customer_ref,
            &method,
            &serde_json::to_string(&attribution).expect("attribution serialises"),
        ],
    )
    .expect("insert conversion");
    if attribution.shares.is_empty() {
        return;
    }
    let sale = Sale {
        conversion_id: &id,
        program: &c.program,
        currency: parse_currency(&c.currency).expect("currency"),
        amount_minor: c.amount_minor,
        occurred_at_ms: c.occurred_at_ms,
    };
    let rules = attributor.commission_rules(&c.program);
    lifecycle::accrue(&mut PgLedger::with_statements(job, statements), &sale, &attribution.shares, &rules, now_ms).expect("accrue");
}
