//! `WebhookStore` on PostgreSQL (cluster mode): a connection of its own, connected again when
//! the server dropped it, each call one transaction. Several cores run a worker each on one
//! database, and one delivers: the one whose connection holds the session advisory lock
//! `WORKER_LOCK`. The others stand by and try the lock at each poll, so one of them takes over
//! when the leader's connection closes. Should two ever overlap, fan-out inserts are idempotent
//! (`ON CONFLICT DO NOTHING`) and the cursor only moves forward, so an attempt is at worst made
//! twice, which at-least-once allows.

use ::postgres::{GenericClient, Row};

use super::audit;
use super::conversions::{connect, Reconnecting};
use crate::audit::{Action, Stamp};
use crate::conversions::ConversionError;
use crate::storage::sqlite::webhooks::{status_columns, then_columns};
use crate::webhooks::endpoint::{parse_event_types, parse_status, Endpoint};
use crate::webhooks::signature::Secret;
use crate::webhooks::store::{
    AttemptRecord, AttemptView, DeliveryFilter, DeliveryView, Due, EndpointChange, NewDelivery, StoreError, StoredEvent, WebhookStore,
};
use crate::webhooks::EventType;

/// The webhook tables of a PostgreSQL store.
pub struct PgWebhooks {
    conn: Reconnecting,
}

impl PgWebhooks {
    /// Connects to the store, which the writer or `clickgate migrate` made at this build's schema.
    pub fn open(url: &str) -> Result<PgWebhooks, ConversionError> {
        Ok(PgWebhooks { conn: Reconnecting::new(url, connect(url)?) })
    }

    fn client(&mut self) -> Result<&mut ::postgres::Client, StoreError> {
        Ok(self.conn.get().map_err(|e| StoreError::Storage(e.to_string()))?.0)
    }
}

impl PgWebhooks {
    /// Runs an operator's update of endpoint `id` and appends its audit entry (the endpoint
    /// before and after, without its secrets) in one transaction; `false` when there is none.
    fn change_endpoint(
        &mut self,
        id: &str,
        action: Action,
        stamp: &Stamp,
        update: impl FnOnce(&mut ::postgres::Transaction<'_>) -> Result<u64, ::postgres::Error>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.client()?.transaction().map_err(storage)?;
        let Some(before) = endpoint_in(&mut tx, id)? else { return Ok(false) };
        update(&mut tx).map_err(storage)?;
        let after = endpoint_in(&mut tx, id)?.ok_or_else(|| StoreError::Storage(format!("endpoint {id} went during its update")))?;
        audit::append(&mut tx, &stamp.entry(action, id, Some(before.view()), Some(after.view()))).map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(true)
    }
}

/// An endpoint as `c` (a transaction) sees it.
fn endpoint_in(c: &mut impl GenericClient, id: &str) -> Result<Option<Endpoint>, StoreError> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
    c.query_opt(&sql, &[&id]).map_err(storage)?.map(|r| endpoint_row(&r)).transpose()
}

/// The first advisory lock key of the delivering worker ("clkg"); the second is the hash of
/// the schema, so deployments in two schemas of one database each have a worker that delivers.
const WORKER_LOCK: i32 = 0x636c_6b67;

fn storage(e: ::postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Storage(format!("PostgreSQL {}: {}", db.code().code(), db.message())),
        None => StoreError::Storage(format!("PostgreSQL: {e}")),
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

const ENDPOINT_COLUMNS: &str = "id, url, event_types, partner, secret, previous_secret, previous_until_ms, status, disabled_reason,
    status_ms, created_ms, failing_since_ms";

fn endpoint_row(r: &Row) -> Result<Endpoint, StoreError> {
    let previous = match (r.try_get::<_, Option<String>>(5).map_err(storage)?, r.try_get::<_, Option<i64>>(6).map_err(storage)?) {
        (Some(p), Some(u)) => Some((Secret::parse(&p).map_err(corrupt)?, u as u64)),
        _ => None,
    };
    let status: String = r.try_get(7).map_err(storage)?;
    let reason: Option<String> = r.try_get(8).map_err(storage)?;
    Ok(Endpoint {
        id: r.try_get(0).map_err(storage)?,
        url: r.try_get(1).map_err(storage)?,
        event_types: parse_event_types(r.try_get(2).map_err(storage)?).map_err(corrupt)?,
        partner: r.try_get(3).map_err(storage)?,
        secret: Secret::parse(r.try_get(4).map_err(storage)?).map_err(corrupt)?,
        previous,
        status: parse_status(&status, reason.as_deref()).map_err(corrupt)?,
        status_ms: r.try_get::<_, i64>(9).map_err(storage)? as u64,
        created_ms: r.try_get::<_, i64>(10).map_err(storage)? as u64,
        failing_since_ms: r.try_get::<_, Option<i64>>(11).map_err(storage)?.map(|f| f as u64),
    })
}

fn event_row(r: &Row, at: usize) -> Result<StoredEvent, StoreError> {
    let kind: String = r.try_get(at + 1).map_err(storage)?;
    Ok(StoredEvent {
        seq: r.try_get(at).map_err(storage)?,
        kind: kind.parse::<EventType>().map_err(corrupt)?,
        cause: r.try_get(at + 2).map_err(storage)?,
        partner: r.try_get(at + 3).map_err(storage)?,
        occurred_ms: r.try_get(at + 4).map_err(storage)?,
        data: r.try_get(at + 5).map_err(storage)?,
    })
}

fn upsert(c: &mut impl GenericClient, d: &NewDelivery, now_ms: u64, replay: bool) -> Result<u64, StoreError> {
    let sql = if replay {
        "INSERT INTO webhook_deliveries (endpoint_id, seq, event_id, type, status, attempts, tries, next_attempt_ms, updated_ms)
         VALUES ($1, $2, $3, $4, 'pending', 0, 0, $5, $5)
         ON CONFLICT (endpoint_id, seq) DO UPDATE SET status = 'pending', tries = 0,
            replays = webhook_deliveries.replays + 1, next_attempt_ms = $5, updated_ms = $5"
    } else {
        "INSERT INTO webhook_deliveries (endpoint_id, seq, event_id, type, status, attempts, tries, next_attempt_ms, updated_ms)
         VALUES ($1, $2, $3, $4, 'pending', 0, 0, $5, $5) ON CONFLICT (endpoint_id, seq) DO NOTHING"
    };
    c.execute(sql, &[&d.endpoint_id, &d.seq, &d.event_id, &d.kind.as_str(), &(now_ms as i64)]).map_err(storage)
}

impl WebhookStore for PgWebhooks {
    fn insert_endpoint(&mut self, e: &Endpoint, stamp: &Stamp) -> Result<(), StoreError> {
        let (status, reason) = status_columns(e.status);
        let mut tx = self.client()?.transaction().map_err(storage)?;
        tx.execute(
            "INSERT INTO webhook_endpoints (id, url, event_types, partner, secret, previous_secret, previous_until_ms, status,
                    disabled_reason, status_ms, created_ms, failing_since_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &e.id,
                &e.url,
                &e.event_types_text(),
                &e.partner,
                &e.secret.to_whsec(),
                &e.previous.as_ref().map(|(s, _)| s.to_whsec()),
                &e.previous.as_ref().map(|(_, u)| *u as i64),
                &status,
                &reason,
                &(e.status_ms as i64),
                &(e.created_ms as i64),
                &e.failing_since_ms.map(|f| f as i64),
            ],
        )
        .map_err(storage)?;
        audit::append(&mut tx, &stamp.entry(Action::WebhookEndpointCreate, &e.id, None, Some(e.view()))).map_err(storage)?;
        tx.commit().map_err(storage)
    }

    fn endpoint(&mut self, id: &str) -> Result<Option<Endpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
        self.client()?.query_opt(&sql, &[&id]).map_err(storage)?.map(|r| endpoint_row(&r)).transpose()
    }

    fn endpoints(&mut self) -> Result<Vec<Endpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_ms, id");
        self.client()?.query(&sql, &[]).map_err(storage)?.iter().map(endpoint_row).collect()
    }

    fn delete_endpoint(&mut self, id: &str, stamp: &Stamp) -> Result<bool, StoreError> {
        let mut tx = self.client()?.transaction().map_err(storage)?;
        let Some(before) = endpoint_in(&mut tx, id)? else { return Ok(false) };
        // Deliveries and attempts go with it (ON DELETE CASCADE).
        tx.execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id]).map_err(storage)?;
        audit::append(&mut tx, &stamp.entry(Action::WebhookEndpointDelete, id, Some(before.view()), None)).map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(true)
    }

    fn rotate_secret(&mut self, id: &str, secret: &Secret, previous_until_ms: u64, stamp: &Stamp) -> Result<bool, StoreError> {
        let sql = "UPDATE webhook_endpoints SET previous_secret = secret, previous_until_ms = $2, secret = $3 WHERE id = $1";
        let (until, whsec) = (previous_until_ms as i64, secret.to_whsec());
        self.change_endpoint(id, Action::WebhookEndpointRotateSecret, stamp, |tx| tx.execute(sql, &[&id, &until, &whsec]))
    }

    fn enable(&mut self, id: &str, now_ms: u64, stamp: &Stamp) -> Result<bool, StoreError> {
        let sql = "UPDATE webhook_endpoints SET status = 'enabled', disabled_reason = NULL, failing_since_ms = NULL,
                    status_ms = CASE WHEN status = 'enabled' THEN status_ms ELSE $2 END
                 WHERE id = $1";
        let now = now_ms as i64;
        self.change_endpoint(id, Action::WebhookEndpointEnable, stamp, |tx| tx.execute(sql, &[&id, &now]))
    }

    fn lead(&mut self) -> Result<bool, StoreError> {
        // A session lock is counted per `pg_try_advisory_lock`, so it is taken only when this
        // session does not hold it already (a new session after a reconnect does not).
        // `pg_locks` shows a two-key lock as `classid` and `objid`, with `objsubid` 2.
        let sql = format!(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                 AND classid = {WORKER_LOCK}::oid AND objid = hashtext(current_schema())::oid AND objsubid = 2 AND granted)
             THEN true ELSE pg_try_advisory_lock({WORKER_LOCK}, hashtext(current_schema())) END"
        );
        self.client()?.query_one(&sql, &[]).map_err(storage)?.try_get(0).map_err(storage)
    }

    fn cursor(&mut self) -> Result<i64, StoreError> {
        self.client()?.query_one("SELECT seq FROM webhook_cursor WHERE one = 1", &[]).map_err(storage)?.try_get(0).map_err(storage)
    }

    fn events_after(&mut self, seq: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.client()?
            .query(
                "SELECT seq, type, cause, partner, occurred_ms, data FROM webhook_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&seq, &(limit as i64)],
            )
            .map_err(storage)?
            .iter()
            .map(|r| event_row(r, 0))
            .collect()
    }

    fn fan_out(&mut self, deliveries: &[NewDelivery], cursor: i64, now_ms: u64) -> Result<(), StoreError> {
        let mut tx = self.client()?.transaction().map_err(storage)?;
        for d in deliveries {
            upsert(&mut tx, d, now_ms, false)?;
        }
        tx.execute("UPDATE webhook_cursor SET seq = $1 WHERE one = 1 AND seq < $1", &[&cursor]).map_err(storage)?;
        tx.commit().map_err(storage)
    }

    fn requeue(&mut self, deliveries: &[NewDelivery], now_ms: u64) -> Result<u64, StoreError> {
        let mut tx = self.client()?.transaction().map_err(storage)?;
        let mut n = 0;
        for d in deliveries {
            n += upsert(&mut tx, d, now_ms, true)?;
        }
        tx.commit().map_err(storage)?;
        Ok(n)
    }

    fn deliveries_of_event(&mut self, event_id: &str) -> Result<Vec<NewDelivery>, StoreError> {
        let rows = self
            .client()?
            .query("SELECT endpoint_id, seq, event_id, type FROM webhook_deliveries WHERE event_id = $1 ORDER BY id", &[&event_id])
            .map_err(storage)?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(3).map_err(storage)?;
                Ok(NewDelivery {
                    endpoint_id: r.try_get(0).map_err(storage)?,
                    seq: r.try_get(1).map_err(storage)?,
                    event_id: r.try_get(2).map_err(storage)?,
                    kind: kind.parse().map_err(corrupt)?,
                })
            })
            .collect()
    }

    fn due(&mut self, endpoint_id: &str, now_ms: u64, limit: usize) -> Result<Vec<Due>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT d.id, d.attempts, d.tries, d.replays, e.seq, e.type, e.cause, e.partner, e.occurred_ms, e.data
                 FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.seq
                 WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.next_attempt_ms <= $2
                 ORDER BY d.next_attempt_ms, d.id LIMIT $3",
                &[&endpoint_id, &(now_ms as i64), &(limit as i64)],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    delivery_id: r.try_get(0).map_err(storage)?,
                    endpoint_id: endpoint_id.to_owned(),
                    attempts: r.try_get::<_, i32>(1).map_err(storage)? as u32,
                    tries: r.try_get::<_, i32>(2).map_err(storage)? as u32,
                    replays: r.try_get::<_, i32>(3).map_err(storage)? as u32,
                    event: event_row(r, 4)?,
                })
            })
            .collect()
    }

    fn record(&mut self, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
        let mut tx = self.client()?.transaction().map_err(storage)?;
        for a in attempts {
            // A delivery or endpoint removed meanwhile takes its attempts with it.
            let inserted = tx
                .execute(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, at_ms, http_status, error, latency_ms, excerpt)
                     SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)
                     ON CONFLICT (delivery_id, attempt) DO NOTHING",
                    &[
                        &a.delivery_id,
                        &(a.attempt as i32),
                        &(a.at_ms as i64),
                        &a.http_status.map(i32::from),
                        &a.error,
                        &(a.latency_ms as i64),
                        &a.excerpt,
                    ],
                )
                .map_err(storage)?;
            if inserted == 0 {
                continue;
            }
            let (status, next) = then_columns(a.then);
            // A replay since the attempt was taken keeps the delivery pending: only the count moves.
            let moved = tx
                .execute(
                    "UPDATE webhook_deliveries SET status = $2, next_attempt_ms = $3, attempts = greatest(attempts, $4),
                        tries = least(tries + 1, greatest(attempts, $4)), updated_ms = $5 WHERE id = $1 AND replays = $6",
                    &[&a.delivery_id, &status, &next, &(a.attempt as i32), &(a.at_ms as i64), &(a.replays as i32)],
                )
                .map_err(storage)?;
            if moved == 0 {
                tx.execute(
                    "UPDATE webhook_deliveries SET attempts = greatest(attempts, $2) WHERE id = $1",
                    &[&a.delivery_id, &(a.attempt as i32)],
                )
                .map_err(storage)?;
            }
            let id = &a.endpoint_id;
            match a.endpoint {
                EndpointChange::Succeeded => tx.execute("UPDATE webhook_endpoints SET failing_since_ms = NULL WHERE id = $1", &[id]),
                EndpointChange::Failed { at_ms } => tx.execute(
                    "UPDATE webhook_endpoints SET failing_since_ms = coalesce(failing_since_ms, $2) WHERE id = $1",
                    &[id, &(at_ms as i64)],
                ),
                EndpointChange::Disable { reason, at_ms } => tx.execute(
                    "UPDATE webhook_endpoints SET failing_since_ms = coalesce(failing_since_ms, $2),
                        status_ms = CASE WHEN status = 'enabled' THEN $2 ELSE status_ms END,
                        disabled_reason = CASE WHEN status = 'enabled' THEN $3 ELSE disabled_reason END, status = 'disabled'
                     WHERE id = $1",
                    &[id, &(at_ms as i64), &reason.as_str()],
                ),
            }
            .map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    fn deliveries(&mut self, f: &DeliveryFilter) -> Result<Vec<DeliveryView>, StoreError> {
        let client = self.client()?;
        let rows = client
            .query(
                "SELECT id, event_id, type, endpoint_id, seq, status, attempts, next_attempt_ms, updated_ms FROM webhook_deliveries
                 WHERE ($1::text IS NULL OR endpoint_id = $1) AND ($2::text IS NULL OR status = $2) AND ($3::bigint IS NULL OR id < $3)
                   AND ($5::text IS NULL OR endpoint_id IN (SELECT id FROM webhook_endpoints WHERE partner = $5))
                 ORDER BY id DESC LIMIT $4",
                &[&f.endpoint_id, &f.status.map(|s| s.as_str()), &f.before_id, &(f.limit as i64), &f.partner],
            )
            .map_err(storage)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let delivery_id: i64 = r.try_get(0).map_err(storage)?;
            let attempts = client
                .query(
                    "SELECT attempt, at_ms, http_status, error, latency_ms, excerpt FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
                    &[&delivery_id],
                )
                .map_err(storage)?;
            let attempt_log = attempts
                .iter()
                .map(|a| {
                    Ok(AttemptView {
                        attempt: a.try_get::<_, i32>(0).map_err(storage)? as u32,
                        at_ms: a.try_get::<_, i64>(1).map_err(storage)? as u64,
                        http_status: a.try_get::<_, Option<i32>>(2).map_err(storage)?.map(|s| s as u16),
                        error: a.try_get(3).map_err(storage)?,
                        latency_ms: a.try_get::<_, i64>(4).map_err(storage)? as u64,
                        response_excerpt: a.try_get(5).map_err(storage)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            out.push(DeliveryView {
                delivery_id,
                event_id: r.try_get(1).map_err(storage)?,
                kind: r.try_get(2).map_err(storage)?,
                endpoint_id: r.try_get(3).map_err(storage)?,
                seq: r.try_get(4).map_err(storage)?,
                status: r.try_get(5).map_err(storage)?,
                attempts: r.try_get::<_, i32>(6).map_err(storage)? as u32,
                next_attempt_ms: r.try_get::<_, Option<i64>>(7).map_err(storage)?.map(|n| n as u64),
                updated_ms: r.try_get::<_, i64>(8).map_err(storage)? as u64,
                attempt_log,
            });
        }
        Ok(out)
    }

    fn purge_deliveries(&mut self, endpoint_id: &str, before_seq: i64) -> Result<u64, StoreError> {
        self.client()?
            .execute("DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND seq < $2", &[&endpoint_id, &before_seq])
            .map_err(storage)
    }

    fn first_event_seq(&mut self) -> Result<Option<i64>, StoreError> {
        self.client()?.query_one("SELECT min(seq) FROM webhook_events", &[]).map_err(storage)?.try_get(0).map_err(storage)
    }
}
