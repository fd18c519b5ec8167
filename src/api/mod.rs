//! The JSON API on its own listener: the catalog (programs, partners, links, coupons),
//! conversions, clicks, postbacks, imports, commissions and payouts, payout runs, commission
//! rules, the ledger's entries, the audit log and reports; `GET /openapi.json` describes every route (`openapi`).
//!
//! Every answer is JSON. Errors are `{"error":{"code","field","message"}}` with `400` for a
//! request that cannot be read (bad JSON, unknown fields, wrong types), `422` for one that reads
//! but breaks a rule (negative amount, unknown currency, a timestamp in the future), `401`
//! without a valid key, `403` for a partner key on an admin route, `404` for unknown ids (and
//! another partner's), `409` for a conflicting retry, `429` past a rate limit (with
//! `Retry-After`) and `500` when the server failed (logged).
//!
//! A request's key is checked by `keys::authenticate` and its reach by `scope::authorize`,
//! once, before any handler runs.

pub mod audit;
mod catalog;
mod clicks;
mod commissions;
/// `POST /v1/conversions` and its transitions; public for the fuzz targets.
pub mod conversions;
pub mod dashboard;
pub mod import;
pub mod keys;
mod ledger;
pub mod openapi;
mod payouts;
pub mod postback;
pub mod privacy;
mod reports;
mod rules;
pub mod scope;
mod webhooks;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::SharedCatalog;
use crate::conversions::{ConversionError, Conversions, Reader};
use crate::ingest::Ingest;
use crate::lifecycle::LifecycleError;
use crate::metrics::{ApiMetrics, ApiOutcome};
use crate::model::ClickSigner;

pub use clicks::CoreAttributor;
pub use conversions::{answered, render, replayed};
pub use import::{import_csv_via_api, ImportSummary, RowError};

/// Everything a request handler needs, built once.
pub struct ApiState {
    pub conversions: Conversions,
    pub reader: Arc<dyn Reader>,
    pub ingest: Arc<Ingest>,
    pub catalog: Arc<SharedCatalog>,
    pub signer: Arc<ClickSigner>,
    /// SHA-256 of the admin key; `None` refuses every authenticated call.
    pub admin_key_sha256: Option<[u8; 32]>,
    pub config: crate::config::Api,
    pub metrics: ApiMetrics,
    /// The clock, injectable for tests; Unix milliseconds.
    pub now_ms: fn() -> u64,
    /// The store's own connection, for rule changes; the lock also serialises them, so the
    /// catalog each one stores is loaded after its own write.
    pub store: std::sync::Mutex<Box<dyn crate::catalog::CatalogStore + Send>>,
    /// Batch sizes of the approval jobs sent to the writer.
    pub commission: crate::config::Commission,
    /// Payout runs; `None` where this process serves none.
    pub payouts: Option<Arc<crate::storage::payouts::Desk>>,
    /// Webhook endpoints, deliveries and replays, on a connection of their own.
    pub webhooks: Arc<crate::webhooks::Admin>,
    /// The stored API keys, on a connection of their own.
    pub keys: Arc<crate::access::Keys>,
    pub limits: keys::Limits,
    /// The dashboard's signed-in sessions.
    pub dashboard: dashboard::Sessions,
    /// The conversion store, for a privacy erase's rows.
    pub store_at: crate::storage::offline::StoreAt,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
    /// Seconds for `Retry-After` (a `429`).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, field: None, message: message.into(), retry_after_s: None }
    }

    /// A `400`: the request cannot be read.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A `422` naming the field that breaks a rule.
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            field: Some(field.to_string()),
            message: format!("{field}: {why}"),
            retry_after_s: None,
        }
    }

    /// A `404`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A `500`: the server failed, not the request. The caller logs the cause.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// Runs a blocking read on tokio's blocking pool. A task that panicked or was cancelled is the
/// server's failure, so it is logged and answered `500`, never blamed on the request.
async fn read_blocking<T: Send + 'static>(what: &'static str, read: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(read).await.map_err(|e| {
        tracing::error!(error = %e, read = what, "a blocking read task failed");
        ApiError::internal(format!("the {what} read failed; retry later"))
    })
}

impl From<ConversionError> for ApiError {
    fn from(e: ConversionError) -> ApiError {
        match e {
            ConversionError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            ConversionError::Invalid { field, why } => ApiError::invalid(field, why),
            ConversionError::NotFound(id) => ApiError::not_found(format!("conversion {id:?} not found")),
            ConversionError::Closed => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server is shutting down"),
            e @ (ConversionError::Storage(_) | ConversionError::NotStored(_)) => {
                tracing::error!(error = %e, "conversion write failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", "the write was not stored; retry with the same Idempotency-Key")
            }
            ConversionError::Commission(e) => match e {
                LifecycleError::NotFound(id) => ApiError::not_found(format!("commission {id:?} not found")),
                LifecycleError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
                LifecycleError::Invalid { field, why } => ApiError::invalid(field, why),
                e @ (LifecycleError::Ledger(_) | LifecycleError::Storage(_)) => {
                    tracing::error!(error = %e, "commission or ledger write failed; the job was rolled back");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "storage",
                        "the write was not stored; retry with the same Idempotency-Key",
                    )
                }
            },
        }
    }
}

/// A response body and status, before headers.
pub type ApiResult = Result<Response<Full<Bytes>>, ApiError>;

/// A JSON answer from a serialisable value.
pub fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<Full<Bytes>> {
    raw_json(status, serde_json::to_vec(v).expect("answers serialise"))
}

/// A JSON answer from bytes that already are JSON.
pub fn raw_json(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    #[derive(Serialize)]
    struct Body<'a> {
        error: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        code: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'a str>,
        message: &'a str,
    }
    let mut r = json(e.status, &Body { error: Inner { code: e.code, field: e.field.as_deref(), message: &e.message } });
    if e.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    if let Some(s) = e.retry_after_s {
        r.headers_mut().insert(hyper::header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn outcome(status: StatusCode, replayed: bool) -> ApiOutcome {
    match status.as_u16() {
        _ if replayed => ApiOutcome::Replayed,
        201 => ApiOutcome::Created,
        200..=299 => ApiOutcome::Ok,
        401 => ApiOutcome::Unauthorized,
        403 => ApiOutcome::Forbidden,
        404 => ApiOutcome::NotFound,
        429 => ApiOutcome::RateLimited,
        409 => ApiOutcome::Conflict,
        413 => ApiOutcome::TooLarge,
        422 => ApiOutcome::Unprocessable,
        400..=499 => ApiOutcome::BadRequest,
        _ => ApiOutcome::Error,
    }
}

/// Handles one API request from `peer` (its address counts failed authentications).
pub async fn handle(state: Arc<ApiState>, peer: Option<std::net::IpAddr>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let result = route(&state, peer, req).await;
    let response = result.unwrap_or_else(|e| error_response(&e));
    let replayed = response.headers().contains_key("idempotent-replayed");
    state.metrics.request(outcome(response.status(), replayed));
    response
}

async fn route(state: &Arc<ApiState>, peer: Option<std::net::IpAddr>, req: Request<Incoming>) -> ApiResult {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let method = req.method().clone();
    // Postbacks carry their own signature instead of the bearer key.
    if let (&Method::GET, ["v1", "postback"]) = (&method, segments.as_slice()) {
        return postback::handle(state, req.uri().query().unwrap_or("")).await;
    }
    if let (&Method::GET, ["healthz"]) = (&method, segments.as_slice()) {
        return Ok(raw_json(StatusCode::OK, "{\"ok\":true}"));
    }
    // The document describes the API, not its data: it needs no key.
    if let (&Method::GET, ["openapi.json"]) = (&method, segments.as_slice()) {
        return Ok(raw_json(StatusCode::OK, openapi::DOCUMENT.clone()));
    }
    // The dashboard answers HTML under its own cookie session, checking its key as below.
    if let ["dashboard", ..] = segments.as_slice() {
        return dashboard::route(state, peer, req).await;
    }
    let authorization = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = keys::authenticate(state, peer, authorization).await?;
    let query = req.uri().query().unwrap_or("").to_string();
    scope::authorize(state, &caller, &method, &segments, &query).await?;
    // A partner's lists are held to its rows (`authorize` refused any other partner named).
    let query = match (caller.partner(), scope::reach(&method, &segments)) {
        (Some(me), scope::Reach::Own) if !query.split('&').any(|kv| kv.starts_with("partner=")) => {
            let sep = if query.is_empty() { "" } else { "&" };
            format!("{query}{sep}partner={me}")
        }
        _ => query,
    };
    match (&method, segments.as_slice()) {
        (&Method::POST, ["v1", "conversions"]) => {
            let key = idempotency_key(&req)?;
            let body = read_body(state, req).await?;
            conversions::create(state, key, &body).await
        }
        (&Method::POST, ["v1", "conversions", "import"]) => {
            let query = req.uri().query().unwrap_or("").to_string();
            let body = read_body(state, req).await?;
            import::handle(state, &query, &body).await
        }
        (&Method::GET, ["v1", "conversions", id]) => conversions::get(state, id, caller.partner()).await,
        (&Method::POST, ["v1", "conversions", id, action]) => {
            let (id, action) = (id.to_string(), action.to_string());
            let key = idempotency_key(&req)?;
            let body = read_body(state, req).await?;
            audit::transition(state, &caller, &id, &action, key, &body).await
        }
        (&Method::GET, ["v1", "clicks", id]) => clicks::get(state, id),
        (&Method::GET, ["v1", "reports", kind @ ("partners" | "programs" | "links" | "channels"), id]) => {
            let accept = req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            reports::handle(state, kind, id, &query, reports::wants_csv(accept)).await
        }
        (&Method::GET, ["v1", "commissions"]) => commissions::list(state, &query).await,
        (&Method::POST, ["v1", "commissions", "approve"]) => {
            let body = read_body(state, req).await?;
            audit::approve(state, &caller, &body).await
        }
        (&Method::GET, ["v1", "commissions", id]) => commissions::get(state, id).await,
        (&Method::GET, ["v1", "partners", id, "balance"]) => commissions::balance(state, id).await,
        (&Method::POST, ["v1", "partners", id, "payouts"]) => {
            let id = id.to_string();
            audit::payout_run(state, &caller, payouts::settle(state, &id, &read_body(state, req).await?).await).await
        }
        (&Method::GET, ["v1", "programs", id, "commission"]) => rules::get(state, id).await,
        (&Method::PUT, ["v1", "programs", id, "commission"]) => {
            let id = id.to_string();
            let body = read_body(state, req).await?;
            rules::put(state, &caller, &id, &body).await
        }
        (&Method::GET, ["v1", "commission-rules", version]) => rules::version(state, version).await,
        (&Method::GET, ["v1", "audit"]) => audit::list(state, &query).await,
        (&Method::GET, ["v1", "ledger", "entries"]) => ledger::entries(state, req.uri().query().unwrap_or("")).await,
        (&Method::POST, ["v1", "payout-runs"]) => {
            audit::payout_run(state, &caller, payouts::create_run(state, &read_body(state, req).await?).await).await
        }
        (&Method::GET, ["v1", "payout-runs"]) => payouts::list_runs(state, req.uri().query().unwrap_or("")).await,
        (&Method::GET, ["v1", "payout-runs", id]) => payouts::get_run(state, id).await,
        (&Method::POST, ["v1", "payout-runs", id, "confirm"]) => {
            let id = id.to_string();
            audit::confirm_run(state, &caller, &id, &read_body(state, req).await?).await
        }
        (&Method::GET, ["v1", "payouts"]) => payouts::list_payouts(state, &query).await,
        (&Method::POST, ["v1", "privacy", "erase"]) => privacy::erase(state, &caller, &read_body(state, req).await?).await,
        (_, ["v1", "webhook-endpoints" | "webhook-events", ..]) => webhooks::route(state, req, &segments, &caller).await,
        (_, ["v1", "api-keys", ..]) => {
            let body = if method == Method::POST { Some(read_body(state, req).await?) } else { None };
            keys::route(state, &caller, &method, &segments, body).await
        }
        (_, ["v1", "programs" | "partners" | "links" | "coupons", ..]) => {
            let body = if matches!(method, Method::POST | Method::PATCH) { Some(read_body(state, req).await?) } else { None };
            catalog::route(state, &method, &segments, &query, &caller, body).await
        }
        _ => Err(ApiError::not_found(format!("no route for {method} {path}"))),
    }
}

/// The `Idempotency-Key` header, if any: 1..=255 printable ASCII bytes.
fn idempotency_key(req: &Request<Incoming>) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().map_err(|_| ApiError::bad_request("Idempotency-Key: must be printable ASCII"))?;
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request("Idempotency-Key: must be 1..=255 printable ASCII characters without spaces"));
    }
    Ok(Some(s.to_string()))
}

/// Reads the body up to `api.body_bytes_max`; a larger one is a `413` without reading the rest.
async fn read_body(state: &ApiState, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let max = state.config.body_bytes_max;
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body is larger than {max} bytes"));
    if let Some(len) = req.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        if len > max as u64 {
            return Err(too_large());
        }
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!("could not read the body: {e}"))),
    }
}

/// Parses a JSON body into `T`, naming the field that failed.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let syntax = matches!(inner.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof);
        if syntax || path == "." || path == "?" {
            return ApiError::bad_request(format!("invalid JSON: {inner}"));
        }
        let mut err = ApiError::bad_request(format!("{path}: {inner}"));
        err.field = Some(path);
        err
    })
}

/// 64 hex digits as 32 bytes; anything else is `None`.
pub fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// SHA-256 of a method, a route and a canonical request, for idempotency keys.
pub fn request_hash(route: &str, canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(canonical);
    h.finalize().into()
}

#[cfg(test)]
mod tests;
