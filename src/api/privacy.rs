//! `POST /v1/privacy/erase` (admin): a visitor's or a customer's data erased, through the
//! process's own `Ingest` (which owns the click log and the index) and the conversion store;
//! the same code path as `clickgate privacy erase` (`app::privacy::erase`).

use std::sync::Arc;

use hyper::StatusCode;
use serde::Deserialize;

use super::scope::Caller;
use super::{json, read_blocking, ApiError, ApiResult, ApiState};
use crate::privacy::Erasure;

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
        crate::app::privacy::erase(&state.ingest, &state.store_at, &what, &**audit, &actor)
    })
    .await?
    .map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "privacy erase failed");
        ApiError::internal("the erase did not finish; what it did is kept, and running it again finishes it")
    })?;
    Ok(json(StatusCode::OK, &report))
}
