//! Payout runs over HTTP: `POST /v1/payout-runs` (a run, or its plan with `dry_run`), `GET
//! /v1/payout-runs[/{id}]`, `GET /v1/payouts?partner&status&run`, `POST
//! /v1/payout-runs/{id}/confirm`, and `POST /v1/partners/{id}/payouts`, a settlement by hand.
//! A run goes to the store directly on a blocking thread, as `clickgate payouts run` does,
//! under the same run lock; the request waits for it to end.
//!
//! A settlement by hand needs no `Idempotency-Key` (one sent is ignored): the payout holds the
//! commissions it pays in the transaction that creates it, so a retry finds nothing left and
//! answers `paid: 0`; `GET /v1/payouts?partner=` shows what the first one paid.

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;

use super::commissions::{is_slug, Params};
use super::{json, parse_json, read_blocking, ApiError, ApiResult, ApiState};
use crate::model::Currency;
use crate::payouts::{ByHand, PayoutError, PayoutFilter, PayoutStatus, Request, Trigger};
use crate::storage::payouts::Desk;

impl From<PayoutError> for ApiError {
    fn from(e: PayoutError) -> ApiError {
        match e {
            PayoutError::NotFound(m) => ApiError::not_found(m),
            e @ (PayoutError::Conflict(_) | PayoutError::Locked { .. }) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            PayoutError::Invalid { field, why } => ApiError::invalid(field, why),
            e => {
                tracing::error!(error = %e, "a payout step failed; what it did is committed step by step, and the next run resumes it");
                ApiError::internal(format!("the payout step failed: {e}"))
            }
        }
    }
}

fn desk(state: &ApiState) -> Result<Arc<Desk>, ApiError> {
    state.payouts.clone().ok_or_else(|| ApiError::not_found("payout runs are not served by this process"))
}

fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|r| !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The body of `POST /v1/payout-runs`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRun {
    program: Option<String>,
    currency: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub async fn create_run(state: &Arc<ApiState>, body: &Bytes) -> ApiResult {
    let b: NewRun = if body.is_empty() { NewRun { program: None, currency: None, dry_run: false } } else { parse_json(body)? };
    if let Some(p) = b.program.as_deref().filter(|p| !is_slug(p)) {
        return Err(ApiError::invalid("program", format!("{p:?} must be 1..=64 of [A-Za-z0-9_-]")));
    }
    let currency = b.currency.as_deref().map(Currency::parse).transpose().map_err(|e| ApiError::invalid("currency", e))?;
    let desk = desk(state)?;
    let now_ms = state.now_ms;
    let req = Request { program: b.program, currency, trigger: Trigger::Api, dry_run: b.dry_run, by_hand: None };
    let report = read_blocking("payout run", move || desk.run(&req, &|| now_ms() as i64)).await??;
    Ok(json(if report.dry_run { StatusCode::OK } else { StatusCode::CREATED }, &report))
}

/// The body of `POST /v1/partners/{id}/payouts`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Settle {
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    reference: String,
}

/// Settles a partner by hand: `201` with the run's report and the payout it paid, or `200`
/// with `paid: 0` when nothing was payable.
pub async fn settle(state: &Arc<ApiState>, partner: &str, body: &Bytes) -> ApiResult {
    if state.catalog.load().partner(partner).is_none() {
        return Err(ApiError::not_found(format!("partner {partner:?} not found")));
    }
    let b: Settle = parse_json(body)?;
    let currency = Currency::parse(&b.currency)
        .map_err(|_| ApiError::invalid("currency", format!("{:?} is not an ISO 4217 currency code", b.currency)))?;
    crate::payouts::state::check_reference(&b.reference)?;
    let (desk, now_ms) = (desk(state)?, state.now_ms);
    let by_hand = Some(ByHand { partner: partner.to_string(), reference: b.reference });
    let req = Request { program: None, currency: Some(currency), trigger: Trigger::Api, dry_run: false, by_hand };
    let report = read_blocking("payout settlement", move || desk.run(&req, &|| now_ms() as i64)).await??;
    let (status, paid, amount_minor) = match &report.settled {
        Some(s) => (StatusCode::CREATED, s.commissions, s.amount_minor),
        None => (StatusCode::OK, 0, 0),
    };
    let body = serde_json::json!({
        "partner": partner, "currency": currency, "paid": paid, "amount_minor": amount_minor,
        "payout": report.settled, "report": report,
    });
    Ok(json(status, &body))
}

pub async fn list_runs(state: &Arc<ApiState>, query: &str) -> ApiResult {
    let p = Params::parse(query, &["cursor", "limit"])?;
    let cursor = p.get("cursor", |s| is_id(s, "pr_"), "a payout run id")?;
    let limit = p.limit()?;
    let desk = desk(state)?;
    let runs = read_blocking("payout runs", move || desk.runs(cursor.as_deref(), limit)).await??;
    let next = (runs.len() == limit).then(|| runs.last().map(|r| r.id.clone())).flatten();
    Ok(json(StatusCode::OK, &serde_json::json!({ "runs": runs, "next_cursor": next })))
}

/// The payouts a run's detail lists; `next_cursor` continues through `GET /v1/payouts?run=`.
const RUN_DETAIL_PAYOUTS: usize = 100;

pub async fn get_run(state: &Arc<ApiState>, id: &str) -> ApiResult {
    if !is_id(id, "pr_") {
        return Err(ApiError::not_found(format!("payout run {id:?} not found")));
    }
    let (desk, id) = (desk(state)?, id.to_string());
    let found = read_blocking("payout run", move || desk.run_detail(&id, RUN_DETAIL_PAYOUTS)).await??;
    let detail = found.ok_or_else(|| ApiError::not_found("payout run not found"))?;
    let next = (detail.payouts.len() == RUN_DETAIL_PAYOUTS).then(|| detail.payouts.last().map(|p| p.id.clone())).flatten();
    let mut body = serde_json::to_value(&detail).map_err(|e| ApiError::internal(format!("rendering a payout run: {e}")))?;
    body["next_cursor"] = serde_json::json!(next);
    Ok(json(StatusCode::OK, &body))
}

pub async fn list_payouts(state: &Arc<ApiState>, query: &str) -> ApiResult {
    let p = Params::parse(query, &["partner", "status", "run", "cursor", "limit"])?;
    let status = match p.get("status", |s| PayoutStatus::parse(s).is_some(), "created, sent, paid or failed")? {
        Some(s) => PayoutStatus::parse(&s),
        None => None,
    };
    let filter = PayoutFilter {
        partner: p.get("partner", is_slug, "1..=64 of [A-Za-z0-9_-]")?,
        run: p.get("run", |s| is_id(s, "pr_"), "a payout run id")?,
        status,
        after: p.get("cursor", |s| is_id(s, "po_"), "a payout id")?,
        limit: p.limit()?,
    };
    let desk = desk(state)?;
    let limit = filter.limit;
    let payouts = read_blocking("payouts", move || desk.payouts(&filter)).await??;
    let next = (payouts.len() == limit).then(|| payouts.last().map(|p| p.id.clone())).flatten();
    Ok(json(StatusCode::OK, &serde_json::json!({ "payouts": payouts, "next_cursor": next })))
}

/// The body of `POST /v1/payout-runs/{id}/confirm`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Confirm {
    #[serde(default)]
    failed: Vec<Failed>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Failed {
    payout_id: String,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn confirm(state: &Arc<ApiState>, id: &str, body: &Bytes) -> ApiResult {
    let b: Confirm = if body.is_empty() { Confirm::default() } else { parse_json(body)? };
    let failed: Vec<(String, String)> =
        b.failed.into_iter().map(|f| (f.payout_id, f.reason.unwrap_or_else(|| "failed at the provider".into()))).collect();
    if let Some((_, why)) = failed.iter().find(|(_, why)| why.len() > 500 || why.chars().any(char::is_control)) {
        return Err(ApiError::invalid("failed.reason", format!("{why:?} must be at most 500 bytes without control characters")));
    }
    let (desk, id, now_ms) = (desk(state)?, id.to_string(), state.now_ms);
    let done = read_blocking("payout confirmation", move || desk.confirm(&id, &failed, &|| now_ms() as i64)).await??;
    Ok(json(StatusCode::OK, &done))
}
