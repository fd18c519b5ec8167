//! The catalog over the API: programs, partners, links and coupons, created, read, listed a
//! page at a time, changed, paused, resumed and expired through `Catalogue`, the operations the
//! CLI calls, so both validate alike and write alike.
//!
//! - `POST /v1/{programs,partners,links,coupons}` creates one (`201`);
//! - `GET /v1/{programs,partners,links,coupons}` lists them in id order, a page at a time
//!   (`limit`, `cursor` from the previous page's `next_cursor`), with filters;
//! - `GET` and `PATCH /v1/{programs,partners,links}/{id}` read one and change its editable fields;
//! - `POST /v1/{programs,partners,links}/{id}/{pause,resume,expire}` set its status;
//! - `GET /v1/coupons/{program}/{code}` reads a coupon, and
//!   `POST /v1/coupons/{program}/{code}/{pause,resume,expire}` sets its status;
//! - `GET /v1/links/{code}/qr.svg`, `qr.png?size=` draw a link's QR code (`qr`).
//!
//! A write goes through `catalog::Audited`, as the CLI's, so its audit entry names the caller's
//! key (`admin` for the configured one) and commits with it. It uses the store's own connection and the core's catalog is loaded again
//! before the answer, under its reload lock, so the next conversion sees the change; a link's
//! change reaches the edge through the store's change log, within its reload interval.

mod coupons;
mod links;
mod partners;
mod programs;
mod qr;

pub(super) use qr::{PNG_SIZE_MAX, PNG_SIZE_MIN};

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::commissions::Params;
use super::scope::Caller;
use super::{json, ApiError, ApiResult, ApiState};
use crate::audit::Actor;
use crate::catalog::{Audited, CatalogError, CatalogStore, ListFilter};
use crate::model::Status;

/// Routes one catalog request; `caller` is the partner a partner key acts for, `None` for an
/// admin (`scope::authorize` has already decided what it may reach).
pub async fn route(
    state: &Arc<ApiState>,
    method: &Method,
    segments: &[&str],
    query: &str,
    caller: &Caller,
    body: Option<Bytes>,
) -> ApiResult {
    let body = body.unwrap_or_default();
    let w = Writer { actor: caller.actor(), now_ms: (state.now_ms)() };
    let caller = caller.partner().map(str::to_string);
    match (method, segments) {
        (&Method::POST, ["v1", "programs"]) => programs::create(state, w, &body).await,
        (&Method::GET, ["v1", "programs"]) => programs::list(state, query).await,
        (&Method::GET, ["v1", "programs", id]) => programs::get(state, id).await,
        (&Method::PATCH, ["v1", "programs", id]) => programs::edit(state, w, id, &body).await,
        (&Method::POST, ["v1", "programs", id, action]) => programs::set_status(state, w, id, status_of(action)?).await,
        (&Method::POST, ["v1", "partners"]) => partners::create(state, w, &body).await,
        (&Method::GET, ["v1", "partners"]) => partners::list(state, query).await,
        (&Method::GET, ["v1", "partners", id]) => partners::get(state, id).await,
        (&Method::PATCH, ["v1", "partners", id]) => partners::edit(state, w, id, &body).await,
        (&Method::POST, ["v1", "partners", id, action]) => partners::set_status(state, w, id, status_of(action)?).await,
        (&Method::POST, ["v1", "links"]) => links::create(state, w, &body, caller).await,
        (&Method::GET, ["v1", "links"]) => links::list(state, query).await,
        (&Method::GET, ["v1", "links", code]) => links::get(state, code).await,
        (&Method::GET, ["v1", "links", code, "qr.svg"]) => qr::get(state, code, qr::Format::Svg, query).await,
        (&Method::GET, ["v1", "links", code, "qr.png"]) => qr::get(state, code, qr::Format::Png, query).await,
        (&Method::PATCH, ["v1", "links", code]) => links::edit(state, w, code, &body).await,
        (&Method::POST, ["v1", "links", code, action]) => links::set_status(state, w, code, status_of(action)?).await,
        (&Method::POST, ["v1", "coupons"]) => coupons::create(state, w, &body).await,
        (&Method::GET, ["v1", "coupons"]) => coupons::list(state, query).await,
        (&Method::GET, ["v1", "coupons", program, code]) => coupons::get(state, program, code).await,
        (&Method::POST, ["v1", "coupons", program, code, action]) => coupons::set_status(state, w, program, code, status_of(action)?).await,
        _ => Err(ApiError::not_found(format!("no route for {method} /{}", segments.join("/")))),
    }
}

/// The status a `pause`, `resume` or `expire` sets.
fn status_of(action: &str) -> Result<Status, ApiError> {
    match action {
        "pause" => Ok(Status::Paused),
        "resume" => Ok(Status::Active),
        "expire" => Ok(Status::Expired),
        _ => Err(ApiError::not_found(format!("no action {action:?}; use pause, resume or expire"))),
    }
}

/// Whether a request reads or writes the catalog: a write reloads the core's catalog after it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Runs `op` on the store's connection on the blocking pool. A write holds the catalog's
/// reload lock from the write to the reload, so an older catalog never replaces the one it
/// stores; a failed reload leaves the write stored, and the upkeep's next reload takes it.
async fn on_store<T: Send + 'static>(
    state: &Arc<ApiState>,
    access: Access,
    op: impl FnOnce(&dyn CatalogStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let store = st.store.lock().unwrap_or_else(|e| e.into_inner());
        if access == Access::Read {
            return op(&**store);
        }
        let reload = st.catalog.lock();
        let out = op(&**store)?;
        if let Err(e) = reload.reload(&**store) {
            tracing::error!(error = %e, "a catalog write was stored, but the catalog could not be reloaded");
        }
        Ok(out)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "a catalog task failed");
        ApiError::internal("the catalog request failed; retry")
    })?
}

/// Who writes, and when: what a write's audit entry records.
struct Writer {
    actor: Actor,
    now_ms: u64,
}

/// Runs a write through `Audited` on the store's connection (`on_store`), so the write and its
/// audit entry commit together.
async fn write<T: Send + 'static>(
    state: &Arc<ApiState>,
    w: Writer,
    op: impl FnOnce(&Audited<'_>) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    on_store(state, Access::Write, move |s| op(&Audited::new(s, w.actor, w.now_ms))).await
}

/// A catalog error as an answer; `destination` names the field a destination error is about
/// (a link's `destination`, a program's `fallback_url`).
fn refused(destination: &'static str) -> impl Fn(CatalogError) -> ApiError {
    move |e| match e {
        CatalogError::Invalid { field, why } => ApiError::invalid(field, why),
        CatalogError::Destination(e) => ApiError::invalid(destination, e),
        CatalogError::Exists { kind, id } => ApiError::new(StatusCode::CONFLICT, "exists", format!("{kind} {id:?} already exists")),
        CatalogError::NotFound { kind, id } => ApiError::not_found(format!("{kind} {id:?} not found")),
        CatalogError::Storage(why) => {
            tracing::error!(error = %why, "a catalog request failed in the store");
            ApiError::internal("the catalog store failed; retry later")
        }
    }
}

/// An object as the API shows it: as the CLI prints it, without the store's row ids.
fn view<T: Serialize>(v: &T) -> Value {
    let mut v = serde_json::to_value(v).expect("catalog objects serialise");
    if let Some(o) = v.as_object_mut() {
        o.remove("row_id");
        o.remove("partner_row_id");
    }
    v
}

/// The opaque cursor after an object: base64url of its place in the list's order.
fn encode_cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_cursor(s: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()?;
    String::from_utf8(raw).ok().filter(|k| !k.is_empty() && k.len() <= 130)
}

/// A list's filter from its query; `names` are the filters this list takes besides `limit` and
/// `cursor`. The page asks the store for one row more than `limit`, to know whether another
/// page follows.
fn filter(query: &str, names: &[&'static str]) -> Result<(ListFilter, usize), ApiError> {
    let mut allowed = names.to_vec();
    allowed.extend(["cursor", "limit"]);
    let p = Params::parse(query, &allowed)?;
    let limit = p.limit()?;
    let status = match p.get("status", |s| Status::parse(s).is_some(), "one of active, paused, expired")? {
        Some(s) => Status::parse(&s),
        None => None,
    };
    let after = match p.get("cursor", |s| decode_cursor(s).is_some(), "a next_cursor from a previous page")? {
        Some(c) => decode_cursor(&c),
        None => None,
    };
    let slug = super::commissions::is_slug;
    let f = ListFilter {
        program: p.get("program", slug, "a program id")?,
        partner: p.get("partner", slug, "a partner id")?,
        status,
        after,
        limit: limit + 1,
    };
    Ok((f, limit))
}

/// A page's answer: `{"<name>": [...], "next_cursor": ...}`, the cursor present only when
/// another page follows.
fn page<T>(name: &str, mut rows: Vec<T>, limit: usize, show: impl Fn(&T) -> Value, key: impl Fn(&T) -> String) -> ApiResult {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut body = serde_json::Map::new();
    body.insert(name.to_string(), Value::Array(rows.iter().map(&show).collect()));
    if let (true, Some(last)) = (more, rows.last()) {
        body.insert("next_cursor".into(), Value::String(encode_cursor(&key(last))));
    }
    Ok(json(StatusCode::OK, &Value::Object(body)))
}

#[cfg(test)]
mod tests;
