//! The store the writer's tests run on, SQLite or PostgreSQL: each test runs on every backend
//! (`storage::conformance`).

use super::super::*;
use super::Fixed;
use crate::storage::sqlite::SqliteTx;

/// The store a test runs on.
pub(super) enum Backend {
    Sqlite(tempfile::TempDir),
    Pg(crate::testing::PgSchema),
}

impl Backend {
    pub(super) fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh schema in the local PostgreSQL; fails the test, naming the server, without one.
    pub(super) fn pg() -> Backend {
        Backend::Pg(crate::testing::PgSchema::new("conversions_test"))
    }

    pub(super) fn start_with(&self, attributor: Box<dyn Attributor>, commit_batch_len_max: usize) -> Conversions {
        let config =
            WriterConfig { commit_batch_len_max, queue_len_max: 1024, idempotency_ttl_ms: 86_400_000, event_retention_ms: 30 * 86_400_000 };
        let metrics = crate::metrics::Metrics::new().api;
        match self {
            Backend::Sqlite(dir) => crate::storage::sqlite::start(dir.path(), config, attributor, metrics).unwrap(),
            Backend::Pg(schema) => crate::storage::pg::start(&schema.url, config, attributor, metrics).unwrap(),
        }
    }

    pub(super) fn start(&self) -> Conversions {
        self.start_with(Box::new(Fixed), 64)
    }

    pub(super) fn reader(&self) -> Box<dyn Reader> {
        match self {
            Backend::Sqlite(dir) => Box::new(crate::storage::sqlite::SqliteReader::open(dir.path()).unwrap()),
            Backend::Pg(schema) => Box::new(crate::storage::pg::PgReader::open(&schema.url).unwrap()),
        }
    }

    /// The one integer a query answers; the SQL is what both backends read alike.
    pub(super) fn count(&self, sql: &str) -> i64 {
        match self {
            Backend::Sqlite(dir) => {
                crate::storage::sqlite::schema::open(dir.path()).unwrap().query_row(sql, [], |r| r.get::<_, Option<i64>>(0)).unwrap()
            }
            Backend::Pg(schema) => schema.client().query_one(sql, &[]).unwrap().get::<_, Option<i64>>(0),
        }
        .unwrap_or(0)
    }

    /// The one text a query answers.
    pub(super) fn text(&self, sql: &str) -> String {
        match self {
            Backend::Sqlite(dir) => {
                crate::storage::sqlite::schema::open(dir.path()).unwrap().query_row(sql, [], |r| r.get::<_, String>(0)).unwrap()
            }
            Backend::Pg(schema) => schema.client().query_one(sql, &[]).unwrap().get::<_, String>(0),
        }
    }

    /// Runs one statement, as someone editing the store by hand would.
    pub(super) fn execute(&self, sql: &str) {
        match self {
            Backend::Sqlite(dir) => {
                crate::storage::sqlite::schema::open(dir.path()).unwrap().execute(sql, []).unwrap();
            }
            Backend::Pg(schema) => {
                schema.client().execute(sql, &[]).unwrap();
            }
        }
    }

    pub(super) fn render(&self, id: &str) -> Option<String> {
        self.reader().get(id).unwrap()
    }

    pub(super) fn render_first(&self, id: &str) -> Option<String> {
        match self {
            Backend::Sqlite(dir) => {
                let conn = crate::storage::sqlite::schema::open(dir.path()).unwrap();
                let tx = conn.unchecked_transaction().unwrap();
                view::render_first(&mut SqliteTx::new(&tx).unwrap(), id).unwrap()
            }
            Backend::Pg(schema) => {
                let mut client = schema.client();
                let mut statements = crate::storage::pg::PgStatements::default();
                crate::storage::pg::conversions::in_snapshot(&mut client, &mut statements, |l| view::render_first(l, id)).unwrap()
            }
        }
    }

    /// Every conversion's status, amount, refunded amount, day, currency and attribution.
    pub(super) fn conversion_rows(&self) -> Vec<(String, i64, i64, u32, String, String)> {
        const SQL: &str = "SELECT status, amount_minor, refunded_minor, day, currency, attribution FROM conversions";
        match self {
            Backend::Sqlite(dir) => crate::storage::sqlite::schema::open(dir.path())
                .unwrap()
                .prepare(SQL)
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect(),
            Backend::Pg(schema) => schema
                .client()
                .query(SQL, &[])
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3) as u32, r.get(4), r.get(5)))
                .collect(),
        }
    }

    /// Checks the ledger: `ledger::verify` on a snapshot.
    pub(super) fn verify(&self) -> crate::ledger::VerifyReport {
        match self {
            Backend::Sqlite(dir) => crate::storage::offline::verify_file(dir.path()).unwrap().ledger.unwrap(),
            Backend::Pg(schema) => crate::storage::offline::verify_pg(&schema.url).unwrap().ledger.unwrap(),
        }
    }
}

impl crate::storage::conformance::Backends for Backend {
    type Sqlite = Backend;
    type Pg = Backend;

    /// The writer groups by itself: `grouped` changes nothing.
    fn sqlite(_grouped: bool) -> Backend {
        Backend::sqlite()
    }

    fn pg(_grouped: bool) -> Backend {
        Backend::pg()
    }
}
