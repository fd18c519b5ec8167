//! A payout run from start to end: take the lock (or resume the unfinished run whose lock
//! expired), plan and create its payouts in one transaction, then send them in batches, each
//! batch's pending transfers committed before the provider hears of it, and record each
//! answer. A run killed at any point and started again resumes with the same payout ids, which
//! are Stripe's idempotency keys, so each partner is paid once.
//!
//! Stripe payouts are paid when Stripe answers 200 (its later `transfer.reversed` is out of
//! scope). `balance_insufficient` fails the payout with `insufficient` set: the money is
//! payable again and the next run pays it under a new id. An unknown outcome (retries spent)
//! leaves it `sent`, and every later run asks again under the same key. PayPal and Wise
//! payouts are written to one CSV per format and currency under the export dir and stay
//! `sent`, as manual ones do, until `confirm`.
//!
//! A settlement by hand (`Request::by_hand`: money an operator paid outside clickgate, with
//! its reference) is a run of its own: one `manual` payout of one partner and currency,
//! whatever the thresholds, created with the reference, then sent and marked paid. It
//! finishes any run a killed process left first. Its commissions are held by the payout in
//! the transaction that creates it, so a retry finds nothing left to pay.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::export::{self, ExportFormat};
use super::plan::{self, destination_text, Directory, Plan};
use super::provider::{Destination, Email, PayoutMethod, PayoutRequest, PayoutResult, StripeAccount};
use super::state::{check_reference, payout_id, Payout, PayoutError, PayoutFilter, PayoutStatus, PayoutTx, Run, Trigger};
use super::steps;
use crate::lifecycle::CommissionStatus;
use crate::model::Currency;

/// How long after a Stripe payout was sent its `Idempotency-Key` is trusted to stop a second
/// transfer. Stripe keeps a key's result for at least 24 hours; a payout whose outcome is still
/// unknown after this is not sent again: it stays `sent`, holding its commissions, until an
/// operator checks Stripe and records the answer with `clickgate payouts confirm`.
pub const STRIPE_KEY_TRUSTED_MS: i64 = 23 * 3_600_000;

/// A store that runs a closure in one transaction and commits it when the closure succeeds.
pub trait PayoutStore {
    /// Runs `f` in one write transaction, serialised with every other writer of the store.
    fn write<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> Result<R, PayoutError>) -> Result<R, PayoutError>;
    /// Runs `f` in a transaction that is rolled back: what a dry run and a listing use.
    fn read<R>(&mut self, f: impl FnOnce(&mut dyn PayoutTx) -> Result<R, PayoutError>) -> Result<R, PayoutError>;
}

/// Pays Stripe payouts, a batch at a time (concurrently inside), one answer per request.
pub trait Transfers {
    fn transfer_all(&self, requests: &[PayoutRequest]) -> Vec<PayoutResult>;
}

/// What a run needs beside the store.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where PayPal and Wise files go.
    pub export_dir: PathBuf,
    /// How long the lock holds without a step of its run: a killed run's lock is taken over
    /// after this.
    pub lock_lease_ms: i64,
    /// Payouts per transaction and per batch of Stripe requests.
    pub batch_len_max: usize,
    /// PayPal's note to each recipient.
    pub paypal_note: String,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Request {
    pub program: Option<String>,
    pub currency: Option<Currency>,
    pub trigger: Trigger,
    pub dry_run: bool,
    /// Settle one partner by hand in `currency` (which it needs) instead of paying everyone due.
    pub by_hand: Option<ByHand>,
}

/// A settlement made outside clickgate: who was paid, and the operator's reference for it
/// (1..=64 of `[A-Za-z0-9_-]`), stored as the payout's `reference`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByHand {
    pub partner: String,
    pub reference: String,
}

/// The payout a settlement by hand made and marked paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settled {
    pub payout_id: String,
    pub partner: String,
    pub currency: Currency,
    pub amount_minor: i64,
    /// The commissions it paid.
    pub commissions: usize,
    pub reference: String,
}

/// Counts and sums of a run's payouts by what happened to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub count: u64,
    pub amount_minor: i64,
}

impl Tally {
    pub fn add(&mut self, amount_minor: i64) {
        self.count += 1;
        self.amount_minor += amount_minor;
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Empty for a dry run.
    pub run_id: String,
    /// True when it finished a run a killed process left.
    pub resumed: bool,
    pub dry_run: bool,
    /// What a dry run would pay, or what the run planned.
    pub plan: Plan,
    pub paid: Tally,
    /// Sent and waiting: file and manual payouts until confirmed, Stripe ones whose outcome
    /// is unknown.
    pub sent: Tally,
    pub failed: Tally,
    /// Of `failed`: Stripe's balance could not cover them; the next run pays them.
    pub insufficient: Tally,
    /// Export files written.
    pub files: Vec<String>,
    /// The payout settled by hand, when this run is (or resumed) a settlement by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled: Option<Settled>,
    /// The runs killed processes left, which a settlement by hand finished before its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finished_first: Vec<Report>,
}

/// A clock in Unix milliseconds, injected.
pub type Clock<'a> = &'a (dyn Fn() -> i64 + Sync);

/// Runs (or resumes) one payout run. A settlement by hand resumes every unfinished run first,
/// then makes its own.
pub fn run<S: PayoutStore>(
    store: &mut S,
    dir: &Directory,
    stripe: Option<&dyn Transfers>,
    settings: &Settings,
    req: &Request,
    now: Clock<'_>,
) -> Result<Report, PayoutError> {
    let by_hand = match &req.by_hand {
        Some(h) => Some((h, check_by_hand(dir, req, h)?)),
        None => None,
    };
    if req.dry_run {
        let plan = store.read(|tx| match by_hand {
            Some((h, currency)) => plan::by_hand(tx, &h.partner, req.program.as_deref(), currency),
            None => plan::plan(tx, dir, req.program.as_deref(), req.currency),
        })?;
        return Ok(Report { dry_run: true, plan, ..Report::default() });
    }
    let mut finished_first = Vec::new();
    loop {
        let report = run_once(store, dir, stripe, settings, req, now)?;
        // Each pass either finishes an unfinished run or makes the requested one, so this ends.
        if by_hand.is_none() || !report.resumed {
            return Ok(Report { finished_first, ..report });
        }
        finished_first.push(report);
    }
}

/// The currency of a settlement by hand, once its partner, reference and currency check out.
fn check_by_hand(dir: &Directory, req: &Request, h: &ByHand) -> Result<Currency, PayoutError> {
    check_reference(&h.reference)?;
    let currency = req.currency.ok_or_else(|| PayoutError::Invalid { field: "currency", why: "a settlement by hand needs one".into() })?;
    if !dir.partners.contains_key(&h.partner) {
        return Err(PayoutError::NotFound(format!("partner {:?} not found", h.partner)));
    }
    Ok(currency)
}

/// Resumes the oldest unfinished run, or makes the requested one, to its end.
fn run_once<S: PayoutStore>(
    store: &mut S,
    dir: &Directory,
    stripe: Option<&dyn Transfers>,
    settings: &Settings,
    req: &Request,
    now: Clock<'_>,
) -> Result<Report, PayoutError> {
    let lease = settings.lock_lease_ms;
    let holder = format!("{:016x}", fastrand::u64(..));
    let (run, resumed, plan) = store.write(|tx| {
        let t = now();
        if let Some(run) = tx.unfinished_runs()?.into_iter().next() {
            tx.take_lock(&holder, &run.id, t, t + lease)?;
            return Ok((run, true, Plan::default()));
        }
        let run = Run {
            id: Run::new_id(t, fastrand::u32(..)),
            program: req.program.clone(),
            currency: req.currency,
            trigger: req.trigger,
            finished: false,
            started_ms: t,
            finished_ms: None,
        };
        tx.take_lock(&holder, &run.id, t, t + lease)?;
        tx.insert_run(&run)?;
        let plan = match (&req.by_hand, run.currency) {
            (Some(h), Some(currency)) => plan::by_hand(tx, &h.partner, run.program.as_deref(), currency)?,
            _ => plan::plan(tx, dir, run.program.as_deref(), run.currency)?,
        };
        for p in &plan.payouts {
            let payout = Payout {
                id: payout_id(&run.id, &p.partner, p.currency),
                run_id: run.id.clone(),
                partner: p.partner.clone(),
                currency: p.currency,
                amount_minor: p.amount_minor,
                method: p.method,
                destination: destination_text(&p.destination),
                status: PayoutStatus::Created,
                reference: req.by_hand.as_ref().map(|h| h.reference.clone()),
                failure: None,
                insufficient: false,
                created_ms: t,
                sent_ms: None,
                settled_ms: None,
            };
            steps::create(tx, &payout, &p.programs)?;
        }
        Ok((run, false, plan))
    })?;
    tracing::info!(run = run.id, resumed, payouts = plan.payouts.len(), "A payout run started.");
    let mut report = Report { run_id: run.id.clone(), resumed, plan, ..Report::default() };
    let batch = settings.batch_len_max.max(1);
    // Only while this process still holds the lock: one that stalled past its lease and
    // was taken over stops, and never sends a payout the new holder may settle.
    let renew = |tx: &mut dyn PayoutTx| {
        if tx.renew_lock(&holder, &run.id, now() + lease)? {
            Ok(())
        } else {
            Err(PayoutError::LockLost { run: run.id.clone() })
        }
    };

    // Stripe payouts left sent (this run's before a crash, or an earlier run's unknown
    // outcome), asked again under their own keys, then this run's created ones. A new
    // settlement by hand pays its one partner and asks Stripe nothing.
    let settling = !resumed && req.by_hand.is_some();
    if !settling {
        loop {
            let open = store.write(|tx| {
                renew(tx)?;
                tx.open_stripe_payouts(now() - STRIPE_KEY_TRUSTED_MS, batch)
            })?;
            let retried = pay_stripe(store, dir, stripe, &open, &mut report, now, &renew)?;
            if retried < open.len() || open.len() < batch {
                break;
            }
        }
    }
    let mine = PayoutFilter { run: Some(run.id.clone()), limit: usize::MAX, ..PayoutFilter::default() };
    let (by_hand, created): (Vec<Payout>, Vec<Payout>) = store
        .read(|tx| tx.payouts(&mine))?
        .into_iter()
        .filter(|p| p.status == PayoutStatus::Created || (p.status == PayoutStatus::Sent && p.by_hand().is_some()))
        .partition(|p| p.by_hand().is_some());
    settle_by_hand(store, &by_hand, &mut report, now, &renew)?;
    let (stripes, others): (Vec<Payout>, Vec<Payout>) = created.into_iter().partition(|p| p.method == PayoutMethod::Stripe);
    for chunk in stripes.chunks(batch) {
        let sent = store.write(|tx| {
            renew(tx)?;
            chunk.iter().map(|p| steps::send(tx, &p.id, None, now())).collect::<Result<Vec<_>, _>>()
        })?;
        // A payout that is not `sent` now (settled by an earlier attempt) is never sent again.
        let sent: Vec<Payout> = sent.into_iter().filter(|p| p.status == PayoutStatus::Sent).collect();
        pay_stripe(store, dir, stripe, &sent, &mut report, now, &renew)?;
    }
    send_others(store, dir, settings, &run, &others, &mut report, now, &renew)?;
    store.write(|tx| {
        renew(tx)?;
        tx.finish_run(&run.id, now())?;
        tx.release_lock(&holder)
    })?;
    tracing::info!(
        run = run.id,
        paid = report.paid.count,
        sent = report.sent.count,
        failed = report.failed.count,
        insufficient = report.insufficient.count,
        "A payout run finished."
    );
    Ok(report)
}

/// Sends each payout settled by hand and marks it paid with its reference, in two
/// transactions, as any payout goes: a run killed between them is resumed from `sent`.
fn settle_by_hand<S: PayoutStore>(
    store: &mut S,
    payouts: &[Payout],
    report: &mut Report,
    now: Clock<'_>,
    renew: &dyn Fn(&mut dyn PayoutTx) -> Result<(), PayoutError>,
) -> Result<(), PayoutError> {
    for p in payouts {
        let reference = p.by_hand().unwrap_or_default();
        store.write(|tx| {
            renew(tx)?;
            steps::send(tx, &p.id, Some(reference), now())
        })?;
        let (paid, commissions) = store.write(|tx| {
            renew(tx)?;
            let paid = steps::paid(tx, &p.id, Some(reference), now())?;
            let commissions = tx.commissions_of_payout(&p.id)?.iter().filter(|c| c.status == CommissionStatus::Paid).count();
            Ok((paid, commissions))
        })?;
        tracing::info!(
            payout = paid.id,
            partner = paid.partner,
            amount_minor = paid.amount_minor,
            reference,
            "A payout was settled by hand."
        );
        report.paid.add(paid.amount_minor);
        report.settled = Some(Settled {
            payout_id: paid.id,
            partner: paid.partner,
            currency: paid.currency,
            amount_minor: paid.amount_minor,
            commissions,
            reference: reference.to_string(),
        });
    }
    Ok(())
}

/// The request to pay a stored payout.
fn request(dir: &Directory, p: &Payout) -> Result<PayoutRequest, String> {
    let dest = match p.method {
        PayoutMethod::Stripe => Destination::Stripe(StripeAccount::parse(&p.destination).map_err(|e| e.to_string())?),
        PayoutMethod::Paypal => Destination::Paypal(Email::parse("paypal_email", &p.destination).map_err(|e| e.to_string())?),
        PayoutMethod::Wise => {
            let name = dir.partners.get(&p.partner).map_or_else(|| p.partner.clone(), |e| e.name.clone());
            Destination::Wise { name, email: Email::parse("email", &p.destination).map_err(|e| e.to_string())? }
        }
        PayoutMethod::Manual => Destination::Manual,
    };
    PayoutRequest::new(&p.id, &p.run_id, &p.partner, p.currency, p.amount_minor, dest).map_err(|e| e.to_string())
}

/// Asks Stripe for each sent payout and records each answer; returns how many were settled
/// (paid or failed), the rest staying sent.
fn pay_stripe<S: PayoutStore>(
    store: &mut S,
    dir: &Directory,
    stripe: Option<&dyn Transfers>,
    sent: &[Payout],
    report: &mut Report,
    now: Clock<'_>,
    renew: &dyn Fn(&mut dyn PayoutTx) -> Result<(), PayoutError>,
) -> Result<usize, PayoutError> {
    if sent.is_empty() {
        return Ok(0);
    }
    let Some(stripe) = stripe else {
        tracing::warn!(payouts = sent.len(), "Stripe payouts wait: CLICKGATE_STRIPE_SECRET_KEY is not set.");
        sent.iter().for_each(|p| report.sent.add(p.amount_minor));
        return Ok(0);
    };
    let mut requests = Vec::with_capacity(sent.len());
    let mut bad = Vec::new();
    for p in sent {
        match request(dir, p) {
            Ok(r) => requests.push(r),
            Err(why) => bad.push((p.id.clone(), why)),
        }
    }
    let answers = stripe.transfer_all(&requests);
    store.write(|tx| {
        renew(tx)?;
        let mut settled = 0;
        for (id, why) in &bad {
            let p = steps::failed(tx, id, why, false, now())?;
            report.failed.add(p.amount_minor);
            settled += 1;
        }
        for (r, answer) in requests.iter().zip(answers.iter()) {
            match answer {
                PayoutResult::Paid { transfer_id } => {
                    steps::paid(tx, r.payout_id(), Some(transfer_id), now())?;
                    report.paid.add(r.amount_minor());
                    settled += 1;
                }
                PayoutResult::Failed { why } => {
                    tracing::warn!(payout = r.payout_id(), partner = r.partner(), why, "A Stripe payout failed.");
                    steps::failed(tx, r.payout_id(), why, false, now())?;
                    report.failed.add(r.amount_minor());
                    settled += 1;
                }
                PayoutResult::Retryable { why, insufficient_balance: true } => {
                    tracing::error!(
                        payout = r.payout_id(),
                        partner = r.partner(),
                        why,
                        "ALERT: Stripe's balance cannot cover a payout; the next run pays it."
                    );
                    steps::failed(tx, r.payout_id(), why, true, now())?;
                    report.failed.add(r.amount_minor());
                    report.insufficient.add(r.amount_minor());
                    settled += 1;
                }
                PayoutResult::Retryable { why, insufficient_balance: false } => {
                    tracing::warn!(
                        payout = r.payout_id(),
                        partner = r.partner(),
                        why,
                        "A Stripe payout's outcome is unknown; it stays sent and is asked again under its key."
                    );
                    report.sent.add(r.amount_minor());
                }
            }
        }
        Ok(settled)
    })
}

/// Writes the run's PayPal and Wise payouts to their files (one per format and currency) and
/// marks them, and the manual ones, sent. A file is written before its payouts are marked and
/// holds every payout of the run in its format and currency that has not failed, so a resumed
/// run writes the same file again, whichever of its payouts a killed run had marked.
#[allow(clippy::too_many_arguments)]
fn send_others<S: PayoutStore>(
    store: &mut S,
    dir: &Directory,
    settings: &Settings,
    run: &Run,
    others: &[Payout],
    report: &mut Report,
    now: Clock<'_>,
    renew: &dyn Fn(&mut dyn PayoutTx) -> Result<(), PayoutError>,
) -> Result<(), PayoutError> {
    let mut files: BTreeMap<(&'static str, Currency), (ExportFormat, Vec<PayoutRequest>)> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut manual = Vec::new();
    let all = PayoutFilter { run: Some(run.id.clone()), limit: usize::MAX, ..PayoutFilter::default() };
    let filed: Vec<Payout> = store
        .read(|tx| tx.payouts(&all))?
        .into_iter()
        .filter(|p| matches!(p.method, PayoutMethod::Paypal | PayoutMethod::Wise))
        .filter(|p| matches!(p.status, PayoutStatus::Sent | PayoutStatus::Paid))
        .collect();
    let created_ids: std::collections::HashSet<&str> = others.iter().map(|p| p.id.as_str()).collect();
    for p in others.iter().chain(&filed) {
        let format = match p.method {
            PayoutMethod::Paypal => ExportFormat::Paypal,
            PayoutMethod::Wise => ExportFormat::Wise,
            _ => {
                manual.push((p.id.clone(), None, p.amount_minor));
                continue;
            }
        };
        match request(dir, p) {
            Ok(r) => files.entry((format.as_str(), p.currency)).or_insert_with(|| (format, Vec::new())).1.push(r),
            Err(why) => bad.push((p.id.clone(), why)),
        }
    }
    let mut marks = manual;
    if !files.is_empty() {
        std::fs::create_dir_all(&settings.export_dir)
            .map_err(|source| super::ExportError::Io { path: settings.export_dir.clone(), source })?;
    }
    for ((_, currency), (format, reqs)) in &files {
        let written = export::write(&settings.export_dir, *format, &run.id, *currency, reqs, &settings.paypal_note)?;
        let name = written.path.file_name().map(|n| n.to_string_lossy().into_owned());
        report.files.push(written.path.display().to_string());
        let created = reqs.iter().filter(|r| created_ids.contains(r.payout_id()));
        marks.extend(created.map(|r| (r.payout_id().to_string(), name.clone(), r.amount_minor())));
    }
    for chunk in marks.chunks(settings.batch_len_max.max(1)) {
        store.write(|tx| {
            renew(tx)?;
            for (id, file, _) in chunk {
                steps::send(tx, id, file.as_deref(), now())?;
            }
            Ok(())
        })?;
        chunk.iter().for_each(|(_, _, amount)| report.sent.add(*amount));
    }
    if !bad.is_empty() {
        store.write(|tx| {
            renew(tx)?;
            for (id, why) in &bad {
                let p = steps::failed(tx, id, why, false, now())?;
                report.failed.add(p.amount_minor);
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// What a confirmation did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Confirmed {
    pub run_id: String,
    pub paid: Tally,
    pub failed: Tally,
}

/// Marks the sent file and manual payouts of `run_id` paid, but those in `failed` (payout id
/// and reason) failed. Stripe payouts are settled by Stripe's answers, never here.
pub fn confirm<S: PayoutStore>(store: &mut S, run_id: &str, failed: &[(String, String)], now: Clock<'_>) -> Result<Confirmed, PayoutError> {
    store.write(|tx| {
        if tx.run(run_id)?.is_none() {
            return Err(PayoutError::NotFound(format!("payout run {run_id:?} not found")));
        }
        let filter = PayoutFilter { run: Some(run_id.to_string()), limit: usize::MAX, ..PayoutFilter::default() };
        let payouts = tx.payouts(&filter)?;
        // A Stripe payout is settled by Stripe's answer, unless its key is no longer trusted:
        // then the operator checks Stripe and records the outcome here.
        let stale = now() - STRIPE_KEY_TRUSTED_MS;
        let confirmable =
            |p: &Payout| p.status == PayoutStatus::Sent && (p.method != PayoutMethod::Stripe || p.sent_ms.unwrap_or(p.created_ms) < stale);
        for (id, _) in failed {
            if !payouts.iter().any(|p| &p.id == id && confirmable(p)) {
                return Err(PayoutError::Invalid {
                    field: "failed",
                    why: format!("{id} is not a sent file or manual payout of run {run_id}, nor a Stripe payout past its key's 23 h"),
                });
            }
        }
        let mut out = Confirmed { run_id: run_id.to_string(), ..Confirmed::default() };
        for p in payouts.iter().filter(|p| confirmable(p)) {
            match failed.iter().find(|(id, _)| *id == p.id) {
                Some((_, why)) => {
                    steps::failed(tx, &p.id, why, false, now())?;
                    out.failed.add(p.amount_minor);
                }
                None => {
                    steps::paid(tx, &p.id, None, now())?;
                    out.paid.add(p.amount_minor);
                }
            }
        }
        Ok(out)
    })
}
