//! `POST /v1/privacy/erase` (admin): a visitor's or a customer's data erased, through the
//! process's own `Ingest` (which owns the click log and the index) and the conversion store.
//! `run` is the one code path, shared with `clickgate privacy erase`, which runs it on its own
//! `Ingest` over a stopped data dir.

use std::sync::Arc;

use hyper::StatusCode;
use serde::Deserialize;

use super::scope::Caller;
use super::{json, read_blocking, ApiError, ApiResult, ApiState};
use crate::audit::{Action, Actor, AuditLog, Entry};
use crate::ingest::Ingest;
use crate::privacy::{Erasure, ErasureReport};
use crate::storage::offline::StoreAt;

/// The body: exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseBody {
    visitor_id: Option<String>,
    customer_ref: Option<String>,
}

/// Erases the body's target and answers the counts (`ErasureReport`).
pub async fn erase(state: &Arc<ApiState>, caller: &Caller, body: &[u8]) -> ApiResult {
    let b: EraseBody = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not an erase request: {e}")))?;
    let what = Erasure::from_fields(b.visitor_id.as_deref(), b.customer_ref.as_deref())
        .map_err(|e| ApiError::invalid(if b.visitor_id.is_some() { "visitor_id" } else { "customer_ref" }, e))?;
    let actor = caller.actor();
    let state = state.clone();
    let report = read_blocking("privacy erase", move || {
        let audit = state.store.lock().unwrap_or_else(|e| e.into_inner());
        run(&state.ingest, &state.store_at, &what, &**audit, &actor, (state.now_ms)())
    })
    .await?
    .map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "privacy erase failed");
        ApiError::internal("the erase did not finish; what it did is kept, and running it again finishes it")
    })?;
    Ok(json(StatusCode::OK, &report))
}

/// Why an erase stopped: what it did before is kept, and running it again finishes it.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("erasing the visitor's clicks from the click log: {0}")]
    ClickLog(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::storage::erase::EraseError),
    #[error("the erase is done, but its audit entry was not stored: {0}")]
    Audit(#[from] crate::audit::AuditError),
}

/// Erases `what` and answers what it changed: the click log and index through `ingest`, which
/// owns them, then the store's rows, then its entry in `audit` under `actor` at `now_ms`. Blocking: call it
/// on a blocking thread.
pub fn run(
    ingest: &Ingest,
    at: &StoreAt,
    what: &Erasure,
    audit: &(impl AuditLog + ?Sized),
    actor: &Actor,
    now_ms: u64,
) -> Result<ErasureReport, EraseError> {
    let mut report = ErasureReport { target: what.kind(), ..ErasureReport::default() };
    if let Some(visitor) = what.visitor() {
        let clicks = ingest.erase_visitor(&visitor)?;
        (report.clicks, report.click_log_segments) = (clicks.clicks, clicks.segments);
    }
    let rows = crate::storage::erase::erase_rows(at, what)?;
    (report.conversions, report.stored_answers) = (rows.conversions, rows.answers);
    // The entry names the kind of target and the counts, never the erased value: the log must
    // not become the place where it survives.
    let after = serde_json::to_value(&report).unwrap_or_default();
    audit.append_audit(&Entry::new(actor, Action::PrivacyErase, what.kind(), now_ms, None, Some(after)))?;
    tracing::info!(
        kind = what.kind(),
        clicks = report.clicks,
        conversions = report.conversions,
        answers = report.stored_answers,
        actor = actor.as_str(),
        "privacy erase done"
    );
    Ok(report)
}
