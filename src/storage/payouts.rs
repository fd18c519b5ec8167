//! Payout runs against the store, from the CLI or the server, on either backend: each step in
//! its own transaction, serialised with the conversion writer's groups (SQLite: a turn at the
//! file's write gate, then `BEGIN IMMEDIATE` with the store's busy timeout; PostgreSQL: the
//! ledger head's row lock first).
//! As `offline`, it never migrates: it refuses a store at another schema version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior};

use crate::catalog::CatalogStore;
use crate::metrics::{PayoutMetrics, PayoutState};
use crate::model::Status;
use crate::payouts::run::{self, Clock, Confirmed, Tally};
use crate::payouts::{
    Directory, PartnerEntry, Payout, PayoutError, PayoutFilter, PayoutStore, PayoutTx, Report, Request, Run, Schedule, SecretKey, Settings,
    StripeClient, StripeConfig, StripeTransfers, Transfers, Trigger,
};
use crate::storage::offline::StoreAt;
use crate::storage::pg::{PgStatements, PgTx};
use crate::storage::sqlite::gate::Gate;
use crate::storage::sqlite::{path, schema, SqliteTx};

/// A run, its payouts' counts and sums by status, and its first payouts by id (the rest are
/// `GET /v1/payouts?run=`'s pages).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunDetail {
    pub run: Run,
    pub totals: BTreeMap<&'static str, Tally>,
    pub payouts: Vec<Payout>,
}

/// An open connection for payout runs, confirmations and listings.
pub struct PayoutDb(Open);

enum Open {
    File(Connection, Gate),
    Pg(Box<(::postgres::Client, PgStatements)>),
}

fn sqlite(e: rusqlite::Error) -> PayoutError {
    PayoutError::Storage(format!("sqlite: {e}"))
}

fn pg(e: ::postgres::Error) -> PayoutError {
    PayoutError::Storage(format!("PostgreSQL: {e}"))
}

impl PayoutDb {
    /// Opens the store; call it off any async runtime's threads (a blocking thread is fine).
    pub fn open(at: &StoreAt) -> Result<PayoutDb, PayoutError> {
        Ok(PayoutDb(match at {
            StoreAt::File(dir) => Open::File(schema::open(dir).map_err(|e| PayoutError::Storage(e.to_string()))?, Gate::of(&path(dir))),
            StoreAt::Pg(url) => {
                let client = crate::storage::pg::conversions::connect(url).map_err(|e| PayoutError::Storage(e.to_string()))?;
                Open::Pg(Box::new((client, PgStatements::default())))
            }
        }))
    }

    fn within<R>(&mut self, commit: bool, f: impl FnOnce(&mut dyn PayoutTx) -> Result<R, PayoutError>) -> Result<R, PayoutError> {
        match &mut self.0 {
            Open::File(conn, gate) => {
                let behavior = if commit { TransactionBehavior::Immediate } else { TransactionBehavior::Deferred };
                // A read (a dry run, a listing) takes no turn: it never waits for the writer.
                let _turn = commit.then(|| gate.enter());
                let tx = conn.transaction_with_behavior(behavior).map_err(sqlite)?;
                let out = f(&mut SqliteTx::new(&tx)?)?;
                if commit {
                    tx.commit().map_err(sqlite)?;
                }
                Ok(out)
            }
            Open::Pg(b) => {
                let (client, statements) = &mut **b;
                let mut tx = client.transaction().map_err(pg)?;
                let out = {
                    let mut t = PgTx::with_statements(&mut tx, statements);
                    t.lock_head()?;
                    f(&mut t)?
                };
                if commit {
                    tx.commit().map_err(pg)?;
                }
                Ok(out)
            }
        }
    }
}

impl PayoutStore for PayoutDb {
    fn write<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> Result<R, PayoutError>) -> Result<R, PayoutError> {
        self.within(true, f)
    }

    fn read<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> Result<R, PayoutError>) -> Result<R, PayoutError> {
        self.within(false, f)
    }
}

/// A program whose scheduled run was due, and what the run did.
pub type ScheduledRun = (String, Result<Report, PayoutError>);

/// Payout runs as the CLI, the API and the schedule start them: the store, the catalog's
/// partners and programs (the data dir's file), the config and the Stripe client. Every
/// method blocks: call it off the runtime's worker threads.
pub struct Desk {
    at: StoreAt,
    data_dir: PathBuf,
    config: crate::config::Payouts,
    stripe: Option<Arc<StripeClient>>,
    runtime: tokio::runtime::Handle,
    metrics: Option<PayoutMetrics>,
}

impl Desk {
    /// Without a key, Stripe payouts wait `sent` for a run that has one.
    pub fn new(
        at: StoreAt,
        data_dir: &Path,
        config: &crate::config::Payouts,
        key: Option<SecretKey>,
        runtime: tokio::runtime::Handle,
        metrics: Option<PayoutMetrics>,
    ) -> Result<Desk, PayoutError> {
        let s = &config.stripe;
        let stripe_config = StripeConfig {
            api_base: s.api_base.clone(),
            connect_timeout_ms: s.connect_timeout_ms,
            request_timeout_ms: s.request_timeout_ms,
            attempts_max: s.attempts_max,
            backoff_base_ms: s.backoff_base_ms,
            backoff_max_ms: s.backoff_max_ms,
            idle_connections_max: s.concurrency_max,
        };
        let stripe = key
            .map(|k| StripeClient::new(stripe_config, k).map(Arc::new))
            .transpose()
            .map_err(|e| PayoutError::Invalid { field: "payouts.stripe", why: e.to_string() })?;
        Ok(Desk { at, data_dir: data_dir.to_path_buf(), config: config.clone(), stripe, runtime, metrics })
    }

    fn db(&self) -> Result<PayoutDb, PayoutError> {
        // Payouts' destinations are sealed: a command-line run loads the data key first.
        if crate::privacy::current().is_err() {
            self.catalog()?;
        }
        PayoutDb::open(&self.at)
    }

    /// The catalog beside the store: the PostgreSQL one in cluster mode, else the data dir's.
    fn catalog(&self) -> Result<super::CatalogDb, PayoutError> {
        let url = match &self.at {
            StoreAt::Pg(url) => Some(url.as_str()),
            StoreAt::File(_) => None,
        };
        let db = super::CatalogDb::connect(url, &self.data_dir).map_err(|e| PayoutError::Storage(e.to_string()))?;
        // The partners' payout details are sealed: a run from the command line loads the key
        // as the app's start does (a no-op once loaded).
        super::data_key::load(&db, &self.data_dir).map_err(|e| PayoutError::Storage(e.to_string()))?;
        Ok(db)
    }

    /// The partners' destinations and the programs' thresholds, from the catalog.
    pub fn directory(&self) -> Result<Directory, PayoutError> {
        let catalog = self.catalog()?;
        let storage = |e: crate::catalog::CatalogError| PayoutError::Storage(e.to_string());
        let mut dir = Directory::default();
        for p in catalog.partners().map_err(storage)? {
            let destination = p.spec.destination().map_err(|e| e.to_string());
            dir.partners.insert(p.spec.id.clone(), PartnerEntry { name: p.spec.name.clone(), destination });
        }
        for p in catalog.programs().map_err(storage)? {
            dir.thresholds.insert(p.spec.id.clone(), p.spec.payout_threshold_minor);
        }
        Ok(dir)
    }

    fn settings(&self) -> Settings {
        Settings {
            export_dir: self.config.export_dir.clone().unwrap_or_else(|| self.data_dir.join("payouts")),
            lock_lease_ms: self.config.lock_lease_ms as i64,
            batch_len_max: self.config.batch_len_max,
            paypal_note: self.config.paypal_note.clone(),
        }
    }

    /// Runs (or resumes) a payout run or a settlement by hand, or plans one with `dry_run`.
    pub fn run(&self, req: &Request, now: Clock<'_>) -> Result<Report, PayoutError> {
        let dir = self.directory()?;
        let transfers =
            self.stripe.as_ref().map(|c| StripeTransfers::new(c.clone(), self.runtime.clone(), self.config.stripe.concurrency_max));
        let out = run::run(&mut self.db()?, &dir, transfers.as_ref().map(|t| t as &dyn Transfers), &self.settings(), req, now);
        if let Some(m) = &self.metrics {
            match &out {
                Ok(r) if !r.dry_run => {
                    for r in r.finished_first.iter().chain([r]) {
                        m.runs.inc();
                        m.add(PayoutState::Paid, r.paid.count, r.paid.amount_minor);
                        m.add(PayoutState::Sent, r.sent.count, r.sent.amount_minor);
                        m.add(PayoutState::Failed, r.failed.count, r.failed.amount_minor);
                        m.add(PayoutState::Insufficient, r.insufficient.count, r.insufficient.amount_minor);
                    }
                }
                Ok(_) => {}
                Err(_) => m.run_errors.inc(),
            }
        }
        out
    }

    /// Confirms a run's sent file and manual payouts: paid, but `failed` (id, reason).
    pub fn confirm(&self, run_id: &str, failed: &[(String, String)], now: Clock<'_>) -> Result<Confirmed, PayoutError> {
        let out = run::confirm(&mut self.db()?, run_id, failed, now)?;
        if let Some(m) = &self.metrics {
            m.add(PayoutState::Paid, out.paid.count, out.paid.amount_minor);
            m.add(PayoutState::Failed, out.failed.count, out.failed.amount_minor);
        }
        Ok(out)
    }

    /// Runs newest first, before the run id `before` when given.
    pub fn runs(&self, before: Option<&str>, limit: usize) -> Result<Vec<Run>, PayoutError> {
        self.db()?.read(|tx| tx.runs(before, limit.min(self.config.list_len_max)))
    }

    /// A run and its payouts.
    pub fn run_detail(&self, id: &str, first: usize) -> Result<Option<RunDetail>, PayoutError> {
        let page = self.config.list_len_max.max(1);
        self.db()?.read(|tx| {
            let Some(run) = tx.run(id)? else { return Ok(None) };
            // A run of 100k partners is read a page at a time, never held whole.
            let mut detail = RunDetail { run, totals: BTreeMap::new(), payouts: Vec::new() };
            let mut filter = PayoutFilter { run: Some(id.to_string()), limit: page, ..PayoutFilter::default() };
            loop {
                let rows = tx.payouts(&filter)?;
                for p in &rows {
                    detail.totals.entry(p.status.as_str()).or_default().add(p.amount_minor);
                }
                let room = first.saturating_sub(detail.payouts.len());
                detail.payouts.extend(rows.iter().take(room).cloned());
                if rows.len() < page {
                    return Ok(Some(detail));
                }
                filter.after = rows.last().map(|p| p.id.clone());
            }
        })
    }

    /// Payouts by id, as `filter` wants them (at most `payouts.list_len_max`).
    pub fn payouts(&self, filter: &PayoutFilter) -> Result<Vec<Payout>, PayoutError> {
        let filter = PayoutFilter { limit: filter.limit.min(self.config.list_len_max), ..filter.clone() };
        self.db()?.read(|tx| tx.payouts(&filter))
    }

    /// Starts the runs the programs' schedules make due at `now_ms`, one per program; a
    /// program whose run fails is tried again at the next check.
    pub fn scheduled(&self, now: Clock<'_>) -> Result<Vec<ScheduledRun>, PayoutError> {
        let catalog = self.catalog()?;
        let programs = catalog.programs().map_err(|e| PayoutError::Storage(e.to_string()))?;
        let mut out = Vec::new();
        for p in programs {
            let Ok(schedule) = p.spec.schedule() else { continue };
            if schedule == Schedule::Off || p.status != Status::Active {
                continue;
            }
            let last = self.db()?.read(|tx| tx.last_scheduled_run_ms(&p.spec.id))?;
            if !schedule.due(now(), last) {
                continue;
            }
            let req =
                Request { program: Some(p.spec.id.clone()), currency: None, trigger: Trigger::Schedule, dry_run: false, by_hand: None };
            out.push((p.spec.id.clone(), self.run(&req, now)));
        }
        Ok(out)
    }
}
