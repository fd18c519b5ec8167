//! The schema's versions on both backends: a fresh store migrates to this build's version and a
//! second run changes nothing; a reader refuses a store at a version it does not know, or at
//! none, and runs no DDL; every stored enum's check refuses a value the code does not know.

use std::path::Path;

use rusqlite::Connection;

use crate::conversions::view::Reader;
use crate::ledger::AccountKind;
use crate::lifecycle::{CommissionEvent, CommissionStatus};
use crate::model::Channel;
use crate::storage::migration::{Migration, SchemaError};
use crate::storage::offline::{self, StoreAt};
use crate::storage::{pg, sqlite};
use crate::testing::PgSchema;

/// Every object of the file's schema, with its SQL.
fn sqlite_objects(conn: &Connection) -> Vec<(String, Option<String>)> {
    let mut st = conn.prepare("SELECT name, sql FROM sqlite_master ORDER BY type, name").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

fn user_version(data_dir: &Path) -> u32 {
    let conn = Connection::open(sqlite::path(data_dir)).unwrap();
    sqlite::migrations::version(&conn).unwrap()
}

fn set_user_version(data_dir: &Path, v: u32) {
    Connection::open(sqlite::path(data_dir)).unwrap().pragma_update(None, "user_version", v).unwrap();
}

fn check_numbering(migrations: &[Migration]) {
    for (i, m) in migrations.iter().enumerate() {
        assert_eq!(m.version as usize, i + 1, "{}: migrations are numbered 1, 2, 3… without a gap", m.name);
        assert!(m.name.starts_with(&format!("{:04}_", m.version)), "{} is not named after its version", m.name);
        assert!(!m.sql.trim().is_empty(), "{} is empty", m.name);
    }
}

#[test]
fn the_migrations_are_numbered_in_order_from_1() {
    check_numbering(sqlite::migrations::MIGRATIONS);
    check_numbering(pg::migrations::MIGRATIONS);
    // PostgreSQL's catalog (0006) came whole, with its change log and API keys, after the
    // others, so the two backends' numbers differ. The audit log is 0008 and 0007, data at rest
    // 0009 and 0008, link days 0010 and 0009. PostgreSQL's 0010 logs new links per statement.
    assert_eq!((sqlite::migrations::LATEST, pg::migrations::LATEST), (10, 10));
}

#[test]
fn migrating_a_fresh_file_records_the_latest_version_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(sqlite::migrate(dir.path()).unwrap(), sqlite::migrations::LATEST);
    assert_eq!(user_version(dir.path()), sqlite::migrations::LATEST);
    let conn = Connection::open(sqlite::path(dir.path())).unwrap();
    let before = sqlite_objects(&conn);
    for table in [
        "programs",
        "links",
        "conversions",
        "partner_days",
        "link_days",
        "commissions",
        "commission_accrued",
        "ledger_transfers",
        "webhook_events",
        "webhook_endpoints",
        "webhook_deliveries",
        "catalog_changes",
        "api_keys",
    ] {
        assert!(before.iter().any(|(name, _)| name == table), "no table {table}: {before:?}");
    }
    assert_eq!(sqlite::migrate(dir.path()).unwrap(), sqlite::migrations::LATEST);
    assert_eq!(sqlite::migrate(dir.path()).unwrap(), sqlite::migrations::LATEST);
    assert_eq!(sqlite_objects(&conn), before, "a second run changed the schema");
    let heads: i64 = conn.query_row("SELECT count(*) FROM ledger_head", [], |r| r.get(0)).unwrap();
    assert_eq!(heads, 1, "the ledger head row is inserted once");
}

/// Processes opening a fresh data dir at once (the server and the CLI): each migration runs
/// once, under SQLite's write lock, and every one finds the file at the latest version.
#[test]
fn concurrent_migrations_of_a_fresh_file_apply_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn({
                let dir = dir.path().to_path_buf();
                move || sqlite::migrate(&dir)
            })
        })
        .collect();
    for r in runs {
        assert_eq!(r.join().unwrap().unwrap(), sqlite::migrations::LATEST);
    }
    let heads: i64 =
        Connection::open(sqlite::path(dir.path())).unwrap().query_row("SELECT count(*) FROM ledger_head", [], |r| r.get(0)).unwrap();
    assert_eq!(heads, 1);
}

/// A file an earlier build made, at version 1 with a conversion in it: the writer's migration
/// brings it to the latest version, keeps the data, and then the store takes writes again.
#[test]
fn a_file_at_version_1_is_migrated_forward_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    {
        let conn = Connection::open(sqlite::path(dir.path())).unwrap();
        conn.execute_batch(sqlite::migrations::MIGRATIONS[0].sql).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute("INSERT INTO programs (slug, spec) VALUES ('shop', '{}')", []).unwrap();
    }
    assert_eq!(user_version(dir.path()), 1);
    assert!(sqlite::schema::open(dir.path()).is_err(), "a reader opened a file at an older version");
    assert_eq!(sqlite::migrate(dir.path()).unwrap(), sqlite::migrations::LATEST);
    let conn = sqlite::schema::open(dir.path()).unwrap();
    let programs: i64 = conn.query_row("SELECT count(*) FROM programs", [], |r| r.get(0)).unwrap();
    let events: i64 = conn.query_row("SELECT count(*) FROM webhook_events", [], |r| r.get(0)).unwrap();
    assert_eq!((programs, events), (1, 0));
}

/// A file a newer build migrated: every reader refuses it with the versions found and known,
/// the migrating paths refuse it too, and nothing changes it.
#[test]
fn a_file_at_a_newer_version_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    sqlite::migrate(dir.path()).unwrap();
    set_user_version(dir.path(), 99);
    let conn = Connection::open(sqlite::path(dir.path())).unwrap();
    let before = sqlite_objects(&conn);
    let want = format!(
        "the store at {} is at schema version 99; this build knows 1..={}; run a newer clickgate",
        sqlite::path(dir.path()).display(),
        sqlite::migrations::LATEST
    );
    let errors = [
        ("SqliteReader::open", sqlite::SqliteReader::open(dir.path()).err().map(|e| e.to_string())),
        ("schema::open", sqlite::schema::open(dir.path()).err().map(|e| e.to_string())),
        ("schema::open_migrated", sqlite::schema::open_migrated(dir.path()).err().map(|e| e.to_string())),
        ("migrate", sqlite::migrate(dir.path()).err().map(|e| e.to_string())),
        ("SqliteCatalog::open", crate::storage::sqlite::SqliteCatalog::open(dir.path()).err().map(|e| e.to_string())),
        ("SqliteCatalog::connect", crate::storage::sqlite::SqliteCatalog::connect(dir.path()).err().map(|e| e.to_string())),
        ("verify_file", offline::verify_file(dir.path()).err().map(|e| e.to_string())),
        ("approve_all", offline::approve_all(&StoreAt::File(dir.path().to_path_buf()), 0, 10).err().map(|e| e.to_string())),
    ];
    for (what, e) in errors {
        let e = e.unwrap_or_else(|| panic!("{what} opened a file at version 99"));
        assert!(e.contains(&want), "{what}: {e}");
    }
    assert_eq!(user_version(dir.path()), 99);
    assert_eq!(sqlite_objects(&conn), before);
}

/// A data dir no writer or `clickgate migrate` made: a reader says what to run, and creates
/// neither the file nor, in an empty file, any table.
#[test]
fn a_reader_refuses_an_unmigrated_file_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite::path(dir.path());
    let e = sqlite::SqliteReader::open(dir.path()).err().expect("a reader opened a missing file");
    assert!(matches!(e, SchemaError::Unmigrated { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("has no schema yet") && e.contains("clickgate migrate") && e.contains(&path.display().to_string()), "{e}");
    assert!(!path.exists(), "the reader created the file");

    // A file that exists without a schema (version 0): the same, and it stays empty.
    Connection::open(&path).unwrap().execute_batch("PRAGMA journal_mode = WAL").unwrap();
    for e in [
        sqlite::SqliteReader::open(dir.path()).err().map(|e| e.to_string()),
        crate::storage::sqlite::SqliteCatalog::connect(dir.path()).err().map(|e| e.to_string()),
        offline::verify_file(dir.path()).err().map(|e| e.to_string()),
        offline::approve_all(&StoreAt::File(dir.path().to_path_buf()), 0, 10).err().map(|e| e.to_string()),
    ] {
        let e = e.expect("an unmigrated file was opened");
        assert!(e.contains("has no schema yet") && e.contains("clickgate migrate"), "{e}");
    }
    assert_eq!(sqlite_objects(&Connection::open(&path).unwrap()), vec![], "a reader ran DDL");
    assert_eq!(user_version(dir.path()), 0);
}

/// The rows of `schema_migrations` and the names of every table, index and trigger of the
/// schema.
fn pg_state(schema: &PgSchema) -> (Vec<(i32, String)>, Vec<String>) {
    let mut client = schema.client();
    let versions = client
        .query("SELECT version, name FROM schema_migrations ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let objects = client
        .query(
            "SELECT 'table ' || tablename FROM pg_tables WHERE schemaname = $1
             UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = $1
             UNION ALL SELECT 'trigger ' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT t.tgisinternal
             ORDER BY 1",
            &[&schema.name],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (versions, objects)
}

fn pg_tables(schema: &PgSchema) -> i64 {
    schema.client().query_one("SELECT count(*) FROM pg_tables WHERE schemaname = $1", &[&schema.name]).unwrap().get(0)
}

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn migrating_a_fresh_postgresql_schema_records_every_version_and_a_second_run_changes_nothing() {
    let schema = PgSchema::new("schema_test");
    assert_eq!(pg::migrate(&schema.url).unwrap(), pg::migrations::LATEST);
    let before = pg_state(&schema);
    assert_eq!(
        before.0,
        [
            (1, "0001_initial".to_string()),
            (2, "0002_webhook_outbox".to_string()),
            (3, "0003_payouts".to_string()),
            (4, "0004_webhook_endpoints".to_string()),
            (5, "0005_delivery_replays".to_string()),
            (6, "0006_catalog".to_string()),
            (7, "0007_audit".to_string()),
            (8, "0008_data_at_rest".to_string()),
            (9, "0009_link_days".to_string()),
            (10, "0010_link_inserts".to_string())
        ]
    );
    let tables = [
        "conversions",
        "partner_days",
        "link_days",
        "commissions",
        "commission_accruals",
        "ledger_transfers",
        "schema_migrations",
        "webhook_events",
        "webhook_endpoints",
        "webhook_deliveries",
        "programs",
        "partners",
        "links",
        "coupons",
        "catalog_changes",
        "catalog_trimmed",
        "api_keys",
        "audit_log",
        "data_key",
    ];
    for table in tables {
        assert!(before.1.contains(&format!("table {table}")), "no table {table}: {:?}", before.1);
    }
    assert!(before.1.contains(&"trigger ledger_transfers_append_only".to_string()), "{:?}", before.1);
    assert!(before.1.contains(&"trigger links_changed".to_string()), "{:?}", before.1);
    assert!(before.1.contains(&"trigger links_added".to_string()), "{:?}", before.1);
    assert!(before.1.contains(&"trigger audit_log_append_only".to_string()), "{:?}", before.1);
    assert_eq!(pg::migrate(&schema.url).unwrap(), pg::migrations::LATEST);
    assert_eq!(pg::migrate(&schema.url).unwrap(), pg::migrations::LATEST);
    assert_eq!(pg_state(&schema), before, "a second run changed the schema");
    let heads: i64 = schema.client().query_one("SELECT count(*) FROM ledger_head", &[]).unwrap().get(0);
    assert_eq!(heads, 1, "the ledger head row is inserted once");
}

/// Cores of one cluster starting together: the advisory lock lets one migrate while the others
/// wait, then find the version recorded.
#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn cores_migrating_a_fresh_postgresql_schema_at_once_apply_it_once() {
    let schema = PgSchema::new("schema_test");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn({
                let url = schema.url.clone();
                move || pg::migrate(&url)
            })
        })
        .collect();
    for r in runs {
        assert_eq!(r.join().unwrap().unwrap(), pg::migrations::LATEST);
    }
    assert_eq!(
        pg_state(&schema).0,
        [
            (1, "0001_initial".to_string()),
            (2, "0002_webhook_outbox".to_string()),
            (3, "0003_payouts".to_string()),
            (4, "0004_webhook_endpoints".to_string()),
            (5, "0005_delivery_replays".to_string()),
            (6, "0006_catalog".to_string()),
            (7, "0007_audit".to_string()),
            (8, "0008_data_at_rest".to_string()),
            (9, "0009_link_days".to_string()),
            (10, "0010_link_inserts".to_string())
        ]
    );
}

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn a_postgresql_store_at_a_newer_version_is_refused_with_both_versions() {
    let schema = PgSchema::new("schema_test");
    pg::migrate(&schema.url).unwrap();
    let newer = pg::migrations::LATEST as i32 + 1;
    schema.client().execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'later')", &[&newer]).unwrap();
    let before = pg_state(&schema);
    let database: String = schema.client().query_one("SELECT current_database()::text", &[]).unwrap().get(0);
    let want = format!(
        "the store at PostgreSQL database {database:?}, schema {:?} is at schema version {newer}; this build knows 1..={}; run a newer clickgate",
        schema.name,
        pg::migrations::LATEST
    );
    let errors = [
        ("PgReader::open", pg::PgReader::open(&schema.url).err().map(|e| e.to_string())),
        ("migrate", pg::migrate(&schema.url).err().map(|e| e.to_string())),
        ("conversions::open", pg::conversions::open(&schema.url).err().map(|e| e.to_string())),
        ("verify_pg", offline::verify_pg(&schema.url).err().map(|e| e.to_string())),
        ("approve_all", offline::approve_all(&StoreAt::Pg(schema.url.clone()), 0, 10).err().map(|e| e.to_string())),
    ];
    for (what, e) in errors {
        let e = e.unwrap_or_else(|| panic!("{what} opened a store at version {newer}"));
        assert!(e.contains(&want), "{what}: {e}");
    }
    assert_eq!(pg_state(&schema), before);
}

/// The reader connects again after the server dropped its connection; a newer build migrated
/// the store meanwhile, so the new connection is refused.
#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn a_postgresql_reader_checks_the_version_again_when_it_reconnects() {
    let schema = PgSchema::new("schema_test");
    pg::migrate(&schema.url).unwrap();
    // Named, so this test ends only its own reader's connection.
    let url = format!("{}&application_name={}", schema.url, schema.name);
    let reader = pg::PgReader::open_with(&url, 1).unwrap();
    assert_eq!(reader.get("cv_none").unwrap(), None);
    let mut client = schema.client();
    let newer = pg::migrations::LATEST as i32 + 1;
    client.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'later')", &[&newer]).unwrap();
    let ended: i64 = client
        .query_one("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", &[&schema.name])
        .unwrap()
        .get(0);
    assert_eq!(ended, 1, "the reader's one connection");
    // The first read may find the connection closed under it; the next connects again.
    let e = (0..3).find_map(|_| reader.get("cv_none").err().filter(|e| e.to_string().contains(&format!("schema version {newer}"))));
    let e = e.expect("a reconnection to a store at a newer version was accepted").to_string();
    assert!(e.contains(&format!("this build knows 1..={}; run a newer clickgate", pg::migrations::LATEST)), "{e}");
}

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn a_postgresql_reader_refuses_an_unmigrated_schema_and_creates_nothing() {
    let schema = PgSchema::new("schema_test");
    for (what, e) in [
        ("PgReader::open", pg::PgReader::open(&schema.url).err().map(|e| e.to_string())),
        ("verify_pg", offline::verify_pg(&schema.url).err().map(|e| e.to_string())),
        ("approve_all", offline::approve_all(&StoreAt::Pg(schema.url.clone()), 0, 10).err().map(|e| e.to_string())),
    ] {
        let e = e.unwrap_or_else(|| panic!("{what} opened an unmigrated schema"));
        assert!(e.contains("has no schema yet") && e.contains("clickgate migrate") && e.contains(&schema.name), "{what}: {e}");
    }
    assert_eq!(pg_tables(&schema), 0, "a reader ran DDL");
}

/// An insert with one stored enum column set, the others at a known value.
struct Case {
    column: &'static str,
    known: Vec<&'static str>,
    /// Values the code does not know beyond the common ones (`unknown`).
    also_unknown: &'static [&'static str],
    insert: Box<Insert>,
}

/// The insert of row `n` with the column at a value.
type Insert = dyn Fn(u64, &str) -> String;

fn case(column: &'static str, known: Vec<&'static str>, insert: impl Fn(u64, &str) -> String + 'static) -> Case {
    Case { column, known, also_unknown: &[], insert: Box::new(insert) }
}

/// A blob literal of `len` bytes holding `n`: `x'…'` on SQLite, `'\x…'::bytea` on PostgreSQL.
type Blob = fn(u64, usize) -> String;

fn sqlite_blob(n: u64, len: usize) -> String {
    format!("x'{n:0w$x}'", w = len * 2)
}

fn pg_blob(n: u64, len: usize) -> String {
    format!("'\\x{n:0w$x}'::bytea", w = len * 2)
}

/// Every stored enum the backends share, and its values.
fn shared_cases(blob: Blob) -> Vec<Case> {
    const CONVERSION_STATUS: [&str; 4] = ["pending", "confirmed", "cancelled", "refunded"];
    const ORIGIN: [&str; 3] = ["api", "postback", "import"];
    const METHOD: [&str; 4] = ["click_id", "visitor", "coupon", "none"];
    let conversion = move |n: u64, origin: &str, method: &str, status: &str| {
        format!(
            "INSERT INTO conversions (id, program, order_id, amount_minor, currency, occurred_at_ms, day, received_at_ms, origin,
                 fingerprint, method, attribution, status, refunded_minor)
             VALUES ('cv-{n}', 'p', 'o-{n}', 1, 'USD', 0, 0, 0, '{origin}', {}, '{method}', '{{}}', '{status}', 0)",
            blob(n, 8)
        )
    };
    let accounts: Vec<&str> = AccountKind::ALL.iter().map(|k| k.as_str()).collect();
    let transfer = move |n: u64, debit: &str, credit: &str, kind: &str| {
        format!(
            "INSERT INTO ledger_transfers (seq, id, cause, debit_kind, debit_owner, credit_kind, credit_owner, currency, amount_minor,
                 kind, subject, pending_id, at_ms, prev_hash, hash)
             VALUES ({n}, {}, 'cause-{n}', '{debit}', 'p', '{credit}', 'bob', 'USD', 1, '{kind}', NULL, NULL, 0, {}, {})",
            blob(n, 16),
            blob(n, 32),
            blob(n, 32)
        )
    };
    assert!(CONVERSION_STATUS.iter().all(|s| crate::conversions::Status::parse(s).is_some()));
    vec![
        case("conversions.status", CONVERSION_STATUS.to_vec(), move |n, v| conversion(n, "api", "none", v)),
        case("conversions.origin", ORIGIN.to_vec(), move |n, v| conversion(n, v, "none", "pending")),
        case("conversions.method", METHOD.to_vec(), move |n, v| conversion(n, "api", v, "pending")),
        Case {
            also_unknown: &["recorded"],
            ..case("conversion_events.kind", vec!["confirmed", "cancelled", "refunded"], |n, v| {
                format!(
                    "INSERT INTO conversion_events (conversion_id, seq, kind, amount_minor, at_ms) VALUES ('cv-0', {n}, '{v}', NULL, 0)"
                )
            })
        },
        case("commissions.status", CommissionStatus::ALL.iter().map(|s| s.as_str()).collect(), |n, v| {
            format!(
                "INSERT INTO commissions (id, conversion_id, program, partner, item, currency, amount_minor, voided_minor,
                     reversed_minor, status, rule_version, period, detail, created_at_ms, lock_until_ms, reserve_seq)
                 VALUES ('cm-{n}', 'cv-{n}', 'p', 'bob', 'base', 'USD', 1, 0, 0, '{v}', 'r', '2026-01', '{{}}', 0, 0, 0)"
            )
        }),
        case("commission_events.kind", CommissionEvent::KINDS.to_vec(), move |n, v| {
            format!(
                "INSERT INTO commission_events (commission_id, seq, kind, amount_minor, transfer_id, at_ms)
                 VALUES ('cm-0', {n}, '{v}', 1, {}, 0)",
                blob(n, 16)
            )
        }),
        case("ledger_transfers.kind", vec!["pending", "post", "void", "single"], move |n, v| {
            transfer(n, "program_expense", "partner_pending", v)
        }),
        case("ledger_transfers.debit_kind", accounts.clone(), move |n, v| transfer(n, v, "partner_pending", "single")),
        case("ledger_transfers.credit_kind", accounts.clone(), move |n, v| transfer(n, "program_expense", v, "single")),
        case("ledger_balances.kind", accounts, |n, v| {
            format!(
                "INSERT INTO ledger_balances (kind, owner, currency, debits_pending, credits_pending, debits_posted, credits_posted)
                 VALUES ('{v}', 'o-{n}', 'USD', 0, 0, 0, 0)"
            )
        }),
    ]
}

/// The catalog's enums.
fn catalog_cases() -> Vec<Case> {
    const STATUS: [&str; 3] = ["active", "paused", "expired"];
    let link = |n: u64, channel: &str, status: &str| {
        format!(
            "INSERT INTO links (code, program_id, partner_id, destination, channel, utm_source, utm_medium, utm_campaign, status)
             VALUES ('l-{n}', 1000, 1000, 'https://example.com/', '{channel}', '', '', '', '{status}')"
        )
    };
    vec![
        case("programs.status", STATUS.to_vec(), |n, v| {
            format!("INSERT INTO programs (slug, spec, status) VALUES ('p-{n}', '{{}}', '{v}')")
        }),
        case("partners.status", STATUS.to_vec(), |n, v| {
            format!("INSERT INTO partners (slug, name, email, status) VALUES ('pa-{n}', 'P', '', '{v}')")
        }),
        case("links.channel", Channel::ALL.iter().map(|c| c.as_str()).collect(), move |n, v| link(n, v, "active")),
        case("links.status", STATUS.to_vec(), move |n, v| link(n, "web", v)),
    ]
}

/// Inserts every known value of every case, and refuses every unknown one by its check.
/// `exec` answers a refusal by a check with an error containing `CHECK`.
fn check_enums(cases: &[Case], exec: &mut dyn FnMut(&str) -> Result<(), String>) {
    let mut n = 0u64;
    let mut refused = 0;
    for c in cases {
        for v in &c.known {
            n += 1;
            exec(&(c.insert)(n, v)).unwrap_or_else(|e| panic!("{} = {v:?} was refused: {e}", c.column));
        }
        let upper = c.known[0].to_ascii_uppercase();
        for v in ["bogus", "", &format!("{} ", c.known[0]), &upper].into_iter().chain(c.also_unknown.iter().copied()) {
            n += 1;
            let r = exec(&(c.insert)(n, v));
            assert!(r.as_ref().is_err_and(|e| e.contains("CHECK")), "{} = {v:?}: {r:?}", c.column);
            refused += 1;
        }
    }
    assert!(refused >= 4 * cases.len());
}

#[test]
fn the_file_refuses_an_unknown_value_of_every_stored_enum() {
    let dir = tempfile::tempdir().unwrap();
    let conn = sqlite::schema::open_migrated(dir.path()).unwrap();
    conn.execute_batch(
        "INSERT INTO programs (id, slug, spec) VALUES (1000, 'parent', '{}');
         INSERT INTO partners (id, slug, name, email) VALUES (1000, 'parent', 'P', '');",
    )
    .unwrap();
    let mut exec = |sql: &str| conn.execute_batch(sql).map_err(|e| e.to_string());
    exec(&(shared_cases(sqlite_blob)[0].insert)(0, "pending")).unwrap();
    let mut cases = shared_cases(sqlite_blob);
    cases.extend(catalog_cases());
    check_enums(&cases, &mut exec);
}

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn a_postgresql_store_refuses_an_unknown_value_of_every_stored_enum() {
    let schema = PgSchema::new("schema_test");
    pg::migrate(&schema.url).unwrap();
    let mut client = schema.client();
    client
        .batch_execute(
            "INSERT INTO programs (id, slug, spec) VALUES (1000, 'parent', '{}');
             INSERT INTO partners (id, slug, name, email) VALUES (1000, 'parent', 'P', '');",
        )
        .unwrap();
    let mut exec = |sql: &str| {
        client.batch_execute(sql).map_err(|e| match e.code() {
            Some(&::postgres::error::SqlState::CHECK_VIOLATION) => format!("CHECK violation: {e}"),
            _ => e.to_string(),
        })
    };
    exec(&(shared_cases(pg_blob)[0].insert)(0, "pending")).unwrap();
    let mut cases = shared_cases(pg_blob);
    cases.extend(catalog_cases());
    cases.push(case("partners.payout_method", vec!["stripe", "paypal", "wise", "manual"], |n, v| {
        format!("INSERT INTO partners (slug, name, email, payout_method) VALUES ('pm-{n}', 'P', '', '{v}')")
    }));
    check_enums(&cases, &mut exec);
}
