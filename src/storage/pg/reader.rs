//! The API's reads on a PostgreSQL store (cluster mode): the same answers as the SQLite
//! reader's, each from one read-only snapshot.

use ::postgres::types::ToSql;

use crate::conversions::view::{
    render, BalanceSheet, CommissionFilter, CommissionPage, CurrencyBalance, DayCommissions, DayConversions, LedgerFilter, LedgerPage,
    LinkDaysScope, Reader, ReportScope, StatusTotals,
};
use crate::conversions::ConversionError;
use crate::lifecycle::{Commission, CommissionEvent, CommissionStatus, CommissionTx, LifecycleError};
use crate::storage::pg::conversions::{connect, in_snapshot, Reconnecting};
use crate::storage::pg::PgTx;
use crate::storage::pool::{Pool, READ_CONNECTIONS_DEFAULT};
use crate::storage::row::COLUMNS as TRANSFER_COLUMNS;
use crate::storage::row::COMMISSION_COLUMNS;

const DAY_MS: i64 = 86_400_000;

/// Read connections to a PostgreSQL store, each connected again when the server dropped it.
pub struct PgReader {
    pool: Pool<Reconnecting>,
}

type Args = Vec<Box<dyn ToSql + Sync + Send>>;

impl PgReader {
    /// Connects to the store, which the writer or `clickgate migrate` made: a store at another
    /// schema version than this build's, or at none, is refused, and nothing is created. So is
    /// each reconnection.
    pub fn open(url: &str) -> Result<PgReader, ConversionError> {
        PgReader::open_with(url, READ_CONNECTIONS_DEFAULT)
    }

    /// As `open`, with `connections` read connections (at least one).
    pub fn open_with(url: &str, connections: usize) -> Result<PgReader, ConversionError> {
        let conns =
            (0..connections.max(1)).map(|_| Ok(Reconnecting::new(url, connect(url)?))).collect::<Result<Vec<_>, ConversionError>>()?;
        Ok(PgReader { pool: Pool::new(conns) })
    }

    /// Runs `f` in one read-only snapshot.
    fn read<T>(&self, f: impl FnOnce(&mut PgTx<'_, '_>) -> Result<T, ConversionError>) -> Result<T, ConversionError> {
        let mut conn = self.pool.get();
        let (client, statements) = conn.get()?;
        in_snapshot(client, statements, f)
    }

    fn days(&self, sql: &str, key: &str, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError> {
        self.days_with(sql, &[&key, &i64::from(from_day), &i64::from(to_day)])
    }

    fn days_with(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<DayConversions>, ConversionError> {
        self.read(|l| {
            let rows = l.query(sql, params)?;
            rows.iter()
                .map(|r| {
                    Ok(DayConversions {
                        day: day(r.try_get(0)?)?,
                        currency: r.try_get(1)?,
                        conversions: r.try_get::<_, i64>(2)? as u64,
                        revenue_minor: r.try_get(3)?,
                        refunded_minor: r.try_get(4)?,
                        cancelled: r.try_get::<_, i64>(5)? as u64,
                    })
                })
                .collect()
        })
    }
}

impl Reader for PgReader {
    fn get(&self, id: &str) -> Result<Option<String>, ConversionError> {
        self.read(|l| render(l, id))
    }

    fn partner_days(&self, partner: &str, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError> {
        self.days(
            "SELECT day, currency, conversions, revenue_minor, refunded_minor, cancelled FROM partner_days
             WHERE partner = $1 AND day BETWEEN $2 AND $3 ORDER BY day, currency COLLATE \"C\"",
            partner,
            from_day,
            to_day,
        )
    }

    fn program_days(&self, program: &str, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError> {
        self.days(
            "SELECT day, currency, count(*) FILTER (WHERE status != 'cancelled'),
                    coalesce(sum(amount_minor) FILTER (WHERE status != 'cancelled'), 0)::bigint,
                    sum(refunded_minor)::bigint, count(*) FILTER (WHERE status = 'cancelled')
             FROM conversions WHERE program = $1 AND day BETWEEN $2 AND $3
             GROUP BY day, currency ORDER BY day, currency COLLATE \"C\"",
            program,
            from_day,
            to_day,
        )
    }

    fn link_days(&self, scope: LinkDaysScope<'_>, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError> {
        let columns = scope.columns();
        let mut sql = String::from(
            "SELECT day, currency, sum(conversions)::bigint, sum(revenue_minor)::bigint, sum(refunded_minor)::bigint,
                    sum(cancelled)::bigint
             FROM link_days WHERE day BETWEEN $1 AND $2",
        );
        for (i, (column, _)) in columns.iter().enumerate() {
            sql.push_str(&format!(" AND {column} = ${}", i + 3));
        }
        sql.push_str(" GROUP BY day, currency ORDER BY day, currency COLLATE \"C\"");
        let (from, to) = (i64::from(from_day), i64::from(to_day));
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &to];
        params.extend(columns.iter().map(|(_, v)| v as &(dyn ToSql + Sync)));
        self.days_with(&sql, &params)
    }

    /// The SQLite reader's listing (`commissions::listing`), in PostgreSQL's words: in
    /// `(created_at_ms, seq)` order, `seq` being the order stored, as SQLite's rowid is.
    fn commissions(&self, f: &CommissionFilter) -> Result<CommissionPage, ConversionError> {
        self.read(|l| {
            let mut sql = format!("SELECT {COMMISSION_COLUMNS}, seq FROM commissions WHERE true");
            let mut args: Args = Vec::new();
            let eq = |column: &str, v: Option<String>, sql: &mut String, args: &mut Args| {
                if let Some(v) = v {
                    args.push(Box::new(v));
                    sql.push_str(&format!(" AND {column} = ${}", args.len()));
                }
            };
            eq("partner", f.partner.clone(), &mut sql, &mut args);
            eq("program", f.program.clone(), &mut sql, &mut args);
            eq("status", f.status.map(|s| s.as_str().to_string()), &mut sql, &mut args);
            eq("period", f.period.clone(), &mut sql, &mut args);
            eq("conversion_id", f.conversion_id.clone(), &mut sql, &mut args);
            eq("payout_id", f.payout_id.clone(), &mut sql, &mut args);
            if let Some((at, seq)) = f.after {
                args.push(Box::new(at));
                args.push(Box::new(seq));
                sql.push_str(&format!(" AND (created_at_ms, seq) > (${}, ${})", args.len() - 1, args.len()));
            }
            args.push(Box::new(f.limit as i64 + 1));
            sql.push_str(&format!(" ORDER BY created_at_ms, seq LIMIT ${}", args.len()));
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
            let rows = l.query(&sql, &refs)?;
            let mut listed = Vec::with_capacity(rows.len());
            for r in &rows {
                let c = super::lifecycle::commission_row(r)?;
                let seq: i64 = r.try_get(r.len() - 1)?;
                listed.push(((c.created_at_ms, seq), c));
            }
            let more = listed.len() > f.limit;
            listed.truncate(f.limit);
            let last = listed.last().map(|(key, _)| *key);
            Ok(CommissionPage { commissions: listed.into_iter().map(|(_, c)| c).collect(), more, last })
        })
    }

    fn commission(&self, id: &str) -> Result<Option<(Commission, Vec<CommissionEvent>)>, ConversionError> {
        self.read(|l| {
            let row = l.query_opt(&format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE id = $1"), &[&id])?;
            let Some(r) = row else { return Ok(None) };
            let c = super::lifecycle::commission_row(&r)?;
            let events = l.events_of(id)?;
            Ok(Some((c, events)))
        })
    }

    fn partner_balances(&self, partner: &str) -> Result<Vec<CurrencyBalance>, ConversionError> {
        self.read(|l| {
            let mut sheet = BalanceSheet::default();
            let rows = l.query(
                "SELECT kind, currency, credits_pending, credits_posted - debits_posted FROM ledger_balances
                 WHERE owner = $1 AND kind IN ('partner_pending', 'partner_payable', 'partner_paid')",
                &[&partner],
            )?;
            for r in &rows {
                let kind: String = r.try_get(0)?;
                sheet.account(&kind, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            }
            let rows = l.query(
                "SELECT currency, status, count(*), sum(amount_minor)::bigint, sum(amount_minor - voided_minor - reversed_minor)::bigint
                 FROM commissions WHERE partner = $1 GROUP BY currency, status",
                &[&partner],
            )?;
            for r in &rows {
                let status: String = r.try_get(1)?;
                let totals =
                    StatusTotals { count: r.try_get::<_, i64>(2)? as u64, amount_minor: r.try_get(3)?, remaining_minor: r.try_get(4)? };
                sheet.status(r.try_get(0)?, &status, totals);
            }
            Ok(sheet.into_balances())
        })
    }

    fn rule_set(&self, version: &str) -> Result<Option<String>, ConversionError> {
        self.read(|l| {
            Ok(l.query_opt("SELECT rules FROM commission_rules WHERE version = $1", &[&version])?.map(|r| r.try_get(0)).transpose()?)
        })
    }

    fn commission_days(&self, scope: ReportScope<'_>, from_day: u32, to_day: u32) -> Result<Vec<DayCommissions>, ConversionError> {
        let (column, key) = match scope {
            ReportScope::Partner(p) => ("partner", p),
            ReportScope::Program(p) => ("program", p),
        };
        let sql = format!(
            "SELECT created_at_ms / {DAY_MS}, currency, status, count(*), sum(amount_minor)::bigint,
                    sum(amount_minor - voided_minor - reversed_minor)::bigint
             FROM commissions WHERE {column} = $1 AND created_at_ms >= $2 AND created_at_ms < $3
             GROUP BY 1, 2, 3 ORDER BY 1, currency COLLATE \"C\", status COLLATE \"C\""
        );
        let (from_ms, to_ms) = (i64::from(from_day) * DAY_MS, (i64::from(to_day) + 1) * DAY_MS);
        self.read(|l| {
            let rows = l.query(&sql, &[&key, &from_ms, &to_ms])?;
            rows.iter()
                .map(|r| {
                    let status: String = r.try_get(2)?;
                    let status = CommissionStatus::parse(&status).ok_or_else(|| ConversionError::Invalid {
                        field: "commissions.status",
                        why: format!("{status:?} is not a commission status"),
                    })?;
                    Ok(DayCommissions {
                        day: day(r.try_get(0)?)?,
                        currency: r.try_get(1)?,
                        status,
                        totals: StatusTotals {
                            count: r.try_get::<_, i64>(3)? as u64,
                            amount_minor: r.try_get(4)?,
                            remaining_minor: r.try_get(5)?,
                        },
                    })
                })
                .collect()
        })
    }

    /// The SQLite reader's `ledger_transfers`, in PostgreSQL's words.
    fn ledger_transfers(&self, f: &LedgerFilter) -> Result<LedgerPage, ConversionError> {
        self.read(|l| {
            let mut sql = format!("SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE seq > $1");
            let mut args: Args = vec![Box::new(i64::try_from(f.after_seq).unwrap_or(i64::MAX))];
            let next = |v: Box<dyn ToSql + Sync + Send>, args: &mut Args| {
                args.push(v);
                format!("${}", args.len())
            };
            if let Some(a) = &f.account {
                let cur = next(Box::new(a.currency.to_string()), &mut args);
                let kind = next(Box::new(a.kind.as_str().to_string()), &mut args);
                let owner = next(Box::new(a.owner.clone()), &mut args);
                sql.push_str(&format!(
                    " AND currency = {cur} AND ((debit_kind = {kind} AND debit_owner = {owner}) OR (credit_kind = {kind} AND credit_owner = {owner}))"
                ));
            }
            if let Some(c) = &f.commission_id {
                let id = next(Box::new(c.clone()), &mut args);
                let prefix = next(Box::new(format!("commission:{c}:")), &mut args);
                sql.push_str(&format!(" AND (subject = {id} OR starts_with(cause, {prefix}))"));
            }
            if let Some(p) = &f.cause_prefix {
                let prefix = next(Box::new(p.clone()), &mut args);
                sql.push_str(&format!(" AND starts_with(cause, {prefix})"));
            }
            let limit = next(Box::new(f.limit as i64 + 1), &mut args);
            sql.push_str(&format!(" ORDER BY seq LIMIT {limit}"));
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
            let rows = l.query(&sql, &refs)?;
            let mut transfers =
                rows.iter().map(crate::storage::pg::ledger::transfer_row).collect::<Result<Vec<_>, _>>().map_err(LifecycleError::from)?;
            let more = transfers.len() > f.limit;
            transfers.truncate(f.limit);
            Ok(LedgerPage { transfers, more })
        })
    }
}

fn day(v: i64) -> Result<u32, ConversionError> {
    u32::try_from(v).map_err(|_| ConversionError::Invalid { field: "day", why: format!("{v} is not a day") })
}
