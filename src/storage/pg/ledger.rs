//! The ledger in PostgreSQL, for cluster mode: the same rows and rules as SQLite.
//!
//! The tables are the store's migrations (`pg::migrations`). `PgTx` borrows an open
//! `postgres::Transaction` and never commits. `head` locks the head row (`FOR UPDATE`), so
//! writers in several processes append one at a time and the chain stays a single line. With
//! `PgStatements`, each statement is prepared once per connection and then only bound and
//! executed: one round trip instead of two.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use ::postgres::types::ToSql;
use ::postgres::{Row, Statement, Transaction};

use crate::ledger::{AccountKey, Balance, Deferred, LedgerError, LedgerTx, StoredTransfer, TransferId, TransferKind};
use crate::storage::group::GroupState;
use crate::storage::pg::batch::Batch;
use crate::storage::row::{account, bytes, currency, decode, sorted, COLUMNS};

/// Prepared statements of one connection, by their SQL. Prepared statements live as long as
/// the connection (a rolled-back transaction keeps them), so one cache serves every transaction
/// of its connection, and only of that one.
#[derive(Default)]
pub struct PgStatements(HashMap<String, Statement>);

/// One open PostgreSQL transaction, on which every domain store trait is implemented. With
/// `deferring`, the head and balance writes, the partners' period states, partner days and
/// rule versions wait for `flush` (see `Deferred` and `GroupState`), as on SQLite: a round trip
/// saved per write.
pub struct PgTx<'t, 'c> {
    tx: &'t mut Transaction<'c>,
    statements: Option<&'t mut PgStatements>,
    deferred: Option<&'t mut Deferred>,
    group: Option<&'t mut GroupState>,
    batch: Option<&'t mut Batch>,
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

impl<'t, 'c> PgTx<'t, 'c> {
    /// Wraps an open transaction; the caller commits it. Each statement is prepared when it runs.
    pub fn new(tx: &'t mut Transaction<'c>) -> PgTx<'t, 'c> {
        PgTx { tx, statements: None, deferred: None, group: None, batch: None }
    }

    /// Wraps an open transaction, with the statements already prepared on its connection. A
    /// new connection needs a new `PgStatements`: the server knows a statement only on the
    /// connection that prepared it.
    pub fn with_statements(tx: &'t mut Transaction<'c>, statements: &'t mut PgStatements) -> PgTx<'t, 'c> {
        PgTx { tx, statements: Some(statements), deferred: None, group: None, batch: None }
    }

    /// Defers the head and balance writes of this transaction to `flush`, into `deferred`, and
    /// the period states, partner days and rule versions into `group`; both outlive this
    /// wrapper so a group's jobs (each on its own savepoint) share them. The caller flushes
    /// before it commits or releases a savepoint, and forgets both after a rollback to one.
    pub(crate) fn deferring(self, deferred: &'t mut Deferred, group: &'t mut GroupState) -> PgTx<'t, 'c> {
        PgTx { deferred: Some(deferred), group: Some(group), ..self }
    }

    /// Holds the transaction's inserts back in `batch` until the next other statement or the
    /// flush, and answers look-ups from what `batch` read first (`batch::prefetch`). Only with
    /// `deferring`, on the writer's first attempt at a group.
    pub(crate) fn batching(self, batch: &'t mut Batch) -> PgTx<'t, 'c> {
        debug_assert!(self.deferred.is_some(), "a batch flushes with the deferred head");
        PgTx { batch: Some(batch), ..self }
    }

    /// The group's held rows and what it read first, when batching.
    pub(crate) fn batch(&mut self) -> Option<&mut Batch> {
        self.batch.as_deref_mut()
    }

    /// The group's state of the tables beside the ledger, when deferring.
    pub(crate) fn group(&mut self) -> Option<&mut GroupState> {
        self.group.as_deref_mut()
    }

    /// Writes what deferring and batching held back: the rows, the head, and in one statement
    /// each, the balances touched, the period states changed and the partner days added to.
    pub fn flush(&mut self) -> Result<(), LedgerError> {
        self.write_rows()?;
        let Some(d) = self.deferred.as_deref_mut() else { return Ok(()) };
        let f = d.take();
        if let Some((seq, hash)) = f.head {
            self.write_head(seq, &hash)?;
        }
        if !f.balances.is_empty() {
            self.write_balances(&f.balances)?;
        }
        let (periods, days, link_days) = match self.group.as_deref_mut() {
            Some(g) => (g.take_changed_periods(), std::mem::take(&mut g.days), std::mem::take(&mut g.link_days)),
            None => return Ok(()),
        };
        if !periods.is_empty() {
            self.write_periods(&periods).map_err(|e| LedgerError::Storage(e.to_string()))?;
        }
        if !days.is_empty() {
            self.write_partner_days(&days).map_err(|e| LedgerError::Storage(e.to_string()))?;
        }
        if !link_days.is_empty() {
            self.write_link_days(&link_days).map_err(|e| LedgerError::Storage(e.to_string()))?;
        }
        Ok(())
    }

    /// Writes the rows the batch holds, before any other statement runs: that statement then
    /// sees them, and they keep their order with it.
    fn write_rows(&mut self) -> Result<(), ::postgres::Error> {
        let Some(b) = self.batch.as_deref_mut() else { return Ok(()) };
        if b.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut b.rows);
        super::batch::write(self, rows)
    }

    /// Whether the head and balance writes are deferred.
    pub(crate) fn is_deferring(&self) -> bool {
        self.deferred.is_some()
    }

    fn write_head(&mut self, seq: u64, hash: &[u8; 32]) -> Result<(), LedgerError> {
        self.execute("UPDATE ledger_head SET seq = $1, hash = $2 WHERE singleton = 1", &[&(seq as i64), &&hash[..]])?;
        Ok(())
    }

    /// Adds each delta to its account's balance, in one statement.
    fn write_balances(&mut self, deltas: &BTreeMap<AccountKey, Balance>) -> Result<(), LedgerError> {
        let kind: Vec<&str> = deltas.keys().map(|k| k.kind.as_str()).collect();
        let owner: Vec<&str> = deltas.keys().map(|k| k.owner.as_str()).collect();
        let currency: Vec<&str> = deltas.keys().map(|k| k.currency.as_str()).collect();
        let dp: Vec<i64> = deltas.values().map(|d| d.debits_pending).collect();
        let cp: Vec<i64> = deltas.values().map(|d| d.credits_pending).collect();
        let dpo: Vec<i64> = deltas.values().map(|d| d.debits_posted).collect();
        let cpo: Vec<i64> = deltas.values().map(|d| d.credits_posted).collect();
        self.execute(
            "INSERT INTO ledger_balances AS b (kind, owner, currency, debits_pending, credits_pending, debits_posted, credits_posted)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
             ON CONFLICT (kind, owner, currency) DO UPDATE SET
                debits_pending = b.debits_pending + EXCLUDED.debits_pending,
                credits_pending = b.credits_pending + EXCLUDED.credits_pending,
                debits_posted = b.debits_posted + EXCLUDED.debits_posted,
                credits_posted = b.credits_posted + EXCLUDED.credits_posted",
            &[&kind, &owner, &currency, &dp, &cp, &dpo, &cpo],
        )?;
        Ok(())
    }

    fn write_balance(&mut self, key: &AccountKey, d: &Balance) -> Result<(), LedgerError> {
        self.execute(
            "INSERT INTO ledger_balances AS b (kind, owner, currency, debits_pending, credits_pending, debits_posted, credits_posted)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (kind, owner, currency) DO UPDATE SET
                debits_pending = b.debits_pending + EXCLUDED.debits_pending,
                credits_pending = b.credits_pending + EXCLUDED.credits_pending,
                debits_posted = b.debits_posted + EXCLUDED.debits_posted,
                credits_posted = b.credits_posted + EXCLUDED.credits_posted",
            &[
                &key.kind.as_str(),
                &key.owner,
                &key.currency.as_str(),
                &d.debits_pending,
                &d.credits_pending,
                &d.debits_posted,
                &d.credits_posted,
            ],
        )?;
        Ok(())
    }

    /// `sql` prepared: from the cache, or prepared now (and kept when there is a cache).
    fn statement(&mut self, sql: &str) -> Result<Statement, ::postgres::Error> {
        let Some(cache) = self.statements.as_deref_mut() else { return self.tx.prepare(sql) };
        if let Some(st) = cache.0.get(sql) {
            return Ok(st.clone());
        }
        let st = self.tx.prepare(sql)?;
        cache.0.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    // Every statement writes the batch's rows first (`write_rows`).
    pub(crate) fn query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, ::postgres::Error> {
        self.write_rows()?;
        let st = self.statement(sql)?;
        self.tx.query(&st, params)
    }

    pub(crate) fn query_opt(&mut self, sql: &str, params: &Params<'_>) -> Result<Option<Row>, ::postgres::Error> {
        self.write_rows()?;
        let st = self.statement(sql)?;
        self.tx.query_opt(&st, params)
    }

    pub(crate) fn query_one(&mut self, sql: &str, params: &Params<'_>) -> Result<Row, ::postgres::Error> {
        self.write_rows()?;
        let st = self.statement(sql)?;
        self.tx.query_one(&st, params)
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<u64, ::postgres::Error> {
        self.write_rows()?;
        self.execute_now(sql, params)
    }

    /// Runs a statement without writing the batch's rows first: the batch's own.
    pub(super) fn execute_now(&mut self, sql: &str, params: &Params<'_>) -> Result<u64, ::postgres::Error> {
        let st = self.statement(sql)?;
        self.tx.execute(&st, params)
    }
}

impl From<::postgres::Error> for LedgerError {
    fn from(e: ::postgres::Error) -> LedgerError {
        match e.as_db_error() {
            Some(db) => LedgerError::Storage(format!("PostgreSQL {}: {}", db.code().code(), db.message())),
            None => LedgerError::Storage(format!("PostgreSQL: {e}")),
        }
    }
}

pub(crate) fn transfer_row(r: &Row) -> Result<StoredTransfer, LedgerError> {
    decode((
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        (r.try_get(3)?, r.try_get(4)?),
        (r.try_get(5)?, r.try_get(6)?),
        r.try_get(7)?,
        r.try_get(8)?,
        r.try_get(9)?,
        r.try_get(10)?,
        r.try_get(11)?,
        r.try_get(12)?,
        (r.try_get(13)?, r.try_get(14)?),
    ))
}

fn id_row(r: Option<Row>) -> Result<Option<TransferId>, LedgerError> {
    r.map(|r| bytes(r.try_get(0)?, "an id").map(TransferId)).transpose()
}

fn balance_row(r: &Row, first: usize) -> Result<Balance, LedgerError> {
    Ok(Balance {
        debits_pending: r.try_get(first)?,
        credits_pending: r.try_get(first + 1)?,
        debits_posted: r.try_get(first + 2)?,
        credits_posted: r.try_get(first + 3)?,
    })
}

impl LedgerTx for PgTx<'_, '_> {
    fn get_transfer(&mut self, id: &TransferId) -> Result<Option<StoredTransfer>, LedgerError> {
        let row = self.query_opt(&format!("SELECT {COLUMNS} FROM ledger_transfers WHERE id = $1"), &[&&id.0[..]])?;
        row.as_ref().map(transfer_row).transpose()
    }

    fn resolution_of(&mut self, pending_id: &TransferId) -> Result<Option<TransferId>, LedgerError> {
        id_row(self.query_opt("SELECT id FROM ledger_transfers WHERE pending_id = $1", &[&&pending_id.0[..]])?)
    }

    fn subject_transfer(&mut self, subject: &str, kind: TransferKind) -> Result<Option<TransferId>, LedgerError> {
        // The literal kinds let the planner use the partial index, which a bound kind alone does not.
        let sql = "SELECT id FROM ledger_transfers WHERE subject = $1 AND kind = $2 AND kind IN ('post', 'single')";
        id_row(self.query_opt(sql, &[&subject, &kind.as_str()])?)
    }

    fn head(&mut self) -> Result<(u64, [u8; 32]), LedgerError> {
        // Known once read: its lock is held until the transaction ends.
        if let Some(head) = self.deferred.as_ref().and_then(|d| d.head()) {
            return Ok(head);
        }
        let r = self.query_one("SELECT seq, hash FROM ledger_head WHERE singleton = 1 FOR UPDATE", &[])?;
        let seq: i64 = r.try_get(0)?;
        let head = (seq as u64, bytes(r.try_get(1)?, "the head hash")?);
        if let Some(d) = self.deferred.as_deref_mut() {
            d.read_head(head);
        }
        Ok(head)
    }

    fn insert_transfer(&mut self, t: &StoredTransfer) -> Result<bool, LedgerError> {
        // Held back, it is counted inserted: a stored transfer under its id fails the batch's
        // plain insert, and the group runs again without a batch (see `batch`).
        if let (Some(b), Some(d)) = (self.batch.as_deref_mut(), self.deferred.as_deref_mut()) {
            b.rows.transfer(t);
            d.move_head(t.seq, t.hash);
            return Ok(true);
        }
        let r = &t.transfer;
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO ledger_transfers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (id) DO NOTHING"
            )
        });
        let inserted = self.execute(
            &SQL,
            &[
                &(t.seq as i64),
                &&r.id.0[..],
                &r.cause,
                &r.debit.kind.as_str(),
                &r.debit.owner,
                &r.credit.kind.as_str(),
                &r.credit.owner,
                &r.currency.as_str(),
                &r.amount_minor,
                &r.kind.as_str(),
                &r.subject,
                &r.pending_id.as_ref().map(|p| &p.0[..]),
                &r.at_ms,
                &&t.prev_hash[..],
                &&t.hash[..],
            ],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        match self.deferred.as_deref_mut() {
            Some(d) => d.move_head(t.seq, t.hash),
            None => self.write_head(t.seq, &t.hash)?,
        }
        Ok(true)
    }

    fn add_to_balance(&mut self, key: &AccountKey, d: &Balance) -> Result<(), LedgerError> {
        match self.deferred.as_deref_mut() {
            Some(deferred) => deferred.add(key, d),
            None => self.write_balance(key, d)?,
        }
        Ok(())
    }

    fn balance(&mut self, key: &AccountKey) -> Result<Balance, LedgerError> {
        let row = self.query_opt(
            "SELECT debits_pending, credits_pending, debits_posted, credits_posted FROM ledger_balances
             WHERE kind = $1 AND owner = $2 AND currency = $3",
            &[&key.kind.as_str(), &key.owner, &key.currency.as_str()],
        )?;
        let stored = row.map(|r| balance_row(&r, 0)).transpose()?.unwrap_or_default();
        Ok(self.deferred.as_ref().map_or(stored, |d| stored.plus(&d.pending(key))))
    }

    fn transfers_after(&mut self, after_seq: u64, limit: usize) -> Result<Vec<StoredTransfer>, LedgerError> {
        let sql = format!("SELECT {COLUMNS} FROM ledger_transfers WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = self.query(&sql, &[&(after_seq as i64), &(limit as i64)])?;
        rows.iter().map(transfer_row).collect()
    }

    fn balances(&mut self) -> Result<Vec<(AccountKey, Balance)>, LedgerError> {
        self.flush()?;
        let rows = self.query(
            "SELECT kind, owner, currency, debits_pending, credits_pending, debits_posted, credits_posted FROM ledger_balances
             ORDER BY kind, owner, currency",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(0)?;
                let key = account(&kind, r.try_get(1)?, currency(r.try_get(2)?)?)?;
                Ok((key, balance_row(r, 3)?))
            })
            .collect::<Result<Vec<_>, LedgerError>>()
            .map(sorted)
    }
}
