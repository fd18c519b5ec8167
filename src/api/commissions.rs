//! Commissions: `GET /v1/commissions` (filters and a cursor), `GET /v1/commissions/{id}`,
//! `POST /v1/commissions/approve` and `GET /v1/partners/{id}/balance`.
//!
//! Approvals go through the conversion writer as `Op::Approve` jobs, so they share its grouped
//! commits. Paying is a payout run's (`payouts`).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json, parse_json, read_blocking, ApiError, ApiResult, ApiState};
use crate::conversions::view::{commission_json, CommissionFilter};
use crate::conversions::Approval;
use crate::lifecycle::CommissionStatus;

/// A list's page size when `limit` is not given.
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// The largest page a list answers.
pub const LIST_LIMIT_MAX: usize = 1_000;

/// A query string's parameters, each known and given at most once.
pub(super) struct Params(BTreeMap<&'static str, String>);

impl Params {
    /// Parses `query`; a name outside `allowed` or given twice is a `400` naming it.
    pub(super) fn parse(query: &str, allowed: &[&'static str]) -> Result<Params, ApiError> {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let Some(name) = allowed.iter().find(|a| **a == k) else {
                return Err(ApiError::bad_request(format!("{k}: unknown parameter; use {}", allowed.join(", "))));
            };
            if map.insert(*name, v.into_owned()).is_some() {
                return Err(ApiError::bad_request(format!("{k}: given more than once")));
            }
        }
        Ok(Params(map))
    }

    /// A parameter, checked by `ok` (which says what it must be); a bad value is a `422`.
    pub(super) fn get(&self, name: &'static str, ok: fn(&str) -> bool, must: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            Some(v) if !ok(v) => Err(ApiError::invalid(name, format!("{v:?} must be {must}"))),
            v => Ok(v.cloned()),
        }
    }

    /// `limit`: 1..=`LIST_LIMIT_MAX`, `LIST_LIMIT_DEFAULT` when absent.
    pub(super) fn limit(&self) -> Result<usize, ApiError> {
        match self.0.get("limit") {
            None => Ok(LIST_LIMIT_DEFAULT),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=LIST_LIMIT_MAX).contains(n))
                .ok_or_else(|| ApiError::invalid("limit", format!("{v:?} must be an integer in 1..={LIST_LIMIT_MAX}"))),
        }
    }
}

/// The store's id rule for programs and partners.
pub(super) fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `prefix` and 24 lower-case hex digits: a conversion or commission id.
fn is_derived_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| h.len() == 24 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// A commission id: `cm_` and 24 hex digits.
pub(super) fn is_commission_id(s: &str) -> bool {
    is_derived_id(s, "cm_")
}

/// A period label: `2026-11` (month), `2026-W47` (ISO week) or `2026-11-22` (day).
fn is_period(s: &str) -> bool {
    let digits = |r: std::ops::Range<usize>| s.get(r).is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
    let at = |i: usize, c: u8| s.as_bytes().get(i) == Some(&c);
    match s.len() {
        7 => digits(0..4) && at(4, b'-') && digits(5..7),
        8 => digits(0..4) && at(4, b'-') && at(5, b'W') && digits(6..8),
        10 => digits(0..4) && at(4, b'-') && digits(5..7) && at(7, b'-') && digits(8..10),
        _ => false,
    }
}

/// The opaque cursor after a commission: base64url of `created_at_ms:rowid`, its place in the
/// listing's order.
fn encode_cursor((created_at_ms, rowid): (i64, i64)) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at_ms}:{rowid}"))
}

fn decode_cursor(s: &str) -> Option<(i64, i64)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()?;
    let (at, rowid) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(at) || !digits(rowid) {
        return None;
    }
    Some((at.parse().ok()?, rowid.parse().ok()?))
}

/// A read that failed is the server's failure: logged, answered `500`.
pub(super) fn read_failed(what: &'static str) -> impl FnOnce(crate::conversions::ConversionError) -> ApiError {
    move |e| {
        tracing::error!(error = %e, read = what, "an API read failed");
        ApiError::internal(format!("the {what} read failed; retry later"))
    }
}

pub async fn list(state: &Arc<ApiState>, query: &str) -> ApiResult {
    let p = Params::parse(query, &["partner", "program", "status", "period", "conversion_id", "payout_id", "cursor", "limit"])?;
    let status = p
        .get("status", |s| CommissionStatus::parse(s).is_some(), "one of pending, approved, paid, voided, reversed")?
        .and_then(|s| CommissionStatus::parse(&s));
    let after = match p.get("cursor", |s| decode_cursor(s).is_some(), "a next_cursor from a previous page")? {
        Some(c) => decode_cursor(&c),
        None => None,
    };
    let filter = CommissionFilter {
        partner: p.get("partner", is_slug, "a partner id")?,
        program: p.get("program", is_slug, "a program id")?,
        status,
        period: p.get("period", is_period, "a period label such as 2026-11, 2026-W47 or 2026-11-22")?,
        conversion_id: p.get("conversion_id", |s| is_derived_id(s, "cv_"), "a conversion id (cv_ and 24 hex digits)")?,
        payout_id: p.get("payout_id", is_slug, "1..=64 of [A-Za-z0-9_-]")?,
        after,
        limit: p.limit()?,
    };
    let reader = state.reader.clone();
    let page = read_blocking("commissions", move || reader.commissions(&filter)).await?.map_err(read_failed("commissions"))?;
    let mut body = json!({ "commissions": page.commissions.iter().map(|c| commission_json(c, None)).collect::<Vec<_>>() });
    if let (true, Some(last)) = (page.more, page.last) {
        body["next_cursor"] = Value::String(encode_cursor(last));
    }
    Ok(json(StatusCode::OK, &body))
}

pub async fn get(state: &Arc<ApiState>, id: &str) -> ApiResult {
    if !is_commission_id(id) {
        return Err(ApiError::not_found(format!("commission {id:?} not found")));
    }
    let reader = state.reader.clone();
    let key = id.to_string();
    let found = read_blocking("commission", move || reader.commission(&key)).await?.map_err(read_failed("commission"))?;
    let Some((c, events)) = found else { return Err(ApiError::not_found(format!("commission {id:?} not found"))) };
    Ok(json(StatusCode::OK, &commission_json(&c, Some(&events))))
}

pub async fn balance(state: &Arc<ApiState>, partner: &str) -> ApiResult {
    if state.catalog.load().partner(partner).is_none() {
        return Err(ApiError::not_found(format!("partner {partner:?} not found")));
    }
    let reader = state.reader.clone();
    let key = partner.to_string();
    let balances = read_blocking("balance", move || reader.partner_balances(&key)).await?.map_err(read_failed("balance"))?;
    Ok(json(StatusCode::OK, &json!({ "partner": partner, "balances": balances })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

/// Runs approval jobs of `commission.approve_batch_len_max` until one approves fewer.
pub async fn approve(state: &Arc<ApiState>, body: &Bytes) -> ApiResult {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    let _: EmptyBody = parse_json(body)?;
    let now_ms = (state.now_ms)();
    let mut total = Approval::default();
    state.conversions.approve_all(state.commission.approve_batch_len_max, || now_ms, &mut total).await?;
    Ok(json(StatusCode::OK, &json!({ "approved": total.approved, "amount_minor": total.amount_minor })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor((1_764_000_000_123, 42))), Some((1_764_000_000_123, 42)));
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        for bad in [
            "",
            "bm9wZQ",
            "!!",
            &encode_cursor((-1, 4)),
            &encode_cursor((1, -4)),
            &b64("1:cm_0123456789abcdef01234567"),
            &b64("1:"),
            &b64("1:2:3"),
            &b64("1:99999999999999999999"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn period_labels_are_months_weeks_or_days() {
        for ok in ["2026-11", "2026-W47", "2026-11-22"] {
            assert!(is_period(ok), "{ok}");
        }
        for bad in ["", "2026", "2026-1", "2026-w47", "2026-11-2", "2026/11", "2026-11-22T", "２０２６-11"] {
            assert!(!is_period(bad), "{bad}");
        }
    }

    #[test]
    fn parameters_are_known_and_given_once() {
        let allowed = ["partner", "limit"];
        let p = Params::parse("partner=bob&limit=7", &allowed).unwrap();
        assert_eq!((p.get("partner", is_slug, "").unwrap().as_deref(), p.limit().unwrap()), (Some("bob"), 7));
        assert_eq!(Params::parse("", &allowed).unwrap().limit().unwrap(), LIST_LIMIT_DEFAULT);
        assert_eq!(Params::parse("nope=1", &allowed).err().unwrap().status, StatusCode::BAD_REQUEST);
        assert_eq!(Params::parse("limit=1&limit=2", &allowed).err().unwrap().status, StatusCode::BAD_REQUEST);
        let e = Params::parse("partner=a%20b", &allowed).unwrap().get("partner", is_slug, "a partner id").unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("partner")));
        for limit in ["0", "1001", "-1", "x"] {
            assert_eq!(Params::parse(&format!("limit={limit}"), &allowed).unwrap().limit().unwrap_err().field.as_deref(), Some("limit"));
        }
    }
}
