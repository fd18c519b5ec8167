//! `GET /v1/audit` (admin): the audit log, oldest first, a page at a time (`limit`, `cursor`
//! from the previous page's `next_cursor`), filtered by `object` (`<type>` or `<type>:<id>`),
//! `key` (a stored key's id, `admin` or `cli`) and `since` (RFC 3339).
//!
//! The entries come from the store the catalog and the keys are written to, where each was
//! appended in its write's transaction (`audit`). Their objects were redacted before they were
//! stored; nothing here needs to hide anything more. The writes of the conversion writer and of
//! payout runs are recorded here, once they have committed (`transition`, `approve`,
//! `payout_run`, `confirm_run`).

use std::sync::Arc;

use base64::Engine as _;
use hyper::StatusCode;
use serde_json::{json, Value};

use bytes::Bytes;

use super::commissions::Params;
use super::scope::Caller;
use super::{json, read_blocking, ApiError, ApiResult, ApiState};
use crate::audit::{Action, AuditError, Entry, Query, Record};

/// An entry as the API shows it.
pub fn view(r: &Record) -> Value {
    json!({
        "seq": r.seq,
        "at": crate::conversions::view::rfc3339(i64::try_from(r.at_ms).unwrap_or(i64::MAX)),
        "actor": r.actor,
        "action": r.action,
        "object": format!("{}:{}", r.object_type, r.object_id),
        "object_type": r.object_type,
        "object_id": r.object_id,
        "before": r.before,
        "after": r.after,
    })
}

/// Whether `s` names an actor: a stored key's id, `admin` or `cli`.
fn is_actor(s: &str) -> bool {
    s == "admin" || s == "cli" || crate::access::is_key_id(s)
}

/// RFC 3339 text as Unix milliseconds; a time before 1970 reads as 1970 (every entry is after).
pub fn since_ms(s: &str) -> Option<u64> {
    let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(u64::try_from(at.unix_timestamp_nanos().max(0) / 1_000_000).unwrap_or(u64::MAX))
}

fn encode_cursor(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(seq.to_string())
}

fn decode_cursor(s: &str) -> Option<i64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The query of a request, the page asking one row more than `limit` to know whether another
/// follows.
pub fn query(params: &str) -> Result<(Query, usize), ApiError> {
    let p = Params::parse(params, &["object", "key", "since", "cursor", "limit"])?;
    let limit = p.limit()?;
    let mut q = Query { limit: limit + 1, ..Query::default() };
    if let Some(object) = p.get("object", |_| true, "")? {
        q = q.object(&object).map_err(|e| match e {
            AuditError::Invalid { field, why } => ApiError::invalid(field, why),
            AuditError::Storage(why) => ApiError::invalid("object", why),
        })?;
    }
    q.actor = p.get("key", is_actor, "a stored key's id (ak_ and 24 hex digits), admin or cli")?;
    q.since_ms = p.get("since", |s| since_ms(s).is_some(), "an RFC 3339 time, such as 2026-12-01T00:00:00Z")?.and_then(|s| since_ms(&s));
    q.after_seq = p.get("cursor", |s| decode_cursor(s).is_some(), "a next_cursor from a previous page")?.and_then(|c| decode_cursor(&c));
    Ok((q, limit))
}

pub async fn list(state: &Arc<ApiState>, params: &str) -> ApiResult {
    let (q, limit) = query(params)?;
    let st = state.clone();
    let mut rows = read_blocking("audit log", move || {
        let store = st.store.lock().unwrap_or_else(|e| e.into_inner());
        store.audit_page(&q)
    })
    .await?
    .map_err(|e| {
        tracing::error!(error = %e, "reading the audit log failed");
        ApiError::internal("the audit log could not be read; retry later")
    })?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut body = json!({ "entries": rows.iter().map(view).collect::<Vec<_>>() });
    if let (true, Some(last)) = (more, rows.last()) {
        body["next_cursor"] = Value::String(encode_cursor(last.seq));
    }
    Ok(json(StatusCode::OK, &body))
}

// Writes made by the conversion writer's jobs (a conversion's transition, the approval of
// commissions) and payout runs (many transactions, and a provider's calls between them) have no
// single transaction on the catalog's connection to join: each is recorded once its write has
// committed, with the answer as the object after. So an entry never names a write that did not
// happen; a crash between the commit and the entry loses the entry (`docs/api.md`).

/// Appends an entry on the API's catalog connection; a failure is logged, and the answer, whose
/// write is already done, stands.
async fn append_after(state: &Arc<ApiState>, entry: Entry) {
    let st = state.clone();
    let done = read_blocking("audit entry", move || {
        let store = st.store.lock().unwrap_or_else(|e| e.into_inner());
        store.append_audit(&entry)
    })
    .await;
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "a committed write's audit entry was not stored"),
        Err(e) => tracing::error!(error = %e.message, "a committed write's audit entry was not stored"),
    }
}

/// The answer's JSON, and the answer rebuilt, when it is a fresh `2xx` (not a replay).
async fn fresh_body(r: ApiResult) -> (ApiResult, Option<Value>) {
    let Ok(r) = r else { return (r, None) };
    if !r.status().is_success() || r.headers().contains_key("idempotent-replayed") {
        return (Ok(r), None);
    }
    let (parts, body) = r.into_parts();
    let bytes = http_body_util::BodyExt::collect(body).await.map(|c| c.to_bytes()).unwrap_or_default();
    let value = serde_json::from_slice(&bytes).ok();
    (Ok(hyper::Response::from_parts(parts, http_body_util::Full::new(bytes))), value)
}

/// A conversion's transition (`confirm`, `cancel`, `refund`), recorded with the conversion
/// before and after once the writer has committed it.
pub async fn transition(state: &Arc<ApiState>, caller: &Caller, id: &str, action: &str, key: Option<String>, body: &Bytes) -> ApiResult {
    let audited = match action {
        "confirm" => Some(Action::ConversionConfirm),
        "cancel" => Some(Action::ConversionCancel),
        "refund" => Some(Action::ConversionRefund),
        _ => None,
    };
    let (reader, key_id) = (state.reader.clone(), id.to_string());
    let before = match audited {
        Some(_) => read_blocking("conversion", move || reader.get(&key_id))
            .await?
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok()),
        None => None,
    };
    let (r, after) = fresh_body(super::conversions::transition(state, id, action, key, body).await).await;
    if let (Some(action), Some(after)) = (audited, after) {
        append_after(state, Entry::new(&caller.actor(), action, id, (state.now_ms)(), before, Some(after))).await;
    }
    r
}

/// `POST /v1/commissions/approve`, recorded (`commission.approve`, object `due`, after: the
/// count and amount approved) when it approved any.
pub async fn approve(state: &Arc<ApiState>, caller: &Caller, body: &Bytes) -> ApiResult {
    let (r, after) = fresh_body(super::commissions::approve(state, body).await).await;
    if let Some(after) = after.filter(|a| a["approved"].as_u64().unwrap_or(0) > 0) {
        append_after(state, Entry::new(&caller.actor(), Action::CommissionApprove, "due", (state.now_ms)(), None, Some(after))).await;
    }
    r
}

/// A payout run (`POST /v1/payout-runs`, or a settlement by hand, whose answer holds the run's
/// report under `report`), recorded as `payout_run.create` with its report; a dry run writes
/// nothing and is not recorded.
pub async fn payout_run(state: &Arc<ApiState>, caller: &Caller, r: ApiResult) -> ApiResult {
    let (r, after) = fresh_body(r).await;
    if let Some(after) = after {
        let report = after.get("report").unwrap_or(&after);
        let run = report["run_id"].as_str().filter(|id| !id.is_empty() && report["dry_run"] != Value::Bool(true)).map(str::to_string);
        if let Some(run) = run {
            append_after(state, Entry::new(&caller.actor(), Action::PayoutRunCreate, run, (state.now_ms)(), None, Some(after))).await;
        }
    }
    r
}

/// `POST /v1/payout-runs/{id}/confirm`, recorded with what it marked paid and failed.
pub async fn confirm_run(state: &Arc<ApiState>, caller: &Caller, id: &str, body: &Bytes) -> ApiResult {
    let (r, after) = fresh_body(super::payouts::confirm(state, id, body).await).await;
    if let Some(after) = after {
        append_after(state, Entry::new(&caller.actor(), Action::PayoutRunConfirm, id, (state.now_ms)(), None, Some(after))).await;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        for seq in [1, 42, i64::MAX / 1_000] {
            assert_eq!(decode_cursor(&encode_cursor(seq)), Some(seq));
        }
        for bad in [
            "",
            "!!",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("-1"),
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1x"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_query_reads_its_filters_and_names_a_bad_one() {
        let (q, limit) = query("object=coupon:shop:SPRING10&key=cli&since=2026-12-01T00:00:00Z&limit=5").unwrap();
        assert_eq!((q.object_type.as_deref(), q.object_id.as_deref()), (Some("coupon"), Some("shop:SPRING10")));
        assert_eq!((q.actor.as_deref(), q.since_ms, limit, q.limit), (Some("cli"), Some(1_796_083_200_000), 5, 6));
        assert_eq!(query("since=1960-01-01T00:00:00Z").unwrap().0.since_ms, Some(0));
        let field = |params: &str| {
            let e = query(params).unwrap_err();
            (e.status.as_u16(), e.field.unwrap_or_default())
        };
        assert_eq!(field("object=invoice"), (422, "object".into()));
        assert_eq!(field("key=root"), (422, "key".into()));
        assert_eq!(field("since=yesterday"), (422, "since".into()));
        assert_eq!(field("cursor=%21"), (422, "cursor".into()));
        assert_eq!(query("actor=cli").unwrap_err().status.as_u16(), 400);
    }
}
