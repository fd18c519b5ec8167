//! `WebhookStore` on the store file: a connection of the delivery worker's (or the API's, or the
//! CLI's) own, in WAL mode with a busy timeout, so its short transactions interleave with the
//! conversion writer's groups. Writes take their turn at the file's write gate (`gate`), then the
//! write lock at their start (`BEGIN IMMEDIATE`), so they wait once, behind at most the group in
//! progress, instead of failing half way.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::catalog::audit;
use super::gate::{Gate, Write};
use crate::audit::{Action, Stamp};

use crate::storage::migration::SchemaError;
use crate::webhooks::endpoint::{parse_event_types, parse_status, Endpoint, Status};
use crate::webhooks::signature::Secret;
use crate::webhooks::store::{
    AttemptRecord, AttemptView, DeliveryFilter, DeliveryView, Due, EndpointChange, NewDelivery, StoreError, StoredEvent, Then, WebhookStore,
};
use crate::webhooks::EventType;

/// The webhook tables of the store file.
pub struct SqliteWebhooks {
    conn: Connection,
    gate: Gate,
}

impl SqliteWebhooks {
    /// Opens the store file, which the writer or `clickgate migrate` made at this build's schema.
    pub fn open(data_dir: &Path) -> Result<SqliteWebhooks, SchemaError> {
        let conn = super::schema::open(data_dir)?;
        let storage = |e: rusqlite::Error| SchemaError::Storage { at: super::path(data_dir).display().to_string(), why: e.to_string() };
        conn.busy_handler(Some(retry_every_ms)).map_err(storage)?;
        // No fsync per commit while holding the write lock the conversion writer waits for: a
        // crash that loses the last of these commits loses only fan-out (done again from the
        // older cursor, inserting nothing twice) or an attempt's record (the attempt is made
        // again), which at-least-once delivery allows. The events themselves are the writer's.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(storage)?;
        let gate = Gate::of(&super::path(data_dir));
        Ok(SqliteWebhooks { conn, gate })
    }
}

/// Waits for the write lock in steps of a millisecond, for at most 10 s: the wait for a writer
/// of another process (this process's writers queue at the gate first). SQLite's own busy
/// timeout backs off to 100 ms sleeps, through which a busy writer takes the lock again and
/// again.
fn retry_every_ms(attempts: i32) -> bool {
    std::thread::sleep(std::time::Duration::from_millis(1));
    attempts < 10_000
}

fn storage(e: rusqlite::Error) -> StoreError {
    StoreError::Storage(e.to_string())
}

const ENDPOINT_COLUMNS: &str = "id, url, event_types, partner, secret, previous_secret, previous_until_ms, status, disabled_reason,
    status_ms, created_ms, failing_since_ms";

/// An endpoint as `conn` (a transaction's) sees it.
fn endpoint_in(conn: &Connection, id: &str) -> Result<Option<Endpoint>, StoreError> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1");
    conn.query_row(&sql, [id], endpoint_row).optional().map_err(storage)?.transpose()
}

impl SqliteWebhooks {
    /// Runs an operator's update of endpoint `id` and appends its audit entry (the endpoint
    /// before and after, without its secrets) in one transaction; `false` when there is none.
    fn change_endpoint(
        &mut self,
        id: &str,
        action: Action,
        stamp: &Stamp,
        update: impl FnOnce(&Connection) -> rusqlite::Result<usize>,
    ) -> Result<bool, StoreError> {
        let tx = Write::begin(&self.gate, &mut self.conn).map_err(storage)?;
        let Some(before) = endpoint_in(&tx, id)? else { return Ok(false) };
        update(&tx).map_err(storage)?;
        let after = endpoint_in(&tx, id)?.ok_or_else(|| StoreError::Storage(format!("endpoint {id} went during its update")))?;
        audit::append(&tx, &stamp.entry(action, id, Some(before.view()), Some(after.view()))).map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(true)
    }
}

/// Reads an endpoint row; a row that does not parse is `Corrupt`, never a default.
fn endpoint_row(r: &Row<'_>) -> rusqlite::Result<Result<Endpoint, StoreError>> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let (types, secret, previous, until): (String, String, Option<String>, Option<i64>) = (r.get(2)?, r.get(4)?, r.get(5)?, r.get(6)?);
    let (status, reason): (String, Option<String>) = (r.get(7)?, r.get(8)?);
    let (id, url, partner): (String, String, Option<String>) = (r.get(0)?, r.get(1)?, r.get(3)?);
    let (status_ms, created_ms, failing): (i64, i64, Option<i64>) = (r.get(9)?, r.get(10)?, r.get(11)?);
    Ok((|| {
        let previous = match (previous, until) {
            (Some(p), Some(u)) => Some((Secret::parse(&p).map_err(|e| corrupt(&e))?, u as u64)),
            _ => None,
        };
        Ok(Endpoint {
            id,
            url,
            event_types: parse_event_types(&types).map_err(|e| corrupt(&e))?,
            partner,
            secret: Secret::parse(&secret).map_err(|e| corrupt(&e))?,
            previous,
            status: parse_status(&status, reason.as_deref()).map_err(|e| corrupt(&e))?,
            status_ms: status_ms as u64,
            created_ms: created_ms as u64,
            failing_since_ms: failing.map(|f| f as u64),
        })
    })())
}

fn event_row(r: &Row<'_>, at: usize) -> rusqlite::Result<Result<StoredEvent, StoreError>> {
    let kind: String = r.get(at + 1)?;
    let event = |kind: EventType| -> rusqlite::Result<StoredEvent> {
        Ok(StoredEvent {
            seq: r.get(at)?,
            kind,
            cause: r.get(at + 2)?,
            partner: r.get(at + 3)?,
            occurred_ms: r.get(at + 4)?,
            data: r.get(at + 5)?,
        })
    };
    match kind.parse::<EventType>() {
        Ok(k) => Ok(Ok(event(k)?)),
        Err(e) => Ok(Err(StoreError::Corrupt(e.to_string()))),
    }
}

impl WebhookStore for SqliteWebhooks {
    fn insert_endpoint(&mut self, e: &Endpoint, stamp: &Stamp) -> Result<(), StoreError> {
        let (status, reason) = status_columns(e.status);
        let tx = Write::begin(&self.gate, &mut self.conn).map_err(storage)?;
        tx.execute(
            "INSERT INTO webhook_endpoints (id, url, event_types, partner, secret, previous_secret, previous_until_ms, status,
                    disabled_reason, status_ms, created_ms, failing_since_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                e.id,
                e.url,
                e.event_types_text(),
                e.partner,
                e.secret.to_whsec(),
                e.previous.as_ref().map(|(s, _)| s.to_whsec()),
                e.previous.as_ref().map(|(_, u)| *u as i64),
                status,
                reason,
                e.status_ms as i64,
                e.created_ms as i64,
                e.failing_since_ms.map(|f| f as i64),
            ],
        )
        .map_err(storage)?;
        audit::append(&tx, &stamp.entry(Action::WebhookEndpointCreate, &e.id, None, Some(e.view()))).map_err(storage)?;
        tx.commit().map_err(storage)
    }

    fn endpoint(&mut self, id: &str) -> Result<Option<Endpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1");
        self.conn.query_row(&sql, [id], endpoint_row).optional().map_err(storage)?.transpose()
    }

    fn endpoints(&mut self) -> Result<Vec<Endpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_ms, id");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(storage)?;
        let rows = stmt.query_map([], endpoint_row).map_err(storage)?;
        rows.map(|r| r.map_err(storage)?).collect()
    }

    fn delete_endpoint(&mut self, id: &str, stamp: &Stamp) -> Result<bool, StoreError> {
        let tx = Write::begin(&self.gate, &mut self.conn).map_err(storage)?;
        let Some(before) = endpoint_in(&tx, id)? else { return Ok(false) };
        tx.execute("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = ?1)", [id])
            .map_err(storage)?;
        tx.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1", [id]).map_err(storage)?;
        tx.execute("DELETE FROM webhook_endpoints WHERE id = ?1", [id]).map_err(storage)?;
        audit::append(&tx, &stamp.entry(Action::WebhookEndpointDelete, id, Some(before.view()), None)).map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(true)
    }

    fn rotate_secret(&mut self, id: &str, secret: &Secret, previous_until_ms: u64, stamp: &Stamp) -> Result<bool, StoreError> {
        let sql = "UPDATE webhook_endpoints SET previous_secret = secret, previous_until_ms = ?2, secret = ?3 WHERE id = ?1";
        self.change_endpoint(id, Action::WebhookEndpointRotateSecret, stamp, |tx| {
            tx.execute(sql, params![id, previous_until_ms as i64, secret.to_whsec()])
        })
    }

    fn enable(&mut self, id: &str, now_ms: u64, stamp: &Stamp) -> Result<bool, StoreError> {
        let sql = "UPDATE webhook_endpoints SET status = 'enabled', disabled_reason = NULL, failing_since_ms = NULL,
                    status_ms = CASE WHEN status = 'enabled' THEN status_ms ELSE ?2 END
                 WHERE id = ?1";
        self.change_endpoint(id, Action::WebhookEndpointEnable, stamp, |tx| tx.execute(sql, params![id, now_ms as i64]))
    }

    fn cursor(&mut self) -> Result<i64, StoreError> {
        self.conn.query_row("SELECT seq FROM webhook_cursor WHERE one = 1", [], |r| r.get(0)).map_err(storage)
    }

    fn events_after(&mut self, seq: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, type, cause, partner, occurred_ms, data FROM webhook_events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(storage)?;
        let rows = stmt.query_map(params![seq, limit as i64], |r| event_row(r, 0)).map_err(storage)?;
        rows.map(|r| r.map_err(storage)?).collect()
    }

    fn fan_out(&mut self, deliveries: &[NewDelivery], cursor: i64, now_ms: u64) -> Result<(), StoreError> {
        self.record_and_fan_out(&[], Some((deliveries, cursor)), now_ms)
    }

    fn requeue(&mut self, deliveries: &[NewDelivery], now_ms: u64) -> Result<u64, StoreError> {
        let tx = Write::begin(&self.gate, &mut self.conn).map_err(storage)?;
        let mut n = 0;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO webhook_deliveries (endpoint_id, seq, event_id, type, status, attempts, tries, next_attempt_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, 'pending', 0, 0, ?5, ?5)
                     ON CONFLICT (endpoint_id, seq) DO UPDATE SET status = 'pending', tries = 0, replays = replays + 1,
                        next_attempt_ms = ?5, updated_ms = ?5",
                )
                .map_err(storage)?;
            for d in deliveries {
                n += upsert.execute(params![d.endpoint_id, d.seq, d.event_id, d.kind.as_str(), now_ms as i64]).map_err(storage)? as u64;
            }
        }
        tx.commit().map_err(storage)?;
        Ok(n)
    }

    fn deliveries_of_event(&mut self, event_id: &str) -> Result<Vec<NewDelivery>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT endpoint_id, seq, event_id, type FROM webhook_deliveries WHERE event_id = ?1 ORDER BY id")
            .map_err(storage)?;
        let rows = stmt
            .query_map([event_id], |r| {
                let kind: String = r.get(3)?;
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, kind))
            })
            .map_err(storage)?;
        rows.map(|r| {
            let (endpoint_id, seq, event_id, kind) = r.map_err(storage)?;
            let kind = kind.parse::<EventType>().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(NewDelivery { endpoint_id, seq, event_id, kind })
        })
        .collect()
    }

    fn due(&mut self, endpoint_id: &str, now_ms: u64, limit: usize) -> Result<Vec<Due>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.id, d.attempts, d.tries, d.replays, e.seq, e.type, e.cause, e.partner, e.occurred_ms, e.data
                 FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.seq
                 WHERE d.endpoint_id = ?1 AND d.status = 'pending' AND d.next_attempt_ms <= ?2
                 ORDER BY d.next_attempt_ms, d.id LIMIT ?3",
            )
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![endpoint_id, now_ms as i64, limit as i64], |r| {
                let (id, attempts, tries, replays): (i64, u32, u32, u32) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                Ok(event_row(r, 4)?.map(|event| Due {
                    delivery_id: id,
                    endpoint_id: endpoint_id.to_owned(),
                    attempts,
                    tries,
                    replays,
                    event,
                }))
            })
            .map_err(storage)?;
        rows.map(|r| r.map_err(storage)?).collect()
    }

    fn record(&mut self, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
        self.record_and_fan_out(attempts, None, 0)
    }

    fn record_and_fan_out(
        &mut self,
        attempts: &[AttemptRecord],
        fan: Option<(&[NewDelivery], i64)>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if attempts.is_empty() && fan.is_none() {
            return Ok(());
        }
        let tx = Write::begin(&self.gate, &mut self.conn).map_err(storage)?;
        record(&tx, attempts).map_err(storage)?;
        if let Some((deliveries, cursor)) = fan {
            fan_out(&tx, deliveries, cursor, now_ms).map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    fn deliveries(&mut self, f: &DeliveryFilter) -> Result<Vec<DeliveryView>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, event_id, type, endpoint_id, seq, status, attempts, next_attempt_ms, updated_ms FROM webhook_deliveries
                 WHERE (?1 IS NULL OR endpoint_id = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3)
                   AND (?5 IS NULL OR endpoint_id IN (SELECT id FROM webhook_endpoints WHERE partner = ?5))
                 ORDER BY id DESC LIMIT ?4",
            )
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![f.endpoint_id, f.status.map(|s| s.as_str()), f.before_id, f.limit as i64, f.partner], |r| {
                Ok(DeliveryView {
                    delivery_id: r.get(0)?,
                    event_id: r.get(1)?,
                    kind: r.get(2)?,
                    endpoint_id: r.get(3)?,
                    seq: r.get(4)?,
                    status: r.get(5)?,
                    attempts: r.get(6)?,
                    next_attempt_ms: r.get::<_, Option<i64>>(7)?.map(|n| n as u64),
                    updated_ms: r.get::<_, i64>(8)? as u64,
                    attempt_log: Vec::new(),
                })
            })
            .map_err(storage)?;
        let mut out: Vec<DeliveryView> = rows.collect::<Result<_, _>>().map_err(storage)?;
        drop(stmt);
        let mut attempts = self
            .conn
            .prepare_cached(
                "SELECT attempt, at_ms, http_status, error, latency_ms, excerpt FROM webhook_attempts WHERE delivery_id = ?1 ORDER BY attempt",
            )
            .map_err(storage)?;
        for d in &mut out {
            let rows = attempts
                .query_map([d.delivery_id], |r| {
                    Ok(AttemptView {
                        attempt: r.get(0)?,
                        at_ms: r.get::<_, i64>(1)? as u64,
                        http_status: r.get(2)?,
                        error: r.get(3)?,
                        latency_ms: r.get::<_, i64>(4)? as u64,
                        response_excerpt: r.get(5)?,
                    })
                })
                .map_err(storage)?;
            d.attempt_log = rows.collect::<Result<_, _>>().map_err(storage)?;
        }
        Ok(out)
    }

    fn purge_deliveries(&mut self, endpoint_id: &str, before_seq: i64) -> Result<u64, StoreError> {
        let tx = Write::begin(&self.gate, &mut self.conn).map_err(storage)?;
        tx.execute(
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = ?1 AND seq < ?2)",
            params![endpoint_id, before_seq],
        )
        .map_err(storage)?;
        let n = tx
            .execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1 AND seq < ?2", params![endpoint_id, before_seq])
            .map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(n as u64)
    }

    fn first_event_seq(&mut self) -> Result<Option<i64>, StoreError> {
        self.conn.query_row("SELECT min(seq) FROM webhook_events", [], |r| r.get(0)).map_err(storage)
    }
}

/// An endpoint status's two columns.
/// Creates deliveries (one that exists is left alone) and moves the cursor forward.
fn fan_out(tx: &rusqlite::Transaction<'_>, deliveries: &[NewDelivery], cursor: i64, now_ms: u64) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO webhook_deliveries (endpoint_id, seq, event_id, type, status, attempts, tries, next_attempt_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, 0, ?5, ?5) ON CONFLICT (endpoint_id, seq) DO NOTHING",
    )?;
    for d in deliveries {
        insert.execute(params![d.endpoint_id, d.seq, d.event_id, d.kind.as_str(), now_ms as i64])?;
    }
    tx.execute("UPDATE webhook_cursor SET seq = ?1 WHERE one = 1 AND seq < ?1", [cursor])?;
    Ok(())
}

/// Records attempts with their deliveries' and endpoints' new states.
fn record(tx: &rusqlite::Transaction<'_>, attempts: &[AttemptRecord]) -> rusqlite::Result<()> {
    for a in attempts {
        let exists: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = ?1)")?
            .query_row([a.delivery_id], |r| r.get(0))?;
        if !exists {
            continue;
        }
        tx.prepare_cached(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at_ms, http_status, error, latency_ms, excerpt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (delivery_id, attempt) DO NOTHING",
        )?
        .execute(params![a.delivery_id, a.attempt, a.at_ms as i64, a.http_status, a.error, a.latency_ms as i64, a.excerpt])?;
        // A replay since the attempt was taken keeps the delivery pending: only the count moves.
        let (status, next) = then_columns(a.then);
        let moved = tx
            .prepare_cached(
                "UPDATE webhook_deliveries SET status = ?2, next_attempt_ms = ?3, attempts = max(attempts, ?4),
                    tries = min(tries + 1, max(attempts, ?4)), updated_ms = ?5 WHERE id = ?1 AND replays = ?6",
            )?
            .execute(params![a.delivery_id, status, next, a.attempt, a.at_ms as i64, a.replays])?;
        if moved == 0 {
            tx.prepare_cached("UPDATE webhook_deliveries SET attempts = max(attempts, ?2) WHERE id = ?1")?
                .execute(params![a.delivery_id, a.attempt])?;
        }
        let id = &a.endpoint_id;
        match a.endpoint {
            EndpointChange::Succeeded => tx
                .prepare_cached("UPDATE webhook_endpoints SET failing_since_ms = NULL WHERE id = ?1 AND failing_since_ms IS NOT NULL")?
                .execute([id]),
            EndpointChange::Failed { at_ms } => tx
                .prepare_cached("UPDATE webhook_endpoints SET failing_since_ms = coalesce(failing_since_ms, ?2) WHERE id = ?1")?
                .execute(params![id, at_ms as i64]),
            EndpointChange::Disable { reason, at_ms } => tx
                .prepare_cached(
                    "UPDATE webhook_endpoints SET failing_since_ms = coalesce(failing_since_ms, ?2),
                        status_ms = CASE WHEN status = 'enabled' THEN ?2 ELSE status_ms END,
                        disabled_reason = CASE WHEN status = 'enabled' THEN ?3 ELSE disabled_reason END, status = 'disabled'
                     WHERE id = ?1",
                )?
                .execute(params![id, at_ms as i64, reason.as_str()]),
        }?;
    }
    Ok(())
}

pub(crate) fn status_columns(s: Status) -> (&'static str, Option<&'static str>) {
    match s {
        Status::Enabled => ("enabled", None),
        Status::Disabled(r) => ("disabled", Some(r.as_str())),
    }
}

/// A delivery's status and next attempt after an attempt.
pub(crate) fn then_columns(t: Then) -> (&'static str, Option<i64>) {
    match t {
        Then::Delivered => ("delivered", None),
        Then::Retry { next_attempt_ms } => ("pending", Some(next_attempt_ms as i64)),
        Then::Failed => ("failed", None),
    }
}

#[cfg(test)]
mod tests;
