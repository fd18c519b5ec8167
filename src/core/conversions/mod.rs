//! Conversions: recorded once, attributed once, moved through confirm, cancel and refund.
//!
//! One writer thread owns the write connection and commits jobs in groups: it takes every job
//! waiting (up to `commit_batch_len_max`), runs them in one transaction, commits once (one
//! fsync for the group, `synchronous=FULL`), and only then answers. An answer is therefore an
//! acknowledgement: what it reports is on disk. A job that fails part-way leaves nothing: the
//! group is run again with a savepoint per job, and only that job's are rolled back. WAL
//! checkpoints run on a thread of their own.
//!
//! Exactly-once has two guards. A conversion's id derives from its cause, `(program,
//! order_id)`, so a retry finds the first record and replays its first answer (or gets a
//! conflict when its fields differ). An `Idempotency-Key` stores the first answer of any write
//! for at least a day; the same key with another request is a conflict.

mod checkpoint;
pub mod offline;
mod schema;
pub mod view;

use std::path::Path;
use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use crate::core::attribution::engine::{Attribution, Method};
use crate::core::commission::ProgramRules;
use crate::core::lifecycle::{self, ConversionRef, LifecycleError, Refunded, Sale};
use crate::ledger::{parse_currency, SqliteLedger};
use crate::metrics::{ApiMetrics, AttributionOutcome};

pub use view::{ConversionReader, DayConversions};

/// Why a conversion write was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("conversion {0:?} not found")]
    NotFound(String),
    #[error("the conversion store is shutting down")]
    Closed,
    #[error("storage: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A commission or ledger step failed; the job's savepoint is rolled back.
    #[error("commission: {0}")]
    Commission(#[from] LifecycleError),
}

/// Where a conversion came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Api,
    Postback,
    Import,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Postback => "postback",
            Origin::Import => "import",
        }
    }
}

/// A validated conversion to record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewConversion {
    pub order_id: String,
    pub program: String,
    pub amount_minor: i64,
    pub currency: String,
    pub occurred_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_ref: Option<String>,
    #[serde(skip)]
    pub origin: Origin,
}

impl NewConversion {
    /// A hash of the fields that make the conversion what it is (not its origin), to tell a
    /// retry from a different request under the same order id: SHA-256 of its canonical JSON.
    /// Computed once per conversion, by `Fingerprinted::new`.
    fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(serde_json::to_vec(self).expect("conversion serialises")).into()
    }

    /// The conversion id, derived from its cause.
    pub fn id(&self) -> String {
        conversion_id(&self.program, &self.order_id)
    }
}

/// A conversion with its fingerprint, computed once: the API hashes the fingerprint into an
/// `Idempotency-Key`'s request hash and the writer stores it to tell a retry from a different
/// request under the same order id.
#[derive(Debug, Clone)]
pub struct Fingerprinted {
    conversion: NewConversion,
    fingerprint: [u8; 32],
}

impl Fingerprinted {
    /// Hashes the conversion's canonical JSON, once.
    pub fn new(conversion: NewConversion) -> Fingerprinted {
        let fingerprint = conversion.fingerprint();
        Fingerprinted { conversion, fingerprint }
    }

    /// The conversion.
    pub fn conversion(&self) -> &NewConversion {
        &self.conversion
    }

    /// SHA-256 of the conversion's canonical JSON, without its origin.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }
}

/// `cv_` and 24 hex digits of SHA-256(program, order id).
pub fn conversion_id(program: &str, order_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(program.as_bytes());
    h.update([0]);
    h.update(order_id.as_bytes());
    let d = h.finalize();
    let mut s = String::with_capacity(27);
    s.push_str("cv_");
    for b in &d[..12] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A later change to a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Confirm,
    Cancel,
    /// `None` refunds what is left.
    Refund(Option<i64>),
}

/// The status of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Confirmed,
    Cancelled,
    Refunded,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
            Status::Refunded => "refunded",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "confirmed" => Status::Confirmed,
            "cancelled" => Status::Cancelled,
            "refunded" => Status::Refunded,
            _ => Status::Pending,
        }
    }
}

/// Attributes a conversion; called by the writer once per new conversion, never on a retry.
pub trait Attributor: Send + Sync + 'static {
    fn attribute(&self, conversion: &NewConversion) -> Attribution;
    /// The program's commission rules as they stand now.
    fn commission_rules(&self, program: &str) -> Arc<ProgramRules>;
}

/// A write to perform.
#[derive(Debug, Clone)]
pub enum Op {
    Record(Fingerprinted),
    Transition {
        id: String,
        transition: Transition,
    },
    /// Approves up to `limit` commissions whose lock has ended (the sweep).
    Approve {
        limit: usize,
    },
    /// Marks a partner's approved commissions in a currency paid by a payout.
    Pay {
        partner: String,
        currency: String,
        payout_id: String,
        limit: usize,
    },
}

/// An answer to store and replay: the HTTP status and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// True when this is a stored first answer played back.
    pub replayed: bool,
}

/// An idempotency key and the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: [u8; 32],
}

struct Job {
    op: Op,
    key: Option<IdempotencyKey>,
    now_ms: u64,
    reply: oneshot::Sender<Result<Answer, ConversionError>>,
}

/// The handle the API sends writes through.
#[derive(Clone)]
pub struct Conversions {
    tx: mpsc::Sender<Job>,
}

/// Writer settings.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub commit_batch_len_max: usize,
    pub queue_len_max: usize,
    pub idempotency_ttl_ms: u64,
}

impl Conversions {
    /// Opens the conversion tables in the store file and starts the writer thread.
    pub fn start(
        data_dir: &Path,
        config: WriterConfig,
        attributor: Box<dyn Attributor>,
        metrics: ApiMetrics,
    ) -> Result<Conversions, ConversionError> {
        let conn = schema::open(data_dir)?;
        // Checkpoints run on a thread of their own (see `checkpoint`), not inside the
        // writer's commits.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = checkpoint::start(Path::new(conn.path().unwrap_or_default()))?;
        let (tx, rx) = mpsc::channel(config.queue_len_max);
        let writer = Writer { conn, rx, config, attributor, metrics, last_purge_ms: 0, checkpointer };
        std::thread::Builder::new()
            .name("clickgate-conversions".into())
            .spawn(move || writer.run())
            .map_err(|e| ConversionError::Invalid { field: "writer", why: e.to_string() })?;
        Ok(Conversions { tx })
    }

    /// Performs a write and waits for its grouped commit.
    pub async fn write(&self, op: Op, key: Option<IdempotencyKey>, now_ms: u64) -> Result<Answer, ConversionError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { op, key, now_ms, reply }).await.map_err(|_| ConversionError::Closed)?;
        rx.await.map_err(|_| ConversionError::Closed)?
    }
}

struct Writer {
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    config: WriterConfig,
    attributor: Box<dyn Attributor>,
    metrics: ApiMetrics,
    last_purge_ms: u64,
    /// Dropped with the writer, which stops the checkpoint thread.
    checkpointer: checkpoint::Checkpointer,
}

impl Writer {
    fn run(mut self) {
        let mut jobs = Vec::with_capacity(self.config.commit_batch_len_max);
        while let Some(first) = self.rx.blocking_recv() {
            jobs.push(first);
            while jobs.len() < self.config.commit_batch_len_max {
                match self.rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.commit(&mut jobs);
            if self.checkpointer.restart.swap(false, std::sync::atomic::Ordering::Relaxed) {
                if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL restart failed; the checkpoint thread asks again");
                }
            }
        }
        tracing::info!("conversion writer stopped");
    }

    /// Runs a group of jobs in one transaction; answers only after the commit.
    fn commit(&mut self, jobs: &mut Vec<Job>) {
        let started = Instant::now();
        let n = jobs.len();
        let mut results = Vec::with_capacity(n);
        let mut outcomes = Vec::new();
        // First without savepoints, which almost every group needs none of; if a job fails
        // part-way, that attempt is rolled back whole and the group runs again with one.
        let committed = match self.run_group(jobs, false, &mut results, &mut outcomes) {
            Ok(false) => {
                results.clear();
                outcomes.clear();
                self.run_group(jobs, true, &mut results, &mut outcomes).map(|_| ())
            }
            r => r.map(|_| ()),
        };
        self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        self.metrics.commit_batch_len.observe(n as f64);
        match committed {
            Ok(()) => {
                for o in outcomes {
                    self.metrics.attribution(o);
                }
                for (job, r) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = n, "grouped commit of conversions failed; none of them was acknowledged");
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(ConversionError::Storage(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                        Some(format!("commit failed: {e}")),
                    ))));
                }
            }
        }
    }

    /// Runs a group of jobs in one transaction and commits it. Without `savepoints`, a job
    /// that fails part-way (storage or commission error) rolls the whole attempt back and
    /// answers `Ok(false)`; with them, only that job's writes are undone.
    fn run_group(
        &mut self,
        jobs: &[Job],
        savepoints: bool,
        results: &mut Vec<Result<Answer, ConversionError>>,
        outcomes: &mut Vec<AttributionOutcome>,
    ) -> Result<bool, rusqlite::Error> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for job in jobs {
            if savepoints {
                // Its statements prepared once; the sub-journal lives in memory (`temp_store`).
                tx.prepare_cached("SAVEPOINT job")?.execute([])?;
            }
            let r = process(&tx, &*self.attributor, job, outcomes);
            let failed = matches!(r, Err(ConversionError::Storage(_) | ConversionError::Commission(_)));
            if failed && !savepoints {
                return Ok(false);
            }
            if savepoints {
                if failed {
                    // A failed step may have written part of the job: none of it stays.
                    tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
                }
                tx.prepare_cached("RELEASE job")?.execute([])?;
            }
            results.push(r);
        }
        let now = jobs.iter().map(|j| j.now_ms).max().unwrap_or(0);
        if now.saturating_sub(self.last_purge_ms) > 60_000 {
            let cutoff = now.saturating_sub(self.config.idempotency_ttl_ms);
            tx.prepare_cached("DELETE FROM idempotency_keys WHERE created_ms < ?1")?.execute([cutoff as i64])?;
            self.last_purge_ms = now;
        }
        tx.commit()?;
        Ok(true)
    }
}

/// One job inside the group's transaction.
fn process(
    tx: &Connection,
    attributor: &dyn Attributor,
    job: &Job,
    outcomes: &mut Vec<AttributionOutcome>,
) -> Result<Answer, ConversionError> {
    if let Some(k) = &job.key {
        let found: Option<(Vec<u8>, u16, String)> = tx
            .prepare_cached("SELECT request_hash, status, body FROM idempotency_keys WHERE key = ?1")?
            .query_row([&k.key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((hash, status, body)) = found {
            if hash != k.request_hash {
                return Err(ConversionError::Conflict("Idempotency-Key was already used with a different request".into()));
            }
            return Ok(Answer { status, body, replayed: true });
        }
    }
    let answer = match &job.op {
        Op::Record(c) => record(tx, attributor, c.conversion(), c.fingerprint(), job.now_ms, outcomes)?,
        Op::Transition { id, transition } => transition_op(tx, id, *transition, job.now_ms)?,
        Op::Approve { limit } => approve(tx, *limit, job.now_ms)?,
        Op::Pay { partner, currency, payout_id, limit } => pay(tx, partner, currency, payout_id, *limit, job.now_ms)?,
    };
    if let Some(k) = &job.key {
        if !answer.replayed {
            tx.prepare_cached("INSERT INTO idempotency_keys (key, request_hash, status, body, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![k.key, &k.request_hash[..], answer.status, answer.body, job.now_ms as i64])?;
        }
    }
    Ok(answer)
}

fn record(
    tx: &Connection,
    attributor: &dyn Attributor,
    c: &NewConversion,
    fingerprint: &[u8; 32],
    now_ms: u64,
    outcomes: &mut Vec<AttributionOutcome>,
) -> Result<Answer, ConversionError> {
    let id = c.id();
    let found: Option<(Vec<u8>, String)> = tx
        .prepare_cached("SELECT fingerprint, first_answer FROM conversions WHERE id = ?1")?
        .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((fp, first)) = found {
        if fp != *fingerprint {
            return Err(ConversionError::Conflict(format!(
                "order_id {:?} is already recorded for program {:?} (conversion {id}) with different fields",
                c.order_id, c.program
            )));
        }
        // Store files made before kept the answer; now it is rebuilt from the rows.
        let body = if first.is_empty() { view::render_first(tx, &id)?.unwrap_or_default() } else { first };
        return Ok(Answer { status: 201, body, replayed: true });
    }
    let attribution = attributor.attribute(c);
    outcomes.push(match attribution.method {
        Method::ClickId => AttributionOutcome::ClickId,
        Method::Visitor => AttributionOutcome::Visitor,
        Method::Coupon => AttributionOutcome::Coupon,
        Method::None => AttributionOutcome::Unattributed,
    });
    let attribution_json = serde_json::to_string(&attribution).expect("attribution serialises");
    // The commissions first: they need nothing of the conversion's rows, and the first answer
    // is then built from what this job wrote instead of read back.
    let mut commissions = Vec::new();
    if !attribution.shares.is_empty() {
        let currency = parse_currency(&c.currency)
            .ok_or_else(|| ConversionError::Invalid { field: "currency", why: format!("{:?} is not an ISO 4217 code", c.currency) })?;
        let sale =
            Sale { conversion_id: &id, program: &c.program, currency, amount_minor: c.amount_minor, occurred_at_ms: c.occurred_at_ms };
        let rules = attributor.commission_rules(&c.program);
        commissions =
            lifecycle::accrue(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, &sale, &attribution.shares, &rules, now_ms)?;
    }
    let body = view::first_answer(&id, c, &attribution_json, commissions, now_ms);
    tx.prepare_cached(
        "INSERT INTO conversions (id, program, order_id, amount_minor, currency, occurred_at_ms, day, received_at_ms, click_id,
             visitor_id, coupon_code, customer_ref, origin, fingerprint, method, attribution, status, refunded_minor, first_answer)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 'pending', 0, '')",
    )?
    .execute(params![
        id,
        c.program,
        c.order_id,
        c.amount_minor,
        c.currency,
        c.occurred_at_ms as i64,
        day_of(c.occurred_at_ms),
        now_ms as i64,
        c.click_id,
        c.visitor_id,
        c.coupon_code,
        c.customer_ref,
        c.origin.as_str(),
        &fingerprint[..],
        serde_json::to_value(attribution.method).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        attribution_json,
    ])?;
    let day = day_of(c.occurred_at_ms);
    for s in &attribution.shares {
        add_partner_day(
            tx,
            &s.partner,
            day,
            &c.currency,
            PartnerDay { conversions: 1, revenue_minor: s.amount_minor, ..PartnerDay::default() },
        )?;
    }
    Ok(Answer { status: 201, body, replayed: false })
}

/// Days since the Unix epoch (UTC) of a time in milliseconds: a conversion's `day`.
fn day_of(ms: u64) -> i64 {
    (ms / 86_400_000) as i64
}

/// A change to one row of `partner_days`.
#[derive(Debug, Default, Clone, Copy)]
struct PartnerDay {
    conversions: i64,
    revenue_minor: i64,
    refunded_minor: i64,
    cancelled: i64,
}

fn add_partner_day(tx: &Connection, partner: &str, day: i64, currency: &str, d: PartnerDay) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO partner_days (partner, day, currency, conversions, revenue_minor, refunded_minor, cancelled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (day, partner, currency) DO UPDATE SET conversions = conversions + excluded.conversions,
            revenue_minor = revenue_minor + excluded.revenue_minor, refunded_minor = refunded_minor + excluded.refunded_minor,
            cancelled = cancelled + excluded.cancelled",
    )?
    .execute(params![partner, day, currency, d.conversions, d.revenue_minor, d.refunded_minor, d.cancelled])?;
    Ok(())
}

/// What a cancel or a refund changes in its partners' days: `f` gives each share's change.
fn credit_partner_days(tx: &Connection, row: &StoredConversion, f: impl Fn(i64) -> PartnerDay) -> Result<(), ConversionError> {
    #[derive(Deserialize)]
    struct Shares {
        shares: Vec<crate::core::attribution::engine::Share>,
    }
    let shares: Shares = serde_json::from_str(&row.attribution)
        .map_err(|e| ConversionError::Invalid { field: "attribution", why: format!("the stored attribution does not read back: {e}") })?;
    let day = day_of(row.occurred_at_ms);
    for s in shares.shares {
        add_partner_day(tx, &s.partner, day, &row.currency, f(s.amount_minor))?;
    }
    Ok(())
}

/// What a transition reads of a conversion.
struct StoredConversion {
    status: Status,
    amount_minor: i64,
    refunded_minor: i64,
    occurred_at_ms: u64,
    currency: String,
    attribution: String,
}

fn event(tx: &Connection, id: &str, kind: &str, amount_minor: Option<i64>, now_ms: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO conversion_events (conversion_id, seq, kind, amount_minor, at_ms)
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM conversion_events WHERE conversion_id = ?1), ?2, ?3, ?4)",
    )?
    .execute(params![id, kind, amount_minor, now_ms as i64])?;
    Ok(())
}

fn transition_op(tx: &Connection, id: &str, t: Transition, now_ms: u64) -> Result<Answer, ConversionError> {
    let row = tx
        .prepare_cached(
            "SELECT status, amount_minor, refunded_minor, occurred_at_ms, currency, attribution FROM conversions WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(StoredConversion {
                status: Status::parse(&r.get::<_, String>(0)?),
                amount_minor: r.get(1)?,
                refunded_minor: r.get(2)?,
                occurred_at_ms: r.get::<_, i64>(3)? as u64,
                currency: r.get(4)?,
                attribution: r.get(5)?,
            })
        })
        .optional()?;
    let Some(row) = row else { return Err(ConversionError::NotFound(id.to_string())) };
    let (status, amount, refunded) = (row.status, row.amount_minor, row.refunded_minor);
    let conversion = ConversionRef { id, occurred_at_ms: row.occurred_at_ms };
    let conflict = |why: String| Err(ConversionError::Conflict(format!("conversion {id} is {}: {why}", status.as_str())));
    match t {
        Transition::Confirm => match status {
            Status::Pending => set_status(tx, id, Status::Confirmed, "confirmed", None, now_ms)?,
            Status::Confirmed => {}
            Status::Cancelled | Status::Refunded => return conflict("it cannot be confirmed".into()),
        },
        Transition::Cancel => match status {
            Status::Pending | Status::Confirmed if refunded == 0 => {
                set_status(tx, id, Status::Cancelled, "cancelled", None, now_ms)?;
                credit_partner_days(tx, &row, |share| PartnerDay {
                    conversions: -1,
                    revenue_minor: -share,
                    cancelled: 1,
                    ..PartnerDay::default()
                })?;
                lifecycle::refund(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, &conversion, Refunded::All, now_ms)?;
            }
            Status::Cancelled => {}
            _ => return conflict("a conversion with refunds is refunded further, not cancelled".into()),
        },
        Transition::Refund(want) => {
            if matches!(status, Status::Cancelled | Status::Refunded) {
                return conflict("nothing is left to refund".into());
            }
            let left = amount - refunded;
            let amt = want.unwrap_or(left);
            if amt <= 0 || amt > left {
                return Err(ConversionError::Invalid {
                    field: "amount_minor",
                    why: format!("must be in 1..={left} (what is left to refund), got {amt}"),
                });
            }
            let new_status = if amt == left { Status::Refunded } else { status };
            tx.prepare_cached("UPDATE conversions SET refunded_minor = refunded_minor + ?1, status = ?2 WHERE id = ?3")?
                .execute(params![amt, new_status.as_str(), id])?;
            event(tx, id, "refunded", Some(amt), now_ms)?;
            // `amount` is positive here: a refund of a zero amount was refused above.
            let part = |share: i64, r: i64| (i128::from(share) * i128::from(r) / i128::from(amount)) as i64;
            credit_partner_days(tx, &row, |share| PartnerDay {
                refunded_minor: part(share, refunded + amt) - part(share, refunded),
                ..PartnerDay::default()
            })?;
            let refunded = Refunded::Cumulative { refunded_minor: refunded + amt, amount_minor: amount };
            lifecycle::refund(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, &conversion, refunded, now_ms)?;
        }
    }
    let body = view::render(tx, id)?.ok_or_else(|| ConversionError::NotFound(id.to_string()))?;
    Ok(Answer { status: 200, body, replayed: false })
}

/// The approval sweep's job: approves up to `limit` commissions whose lock has ended.
fn approve(tx: &Connection, limit: usize, now_ms: u64) -> Result<Answer, ConversionError> {
    let approved = lifecycle::approve_due(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, now_ms, limit)?;
    let amount: i64 = approved.iter().map(|c| c.remaining_minor()).sum();
    let body = serde_json::json!({ "approved": approved.len(), "amount_minor": amount, "more": approved.len() == limit });
    Ok(Answer { status: 200, body: body.to_string(), replayed: false })
}

/// Marks a partner's approved commissions in a currency paid by `payout_id`.
fn pay(tx: &Connection, partner: &str, currency: &str, payout_id: &str, limit: usize, now_ms: u64) -> Result<Answer, ConversionError> {
    let cur = parse_currency(currency)
        .ok_or_else(|| ConversionError::Invalid { field: "currency", why: format!("{currency:?} is not an ISO 4217 code") })?;
    let paid = lifecycle::pay_partner(&mut SqliteLedger::new(tx).map_err(LifecycleError::from)?, partner, cur, payout_id, now_ms, limit)?;
    let amount: i64 = paid.iter().map(|c| c.remaining_minor()).sum();
    let ids: Vec<&str> = paid.iter().map(|c| c.id.as_str()).collect();
    let body = serde_json::json!({
        "payout_id": payout_id, "partner": partner, "currency": currency,
        "paid": paid.len(), "amount_minor": amount, "commission_ids": ids, "more": paid.len() == limit,
    });
    Ok(Answer { status: 200, body: body.to_string(), replayed: false })
}

fn set_status(tx: &Connection, id: &str, status: Status, kind: &str, amount: Option<i64>, now_ms: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE conversions SET status = ?1 WHERE id = ?2")?.execute(params![status.as_str(), id])?;
    event(tx, id, kind, amount, now_ms)
}

#[cfg(test)]
mod tests;
