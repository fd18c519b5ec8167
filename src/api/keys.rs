//! `POST/GET /v1/api-keys`, `GET/DELETE /v1/api-keys/{id}` (admin), and the check of every
//! request's key: the configured admin key first, then the stored keys (`access::Keys`), with
//! the rate limits of `[api]`.
//!
//! Limits (governor): each stored key's calls (`key_requests_per_s`, `key_burst`), and failed
//! authentications per address (`auth_failures_per_min`). The failure past them is answered
//! `429`, and so is every call from that address until a failure's worth of the minute has
//! passed, before its key is even looked at: guessing keys costs a minute per handful.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::StatusCode;
use serde_json::{json, Value};

use super::scope::Caller;
use super::{json, parse_json, read_blocking, ApiError, ApiResult, ApiState};
use crate::access::{AccessError, ApiKey, Keys, Scope};
use crate::audit::Actor;
use crate::model::ct_eq;

/// Calls between trims of the limiters' keyed state.
const TRIM_EVERY: u64 = 4_096;

/// The limits of `[api]` on keys and failed authentications.
pub struct Limits {
    per_key: DefaultKeyedRateLimiter<String>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses past their failures, until when.
    blocked: DashMap<IpAddr, Instant>,
    calls: AtomicU64,
}

impl Limits {
    pub fn new(config: &crate::config::Api) -> Limits {
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        Limits {
            per_key: RateLimiter::keyed(Quota::per_second(nz(config.key_requests_per_s)).allow_burst(nz(config.key_burst))),
            failures: RateLimiter::keyed(Quota::per_minute(nz(config.auth_failures_per_min))),
            blocked: DashMap::new(),
            calls: AtomicU64::new(0),
        }
    }

    fn trim(&self) {
        if self.calls.fetch_add(1, Ordering::Relaxed) % TRIM_EVERY == 0 {
            self.per_key.retain_recent();
            self.failures.retain_recent();
            let now = Instant::now();
            self.blocked.retain(|_, until| *until > now);
        }
    }
}

fn too_many(wait: Duration) -> ApiError {
    let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; retry after the time in Retry-After");
    e.retry_after_s = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    e
}

fn unauthorized(m: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
}

/// Who `authorization` (the header's value) is: the configured admin key, checked in constant
/// time, or a live stored key. A failure counts against `peer`.
pub async fn authenticate(state: &Arc<ApiState>, peer: Option<IpAddr>, authorization: Option<&str>) -> Result<Caller, ApiError> {
    let limits = &state.limits;
    limits.trim();
    if let Some(until) = peer.and_then(|ip| limits.blocked.get(&ip).map(|u| *u)) {
        let now = Instant::now();
        if until > now {
            return Err(too_many(until - now));
        }
    }
    let result = identify(state, authorization).await;
    if let (Err(e), Some(ip)) = (&result, peer) {
        if e.status == StatusCode::UNAUTHORIZED {
            if let Err(not_until) = limits.failures.check_key(&ip) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                limits.blocked.insert(ip, Instant::now() + wait);
                return Err(too_many(wait));
            }
        }
    }
    let caller = result?;
    if let Some(id) = caller.key_id() {
        if let Err(not_until) = limits.per_key.check_key(&id.to_string()) {
            return Err(too_many(not_until.wait_time_from(DefaultClock::default().now())));
        }
    }
    Ok(caller)
}

async fn identify(state: &Arc<ApiState>, authorization: Option<&str>) -> Result<Caller, ApiError> {
    let got = authorization.and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(|| unauthorized("send Authorization: Bearer <key>"))?;
    let got = got.trim().to_string();
    if let Some(want) = state.admin_key_sha256 {
        if ct_eq(&want, &crate::access::sha256(&got)) {
            return Ok(Caller::Admin { key_id: None });
        }
    }
    let (keys, now_ms) = (state.keys.clone(), (state.now_ms)());
    let found = read_blocking("API key", move || keys.authenticate(&got, now_ms)).await?.map_err(|e| {
        tracing::error!(error = %e, "the API key lookup failed");
        ApiError::internal("the key could not be checked; retry later")
    })?;
    match found {
        Some(ApiKey { id, scope: Scope::Admin, .. }) => Ok(Caller::Admin { key_id: Some(id) }),
        Some(ApiKey { id, scope: Scope::Partner(partner), .. }) => Ok(Caller::Partner { partner, key_id: id }),
        None if state.admin_key_sha256.is_none() => {
            Err(unauthorized("the key is not valid, and no admin key is configured (set CLICKGATE_ADMIN_KEY or api.admin_key_sha256)"))
        }
        None => Err(unauthorized("the key is not valid")),
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> ApiError {
        match e {
            AccessError::Invalid { field, why } => ApiError::invalid(field, why),
            AccessError::NotFound(id) => ApiError::not_found(format!("API key {id:?} not found")),
            e @ (AccessError::Storage(_) | AccessError::Random(_)) => {
                tracing::error!(error = %e, "an API key operation failed");
                ApiError::internal("the key store failed; retry later")
            }
        }
    }
}

/// An API key as the API shows it (never its secret, except once at creation).
pub fn view(k: &ApiKey) -> Value {
    let at = |ms: Option<u64>| ms.map(|m| crate::conversions::view::rfc3339(m as i64));
    json!({
        "id": k.id, "prefix": k.prefix, "name": k.name, "scope": k.scope,
        "created_at": at(Some(k.created_ms)), "last_used_at": at(k.last_used_ms), "revoked_at": at(k.revoked_ms),
    })
}

/// The body of `POST /v1/api-keys`; `scope` is `admin` or `partner:<id>`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewApiKey)]
pub(super) struct Create {
    name: String,
    #[schema(pattern = "^(admin|partner:[A-Za-z0-9_-]{1,64})$")]
    scope: String,
}

/// Makes a key whose partner the catalog knows, recorded as `actor`'s; its view and its secret,
/// shown once.
pub fn create(
    keys: &Keys,
    catalog: &crate::catalog::Catalog,
    name: &str,
    scope: &str,
    now_ms: u64,
    actor: &Actor,
) -> Result<(Value, String), AccessError> {
    let minted = keys.create(name, scope, |p| catalog.partner(p).is_some(), now_ms, actor)?;
    tracing::info!(key = %minted.key.id, scope = %minted.key.scope, "created an API key");
    Ok((view(&minted.key), minted.secret))
}

pub async fn route(state: &Arc<ApiState>, caller: &Caller, method: &hyper::Method, segments: &[&str], body: Option<Bytes>) -> ApiResult {
    let keys = state.keys.clone();
    let now_ms = (state.now_ms)();
    let actor = caller.actor();
    match (method, segments) {
        (&hyper::Method::POST, ["v1", "api-keys"]) => {
            let c: Create = parse_json(&body.unwrap_or_default())?;
            let catalog = state.catalog.load_full();
            let (mut v, secret) = read_blocking("API key", move || create(&keys, &catalog, &c.name, &c.scope, now_ms, &actor)).await??;
            v["secret"] = Value::String(secret);
            Ok(json(StatusCode::CREATED, &v))
        }
        (&hyper::Method::GET, ["v1", "api-keys"]) => {
            let list = read_blocking("API keys", move || keys.list()).await??;
            Ok(json(StatusCode::OK, &json!({ "keys": list.iter().map(view).collect::<Vec<_>>() })))
        }
        (&hyper::Method::GET, ["v1", "api-keys", id]) => {
            let id = known(id)?;
            Ok(json(StatusCode::OK, &view(&read_blocking("API key", move || keys.get(&id)).await??)))
        }
        (&hyper::Method::DELETE, ["v1", "api-keys", id]) => {
            let id = known(id)?;
            let k = read_blocking("API key", move || keys.revoke(&id, now_ms, &actor)).await??;
            tracing::info!(key = %k.id, "revoked an API key");
            Ok(json(StatusCode::OK, &view(&k)))
        }
        _ => Err(ApiError::not_found(format!("no route for {method} /{}", segments.join("/")))),
    }
}

fn known(id: &str) -> Result<String, ApiError> {
    if crate::access::is_key_id(id) {
        Ok(id.to_string())
    } else {
        Err(ApiError::not_found(format!("API key {id:?} not found")))
    }
}
