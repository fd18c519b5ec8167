//! Reading commissions for the API from SQLite: the filtered list in a stable order, one
//! commission with its events, a partner's balances, stored rule versions and per-day rows.

use rusqlite::types::Value as Sql;
use rusqlite::{params, OptionalExtension};

use super::lifecycle::{commission_row, event_row, COMMISSION_COLUMNS};
use super::SqliteReader;
use crate::conversions::view::{
    BalanceSheet, CommissionFilter, CommissionPage, CurrencyBalance, DayCommissions, ReportScope, StatusTotals,
};
use crate::lifecycle::{Commission, CommissionEvent, CommissionStatus, ConversionRef};
use crate::model::Currency;

const DAY_MS: i64 = 86_400_000;

/// The listing's query and its arguments, without the limit. Filtered by partner or payout it
/// walks an index on that key and `created_at_ms` (whose entries end with the rowid, so they are
/// in page order); by conversion, the range of ids its commissions share (`id_range`, from
/// `ConversionRef::commission_prefix`), a handful of rows; otherwise the `created_at_ms`
/// index, so a page never sorts every match.
fn listing(f: &CommissionFilter, id_range: Option<(String, String)>) -> (String, Vec<Sql>) {
    let mut sql = format!("SELECT {COMMISSION_COLUMNS}, rowid FROM commissions WHERE 1 = 1");
    let mut args: Vec<Sql> = Vec::new();
    let mut eq = |column: &str, v: &Option<String>| {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(Sql::Text(v.clone()));
        }
    };
    eq("partner", &f.partner);
    eq("program", &f.program);
    eq("status", &f.status.map(|s| s.as_str().to_string()));
    eq("period", &f.period);
    eq("conversion_id", &f.conversion_id);
    eq("payout_id", &f.payout_id);
    if let Some((lo, hi)) = id_range {
        sql.push_str(" AND id > ? AND id < ?");
        args.extend([Sql::Text(lo), Sql::Text(hi)]);
    }
    if let Some((at, rowid)) = f.after {
        sql.push_str(" AND (created_at_ms, rowid) > (?, ?)");
        args.extend([Sql::Integer(at), Sql::Integer(rowid)]);
    }
    sql.push_str(" ORDER BY created_at_ms, rowid");
    (sql, args)
}

/// A listing row: the commission, and its `(created_at_ms, rowid)` (the rowid is the last column).
fn listed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Commission, (i64, i64))> {
    let c = commission_row(r)?;
    let key = (c.created_at_ms, r.get(r.as_ref().column_count() - 1)?);
    Ok((c, key))
}

impl SqliteReader {
    /// A page of commissions matching `f`, ordered by `(created_at_ms, rowid)`.
    pub fn commissions(&self, f: &CommissionFilter) -> rusqlite::Result<CommissionPage> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let mut id_range = None;
        if let Some(id) = &f.conversion_id {
            let occurred: Option<i64> =
                tx.prepare_cached("SELECT occurred_at_ms FROM conversions WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
            let Some(occurred_at_ms) = occurred else { return Ok(CommissionPage { commissions: Vec::new(), more: false, last: None }) };
            id_range = Some(ConversionRef { id, occurred_at_ms: occurred_at_ms as u64 }.commission_id_range());
        }
        let (sql, args) = listing(f, id_range);
        let (rows, more) = super::reader::page(&tx, sql, args, f.limit, listed_row)?;
        let last = rows.last().map(|(_, key)| *key);
        Ok(CommissionPage { commissions: rows.into_iter().map(|(c, _)| c).collect(), more, last })
    }

    /// One commission and its events in order; `None` when it does not exist.
    pub fn commission(&self, id: &str) -> rusqlite::Result<Option<(Commission, Vec<CommissionEvent>)>> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let c = tx.query_row(&format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE id = ?1"), [id], commission_row).optional()?;
        let Some(c) = c else { return Ok(None) };
        let mut stmt = tx.prepare_cached(
            "SELECT commission_id, kind, amount_minor, transfer_id, at_ms FROM commission_events WHERE commission_id = ?1 ORDER BY seq",
        )?;
        let events = stmt.query_map([id], event_row)?.collect::<Result<_, _>>()?;
        Ok(Some((c, events)))
    }

    /// A partner's balances per currency, from one snapshot of the ledger and the commissions;
    /// currencies in order, empty when the partner has no money yet.
    pub fn partner_balances(&self, partner: &str) -> rusqlite::Result<Vec<CurrencyBalance>> {
        let conn = self.conn();
        // One read transaction, so the ledger and the commission rows agree.
        let tx = conn.unchecked_transaction()?;
        let mut sheet = BalanceSheet::default();
        let mut stmt = tx.prepare_cached(
            "SELECT kind, currency, credits_pending, credits_posted - debits_posted FROM ledger_balances
             WHERE owner = ?1 AND kind IN ('partner_pending', 'partner_payable', 'partner_paid')",
        )?;
        let rows = stmt
            .query_map([partner], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Currency>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)))?;
        for row in rows {
            let (kind, currency, credits_pending, net_posted) = row?;
            sheet.account(&kind, currency, credits_pending, net_posted);
        }
        let mut stmt = tx.prepare_cached(
            "SELECT currency, status, count(*), sum(amount_minor), sum(amount_minor - voided_minor - reversed_minor)
             FROM commissions WHERE partner = ?1 GROUP BY currency, status",
        )?;
        let rows = stmt.query_map([partner], |r| {
            let totals = StatusTotals { count: r.get::<_, i64>(2)? as u64, amount_minor: r.get(3)?, remaining_minor: r.get(4)? };
            Ok((r.get::<_, Currency>(0)?, r.get::<_, String>(1)?, totals))
        })?;
        for row in rows {
            let (currency, status, totals) = row?;
            sheet.status(currency, &status, totals);
        }
        Ok(sheet.into_balances())
    }

    /// The stored JSON of the rule set with this version, if a commission was ever made by it.
    pub fn rule_set(&self, version: &str) -> rusqlite::Result<Option<String>> {
        self.conn().query_row("SELECT rules FROM commission_rules WHERE version = ?1", [version], |r| r.get(0)).optional()
    }

    /// Commissions by the UTC day they were created, currency and status, days `from..=to`.
    pub fn commission_days(&self, scope: ReportScope<'_>, from_day: u32, to_day: u32) -> rusqlite::Result<Vec<DayCommissions>> {
        let (column, key) = match scope {
            ReportScope::Partner(p) => ("partner", p),
            ReportScope::Program(p) => ("program", p),
        };
        let sql = format!(
            "SELECT created_at_ms / {DAY_MS}, currency, status, count(*), sum(amount_minor), sum(amount_minor - voided_minor - reversed_minor)
             FROM commissions WHERE {column} = ?1 AND created_at_ms >= ?2 AND created_at_ms < ?3
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let (from_ms, to_ms) = (i64::from(from_day) * DAY_MS, (i64::from(to_day) + 1) * DAY_MS);
        let rows = stmt.query_map(params![key, from_ms, to_ms], |r| {
            let status: String = r.get(2)?;
            let status = CommissionStatus::parse(&status).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, "not a commission status".into())
            })?;
            Ok(DayCommissions {
                day: r.get(0)?,
                currency: r.get(1)?,
                status,
                totals: StatusTotals { count: r.get::<_, i64>(3)? as u64, amount_minor: r.get(4)?, remaining_minor: r.get(5)? },
            })
        })?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::CommissionStatus;

    /// SQLite's plan for the listing: every filter the API takes is served by an index in the
    /// page's order (no full scan of the table, and no temporary b-tree sorting every match of a
    /// filter that can match many).
    #[test]
    fn every_listing_walks_an_index_in_page_order() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::storage::sqlite::schema::open_migrated(dir.path()).unwrap();
        let text = |s: &str| Some(s.to_string());
        // The last field: the filter matches only a handful of rows (a conversion has a commission
        // per partner and item), so sorting them is fine.
        let cases = [
            ("no filter", CommissionFilter::default(), "commissions_by_time", false),
            ("partner", CommissionFilter { partner: text("bob"), ..Default::default() }, "commissions_by_partner_time", false),
            (
                "partner and status",
                CommissionFilter { partner: text("bob"), status: Some(CommissionStatus::Approved), ..Default::default() },
                "commissions_by_partner_time",
                false,
            ),
            (
                "partner after a cursor",
                CommissionFilter { partner: text("bob"), after: Some((5, 9)), ..Default::default() },
                "commissions_by_partner_time",
                false,
            ),
            ("program", CommissionFilter { program: text("shop"), ..Default::default() }, "commissions_by_time", false),
            ("payout", CommissionFilter { payout_id: text("po-1"), ..Default::default() }, "commissions_by_payout_time", false),
            ("conversion", CommissionFilter { conversion_id: text("cv_0"), ..Default::default() }, "sqlite_autoindex_commissions_1", true),
            (
                "period after a cursor",
                CommissionFilter { period: text("2026-11"), after: Some((5, 9)), ..Default::default() },
                "commissions_by_time",
                false,
            ),
        ];
        for (what, filter, index, few_matches) in cases {
            let id_range = filter.conversion_id.as_ref().map(|_| ("cm_0".to_string(), "cm_1".to_string()));
            let (sql, args) = listing(&filter, id_range);
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> =
                st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect();
            let plan = plan.join(" | ");
            assert!(plan.contains(&format!("USING INDEX {index}")), "{what}: expected {index}, got {plan}");
            if !few_matches {
                assert!(!plan.contains("TEMP B-TREE"), "{what}: the page sorts every match: {plan}");
            }
        }
    }
}
