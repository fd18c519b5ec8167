//! `GET /v1/postback?...`: a signed server-to-server conversion for simple integrations
//! (POS systems, marketplaces) that cannot send JSON or hold a bearer key.
//!
//! The query carries the conversion's fields plus `ts` (Unix seconds) and `sig`:
//!
//! ```text
//! sig = hex(HMAC-SHA256(api.postback_secret, canonical))
//! canonical = every parameter but sig, percent-decoded, sorted by name, as name=value joined by '&'
//! ```
//!
//! A postback older than `api.postback_max_age_s` is refused. Retries are safe: the conversion
//! id derives from (program, order_id), so the same postback replays its first answer.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::conversions::{answer, record, validate, ConversionBody};
use super::{ApiError, ApiResult, ApiState};
use crate::conversions::Origin;

const FIELDS: [&str; 11] = [
    "program",
    "order_id",
    "amount_minor",
    "currency",
    "occurred_at",
    "click_id",
    "visitor_id",
    "coupon_code",
    "customer_ref",
    "ts",
    "sig",
];

/// The canonical string a postback signs.
pub fn canonical(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sig").collect();
    sorted.sort();
    sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Signs a postback's parameters (for clients and tests).
pub fn sign(secret: &[u8], params: &[(String, String)]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(canonical(params).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub async fn handle(state: &Arc<ApiState>, query: &str) -> ApiResult {
    let secret = state.config.postback_secret.as_bytes();
    if secret.is_empty() {
        return Err(ApiError::not_found("postbacks are off (api.postback_secret is not set)"));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    for (k, _) in &params {
        if !FIELDS.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("{k}: unknown parameter; expected one of {}", FIELDS.join(", "))));
        }
        if params.iter().filter(|(o, _)| o == k).count() > 1 {
            return Err(ApiError::bad_request(format!("{k}: given more than once")));
        }
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let sig = get("sig").ok_or_else(|| ApiError::invalid("sig", "is required"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(canonical(&params).as_bytes());
    let sig_bytes = super::hex32(&sig).ok_or_else(|| ApiError::invalid("sig", "must be 64 hex digits"))?;
    // verify_slice compares in constant time.
    if mac.verify_slice(&sig_bytes).is_err() {
        return Err(ApiError::new(hyper::StatusCode::UNAUTHORIZED, "unauthorized", "sig: the signature does not match"));
    }
    let now_ms = (state.now_ms)();
    let ts: u64 = get("ts").and_then(|t| t.parse().ok()).ok_or_else(|| ApiError::invalid("ts", "must be Unix seconds"))?;
    if ts.saturating_mul(1000).abs_diff(now_ms) > state.config.postback_max_age_s * 1000 {
        return Err(ApiError::invalid("ts", format!("must be within {} s of now", state.config.postback_max_age_s)));
    }
    let required = |k: &str| get(k).ok_or_else(|| ApiError::invalid(k, "is required"));
    let body = ConversionBody {
        order_id: required("order_id")?,
        program: required("program")?,
        amount_minor: required("amount_minor")?.parse().map_err(|_| ApiError::invalid("amount_minor", "must be an integer"))?,
        currency: required("currency")?,
        occurred_at: required("occurred_at")?,
        click_id: get("click_id"),
        visitor_id: get("visitor_id"),
        coupon_code: get("coupon_code"),
        customer_ref: get("customer_ref"),
    };
    let c = validate(state, body, Origin::Postback, now_ms)?;
    answer(record(state, c, None, now_ms).await?)
}
