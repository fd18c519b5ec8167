//! The conversion store in PostgreSQL (cluster mode): the conversion tables beside the ledger
//! and commissions of `ledger::pg` and `lifecycle::pg`, in the first schema of the URL's search
//! path, and the writer's grouped transactions on one connection.
//!
//! Several cores may write to one database. What keeps them apart: a conversion's id derives
//! from (program, order id) and is its primary key, so two cores recording one order conflict
//! and the loser's group runs again (its job answers a storage error and the client's retry
//! replays the first answer); a transition locks its conversion's row; every lifecycle step
//! locks the ledger head (`lifecycle::pg`). The schema is migrated under an advisory lock
//! (`migrations`), so cores starting together do not race on the catalog.

use std::collections::BTreeMap;

use ::postgres::{Client, IsolationLevel, NoTls, Row};

use crate::conversions::store::{
    ConversionEvent, ConversionRow, ConversionTx, LinkDayKey, NewRow, PartnerDay, StoredConversion, ViewSource,
};
use crate::conversions::{Answer, ConversionError, GroupTx, Groups, IdempotencyKey, Job, Status};
use crate::ledger::Deferred;
use crate::lifecycle::{Commission, CommissionEvent, CommissionTx, ConversionRef, LifecycleError};
use crate::model::Currency;
use crate::storage::data_key;
use crate::storage::group::GroupState;
use crate::storage::pg::batch::Batch;
use crate::storage::pg::PgStatements;
use crate::storage::pg::PgTx;
use crate::storage::row::COMMISSION_COLUMNS;
use crate::webhooks::{OutboxError, OutboxEvent, OutboxTx};

/// Connects to `url` (plain TCP or a Unix socket; TLS is not built in) and migrates the store
/// to this build's schema (`migrations::run`, under an advisory lock): the conversion writer's
/// open. The synchronous client runs a runtime of its own, which cannot start on a thread
/// already inside one, so this runs on a thread of its own; queries then run on the writer's
/// thread or in `spawn_blocking`.
pub fn open(url: &str) -> Result<Client, ConversionError> {
    off_runtime(|| {
        let mut client = connect_here(url)?;
        super::migrations::run(&mut client)?;
        Ok(client)
    })
}

/// Connects to `url` and checks that the store is at this build's schema version, running no
/// DDL: the API's reader, the command line's admin jobs and every reconnection. A store at
/// another version, or at none, is refused (`SchemaError`).
pub fn connect(url: &str) -> Result<Client, ConversionError> {
    off_runtime(|| {
        let mut client = connect_here(url)?;
        super::migrations::check(&mut client)?;
        Ok(client)
    })
}

/// Runs `f` on a thread of its own (see `open`).
pub(super) fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, ConversionError> + Send) -> Result<T, ConversionError> {
    std::thread::scope(|s| s.spawn(f).join())
        .unwrap_or_else(|_| Err(ConversionError::NotStored("connecting to PostgreSQL panicked".into())))
}

pub(super) fn connect_here(url: &str) -> Result<Client, ConversionError> {
    let mut config: ::postgres::Config =
        url.parse().map_err(|e| ConversionError::Invalid { field: "database_url", why: format!("not a PostgreSQL URL: {e}") })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    Ok(config.connect(NoTls)?)
}

/// A connection with the statements prepared on it, made again when the server dropped it (a
/// restart, a failover): the writer's and the API reader's.
pub(super) struct Reconnecting {
    url: String,
    live: Option<(Client, PgStatements)>,
}

/// A `postgres::Client` closes its connection on a runtime of its own, which cannot start on a
/// thread that is inside another runtime: an API task dropping the last handle to the reader
/// would panic. There the connection is closed on a thread of its own.
impl Drop for Reconnecting {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::spawn(move || drop(live)).join();
            }
        }
    }
}

impl Reconnecting {
    pub(crate) fn new(url: &str, client: Client) -> Reconnecting {
        Reconnecting { url: url.to_string(), live: Some((client, PgStatements::default())) }
    }

    /// The connection and its statements; a new connection, with none prepared yet, after the
    /// server dropped the last. A new connection checks the schema version (`connect`): a
    /// store a newer build migrated meanwhile is refused.
    pub(crate) fn get(&mut self) -> Result<(&mut Client, &mut PgStatements), ConversionError> {
        if self.live.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            self.live = None;
            self.live = Some((connect(&self.url)?, PgStatements::default()));
            tracing::info!("reconnected to PostgreSQL");
        }
        let (client, statements) = self.live.as_mut().expect("connected above");
        Ok((client, statements))
    }
}

/// One connection's grouped transactions, and the thread that answers them once the WAL holding
/// them is flushed (`walflush`): the writer's backend in cluster mode.
pub(super) struct PgGroups {
    conn: Reconnecting,
    flush: super::walflush::WalFlush,
    /// When the last group's `COMMIT` was sent.
    commit_sent: std::time::Instant,
}

/// Connects to a PostgreSQL store (cluster mode), migrates it to this build's schema (the
/// writer is the schema's owner; a store a newer build migrated is refused) and starts the
/// conversion writer thread.
pub fn start(
    url: &str,
    config: crate::conversions::WriterConfig,
    attributor: Box<dyn crate::conversions::Attributor>,
    metrics: crate::metrics::ApiMetrics,
) -> Result<crate::conversions::Conversions, ConversionError> {
    let groups = PgGroups::open(url, metrics.clone())?;
    crate::conversions::Conversions::spawn(groups, config, attributor, metrics)
}

impl PgTx<'_, '_> {
    /// Adds to partners' stored days, inserting the rows that are new, in one statement.
    pub(crate) fn write_partner_days(&mut self, days: &BTreeMap<(String, i64, Currency), PartnerDay>) -> Result<(), ConversionError> {
        let partner: Vec<&str> = days.keys().map(|k| k.0.as_str()).collect();
        let day: Vec<i64> = days.keys().map(|k| k.1).collect();
        let currency: Vec<&str> = days.keys().map(|k| k.2.as_str()).collect();
        let conversions: Vec<i64> = days.values().map(|d| d.conversions).collect();
        let revenue: Vec<i64> = days.values().map(|d| d.revenue_minor).collect();
        let refunded: Vec<i64> = days.values().map(|d| d.refunded_minor).collect();
        let cancelled: Vec<i64> = days.values().map(|d| d.cancelled).collect();
        self.execute(
            "INSERT INTO partner_days (partner, day, currency, conversions, revenue_minor, refunded_minor, cancelled)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
             ON CONFLICT (day, partner, currency) DO UPDATE SET conversions = partner_days.conversions + EXCLUDED.conversions,
                revenue_minor = partner_days.revenue_minor + EXCLUDED.revenue_minor,
                refunded_minor = partner_days.refunded_minor + EXCLUDED.refunded_minor,
                cancelled = partner_days.cancelled + EXCLUDED.cancelled",
            &[&partner, &day, &currency, &conversions, &revenue, &refunded, &cancelled],
        )?;
        Ok(())
    }

    /// Adds to links' stored days, inserting the rows that are new, in one statement.
    pub(crate) fn write_link_days(&mut self, days: &BTreeMap<LinkDayKey, PartnerDay>) -> Result<(), ConversionError> {
        let link: Vec<&str> = days.keys().map(|k| k.link.as_str()).collect();
        let channel: Vec<&str> = days.keys().map(|k| k.channel).collect();
        let program: Vec<&str> = days.keys().map(|k| k.program.as_str()).collect();
        let partner: Vec<&str> = days.keys().map(|k| k.partner.as_str()).collect();
        let day: Vec<i64> = days.keys().map(|k| k.day).collect();
        let currency: Vec<&str> = days.keys().map(|k| k.currency.as_str()).collect();
        let conversions: Vec<i64> = days.values().map(|d| d.conversions).collect();
        let revenue: Vec<i64> = days.values().map(|d| d.revenue_minor).collect();
        let refunded: Vec<i64> = days.values().map(|d| d.refunded_minor).collect();
        let cancelled: Vec<i64> = days.values().map(|d| d.cancelled).collect();
        self.execute(
            "INSERT INTO link_days (link, channel, program, partner, day, currency, conversions, revenue_minor, refunded_minor, cancelled)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::int8[], $8::int8[],
                $9::int8[], $10::int8[])
             ON CONFLICT (link, channel, day, currency) DO UPDATE SET conversions = link_days.conversions + EXCLUDED.conversions,
                revenue_minor = link_days.revenue_minor + EXCLUDED.revenue_minor,
                refunded_minor = link_days.refunded_minor + EXCLUDED.refunded_minor,
                cancelled = link_days.cancelled + EXCLUDED.cancelled",
            &[&link, &channel, &program, &partner, &day, &currency, &conversions, &revenue, &refunded, &cancelled],
        )?;
        Ok(())
    }

    /// Adds to a partner's stored day, inserting the row when it is new.
    pub(crate) fn write_partner_day(&mut self, partner: &str, day: i64, currency: Currency, d: PartnerDay) -> Result<(), ConversionError> {
        self.execute(
            "INSERT INTO partner_days (partner, day, currency, conversions, revenue_minor, refunded_minor, cancelled)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (day, partner, currency) DO UPDATE SET conversions = partner_days.conversions + EXCLUDED.conversions,
                revenue_minor = partner_days.revenue_minor + EXCLUDED.revenue_minor,
                refunded_minor = partner_days.refunded_minor + EXCLUDED.refunded_minor,
                cancelled = partner_days.cancelled + EXCLUDED.cancelled",
            &[&partner, &day, &currency, &d.conversions, &d.revenue_minor, &d.refunded_minor, &d.cancelled],
        )?;
        Ok(())
    }
}

impl PgGroups {
    pub(crate) fn open(url: &str, metrics: crate::metrics::ApiMetrics) -> Result<PgGroups, ConversionError> {
        let conn = Reconnecting::new(url, open(url)?);
        let flush = super::walflush::WalFlush::start(url, metrics)?;
        Ok(PgGroups { conn, flush, commit_sent: std::time::Instant::now() })
    }
}

impl Groups for PgGroups {
    fn run_group(
        &mut self,
        jobs: &[Job],
        savepoints: bool,
        purge: Option<crate::conversions::Purge>,
        run: &mut dyn FnMut(&mut dyn GroupTx, &Job) -> bool,
    ) -> Result<bool, ConversionError> {
        let (client, statements) = self.conn.get()?;
        let mut tx = client.transaction()?;
        // The commit releases the group's locks without waiting for the disk; the answers wait
        // for the flush thread instead (`walflush`).
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        // The ledger head and balances are written once per group (or per job with savepoints).
        let mut deferred = Deferred::default();
        let mut group = GroupState::default();
        // The first attempt reads what its jobs look up for all of them at once and holds its
        // inserts back to the flush (`batch`); the rerun with savepoints writes as it goes.
        let mut batch = Batch::default();
        {
            // Every lifecycle step takes the ledger head's lock anyway; taking it first orders
            // the group's row locks behind it, so writers of several cores queue on one row
            // instead of deadlocking on a conversion's row and the head taken in opposite
            // orders. The batch's reads come after it, so they hold to the commit.
            let mut ledger = PgTx::with_statements(&mut tx, statements).deferring(&mut deferred, &mut group);
            ledger.lock_head()?;
            if !savepoints {
                super::batch::prefetch(&mut ledger, jobs, &mut batch)?;
            }
        }
        for job in jobs {
            if savepoints {
                let mut sp = tx.savepoint("job")?;
                let mut ledger = PgTx::with_statements(&mut sp, statements).deferring(&mut deferred, &mut group);
                if run(&mut ledger, job) {
                    // A failed step may have written part of the job: none of it stays.
                    sp.rollback()?;
                    deferred.forget();
                    group = GroupState::default();
                } else {
                    ledger.flush().map_err(LifecycleError::from)?;
                    sp.commit()?;
                }
            } else if run(&mut PgTx::with_statements(&mut tx, statements).deferring(&mut deferred, &mut group).batching(&mut batch), job) {
                // Dropping the transaction rolls the attempt back; PostgreSQL refuses every
                // statement after a failed one anyway.
                return Ok(false);
            }
        }
        let mut ledger = PgTx::with_statements(&mut tx, statements).deferring(&mut deferred, &mut group);
        if !savepoints {
            ledger = ledger.batching(&mut batch);
        }
        let flushed = (|| {
            if let Some(purge) = purge {
                ledger.purge(&purge)?;
            }
            ledger.flush().map_err(LifecycleError::from)?;
            Ok::<_, ConversionError>(())
        })();
        match flushed {
            Ok(()) => {}
            // A held-back row the store refuses (a job's duplicate, or a row stored already
            // that no look-up foresaw) fails the whole batch: the group runs again with
            // savepoints, where only that row's job fails.
            Err(e) if !savepoints => {
                tracing::warn!(error = %e, "a group's batched writes failed; it runs again a job at a time");
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        self.commit_sent = std::time::Instant::now();
        tx.commit()?;
        Ok(true)
    }

    fn acknowledge(&mut self, acks: crate::conversions::Acks) {
        self.flush.acknowledge(self.commit_sent, acks);
    }
}

/// A kept answer from its stored columns.
/// A stored answer of `key`, its body opened.
pub(super) fn answer(key: &str, status: i32, body: String) -> Result<Answer, ConversionError> {
    let status = u16::try_from(status)
        .map_err(|_| ConversionError::Invalid { field: "idempotency_keys.status", why: format!("{status} is not an HTTP status") })?;
    Ok(Answer { status, body: data_key::open("idempotency_keys", "body", key, &body)? })
}

fn get<'a, T: ::postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, ConversionError> {
    Ok(r.try_get(i)?)
}

impl ViewSource for PgTx<'_, '_> {
    fn conversion_row(&mut self, id: &str) -> Result<Option<ConversionRow>, ConversionError> {
        let row = self.query_opt(
            "SELECT program, order_id, amount_minor, currency, occurred_at_ms, received_at_ms, click_id, visitor_id,
                    coupon_code, customer_ref, origin, attribution, status, refunded_minor
             FROM conversions WHERE id = $1",
            &[&id],
        )?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(ConversionRow {
            program: get(&r, 0)?,
            order_id: get(&r, 1)?,
            amount_minor: get(&r, 2)?,
            currency: get(&r, 3)?,
            occurred_at_ms: get(&r, 4)?,
            received_at_ms: get(&r, 5)?,
            click_id: get(&r, 6)?,
            visitor_id: get(&r, 7)?,
            coupon_code: get(&r, 8)?,
            customer_ref: data_key::open_opt("conversions", "customer_ref", id, get(&r, 9)?)?,
            origin: get(&r, 10)?,
            attribution: get(&r, 11)?,
            status: get(&r, 12)?,
            refunded_minor: get(&r, 13)?,
        }))
    }

    fn conversion_events(&mut self, id: &str) -> Result<Vec<ConversionEvent>, ConversionError> {
        let rows = self.query("SELECT kind, amount_minor, at_ms FROM conversion_events WHERE conversion_id = $1 ORDER BY seq", &[&id])?;
        rows.iter().map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?))).collect()
    }

    fn view_commissions(&mut self, conversion: &ConversionRef<'_>) -> Result<Vec<Commission>, ConversionError> {
        // Without the ledger head's lock that `CommissionTx::commissions_of` takes: the API's
        // reads run in read-only snapshots.
        let rows = self.query(
            &format!("SELECT {COMMISSION_COLUMNS} FROM commissions WHERE conversion_id = $1 ORDER BY id COLLATE \"C\""),
            &[&conversion.id],
        )?;
        Ok(rows.iter().map(super::lifecycle::commission_row).collect::<Result<_, LifecycleError>>()?)
    }

    fn view_events(&mut self, commission_id: &str) -> Result<Vec<CommissionEvent>, ConversionError> {
        Ok(self.events_of(commission_id)?)
    }
}

impl OutboxTx for PgTx<'_, '_> {
    fn append_event(&mut self, e: &OutboxEvent<'_>) -> Result<(), OutboxError> {
        if let Some(b) = self.batch() {
            b.rows.outbox(e);
            return Ok(());
        }
        self.execute(
            "INSERT INTO webhook_events (type, cause, partner, occurred_ms, data) VALUES ($1, $2, $3, $4, $5)",
            &[&e.kind.as_str(), &e.cause, &e.partner, &e.occurred_ms, &e.data],
        )
        .map_err(|e| OutboxError::Storage(e.to_string()))?;
        Ok(())
    }
}

impl ConversionTx for PgTx<'_, '_> {
    fn stored_answer(&mut self, key: &str) -> Result<Option<(Vec<u8>, Answer)>, ConversionError> {
        if let Some(known) = self.batch().and_then(|b| b.answers.get(key)) {
            return Ok(known.clone());
        }
        let row = self.query_opt("SELECT request_hash, status, body FROM idempotency_keys WHERE key = $1", &[&key])?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some((get(&r, 0)?, answer(key, get(&r, 1)?, get(&r, 2)?)?)))
    }

    fn keep_answer(&mut self, key: &IdempotencyKey, answer: &Answer, now_ms: u64) -> Result<(), ConversionError> {
        let sealed = data_key::seal("idempotency_keys", "body", &key.key, &answer.body)?;
        if let Some(b) = self.batch() {
            if let Some(slot @ None) = b.answers.get_mut(&key.key) {
                *slot = Some((key.request_hash.to_vec(), answer.clone()));
                b.rows.answer(&key.key, &key.request_hash, answer, sealed, now_ms as i64);
                return Ok(());
            }
        }
        self.execute(
            "INSERT INTO idempotency_keys (key, request_hash, status, body, created_ms) VALUES ($1, $2, $3, $4, $5)",
            &[&key.key, &&key.request_hash[..], &i32::from(answer.status), &sealed, &(now_ms as i64)],
        )?;
        Ok(())
    }

    fn purge(&mut self, purge: &crate::conversions::Purge) -> Result<(), ConversionError> {
        self.execute("DELETE FROM idempotency_keys WHERE created_ms < $1", &[&(purge.answers_before_ms as i64)])?;
        // The outbox is appended in time order: the old events are the rows before the first
        // newer one, and the walk to it reads only the rows it deletes (no index on time).
        self.execute(
            "DELETE FROM webhook_events WHERE seq < coalesce(
                (SELECT seq FROM webhook_events WHERE occurred_ms >= $1 ORDER BY seq LIMIT 1),
                (SELECT max(seq) + 1 FROM webhook_events))",
            &[&(purge.events_before_ms as i64)],
        )?;
        Ok(())
    }

    fn recorded(&mut self, id: &str) -> Result<Option<Vec<u8>>, ConversionError> {
        if let Some(known) = self.batch().and_then(|b| b.conversions.get(id)) {
            return Ok(known.clone());
        }
        let row = self.query_opt("SELECT fingerprint FROM conversions WHERE id = $1", &[&id])?;
        row.map(|r| get(&r, 0)).transpose()
    }

    fn insert_conversion(&mut self, row: &NewRow<'_>) -> Result<bool, ConversionError> {
        // The ledger head's lock first, where every job takes it first: two writers racing on
        // one order would otherwise each hold what the other waits for (the order's key, the
        // head). Held to the commit, so a group pays its round trip once.
        crate::ledger::LedgerTx::head(self).map_err(LifecycleError::from)?;
        let c = row.conversion;
        let customer_ref = data_key::seal_opt("conversions", "customer_ref", row.id, c.customer_ref.as_deref())?;
        let customer_ref_hash = data_key::lookup_hash(c.customer_ref.as_deref())?;
        // Read for the group first (`batch::prefetch`): held back when it is new.
        if let Some(b) = self.batch() {
            match b.conversions.get_mut(row.id) {
                Some(Some(_)) => return Ok(false),
                Some(slot @ None) => {
                    *slot = Some(row.fingerprint.to_vec());
                    b.rows.conversion(row, customer_ref, customer_ref_hash);
                    return Ok(true);
                }
                None => {}
            }
        }
        let inserted = self.execute(
            "INSERT INTO conversions (id, program, order_id, amount_minor, currency, occurred_at_ms, day, received_at_ms, click_id,
                 visitor_id, coupon_code, customer_ref, origin, fingerprint, method, attribution, customer_ref_hash, status, refunded_minor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 'pending', 0)
             ON CONFLICT (id) DO NOTHING",
            &[
                &row.id,
                &c.program,
                &c.order_id,
                &c.amount_minor,
                &c.currency,
                &(c.occurred_at_ms as i64),
                &row.day,
                &(row.received_at_ms as i64),
                &c.click_id,
                &c.visitor_id,
                &c.coupon_code,
                &customer_ref,
                &c.origin.as_str(),
                &&row.fingerprint[..],
                &row.method,
                &row.attribution,
                &customer_ref_hash,
            ],
        )?;
        Ok(inserted == 1)
    }

    fn add_partner_day(&mut self, partner: &str, day: i64, currency: Currency, d: PartnerDay) -> Result<(), ConversionError> {
        match self.group() {
            // Summed over the group and written once per row by the flush.
            Some(g) => {
                g.add_day(partner, day, currency, d);
                Ok(())
            }
            None => self.write_partner_day(partner, day, currency, d),
        }
    }

    fn add_link_day(&mut self, key: LinkDayKey, d: PartnerDay) -> Result<(), ConversionError> {
        match self.group() {
            Some(g) => {
                g.add_link_day(key, d);
                Ok(())
            }
            None => self.write_link_days(&BTreeMap::from([(key, d)])),
        }
    }

    fn for_transition(&mut self, id: &str) -> Result<Option<StoredConversion>, ConversionError> {
        let row = self.query_opt(
            "SELECT status, amount_minor, refunded_minor, occurred_at_ms, currency, attribution, program FROM conversions WHERE id = $1 FOR UPDATE",
            &[&id],
        )?;
        let Some(r) = row else { return Ok(None) };
        let status: String = get(&r, 0)?;
        let occurred: i64 = get(&r, 3)?;
        Ok(Some(StoredConversion {
            status: Status::parse(&status).ok_or_else(|| {
                ConversionError::NotStored(format!("conversions.status holds {status:?}, which is not a conversion status"))
            })?,
            amount_minor: get(&r, 1)?,
            refunded_minor: get(&r, 2)?,
            occurred_at_ms: occurred as u64,
            currency: get(&r, 4)?,
            attribution: get(&r, 5)?,
            program: get(&r, 6)?,
        }))
    }

    fn set_status(&mut self, id: &str, status: Status) -> Result<(), ConversionError> {
        self.execute("UPDATE conversions SET status = $1 WHERE id = $2", &[&status.as_str(), &id])?;
        Ok(())
    }

    fn add_refund(&mut self, id: &str, amount_minor: i64, status: Status) -> Result<(), ConversionError> {
        self.execute(
            "UPDATE conversions SET refunded_minor = refunded_minor + $1, status = $2 WHERE id = $3",
            &[&amount_minor, &status.as_str(), &id],
        )?;
        Ok(())
    }

    fn add_event(&mut self, id: &str, kind: &str, amount_minor: Option<i64>, at_ms: u64) -> Result<(), ConversionError> {
        // The conversion's row is locked (`for_transition`), so no other writer adds an event
        // to it meanwhile.
        self.execute(
            "INSERT INTO conversion_events (conversion_id, seq, kind, amount_minor, at_ms)
             VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM conversion_events WHERE conversion_id = $1), $2, $3, $4)",
            &[&id, &kind, &amount_minor, &(at_ms as i64)],
        )?;
        Ok(())
    }
}

/// Runs `f` in a read-only snapshot of the store (`REPEATABLE READ`), so a read of several
/// rows sees one commit of the writer's, not half of two. `f` takes no row locks.
pub(crate) fn in_snapshot<T>(
    client: &mut Client,
    statements: &mut PgStatements,
    f: impl FnOnce(&mut PgTx<'_, '_>) -> Result<T, ConversionError>,
) -> Result<T, ConversionError> {
    let mut tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
    let out = f(&mut PgTx::with_statements(&mut tx, statements))?;
    tx.commit()?;
    Ok(out)
}
