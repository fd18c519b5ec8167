//! The two stores under test, behind one trait: a SQLite file opened as the conversion writer
//! opens it, and a schema of its own in the local PostgreSQL.
//!
//! The ledger's harness (`ledger::tests::harness`) sits in a module private to `ledger`, so its
//! connect logic is repeated here; both take the server from `crate::testing`, so they read the
//! same environment variable and fail alike without a server.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::testing::PgSchema;

use crate::commission::PeriodState;
use crate::ledger::{self, VerifyReport};
use crate::lifecycle::{Commission, PeriodRef};
use crate::model::Currency;
use crate::payouts::plan;
use crate::payouts::state::payout_id;
use crate::payouts::{steps, Payout, PayoutError, PayoutMethod, PayoutStatus, PayoutTx, Run, Trigger};
use crate::storage::pg::lifecycle as pg;
use crate::storage::pg::PgStatements;
use crate::storage::pg::PgTx;
use crate::storage::sqlite::lifecycle as sqlite;
use crate::storage::sqlite::SqliteTx;

/// A commission store under test.
pub trait Harness {
    /// Which backend, for failure messages.
    fn name(&self) -> &'static str;
    /// Runs `f` inside one transaction and commits it, whatever `f` returned: a refused step
    /// must have written nothing, and committing is how a test sees that it did not. The
    /// transaction holds payouts too: commissions are paid by them.
    fn run<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> R) -> R;
    /// Runs `f` inside one transaction and rolls it back: a crash before the commit.
    fn crash<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> R) -> R;
    /// Runs raw SQL in autocommit; the store's message when it refuses.
    fn raw(&mut self, sql: &str) -> Result<(), String>;
    /// Drops the connection and opens a new one on the same data, as after a restart.
    fn reopen(&mut self);
    /// Every stored commission, by id, in one query: the simulation compares them all with
    /// its model after every step, and finds one of a conversion it never sent.
    fn commissions(&mut self) -> Vec<Commission>;
    /// Every stored period state, sorted by (program, partner, currency, label).
    fn periods(&mut self) -> Vec<(PeriodRef, PeriodState)>;

    /// `ledger::verify` in a transaction of its own; panics with the first thing wrong.
    fn verify(&mut self) -> VerifyReport {
        let name = self.name();
        self.run(|tx| ledger::verify(tx)).unwrap_or_else(|e| panic!("{name}: ledger verify: {e}"))
    }
}

/// A SQLite file in a temporary directory. `grouped` runs each transaction as the conversion
/// writer runs a group: the ledger head and balances written by a flush before the commit.
pub struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
    conn: Connection,
    grouped: bool,
}

impl Sqlite {
    pub fn new() -> Sqlite {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lifecycle.db");
        let mut conn = open_sqlite(&path);
        let latest = crate::storage::sqlite::migrations::LATEST;
        assert_eq!(crate::storage::sqlite::migrations::run(&mut conn).unwrap(), latest);
        assert_eq!(crate::storage::sqlite::migrations::run(&mut conn).expect("migrate twice is a no-op"), latest);
        Sqlite { _dir: dir, path, conn, grouped: false }
    }

    pub fn grouped() -> Sqlite {
        Sqlite { grouped: true, ..Sqlite::new() }
    }
}

fn ledger(tx: &Connection, grouped: bool) -> SqliteTx<'_> {
    if grouped { SqliteTx::grouped(tx) } else { SqliteTx::new(tx) }.unwrap()
}

/// WAL and `synchronous=FULL`, as the conversion writer opens its file.
fn open_sqlite(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn
}

impl Harness for Sqlite {
    fn name(&self) -> &'static str {
        if self.grouped {
            "sqlite_grouped"
        } else {
            "sqlite"
        }
    }

    fn run<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> R) -> R {
        let tx = self.conn.transaction().unwrap();
        let mut ledger = ledger(&tx, self.grouped);
        let r = f(&mut ledger);
        ledger.flush().unwrap();
        tx.commit().unwrap();
        r
    }

    fn crash<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> R) -> R {
        let tx = self.conn.transaction().unwrap();
        let r = f(&mut ledger(&tx, self.grouped));
        tx.rollback().unwrap();
        r
    }

    fn raw(&mut self, sql: &str) -> Result<(), String> {
        self.conn.execute_batch(sql).map_err(|e| e.to_string())
    }

    fn reopen(&mut self) {
        self.conn = open_sqlite(&self.path);
    }

    fn commissions(&mut self) -> Vec<Commission> {
        let sql = format!("SELECT {} FROM commissions ORDER BY id", sqlite::COMMISSION_COLUMNS);
        let mut st = self.conn.prepare_cached(&sql).unwrap();
        let rows = st.query_map([], sqlite::commission_row).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn periods(&mut self) -> Vec<(PeriodRef, PeriodState)> {
        let mut st = self.conn.prepare_cached(PERIODS).unwrap();
        let rows = st
            .query_map([], |r| {
                let state = PeriodState {
                    volume_minor: r.get(4)?,
                    conversions: r.get::<_, i64>(5)? as u64,
                    commission_minor: r.get(6)?,
                    bonuses_paid: r.get::<_, i64>(7)? as u32,
                };
                Ok((period_ref(r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?), state))
            })
            .unwrap();
        sorted(rows.collect::<Result<_, _>>().unwrap())
    }
}

const PERIODS: &str = "SELECT program, partner, currency, period, volume_minor, conversions, commission_minor, bonuses_paid
     FROM commission_periods";

fn period_ref(program: String, partner: String, currency: String, label: String) -> PeriodRef {
    PeriodRef { program, partner, currency: crate::model::Currency::parse(&currency).expect("a currency code"), label }
}

/// Sorted here, not in SQL, so both backends agree whatever the database's collation.
fn sorted(mut rows: Vec<(PeriodRef, PeriodState)>) -> Vec<(PeriodRef, PeriodState)> {
    rows.sort_by(|a, b| {
        let key = |p: &PeriodRef| (p.program.clone(), p.partner.clone(), p.currency, p.label.clone());
        key(&a.0).cmp(&key(&b.0))
    });
    rows
}

/// A schema of its own in the local PostgreSQL, dropped at the end.
pub struct Pg {
    client: postgres::Client,
    /// Prepared on `client`, kept across its transactions (committed and rolled back alike),
    /// as a long-lived writer keeps them.
    statements: PgStatements,
    schema: PgSchema,
    grouped: bool,
}

impl Pg {
    /// Connects and creates a fresh schema; fails the test, naming the server, when none
    /// answers (the tests that call this are ignored unless asked for).
    pub fn connect() -> Pg {
        let schema = PgSchema::new("lifecycle_test");
        let mut client = schema.client();
        let latest = crate::storage::pg::migrations::LATEST;
        assert_eq!(crate::storage::pg::migrations::run(&mut client).unwrap(), latest);
        assert_eq!(crate::storage::pg::migrations::run(&mut client).expect("migrate twice is a no-op"), latest);
        Pg { client, statements: PgStatements::default(), schema, grouped: false }
    }

    /// Runs each transaction as the writer runs a group: its deferred writes flushed before
    /// the commit.
    pub fn grouped(self) -> Pg {
        Pg { grouped: true, ..self }
    }

    /// Another connection to the same schema, for a second writer.
    pub fn second_client(&self) -> postgres::Client {
        self.schema.client()
    }

    /// Runs `f` in one transaction (deferring as the writer's group does, when grouped), then
    /// flushes and commits it, or rolls it back as a crash before the commit would.
    fn in_transaction<R>(&mut self, commit: bool, f: impl FnOnce(&mut dyn PayoutTx) -> R) -> R {
        let mut tx = self.client.transaction().unwrap();
        let (mut deferred, mut group) = (crate::ledger::Deferred::default(), crate::storage::group::GroupState::default());
        let mut ledger = PgTx::with_statements(&mut tx, &mut self.statements);
        if self.grouped {
            ledger = ledger.deferring(&mut deferred, &mut group);
        }
        let r = f(&mut ledger);
        if commit {
            ledger.flush().unwrap();
            tx.commit().unwrap();
        } else {
            tx.rollback().unwrap();
        }
        r
    }
}

impl Harness for Pg {
    fn name(&self) -> &'static str {
        if self.grouped {
            "postgres_grouped"
        } else {
            "postgres"
        }
    }

    fn run<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> R) -> R {
        self.in_transaction(true, f)
    }

    fn crash<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> R) -> R {
        self.in_transaction(false, f)
    }

    fn raw(&mut self, sql: &str) -> Result<(), String> {
        self.client.batch_execute(sql).map_err(|e| e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()))
    }

    fn reopen(&mut self) {
        self.client = self.schema.client();
        // The old connection's statements went with it.
        self.statements = PgStatements::default();
    }

    fn commissions(&mut self) -> Vec<Commission> {
        let sql = format!("SELECT {} FROM commissions ORDER BY id COLLATE \"C\"", sqlite::COMMISSION_COLUMNS);
        self.client.query(&sql, &[]).unwrap().iter().map(|r| pg::commission_row(r).unwrap()).collect()
    }

    fn periods(&mut self) -> Vec<(PeriodRef, PeriodState)> {
        let rows = self.client.query(PERIODS, &[]).unwrap();
        let get = |r: &postgres::Row, i| r.get::<_, i64>(i);
        sorted(
            rows.iter()
                .map(|r| {
                    let state = PeriodState {
                        volume_minor: get(r, 4),
                        conversions: get(r, 5) as u64,
                        commission_minor: get(r, 6),
                        bonuses_paid: get(r, 7) as u32,
                    };
                    (period_ref(r.get(0), r.get(1), r.get(2), r.get(3)), state)
                })
                .collect(),
        )
    }
}

/// Creates and sends the payout of run `run_id` (stored if new) that settles `partner`'s
/// approved commissions in `currency` by hand, as `payouts::run` does for
/// `clickgate payouts settle`: its plan (`plan::by_hand`), then `steps::create` and
/// `steps::send`. `None`, having written nothing, when nothing is payable. A payout made
/// before is sent again (a no-op once sent).
pub fn send_by_hand(
    tx: &mut dyn PayoutTx,
    run_id: &str,
    partner: &str,
    currency: Currency,
    now_ms: u64,
) -> Result<Option<Payout>, PayoutError> {
    let id = payout_id(run_id, partner, currency);
    let now = now_ms as i64;
    if tx.payout(&id)?.is_none() {
        let plan = plan::by_hand(tx, partner, None, currency)?;
        let Some(p) = plan.payouts.first() else { return Ok(None) };
        if tx.run(run_id)?.is_none() {
            let run = Run {
                id: run_id.to_string(),
                program: None,
                currency: Some(currency),
                trigger: Trigger::Cli,
                finished: false,
                started_ms: now,
                finished_ms: None,
            };
            tx.insert_run(&run)?;
        }
        let payout = Payout {
            id: id.clone(),
            run_id: run_id.to_string(),
            partner: partner.to_string(),
            currency,
            amount_minor: p.amount_minor,
            method: PayoutMethod::Manual,
            destination: String::new(),
            status: PayoutStatus::Created,
            reference: Some(format!("ref-{run_id}")),
            failure: None,
            insufficient: false,
            created_ms: now,
            sent_ms: None,
            settled_ms: None,
        };
        steps::create(tx, &payout, &p.programs)?;
    }
    Ok(Some(steps::send(tx, &id, Some(&format!("ref-{run_id}")), now)?))
}

/// `send_by_hand`, then `steps::paid`: the payout of `partner` in `currency` in run `run_id`,
/// paid, or `None` when nothing was payable.
pub fn pay_by_hand(
    tx: &mut dyn PayoutTx,
    run_id: &str,
    partner: &str,
    currency: Currency,
    now_ms: u64,
) -> Result<Option<Payout>, PayoutError> {
    let Some(sent) = send_by_hand(tx, run_id, partner, currency, now_ms)? else { return Ok(None) };
    Ok(Some(steps::paid(tx, &sent.id, None, now_ms as i64)?))
}

/// The lifecycle's suite on every backend (`storage::conformance`).
pub struct Lifecycle;

impl crate::storage::conformance::Backends for Lifecycle {
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
            Pg::connect().grouped()
        } else {
            Pg::connect()
        }
    }
}
