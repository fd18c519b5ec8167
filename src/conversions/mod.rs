//! Conversions: recorded once, attributed once, moved through confirm, cancel and refund.
//!
//! One writer thread owns the write connection and commits jobs in groups: it takes every job
//! waiting (up to `commit_batch_len_max`), runs them in one transaction and commits once. The
//! group is answered only once its commit is on disk (each backend's `Groups::acknowledge`
//! decides when: after a WAL sync on SQLite, at the commit on PostgreSQL). An answer is
//! therefore an acknowledgement: what it reports is on disk. A job that fails leaves nothing:
//! the group is run again with a savepoint per job, and every failed job's is rolled back,
//! whatever its error. The backends live in `storage` (`storage::sqlite::start`,
//! `storage::pg::start`); the jobs (`jobs`) and the view (`view`) are written once over
//! `store::ConversionTx`.
//!
//! Exactly-once has two guards. A conversion's id derives from its cause, `(program,
//! order_id)`, so a retry finds the first record and replays its first answer (or gets a
//! conflict when its fields differ). An `Idempotency-Key` stores the first answer of any write
//! for at least a day; the same key with another request is a conflict.

mod events;
pub(crate) mod jobs;
pub mod store;
pub mod view;

use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use crate::attribution::engine::Attribution;
use crate::commission::ProgramRules;
use crate::lifecycle::LifecycleError;
use crate::metrics::{ApiMetrics, AttributionOutcome};
use crate::model::Currency;

pub use view::{DayConversions, Reader};

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
    /// The store (SQLite or PostgreSQL) failed; the job's writes are rolled back.
    #[error("storage: {0}")]
    Storage(String),
    /// The group's commit failed: nothing of it was stored.
    #[error("storage: {0}")]
    NotStored(String),
    /// A commission or ledger step failed; the job's savepoint is rolled back.
    #[error("commission: {0}")]
    Commission(#[from] LifecycleError),
}

impl From<crate::webhooks::OutboxError> for ConversionError {
    fn from(e: crate::webhooks::OutboxError) -> Self {
        match e {
            crate::webhooks::OutboxError::Storage(why) => ConversionError::Storage(why),
            crate::webhooks::OutboxError::Event(e) => ConversionError::Invalid { field: "event", why: e.to_string() },
        }
    }
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
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
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
    pub currency: Currency,
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

/// A conversion with its fingerprint and its id, computed once and off the writer's thread:
/// the API hashes the fingerprint into an `Idempotency-Key`'s request hash and the writer
/// stores it to tell a retry from a different request under the same order id.
///
/// The conversion is shared (`Arc`): a new conversion's first answer is rendered from it by the
/// caller's task after the commit, not by the writer.
#[derive(Debug, Clone)]
pub struct Fingerprinted {
    conversion: Arc<NewConversion>,
    fingerprint: [u8; 32],
    id: String,
}

impl Fingerprinted {
    /// Hashes the conversion's canonical JSON, and derives its id, once.
    pub fn new(conversion: NewConversion) -> Fingerprinted {
        let fingerprint = conversion.fingerprint();
        let id = conversion.id();
        Fingerprinted { conversion: Arc::new(conversion), fingerprint, id }
    }

    /// The conversion's id (`conversion_id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The conversion.
    pub fn conversion(&self) -> &NewConversion {
        &self.conversion
    }

    fn shared(&self) -> Arc<NewConversion> {
        self.conversion.clone()
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
    s.push_str(&hex::encode(&d[..12]));
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
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
            Status::Refunded => "refunded",
        }
    }

    /// Parses the stored spelling; anything else is `None`, never a guess.
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Pending, Status::Confirmed, Status::Cancelled, Status::Refunded].into_iter().find(|v| v.as_str() == s)
    }
}

/// Attributes a conversion. Called on the request's task, before the writer sees the job
/// (`Attributed`): attribution reads only the click index and the catalog, which the writer
/// never writes, so it runs on another core than the writer's. A retry's is discarded.
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
    /// Writes one event into the outbox and nothing else: an alert that no stored change
    /// caused (`crate::fraud`).
    Emit(EmitEvent),
}

/// What a job did, in the domain's terms; the API renders it (status code and JSON).
#[derive(Debug)]
pub enum Outcome {
    /// A conversion this job recorded, its first view still to render: rendering that JSON was
    /// about a seventh of the writer's time per new conversion, so the caller's task does it
    /// after the commit, on another core than the writer's (`view::First::render`).
    Recorded(Box<view::First>),
    /// A retry of a conversion already recorded with the same fields: its first view, rebuilt
    /// from the rows.
    AlreadyRecorded(String),
    /// A conversion after a confirm, cancel or refund (or after one that changed nothing).
    Transitioned(String),
    /// The approval sweep's job.
    Approved(Approval),
    /// An `Emit` job's event is in the outbox.
    Emitted,
}

/// An event for `Op::Emit`, owned, as it waits in the writer's queue.
#[derive(Debug, Clone)]
pub struct EmitEvent {
    pub kind: crate::webhooks::EventType,
    pub cause: String,
    pub partner: Option<String>,
    pub occurred_ms: i64,
    pub data: String,
}

/// What one approval job approved. Fields in alphabetical order, as every answer of the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub amount_minor: i64,
    pub approved: usize,
    /// True when the job hit its limit: another job may find more.
    pub more: bool,
}

/// An outcome as the API rendered it, kept under an `Idempotency-Key` to be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// An idempotency key, the hash of the request it came with, and how the API renders the
/// job's outcome to keep under it: the key's answer is written in the job's own transaction.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: [u8; 32],
    pub render: fn(Outcome) -> Answer,
}

/// What the writer sends back for a job.
#[derive(Debug)]
pub enum Written {
    /// What the job did; the caller renders it.
    Done(Outcome),
    /// The answer kept under the job's `Idempotency-Key`: rendered from this job's outcome and
    /// stored with it (`replayed: false`), or stored by an earlier job and played back.
    Kept { answer: Answer, replayed: bool },
}

/// A committed group's answers, each with the channel it goes back on.
pub(crate) type Acks = Vec<(oneshot::Sender<Result<Written, ConversionError>>, Result<Written, ConversionError>)>;

/// Sends each answer of `acks`, as `f` makes it.
pub(crate) fn answer_all(acks: Acks, f: impl Fn(Result<Written, ConversionError>) -> Result<Written, ConversionError>) {
    for (reply, r) in acks {
        let _ = reply.send(f(r));
    }
}

pub(crate) struct Job {
    op: Op,
    /// A conversion to record, attributed before it was queued; `None` for the other ops.
    attributed: Option<Box<Attributed>>,
    key: Option<IdempotencyKey>,
    now_ms: u64,
    reply: oneshot::Sender<Result<Written, ConversionError>>,
}

/// What a job reads first, for a backend that fetches it for a whole group in one statement
/// each (PostgreSQL): its idempotency key, the conversion it records, and the partners' periods
/// that conversion's commissions count in (`lifecycle::accrue`).
impl Job {
    pub(crate) fn idempotency_key(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.key.as_str())
    }

    pub(crate) fn recorded_id(&self) -> Option<&str> {
        match &self.op {
            Op::Record(f) => Some(f.id()),
            _ => None,
        }
    }

    pub(crate) fn periods(&self) -> Vec<crate::lifecycle::PeriodRef> {
        let (Op::Record(f), Some(a)) = (&self.op, &self.attributed) else { return Vec::new() };
        let c = f.conversion();
        let sale = crate::lifecycle::Sale {
            conversion_id: f.id(),
            program: &c.program,
            currency: c.currency,
            amount_minor: c.amount_minor,
            occurred_at_ms: c.occurred_at_ms,
        };
        a.attribution.shares.iter().map(|s| crate::lifecycle::period_of(&sale, &s.partner, a.rules.for_partner(&s.partner))).collect()
    }
}

/// A conversion's attribution, its JSON and its program's commission rules, made by the
/// request's task: about a tenth of the writer's time per conversion, taken off its thread.
struct Attributed {
    attribution: Attribution,
    json: Arc<str>,
    rules: Arc<ProgramRules>,
}

impl Attributed {
    fn new(attributor: &dyn Attributor, c: &NewConversion) -> Attributed {
        let attribution = attributor.attribute(c);
        let json = serde_json::to_string(&attribution).expect("attribution serialises").into();
        let rules = if attribution.shares.is_empty() { Arc::default() } else { attributor.commission_rules(&c.program) };
        Attributed { attribution, json, rules }
    }
}

/// The handle the API sends writes through.
#[derive(Clone)]
pub struct Conversions {
    tx: mpsc::Sender<Job>,
    attributor: Arc<dyn Attributor>,
}

/// Writer settings.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub commit_batch_len_max: usize,
    pub queue_len_max: usize,
    pub idempotency_ttl_ms: u64,
    /// How long a webhook event stays in the outbox (`webhooks.event_retention_days`).
    pub event_retention_ms: u64,
}

/// What a group forgets, in its own transaction: idempotency answers stored, and webhook
/// events that happened, before these times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purge {
    pub answers_before_ms: u64,
    pub events_before_ms: u64,
}

impl Conversions {
    /// Starts the writer thread over a backend's grouped transactions.
    pub(crate) fn spawn(
        groups: impl Groups,
        config: WriterConfig,
        attributor: Box<dyn Attributor>,
        metrics: ApiMetrics,
    ) -> Result<Conversions, ConversionError> {
        let (tx, rx) = mpsc::channel(config.queue_len_max);
        let writer = Writer { groups, rx, config, metrics, last_purge_ms: 0 };
        std::thread::Builder::new()
            .name("clickgate-conversions".into())
            .spawn(move || writer.run())
            .map_err(|e| ConversionError::Invalid { field: "writer", why: e.to_string() })?;
        Ok(Conversions { tx, attributor: Arc::from(attributor) })
    }

    /// Runs approval jobs of `limit` commissions, each at `now_ms()`, until one approves fewer,
    /// adding what each approved to `total` (so a failure still tells what went before it).
    pub async fn approve_all(&self, limit: usize, now_ms: impl Fn() -> u64, total: &mut Approval) -> Result<(), ConversionError> {
        loop {
            let Written::Done(Outcome::Approved(a)) = self.write(Op::Approve { limit }, None, now_ms()).await? else {
                return Err(ConversionError::NotStored("the writer answered an approval job with another outcome".into()));
            };
            total.approved += a.approved;
            total.amount_minor += a.amount_minor;
            if !a.more {
                return Ok(());
            }
        }
    }

    /// Performs a write and waits for its grouped commit. A conversion to record is attributed
    /// here, on the caller's task, before it is queued.
    pub async fn write(&self, op: Op, key: Option<IdempotencyKey>, now_ms: u64) -> Result<Written, ConversionError> {
        let (reply, rx) = oneshot::channel();
        let attributed = match &op {
            Op::Record(c) => Some(Box::new(Attributed::new(&*self.attributor, c.conversion()))),
            _ => None,
        };
        self.tx.send(Job { op, attributed, key, now_ms, reply }).await.map_err(|_| ConversionError::Closed)?;
        rx.await.map_err(|_| ConversionError::Closed)?
    }
}

/// A backend's grouped transaction: runs a group of jobs in one transaction and commits it.
/// `run` runs one job and answers whether it failed (any error: its writes must not stay).
/// Without `savepoints`, such a job rolls the whole attempt back and the answer is `Ok(false)`;
/// with them, only that job's writes are undone.
/// `purge` asks it to forget idempotency answers and webhook events older than its times, in
/// the same transaction.
pub(crate) trait Groups: Send + 'static {
    fn run_group(
        &mut self,
        jobs: &[Job],
        savepoints: bool,
        purge: Option<Purge>,
        run: &mut dyn FnMut(&mut dyn GroupTx, &Job) -> bool,
    ) -> Result<bool, ConversionError>;

    /// Called between groups.
    fn idle(&mut self) {}

    /// Answers a committed group once its commit is durable; at once where the commit itself
    /// waited for the disk (PostgreSQL, `synchronous_commit`).
    fn acknowledge(&mut self, acks: Acks) {
        answer_all(acks, |r| r);
    }
}

/// The job runner's view of a backend's open transaction: one job at a time.
pub(crate) trait GroupTx {
    fn process(&mut self, job: &Job, outcomes: &mut Vec<AttributionOutcome>) -> Result<Written, ConversionError>;
}

impl<T: store::ConversionTx> GroupTx for T {
    fn process(&mut self, job: &Job, outcomes: &mut Vec<AttributionOutcome>) -> Result<Written, ConversionError> {
        jobs::process(self, job, outcomes)
    }
}

/// True when a job's writes must be undone: any error at all. A job validates before it
/// writes, but an error after its first write, whatever its kind, would otherwise commit the
/// half-done job with the group; rolling back a job that wrote nothing costs only a savepoint.
fn failed_part_way(r: &Result<Written, ConversionError>) -> bool {
    r.is_err()
}

struct Writer<G> {
    groups: G,
    rx: mpsc::Receiver<Job>,
    config: WriterConfig,
    metrics: ApiMetrics,
    last_purge_ms: u64,
}

impl<G: Groups> Writer<G> {
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
            self.groups.idle();
        }
        tracing::info!("conversion writer stopped");
    }

    /// Runs a group of jobs in one transaction; answers only after the commit.
    fn commit(&mut self, jobs: &mut Vec<Job>) {
        let started = Instant::now();
        let n = jobs.len();
        let now = jobs.iter().map(|j| j.now_ms).max().unwrap_or(0);
        let purge = (now.saturating_sub(self.last_purge_ms) > 60_000).then(|| Purge {
            answers_before_ms: now.saturating_sub(self.config.idempotency_ttl_ms),
            events_before_ms: now.saturating_sub(self.config.event_retention_ms),
        });
        let mut results = Vec::with_capacity(n);
        let mut outcomes = Vec::new();
        // First without savepoints, which almost every group needs none of; if a job fails,
        // that attempt is rolled back whole and the group runs again with one per job.
        let mut committed = Ok(false);
        for savepoints in [false, true] {
            results.clear();
            outcomes.clear();
            let mut run = |tx: &mut dyn GroupTx, job: &Job| {
                let r = tx.process(job, &mut outcomes);
                let failed = failed_part_way(&r);
                results.push(r);
                failed
            };
            committed = self.groups.run_group(jobs, savepoints, purge, &mut run);
            if !matches!(committed, Ok(false)) {
                break;
            }
        }
        self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        self.metrics.commit_batch_len.observe(n as f64);
        match committed {
            Ok(true) => {
                if purge.is_some() {
                    self.last_purge_ms = now;
                }
                for o in outcomes {
                    self.metrics.attribution(o);
                }
                self.groups.acknowledge(jobs.drain(..).zip(results).map(|(job, r)| (job.reply, r)).collect());
            }
            Ok(false) | Err(_) => {
                let e = committed.err().map(|e| e.to_string()).unwrap_or_else(|| "a job failed with savepoints on".into());
                tracing::error!(error = %e, jobs = n, "grouped commit of conversions failed; none of them was acknowledged");
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(ConversionError::NotStored(format!("commit failed: {e}"))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
