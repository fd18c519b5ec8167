//! Reading conversions: the JSON view the API answers with, and per-day report rows; the
//! commission and ledger reads (`commissions`, `ledger`) share the same read connection.

mod commissions;
mod ledger;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};

pub use commissions::{CommissionFilter, CommissionPage, CurrencyBalance, DayCommissions, ReportScope, StatusTotals};
pub use ledger::{LedgerFilter, LedgerPage};

/// Renders one conversion as the API shows it; `None` when it does not exist.
pub fn render(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    let row = conn
        .query_row(
            "SELECT program, order_id, amount_minor, currency, occurred_at_ms, received_at_ms, click_id, visitor_id, coupon_code,
                    customer_ref, origin, attribution, status, refunded_minor
             FROM conversions WHERE id = ?1",
            [id],
            |r| {
                let attribution: String = r.get(11)?;
                Ok(json!({
                    "id": id,
                    "program": r.get::<_, String>(0)?,
                    "order_id": r.get::<_, String>(1)?,
                    "amount_minor": r.get::<_, i64>(2)?,
                    "currency": r.get::<_, String>(3)?,
                    "occurred_at": rfc3339(r.get::<_, i64>(4)?),
                    "received_at": rfc3339(r.get::<_, i64>(5)?),
                    "click_id": r.get::<_, Option<String>>(6)?,
                    "visitor_id": r.get::<_, Option<String>>(7)?,
                    "coupon_code": r.get::<_, Option<String>>(8)?,
                    "customer_ref": r.get::<_, Option<String>>(9)?,
                    "origin": r.get::<_, String>(10)?,
                    "attribution": serde_json::from_str::<Value>(&attribution).unwrap_or(Value::Null),
                    "status": r.get::<_, String>(12)?,
                    "refunded_minor": r.get::<_, i64>(13)?,
                }))
            },
        )
        .optional()?;
    let Some(mut v) = row else { return Ok(None) };
    let mut stmt = conn.prepare_cached("SELECT kind, amount_minor, at_ms FROM conversion_events WHERE conversion_id = ?1 ORDER BY seq")?;
    let events: Vec<Value> = stmt
        .query_map([id], |r| {
            let mut e = json!({ "kind": r.get::<_, String>(0)?, "at": rfc3339(r.get::<_, i64>(2)?) });
            if let Some(a) = r.get::<_, Option<i64>>(1)? {
                e["amount_minor"] = json!(a);
            }
            Ok(e)
        })?
        .collect::<Result<_, _>>()?;
    v["events"] = Value::Array(events);
    v["commissions"] = Value::Array(commissions(conn, id)?);
    strip_nulls(&mut v);
    Ok(Some(v.to_string()))
}

/// A conversion's commissions, each with how it was computed and every step it went through
/// (with the ledger transfer that moved the money), so the explanation covers the money too.
fn commissions(conn: &Connection, id: &str) -> rusqlite::Result<Vec<Value>> {
    use crate::core::lifecycle::sqlite::{commission_row, event_row, COMMISSION_COLUMNS};
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE conversion_id = ?1 ORDER BY partner, item"))?;
    let rows: Vec<_> = stmt.query_map([id], commission_row)?.collect::<Result<_, _>>()?;
    let mut events = conn.prepare_cached(
        "SELECT commission_id, kind, amount_minor, transfer_id, at_ms FROM commission_events WHERE commission_id = ?1 ORDER BY seq",
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for c in rows {
        let steps: Vec<Value> =
            events.query_map([&c.id], event_row)?.map(|e| e.map(|e| commission_event_json(&e))).collect::<Result<_, _>>()?;
        let mut v = commission_json(&c);
        v["events"] = Value::Array(steps);
        out.push(v);
    }
    Ok(out)
}

/// One commission as the API shows it.
pub fn commission_json(c: &crate::core::lifecycle::Commission) -> Value {
    let mut v = json!({
        "id": c.id,
        "conversion_id": c.conversion_id,
        "program": c.program,
        "partner": c.partner,
        "item": c.item,
        "currency": crate::ledger::currency_str(&c.currency),
        "amount_minor": c.amount_minor,
        "voided_minor": c.voided_minor,
        "reversed_minor": c.reversed_minor,
        "remaining_minor": c.remaining_minor(),
        "status": c.status.as_str(),
        "rule_version": c.rule_version,
        "period": c.period,
        "detail": serde_json::from_str::<Value>(&c.detail).unwrap_or(Value::Null),
        "created_at": rfc3339(c.created_at_ms),
        "lock_until": rfc3339(c.lock_until_ms),
        "approved_at": c.approved_at_ms.map(rfc3339),
        "paid_at": c.paid_at_ms.map(rfc3339),
        "payout_id": c.payout_id,
    });
    strip_nulls(&mut v);
    v
}

/// One step of a commission as the API shows it, with the ledger transfer that moved the money.
pub fn commission_event_json(e: &crate::core::lifecycle::CommissionEvent) -> Value {
    json!({ "kind": e.kind, "amount_minor": e.amount_minor, "transfer_id": e.transfer_id.to_string(), "at": rfc3339(e.at_ms) })
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
    }
}

/// Unix milliseconds as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&f).unwrap_or_default()
}

/// One day of conversions for a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayConversions {
    pub day: u32,
    pub currency: String,
    /// Conversions not cancelled.
    pub conversions: u64,
    /// Amounts of those conversions (for a partner: the partner's attributed shares).
    pub revenue_minor: i64,
    pub refunded_minor: i64,
    pub cancelled: u64,
}

/// A read connection for the API's GETs and reports.
pub struct ConversionReader {
    conn: Mutex<Connection>,
}

impl ConversionReader {
    /// Opens a read connection to the store file (the writer creates the tables).
    pub fn open(data_dir: &Path) -> rusqlite::Result<ConversionReader> {
        let conn = super::schema::open(data_dir)?;
        Ok(ConversionReader { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One conversion as JSON.
    pub fn get(&self, id: &str) -> rusqlite::Result<Option<String>> {
        render(&self.conn(), id)
    }

    /// Per-day conversions credited to a partner, days `from..=to`.
    pub fn partner_days(&self, partner: &str, from_day: u32, to_day: u32) -> rusqlite::Result<Vec<DayConversions>> {
        self.days(
            "SELECT s.day, c.currency,
                    sum(c.status != 'cancelled'), sum(CASE WHEN c.status != 'cancelled' THEN s.amount_minor ELSE 0 END),
                    sum(CASE WHEN c.amount_minor > 0 THEN s.amount_minor * c.refunded_minor / c.amount_minor ELSE 0 END),
                    sum(c.status = 'cancelled')
             FROM conversion_shares s JOIN conversions c ON c.id = s.conversion_id
             WHERE s.partner = ?1 AND s.day BETWEEN ?2 AND ?3 GROUP BY s.day, c.currency ORDER BY s.day, c.currency",
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

    fn days(&self, sql: &str, key: &str, from_day: u32, to_day: u32) -> rusqlite::Result<Vec<DayConversions>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(rusqlite::params![key, from_day, to_day], |r| {
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
