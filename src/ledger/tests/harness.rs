//! The backends under test, behind one trait.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

use super::super::{pg, sqlite, LedgerTx, PgLedger, SqliteLedger};

/// A ledger store under test.
pub trait Harness {
    /// Runs `f` inside one transaction and commits it, whatever `f` returned: `apply` writes
    /// nothing when it refuses a transfer.
    fn run<R>(&mut self, f: impl FnOnce(&mut dyn LedgerTx) -> R) -> R;
    /// Runs raw SQL in autocommit; the store's message when it refuses.
    fn raw(&mut self, sql: &str) -> Result<(), String>;
    /// Drops the connection and opens a new one on the same data, as after a restart.
    fn reopen(&mut self);
}

/// A SQLite file in a temporary directory, opened as the conversion writer opens its file.
pub struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
    conn: Connection,
}

impl Sqlite {
    pub fn new() -> Sqlite {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let conn = open_sqlite(&path);
        sqlite::migrate(&conn).unwrap();
        sqlite::migrate(&conn).expect("migrate twice is a no-op");
        Sqlite { _dir: dir, path, conn }
    }

    /// The database file, for a second connection that tampers with it.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub fn open_sqlite(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn
}

impl Harness for Sqlite {
    fn run<R>(&mut self, f: impl FnOnce(&mut dyn LedgerTx) -> R) -> R {
        let tx = self.conn.transaction().unwrap();
        let r = f(&mut SqliteLedger::new(&tx).unwrap());
        tx.commit().unwrap();
        r
    }

    fn raw(&mut self, sql: &str) -> Result<(), String> {
        self.conn.execute_batch(sql).map_err(|e| e.to_string())
    }

    fn reopen(&mut self) {
        self.conn = open_sqlite(&self.path);
    }
}

/// A schema of its own in the local PostgreSQL, dropped at the end.
pub struct Pg {
    client: postgres::Client,
    schema: String,
}

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

impl Pg {
    /// Connects and creates a fresh schema; `None` (with a message) when no server answers,
    /// unless `CLICKGATE_REQUIRE_SERVICES=1`, which makes that a failure.
    pub fn connect() -> Option<Pg> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let url = std::env::var("CLICKGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_URL.to_string());
        let mut client = match connect(&url) {
            Ok(c) => c,
            Err(e) if std::env::var("CLICKGATE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
                panic!("no PostgreSQL at {url} and CLICKGATE_REQUIRE_SERVICES=1: {}", chain(&e))
            }
            Err(e) => {
                eprintln!("skipping: no PostgreSQL at {url} ({}); CLICKGATE_REQUIRE_SERVICES=1 makes this a failure", chain(&e));
                return None;
            }
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let schema = format!("ledger_test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        client.batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path TO {schema}")).unwrap();
        pg::migrate(&mut client).unwrap();
        pg::migrate(&mut client).expect("migrate twice is a no-op");
        Some(Pg { client, schema })
    }
}

/// An error and its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

fn connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(std::time::Duration::from_secs(3));
    config.connect(postgres::NoTls)
}

impl Pg {
    /// Another connection to the same schema, for a second writer.
    pub fn second_client(&self) -> postgres::Client {
        let url = std::env::var("CLICKGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_URL.to_string());
        let mut client = connect(&url).unwrap();
        client.batch_execute(&format!("SET search_path TO {}", self.schema)).unwrap();
        client
    }
}

impl Harness for Pg {
    fn run<R>(&mut self, f: impl FnOnce(&mut dyn LedgerTx) -> R) -> R {
        let mut tx = self.client.transaction().unwrap();
        let r = f(&mut PgLedger::new(&mut tx));
        tx.commit().unwrap();
        r
    }

    fn raw(&mut self, sql: &str) -> Result<(), String> {
        self.client.batch_execute(sql).map_err(|e| e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()))
    }

    fn reopen(&mut self) {
        let url = std::env::var("CLICKGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_URL.to_string());
        self.client = connect(&url).unwrap();
        self.client.batch_execute(&format!("SET search_path TO {}", self.schema)).unwrap();
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Err(e) = self.client.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema)) {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}
