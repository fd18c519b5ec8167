//! The API's reads from the SQLite file.

use std::path::Path;

use rusqlite::Connection;

use super::SqliteTx;
use crate::conversions::view::{
    render, CommissionFilter, CommissionPage, CurrencyBalance, DayCommissions, DayConversions, LedgerFilter, LedgerPage, LinkDaysScope,
    Reader, ReportScope,
};
use crate::conversions::ConversionError;
use crate::lifecycle::{Commission, CommissionEvent};
use crate::storage::migration::SchemaError;
use crate::storage::pool::{Pool, READ_CONNECTIONS_DEFAULT};

/// Read connections to the store file (WAL lets them read while the writer commits).
pub struct SqliteReader {
    pool: Pool<Connection>,
}

impl SqliteReader {
    /// Opens a read connection to the store file, which the writer or `clickgate migrate`
    /// made: a file at another schema version than this build's, or at none, is refused
    /// (`SchemaError`), and nothing is created.
    pub fn open(data_dir: &Path) -> Result<SqliteReader, SchemaError> {
        SqliteReader::open_with(data_dir, READ_CONNECTIONS_DEFAULT)
    }

    /// As `open`, with `connections` read connections (at least one).
    pub fn open_with(data_dir: &Path, connections: usize) -> Result<SqliteReader, SchemaError> {
        let conns = (0..connections.max(1)).map(|_| super::schema::open(data_dir)).collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteReader { pool: Pool::new(conns) })
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.pool.get()
    }

    /// One conversion as JSON, from one read transaction.
    pub fn get(&self, id: &str) -> Result<Option<String>, ConversionError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        render(&mut SqliteTx::new(&tx).map_err(crate::lifecycle::LifecycleError::from)?, id)
    }

    /// Per-day conversions credited to a partner, days `from..=to`.
    pub fn partner_days(&self, partner: &str, from_day: u32, to_day: u32) -> rusqlite::Result<Vec<DayConversions>> {
        self.days(
            "SELECT day, currency, conversions, revenue_minor, refunded_minor, cancelled FROM partner_days
             WHERE partner = ?1 AND day BETWEEN ?2 AND ?3 ORDER BY day, currency",
            partner,
            from_day,
            to_day,
        )
    }

    /// Per-day conversions of a program (attributed or not), days `from..=to`.
    pub fn program_days(&self, program: &str, from_day: u32, to_day: u32) -> rusqlite::Result<Vec<DayConversions>> {
        self.days(
            "SELECT day, currency, sum(status != 'cancelled'), sum(CASE WHEN status != 'cancelled' THEN amount_minor ELSE 0 END),
                    sum(refunded_minor), sum(status = 'cancelled')
             FROM conversions WHERE program = ?1 AND day BETWEEN ?2 AND ?3 GROUP BY day, currency ORDER BY day, currency",
            program,
            from_day,
            to_day,
        )
    }

    /// Per-day conversions credited through links, days `from..=to`: `link_days` summed over
    /// the rows `scope` picks.
    pub fn link_days(&self, scope: LinkDaysScope<'_>, from_day: u32, to_day: u32) -> rusqlite::Result<Vec<DayConversions>> {
        let columns = scope.columns();
        let mut sql = String::from(
            "SELECT day, currency, sum(conversions), sum(revenue_minor), sum(refunded_minor), sum(cancelled) FROM link_days
             WHERE day BETWEEN ?1 AND ?2",
        );
        for (i, (column, _)) in columns.iter().enumerate() {
            sql.push_str(&format!(" AND {column} = ?{}", i + 3));
        }
        sql.push_str(" GROUP BY day, currency ORDER BY day, currency");
        let mut params: Vec<&dyn rusqlite::ToSql> = vec![&from_day, &to_day];
        params.extend(columns.iter().map(|(_, v)| v as &dyn rusqlite::ToSql));
        self.days_with(&sql, &params)
    }

    fn days(&self, sql: &str, key: &str, from_day: u32, to_day: u32) -> rusqlite::Result<Vec<DayConversions>> {
        self.days_with(sql, rusqlite::params![key, from_day, to_day])
    }

    fn days_with(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<Vec<DayConversions>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(DayConversions {
                    day: r.get(0)?,
                    currency: r.get(1)?,
                    conversions: r.get::<_, i64>(2)? as u64,
                    revenue_minor: r.get(3)?,
                    refunded_minor: r.get(4)?,
                    cancelled: r.get::<_, i64>(5)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

impl Reader for SqliteReader {
    fn get(&self, id: &str) -> Result<Option<String>, ConversionError> {
        SqliteReader::get(self, id)
    }

    fn partner_days(&self, partner: &str, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError> {
        Ok(SqliteReader::partner_days(self, partner, from_day, to_day)?)
    }

    fn program_days(&self, program: &str, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError> {
        Ok(SqliteReader::program_days(self, program, from_day, to_day)?)
    }

    fn link_days(&self, scope: LinkDaysScope<'_>, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError> {
        Ok(SqliteReader::link_days(self, scope, from_day, to_day)?)
    }

    fn commissions(&self, f: &CommissionFilter) -> Result<CommissionPage, ConversionError> {
        Ok(SqliteReader::commissions(self, f)?)
    }

    fn commission(&self, id: &str) -> Result<Option<(Commission, Vec<CommissionEvent>)>, ConversionError> {
        Ok(SqliteReader::commission(self, id)?)
    }

    fn partner_balances(&self, partner: &str) -> Result<Vec<CurrencyBalance>, ConversionError> {
        Ok(SqliteReader::partner_balances(self, partner)?)
    }

    fn rule_set(&self, version: &str) -> Result<Option<String>, ConversionError> {
        Ok(SqliteReader::rule_set(self, version)?)
    }

    fn commission_days(&self, scope: ReportScope<'_>, from_day: u32, to_day: u32) -> Result<Vec<DayCommissions>, ConversionError> {
        Ok(SqliteReader::commission_days(self, scope, from_day, to_day)?)
    }

    fn ledger_transfers(&self, f: &LedgerFilter) -> Result<LedgerPage, ConversionError> {
        Ok(SqliteReader::ledger_transfers(self, f)?)
    }
}

/// One page of an ordered query: up to `limit` rows, asked for one more to learn whether more
/// follow.
pub(super) fn page<T>(
    conn: &Connection,
    mut sql: String,
    mut args: Vec<rusqlite::types::Value>,
    limit: usize,
    row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<(Vec<T>, bool)> {
    sql.push_str(" LIMIT ?");
    args.push(rusqlite::types::Value::Integer(limit as i64 + 1));
    let mut rows: Vec<T> = conn.prepare_cached(&sql)?.query_map(rusqlite::params_from_iter(args), row)?.collect::<Result<_, _>>()?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    Ok((rows, more))
}
