//! The ledger in SQLite: the embedded default, in the same file and transaction as conversions.
//!
//! Whoever opens the connection sets WAL and `synchronous=FULL`; the tables, their checks and
//! triggers are the file's migrations (`sqlite::migrations`).
//! `SqliteTx` borrows an open transaction or savepoint (both deref to `Connection`) and never
//! commits: the caller does, once per group.

use std::sync::LazyLock;

use rusqlite::{params, Connection, OptionalExtension, Row};

pub(crate) use crate::storage::group::GroupState;

use crate::ledger::{AccountKey, Balance, Deferred, LedgerError, LedgerTx, StoredTransfer, TransferId, TransferKind};
use crate::storage::row::{account, bytes, currency, decode, sorted, COLUMNS};
use crate::storage::sqlite::conversions::{write_link_day, write_partner_day};
use crate::storage::sqlite::lifecycle::write_period;

/// One open SQLite transaction (or savepoint) of the ledger. In grouped mode (`grouped`), the
/// head and balance writes wait for `flush` (see `Deferred`), and so do some of the tables that
/// commit with the ledger (`GroupState`).
pub struct SqliteTx<'c> {
    conn: &'c Connection,
    deferred: Option<Deferred>,
    group: Option<GroupState>,
}

impl<'c> SqliteTx<'c> {
    /// Wraps an open transaction or savepoint. A connection in autocommit mode is refused: a
    /// transfer row and its balances must commit together.
    pub fn new(conn: &'c Connection) -> Result<SqliteTx<'c>, LedgerError> {
        if conn.is_autocommit() {
            return Err(LedgerError::Storage("the SQLite ledger needs an open transaction".into()));
        }
        Ok(SqliteTx { conn, deferred: None, group: None })
    }

    /// Wraps an open transaction for a group of jobs: the head, the balances, the partners'
    /// period states and their days are written by `flush`, which the caller runs before it
    /// commits (or releases a job's savepoint). After a rollback to a savepoint, `forget` drops
    /// what the rolled-back part deferred.
    pub fn grouped(conn: &'c Connection) -> Result<SqliteTx<'c>, LedgerError> {
        Ok(SqliteTx { deferred: Some(Deferred::default()), group: Some(GroupState::default()), ..SqliteTx::new(conn)? })
    }

    /// The group's state of the tables beside the ledger, in grouped mode.
    pub(crate) fn group(&mut self) -> Option<&mut GroupState> {
        self.group.as_mut()
    }

    /// Writes what grouped mode deferred: the head, each balance touched (in account order),
    /// each period state changed and each partner day added to.
    pub fn flush(&mut self) -> Result<(), LedgerError> {
        let Some(d) = &mut self.deferred else { return Ok(()) };
        let f = d.take();
        if let Some((seq, hash)) = f.head {
            write_head(self.conn, seq, &hash)?;
        }
        for (key, delta) in &f.balances {
            write_balance(self.conn, key, delta)?;
        }
        if let Some(g) = &mut self.group {
            for (key, state) in g.take_changed_periods() {
                write_period(self.conn, &key, &state).map_err(|e| LedgerError::Storage(e.to_string()))?;
            }
            for ((partner, day, currency), d) in std::mem::take(&mut g.days) {
                write_partner_day(self.conn, &partner, day, currency, d)?;
            }
            for (key, d) in std::mem::take(&mut g.link_days) {
                write_link_day(self.conn, &key, d)?;
            }
        }
        Ok(())
    }

    /// Drops what grouped mode deferred since the last flush: the rows are read anew.
    pub fn forget(&mut self) {
        if let Some(d) = &mut self.deferred {
            d.forget();
        }
        if let Some(g) = &mut self.group {
            *g = GroupState::default();
        }
    }

    /// The transaction's connection, for tables that commit with the ledger's (commissions).
    pub fn conn(&self) -> &'c Connection {
        self.conn
    }
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> LedgerError {
        LedgerError::Storage(e.to_string())
    }
}

/// Reads a row of `COLUMNS`.
fn transfer_row(r: &Row<'_>) -> rusqlite::Result<Result<StoredTransfer, LedgerError>> {
    let raw = (
        r.get::<_, i64>(0)?,
        r.get::<_, Vec<u8>>(1)?,
        r.get::<_, String>(2)?,
        (r.get::<_, String>(3)?, r.get::<_, String>(4)?),
        (r.get::<_, String>(5)?, r.get::<_, String>(6)?),
        r.get::<_, String>(7)?,
        r.get::<_, i64>(8)?,
        r.get::<_, String>(9)?,
        r.get::<_, Option<String>>(10)?,
        r.get::<_, Option<Vec<u8>>>(11)?,
        r.get::<_, i64>(12)?,
        (r.get::<_, Vec<u8>>(13)?, r.get::<_, Vec<u8>>(14)?),
    );
    Ok(decode(raw))
}

impl LedgerTx for SqliteTx<'_> {
    fn get_transfer(&mut self, id: &TransferId) -> Result<Option<StoredTransfer>, LedgerError> {
        static SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {COLUMNS} FROM ledger_transfers WHERE id = ?1"));
        let mut st = self.conn.prepare_cached(&SQL)?;
        st.query_row([&id.0[..]], transfer_row).optional()?.transpose()
    }

    fn resolution_of(&mut self, pending_id: &TransferId) -> Result<Option<TransferId>, LedgerError> {
        let mut st = self.conn.prepare_cached("SELECT id FROM ledger_transfers WHERE pending_id = ?1")?;
        let found: Option<Vec<u8>> = st.query_row([&pending_id.0[..]], |r| r.get(0)).optional()?;
        found.map(|v| bytes(v, "an id").map(TransferId)).transpose()
    }

    fn subject_transfer(&mut self, subject: &str, kind: TransferKind) -> Result<Option<TransferId>, LedgerError> {
        let mut st = self.conn.prepare_cached(
            // The literal kinds let the planner use the partial index, which a bound kind alone does not.
            "SELECT id FROM ledger_transfers WHERE subject = ?1 AND kind = ?2 AND kind IN ('post', 'single')",
        )?;
        let found: Option<Vec<u8>> = st.query_row(params![subject, kind.as_str()], |r| r.get(0)).optional()?;
        found.map(|v| bytes(v, "an id").map(TransferId)).transpose()
    }

    fn head(&mut self) -> Result<(u64, [u8; 32]), LedgerError> {
        if let Some(head) = self.deferred.as_ref().and_then(Deferred::head) {
            return Ok(head);
        }
        let mut st = self.conn.prepare_cached("SELECT seq, hash FROM ledger_head WHERE singleton = 1")?;
        let (seq, hash): (i64, Vec<u8>) = st.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let head = (seq as u64, bytes(hash, "the head hash")?);
        if let Some(d) = &mut self.deferred {
            d.read_head(head);
        }
        Ok(head)
    }

    fn insert_transfer(&mut self, t: &StoredTransfer) -> Result<bool, LedgerError> {
        let r = &t.transfer;
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO ledger_transfers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (id) DO NOTHING"
            )
        });
        let mut st = self.conn.prepare_cached(&SQL)?;
        let inserted = st.execute(params![
            t.seq as i64,
            &r.id.0[..],
            r.cause,
            r.debit.kind.as_str(),
            r.debit.owner,
            r.credit.kind.as_str(),
            r.credit.owner,
            r.currency.as_str(),
            r.amount_minor,
            r.kind.as_str(),
            r.subject,
            r.pending_id.as_ref().map(|p| &p.0[..]),
            r.at_ms,
            &t.prev_hash[..],
            &t.hash[..],
        ])?;
        if inserted == 0 {
            return Ok(false);
        }
        match &mut self.deferred {
            Some(d) => d.move_head(t.seq, t.hash),
            None => write_head(self.conn, t.seq, &t.hash)?,
        }
        Ok(true)
    }

    fn add_to_balance(&mut self, key: &AccountKey, d: &Balance) -> Result<(), LedgerError> {
        match &mut self.deferred {
            Some(deferred) => deferred.add(key, d),
            None => write_balance(self.conn, key, d)?,
        }
        Ok(())
    }

    fn balance(&mut self, key: &AccountKey) -> Result<Balance, LedgerError> {
        let stored = self.stored_balance(key)?;
        Ok(self.deferred.as_ref().map_or(stored, |d| stored.plus(&d.pending(key))))
    }

    fn transfers_after(&mut self, after_seq: u64, limit: usize) -> Result<Vec<StoredTransfer>, LedgerError> {
        let mut st = self.conn.prepare_cached(&format!("SELECT {COLUMNS} FROM ledger_transfers WHERE seq > ?1 ORDER BY seq LIMIT ?2"))?;
        let rows = st.query_map(params![after_seq as i64, limit as i64], transfer_row)?;
        rows.map(|r| r?).collect()
    }

    fn balances(&mut self) -> Result<Vec<(AccountKey, Balance)>, LedgerError> {
        self.flush()?;
        let mut st = self.conn.prepare_cached(
            "SELECT kind, owner, currency, debits_pending, credits_pending, debits_posted, credits_posted FROM ledger_balances
             ORDER BY kind, owner, currency",
        )?;
        let rows = st.query_map([], |r| {
            let (kind, owner, cur): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let b = Balance { debits_pending: r.get(3)?, credits_pending: r.get(4)?, debits_posted: r.get(5)?, credits_posted: r.get(6)? };
            Ok((kind, owner, cur, b))
        })?;
        rows.map(|r| {
            let (kind, owner, cur, b) = r?;
            Ok((account(&kind, owner, currency(cur)?)?, b))
        })
        .collect::<Result<Vec<_>, LedgerError>>()
        .map(sorted)
    }
}

impl SqliteTx<'_> {
    fn stored_balance(&self, key: &AccountKey) -> Result<Balance, LedgerError> {
        let mut st = self.conn.prepare_cached(
            "SELECT debits_pending, credits_pending, debits_posted, credits_posted FROM ledger_balances
             WHERE kind = ?1 AND owner = ?2 AND currency = ?3",
        )?;
        let b = st.query_row(params![key.kind.as_str(), key.owner, key.currency.as_str()], balance_row).optional()?;
        Ok(b.unwrap_or_default())
    }
}

fn write_head(conn: &Connection, seq: u64, hash: &[u8; 32]) -> Result<(), LedgerError> {
    let mut st = conn.prepare_cached("UPDATE ledger_head SET seq = ?1, hash = ?2 WHERE singleton = 1")?;
    st.execute(params![seq as i64, &hash[..]])?;
    Ok(())
}

/// Adds a delta to a stored balance: an update, and an insert only for an account never used.
/// The account almost always exists, and an upsert would probe for the conflict before updating.
fn write_balance(conn: &Connection, key: &AccountKey, d: &Balance) -> Result<(), LedgerError> {
    let mut st = conn.prepare_cached(
        "UPDATE ledger_balances SET debits_pending = debits_pending + ?4, credits_pending = credits_pending + ?5,
            debits_posted = debits_posted + ?6, credits_posted = credits_posted + ?7
         WHERE kind = ?1 AND owner = ?2 AND currency = ?3",
    )?;
    let p = params![
        key.kind.as_str(),
        key.owner,
        key.currency.as_str(),
        d.debits_pending,
        d.credits_pending,
        d.debits_posted,
        d.credits_posted
    ];
    if st.execute(p)? == 0 {
        let mut st = conn.prepare_cached(
            "INSERT INTO ledger_balances (kind, owner, currency, debits_pending, credits_pending, debits_posted, credits_posted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        st.execute(p)?;
    }
    Ok(())
}

fn balance_row(r: &Row<'_>) -> rusqlite::Result<Balance> {
    Ok(Balance { debits_pending: r.get(0)?, credits_pending: r.get(1)?, debits_posted: r.get(2)?, credits_posted: r.get(3)? })
}
