//! The backends under test, behind one trait.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::testing::PgSchema;

use crate::ledger::LedgerTx;
use crate::storage::pg::{migrations as pg_migrations, PgTx};
use crate::storage::sqlite::{migrations, SqliteTx};

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
/// `grouped` runs each transaction as the writer runs a group: head and balance writes deferred
/// to a flush before the commit.
pub struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
    conn: Connection,
    grouped: bool,
}

impl Sqlite {
    pub fn new() -> Sqlite {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let mut conn = open_sqlite(&path);
        assert_eq!(migrations::run(&mut conn).unwrap(), migrations::LATEST);
        assert_eq!(migrations::run(&mut conn).expect("migrate twice is a no-op"), migrations::LATEST);
        Sqlite { _dir: dir, path, conn, grouped: false }
    }

    pub fn grouped() -> Sqlite {
        Sqlite { grouped: true, ..Sqlite::new() }
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
        let mut ledger = if self.grouped { SqliteTx::grouped(&tx) } else { SqliteTx::new(&tx) }.unwrap();
        let r = f(&mut ledger);
        ledger.flush().unwrap();
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
    schema: PgSchema,
    grouped: bool,
}

impl Pg {
    /// Connects and creates a fresh schema; fails the test, naming the server, when none
    /// answers (the tests that call this are ignored unless asked for).
    pub fn connect() -> Pg {
        let schema = PgSchema::new("ledger_test");
        let mut client = schema.client();
        assert_eq!(pg_migrations::run(&mut client).unwrap(), pg_migrations::LATEST);
        assert_eq!(pg_migrations::run(&mut client).expect("migrate twice is a no-op"), pg_migrations::LATEST);
        Pg { client, schema, grouped: false }
    }

    /// As `connect`, with each transaction run as the conversion writer runs a group.
    pub fn grouped() -> Pg {
        Pg { grouped: true, ..Pg::connect() }
    }

    /// Another connection to the same schema, for a second writer.
    pub fn second_client(&self) -> postgres::Client {
        self.schema.client()
    }
}

impl Harness for Pg {
    fn run<R>(&mut self, f: impl FnOnce(&mut dyn LedgerTx) -> R) -> R {
        let mut tx = self.client.transaction().unwrap();
        let mut deferred = crate::ledger::Deferred::default();
        let mut group = crate::storage::group::GroupState::default();
        let mut ledger = PgTx::new(&mut tx);
        if self.grouped {
            ledger = ledger.deferring(&mut deferred, &mut group);
        }
        let r = f(&mut ledger);
        ledger.flush().unwrap();
        tx.commit().unwrap();
        r
    }

    fn raw(&mut self, sql: &str) -> Result<(), String> {
        self.client.batch_execute(sql).map_err(|e| e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()))
    }

    fn reopen(&mut self) {
        self.client = self.schema.client();
    }
}

/// The ledger's suite on every backend (`storage::conformance`).
pub struct Ledger;

impl crate::storage::conformance::Backends for Ledger {
    type Sqlite = Sqlite;
    type Pg = Pg;

    fn sqlite(grouped: bool) -> Sqlite {
        if grouped {
            Sqlite::grouped()
        } else {
            Sqlite::new()
        }
    }

    fn pg(grouped: bool) -> Pg {
        if grouped {
            Pg::grouped()
        } else {
            Pg::connect()
        }
    }
}
