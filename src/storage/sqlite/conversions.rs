//! The conversion tables in SQLite (the embedded default): rows read and written inside the
//! writer's grouped transaction, or the API's read transaction, through `SqliteTx`.

use rusqlite::{params, OptionalExtension};

use crate::conversions::store::{
    ConversionEvent, ConversionRow, ConversionTx, LinkDayKey, NewRow, PartnerDay, StoredConversion, ViewSource,
};
use crate::conversions::{Answer, ConversionError, IdempotencyKey, Status};
use crate::lifecycle::{Commission, CommissionEvent, ConversionRef};
use crate::model::Currency;
use crate::storage::data_key;
use crate::storage::sqlite::lifecycle::{commissions_of, event_row};
use crate::storage::sqlite::SqliteTx;
use crate::webhooks::{OutboxError, OutboxEvent, OutboxTx};

impl ViewSource for SqliteTx<'_> {
    fn conversion_row(&mut self, id: &str) -> Result<Option<ConversionRow>, ConversionError> {
        let row = self
            .conn()
            .prepare_cached(
                "SELECT program, order_id, amount_minor, currency, occurred_at_ms, received_at_ms, click_id, visitor_id,
                        coupon_code, customer_ref, origin, attribution, status, refunded_minor
                 FROM conversions WHERE id = ?1",
            )?
            .query_row([id], |r| {
                let customer_ref = data_key::open_opt("conversions", "customer_ref", id, r.get(9)?).map_err(data_key::sqlite_err(9))?;
                Ok(ConversionRow {
                    program: r.get(0)?,
                    order_id: r.get(1)?,
                    amount_minor: r.get(2)?,
                    currency: r.get(3)?,
                    occurred_at_ms: r.get(4)?,
                    received_at_ms: r.get(5)?,
                    click_id: r.get(6)?,
                    visitor_id: r.get(7)?,
                    coupon_code: r.get(8)?,
                    customer_ref,
                    origin: r.get(10)?,
                    attribution: r.get(11)?,
                    status: r.get(12)?,
                    refunded_minor: r.get(13)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    fn conversion_events(&mut self, id: &str) -> Result<Vec<ConversionEvent>, ConversionError> {
        // The creation is the row itself, not an event.
        let mut st =
            self.conn().prepare_cached("SELECT kind, amount_minor, at_ms FROM conversion_events WHERE conversion_id = ?1 ORDER BY seq")?;
        let rows = st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn view_commissions(&mut self, conversion: &ConversionRef<'_>) -> Result<Vec<Commission>, ConversionError> {
        Ok(commissions_of(self.conn(), conversion)?)
    }

    fn view_events(&mut self, commission_id: &str) -> Result<Vec<CommissionEvent>, ConversionError> {
        let mut st = self.conn().prepare_cached(
            "SELECT commission_id, kind, amount_minor, transfer_id, at_ms FROM commission_events WHERE commission_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map([commission_id], event_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

/// Deletes the events that happened before `?1`. The outbox is appended in time order, so they
/// are the rows before the first newer one, found by walking `seq` from the start: the walk
/// reads only the rows it deletes, and the table needs no index on time. The newest row always
/// stays: `seq` has no AUTOINCREMENT, so an empty table would number the next event 1 again,
/// below the delivery worker's cursor, and that event would never be fanned out.
const PURGE_EVENTS: &str = "DELETE FROM webhook_events WHERE seq < coalesce(
    (SELECT seq FROM webhook_events WHERE occurred_ms >= ?1 ORDER BY seq LIMIT 1),
    (SELECT max(seq) FROM webhook_events))";

impl OutboxTx for SqliteTx<'_> {
    fn append_event(&mut self, e: &OutboxEvent<'_>) -> Result<(), OutboxError> {
        let storage = |e: rusqlite::Error| OutboxError::Storage(e.to_string());
        self.conn()
            .prepare_cached("INSERT INTO webhook_events (type, cause, partner, occurred_ms, data) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(storage)?
            .execute(params![e.kind.as_str(), e.cause, e.partner, e.occurred_ms, e.data])
            .map_err(storage)?;
        Ok(())
    }
}

impl ConversionTx for SqliteTx<'_> {
    fn stored_answer(&mut self, key: &str) -> Result<Option<(Vec<u8>, Answer)>, ConversionError> {
        let found = self
            .conn()
            .prepare_cached("SELECT request_hash, status, body FROM idempotency_keys WHERE key = ?1")?
            .query_row([key], |r| {
                let body = data_key::open("idempotency_keys", "body", key, &r.get::<_, String>(2)?).map_err(data_key::sqlite_err(2))?;
                Ok((r.get(0)?, Answer { status: r.get(1)?, body }))
            })
            .optional()?;
        Ok(found)
    }

    fn keep_answer(&mut self, key: &IdempotencyKey, answer: &Answer, now_ms: u64) -> Result<(), ConversionError> {
        let body = data_key::seal("idempotency_keys", "body", &key.key, &answer.body)?;
        self.conn()
            .prepare_cached("INSERT INTO idempotency_keys (key, request_hash, status, body, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![key.key, &key.request_hash[..], answer.status, body, now_ms as i64])?;
        Ok(())
    }

    fn purge(&mut self, purge: &crate::conversions::Purge) -> Result<(), ConversionError> {
        self.conn().prepare_cached("DELETE FROM idempotency_keys WHERE created_ms < ?1")?.execute([purge.answers_before_ms as i64])?;
        self.conn().prepare_cached(PURGE_EVENTS)?.execute([purge.events_before_ms as i64])?;
        Ok(())
    }

    fn recorded(&mut self, id: &str) -> Result<Option<Vec<u8>>, ConversionError> {
        let found =
            self.conn().prepare_cached("SELECT fingerprint FROM conversions WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
        Ok(found)
    }

    fn insert_conversion(&mut self, row: &NewRow<'_>) -> Result<bool, ConversionError> {
        let c = row.conversion;
        let customer_ref = data_key::seal_opt("conversions", "customer_ref", row.id, c.customer_ref.as_deref())?;
        let customer_ref_hash = data_key::lookup_hash(c.customer_ref.as_deref())?;
        let inserted = self
            .conn()
            .prepare_cached(
                "INSERT INTO conversions (id, program, order_id, amount_minor, currency, occurred_at_ms, day, received_at_ms, click_id,
                     visitor_id, coupon_code, customer_ref, origin, fingerprint, method, attribution, customer_ref_hash, status,
                     refunded_minor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, 'pending', 0)
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                row.id,
                c.program,
                c.order_id,
                c.amount_minor,
                c.currency,
                c.occurred_at_ms as i64,
                row.day,
                row.received_at_ms as i64,
                c.click_id,
                c.visitor_id,
                c.coupon_code,
                customer_ref,
                c.origin.as_str(),
                &row.fingerprint[..],
                row.method,
                row.attribution,
                customer_ref_hash,
            ])?;
        Ok(inserted == 1)
    }

    fn add_partner_day(&mut self, partner: &str, day: i64, currency: Currency, d: PartnerDay) -> Result<(), ConversionError> {
        match self.group() {
            // Summed over the group and written once per row by the flush.
            Some(g) => g.add_day(partner, day, currency, d),
            None => write_partner_day(self.conn(), partner, day, currency, d)?,
        }
        Ok(())
    }

    fn add_link_day(&mut self, key: LinkDayKey, d: PartnerDay) -> Result<(), ConversionError> {
        match self.group() {
            Some(g) => g.add_link_day(key, d),
            None => write_link_day(self.conn(), &key, d)?,
        }
        Ok(())
    }

    fn for_transition(&mut self, id: &str) -> Result<Option<StoredConversion>, ConversionError> {
        let row = self
            .conn()
            .prepare_cached(
                "SELECT status, amount_minor, refunded_minor, occurred_at_ms, currency, attribution, program FROM conversions WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok(StoredConversion {
                    status: {
                        let s: String = r.get(0)?;
                        Status::parse(&s).ok_or_else(|| {
                            let why = format!("conversions.status holds {s:?}, which is not a conversion status");
                            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, why.into())
                        })?
                    },
                    amount_minor: r.get(1)?,
                    refunded_minor: r.get(2)?,
                    occurred_at_ms: r.get::<_, i64>(3)? as u64,
                    currency: r.get(4)?,
                    attribution: r.get(5)?,
                    program: r.get(6)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    fn set_status(&mut self, id: &str, status: Status) -> Result<(), ConversionError> {
        self.conn().prepare_cached("UPDATE conversions SET status = ?1 WHERE id = ?2")?.execute(params![status.as_str(), id])?;
        Ok(())
    }

    fn add_refund(&mut self, id: &str, amount_minor: i64, status: Status) -> Result<(), ConversionError> {
        self.conn()
            .prepare_cached("UPDATE conversions SET refunded_minor = refunded_minor + ?1, status = ?2 WHERE id = ?3")?
            .execute(params![amount_minor, status.as_str(), id])?;
        Ok(())
    }

    fn add_event(&mut self, id: &str, kind: &str, amount_minor: Option<i64>, at_ms: u64) -> Result<(), ConversionError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO conversion_events (conversion_id, seq, kind, amount_minor, at_ms)
                 VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM conversion_events WHERE conversion_id = ?1), ?2, ?3, ?4)",
            )?
            .execute(params![id, kind, amount_minor, at_ms as i64])?;
        Ok(())
    }
}

/// Adds `d` to a row of `partner_days`, creating it.
pub(crate) fn write_partner_day(
    conn: &rusqlite::Connection,
    partner: &str,
    day: i64,
    currency: Currency,
    d: PartnerDay,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO partner_days (partner, day, currency, conversions, revenue_minor, refunded_minor, cancelled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (day, partner, currency) DO UPDATE SET conversions = conversions + excluded.conversions,
            revenue_minor = revenue_minor + excluded.revenue_minor, refunded_minor = refunded_minor + excluded.refunded_minor,
            cancelled = cancelled + excluded.cancelled",
    )?
    .execute(params![partner, day, currency, d.conversions, d.revenue_minor, d.refunded_minor, d.cancelled])?;
    Ok(())
}

/// Adds `d` to a row of `link_days`, creating it.
pub(crate) fn write_link_day(conn: &rusqlite::Connection, key: &LinkDayKey, d: PartnerDay) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO link_days (link, channel, program, partner, day, currency, conversions, revenue_minor, refunded_minor, cancelled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (link, channel, day, currency) DO UPDATE SET conversions = conversions + excluded.conversions,
            revenue_minor = revenue_minor + excluded.revenue_minor, refunded_minor = refunded_minor + excluded.refunded_minor,
            cancelled = cancelled + excluded.cancelled",
    )?
    .execute(params![
        key.link,
        key.channel,
        key.program,
        key.partner,
        key.day,
        key.currency,
        d.conversions,
        d.revenue_minor,
        d.refunded_minor,
        d.cancelled
    ])?;
    Ok(())
}
