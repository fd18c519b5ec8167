//! `POST /v1/conversions`, `GET /v1/conversions/{id}` and the confirm, cancel and refund
//! transitions. Validation here is shared by postbacks and CSV imports.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use serde::Deserialize;

use super::{parse_json, raw_json, read_blocking, request_hash, ApiError, ApiResult, ApiState};
use crate::conversions::{Answer, Fingerprinted, IdempotencyKey, NewConversion, Op, Origin, Outcome, Transition, Written};
use crate::model::{ClickId, Currency, VisitorId};

/// The body of `POST /v1/conversions`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversionBody {
    pub order_id: String,
    pub program: String,
    pub amount_minor: i64,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// RFC 3339, e.g. `2026-11-22T10:00:00Z`.
    pub occurred_at: String,
    #[serde(default)]
    pub click_id: Option<String>,
    #[serde(default)]
    pub visitor_id: Option<String>,
    #[serde(default)]
    pub coupon_code: Option<String>,
    #[serde(default)]
    pub customer_ref: Option<String>,
}

/// Amounts above this are refused as a typo guard (ten trillion in minor units).
const AMOUNT_MINOR_MAX: i64 = 10_000_000_000_000;

/// Parses an RFC 3339 timestamp into Unix milliseconds.
pub fn parse_time(field: &str, s: &str) -> Result<u64, ApiError> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::invalid(field, format!("{s:?} is not an RFC 3339 timestamp such as 2026-11-22T10:00:00Z")))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| ApiError::invalid(field, "must be after 1970"))
}

fn optional(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(s) if s.len() > max || s.chars().any(char::is_control) => {
            Err(ApiError::invalid(field, format!("must be at most {max} bytes without control characters")))
        }
        v => Ok(v),
    }
}

/// Checks every rule of a conversion; the error names the field.
pub fn validate(state: &ApiState, b: ConversionBody, origin: Origin, now_ms: u64) -> Result<NewConversion, ApiError> {
    let order_id = b.order_id.trim().to_string();
    if order_id.is_empty() || order_id.len() > 128 || order_id.chars().any(char::is_control) {
        return Err(ApiError::invalid("order_id", "must be 1..=128 bytes without control characters"));
    }
    let catalog = state.catalog.load();
    let program = catalog.program(&b.program).ok_or_else(|| ApiError::invalid("program", format!("unknown program {:?}", b.program)))?;
    if b.amount_minor < 0 {
        return Err(ApiError::invalid("amount_minor", format!("must not be negative, got {}", b.amount_minor)));
    }
    if b.amount_minor > AMOUNT_MINOR_MAX {
        return Err(ApiError::invalid("amount_minor", format!("must be at most {AMOUNT_MINOR_MAX}")));
    }
    let currency = Currency::parse(&b.currency)
        .map_err(|_| ApiError::invalid("currency", format!("{:?} is not an ISO 4217 currency code", b.currency)))?;
    if currency != program.currency {
        return Err(ApiError::invalid("currency", format!("program {:?} is in {}, not {currency}", b.program, program.currency)));
    }
    let occurred_at_ms = parse_time("occurred_at", &b.occurred_at)?;
    if occurred_at_ms > now_ms + state.config.clock_skew_ms {
        return Err(ApiError::invalid("occurred_at", "is in the future"));
    }
    let window_ms = program.attribution.window_ms();
    if occurred_at_ms + window_ms < now_ms {
        return Err(ApiError::invalid(
            "occurred_at",
            format!("is older than the program's {}-day conversion window", program.attribution.window_days),
        ));
    }
    let click_id = optional("click_id", b.click_id, 64)?;
    if let Some(c) = &click_id {
        // A click id of the wrong shape is a broken integration; one that is well-formed but
        // forged or expired is recorded, and the explanation says why it did not count.
        if ClickId::decode(c).is_none() {
            return Err(ApiError::invalid("click_id", "is not a click id (47 characters from the cgid parameter)"));
        }
    }
    let visitor_id = optional("visitor_id", b.visitor_id, 64)?;
    if let Some(v) = &visitor_id {
        if VisitorId::decode(v).is_none() {
            return Err(ApiError::invalid("visitor_id", "is not a visitor id (22 characters from the cg_vid cookie)"));
        }
    }
    let coupon_code = optional("coupon_code", b.coupon_code, 64)?.map(|c| c.to_ascii_uppercase());
    if click_id.is_none() && visitor_id.is_none() && coupon_code.is_none() {
        return Err(ApiError::invalid("click_id", "send at least one of click_id, visitor_id or coupon_code"));
    }
    let customer_ref = optional("customer_ref", b.customer_ref, 256)?;
    Ok(NewConversion {
        order_id,
        program: b.program,
        amount_minor: b.amount_minor,
        currency,
        occurred_at_ms,
        click_id,
        visitor_id,
        coupon_code,
        customer_ref,
        origin,
    })
}

/// Renders a write's outcome as the API answers it: a recorded conversion is `201 Created`,
/// everything else `200 OK`, each with its JSON. An `Idempotency-Key` keeps this rendering.
pub fn render(o: Outcome) -> Answer {
    let body = |v: Result<String, serde_json::Error>| v.expect("an outcome serialises");
    match o {
        Outcome::Recorded(first) => Answer { status: 201, body: first.render() },
        Outcome::AlreadyRecorded(view) => Answer { status: 201, body: view },
        Outcome::Transitioned(view) => Answer { status: 200, body: view },
        Outcome::Approved(a) => Answer { status: 200, body: body(serde_json::to_string(&a)) },
        Outcome::Emitted => Answer { status: 200, body: "{}".into() },
    }
}

/// Whether a write replays an earlier one: a kept `Idempotency-Key` answer, or a conversion
/// already recorded.
pub fn replayed(w: &Written) -> bool {
    match w {
        Written::Done(o) => matches!(o, Outcome::AlreadyRecorded(_)),
        Written::Kept { replayed, .. } => *replayed,
    }
}

/// A write's answer, and whether it replays an earlier one (a kept `Idempotency-Key` answer,
/// or a conversion already recorded).
pub fn answered(w: Written) -> (Answer, bool) {
    let replayed = replayed(&w);
    match w {
        Written::Done(o) => (render(o), replayed),
        Written::Kept { answer, .. } => (answer, replayed),
    }
}

/// Turns a write's answer into a response, marking replays.
pub fn answer(w: Written) -> ApiResult {
    let (a, replayed) = answered(w);
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let mut r = raw_json(status, a.body);
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(r)
}

/// Records one conversion through the writer.
pub async fn record(state: &ApiState, c: NewConversion, key: Option<String>, now_ms: u64) -> Result<Written, ApiError> {
    let c = Fingerprinted::new(c);
    let key = key.map(|key| IdempotencyKey { request_hash: request_hash("POST /v1/conversions", c.fingerprint()), key, render });
    Ok(state.conversions.write(Op::Record(c), key, now_ms).await?)
}

pub async fn create(state: &Arc<ApiState>, key: Option<String>, body: &Bytes) -> ApiResult {
    let now_ms = (state.now_ms)();
    let b: ConversionBody = parse_json(body)?;
    let c = validate(state, b, Origin::Api, now_ms)?;
    let id = c.id();
    let mut r = answer(record(state, c, key, now_ms).await?)?;
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/conversions/{id}")) {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    Ok(r)
}

pub async fn get(state: &Arc<ApiState>, id: &str, partner: Option<&str>) -> ApiResult {
    let reader = state.reader.clone();
    let id_owned = id.to_string();
    let found = read_blocking("conversion", move || reader.get(&id_owned)).await??;
    let not_found = || ApiError::not_found(format!("conversion {id:?} not found"));
    let body = found.ok_or_else(not_found)?;
    match partner {
        None => Ok(raw_json(StatusCode::OK, body)),
        // A partner credited on it sees its own part (`scope::conversion_for`).
        Some(me) => {
            let view = serde_json::from_str(&body).map_err(|_| not_found())?;
            Ok(super::json(StatusCode::OK, &super::scope::conversion_for(view, me)))
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefundBody {
    #[serde(default)]
    amount_minor: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

pub async fn transition(state: &Arc<ApiState>, id: &str, action: &str, key: Option<String>, body: &Bytes) -> ApiResult {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    let transition = match action {
        "confirm" | "cancel" => {
            let _: EmptyBody = parse_json(body)?;
            if action == "confirm" {
                Transition::Confirm
            } else {
                Transition::Cancel
            }
        }
        "refund" => {
            let r: RefundBody = parse_json(body)?;
            if key.is_none() {
                return Err(ApiError::bad_request("Idempotency-Key: required for refunds, so a retried refund is not applied twice"));
            }
            if let Some(a) = r.amount_minor {
                if a <= 0 {
                    return Err(ApiError::invalid("amount_minor", format!("must be positive, got {a}")));
                }
            }
            Transition::Refund(r.amount_minor)
        }
        _ => return Err(ApiError::not_found(format!("no action {action:?}; use confirm, cancel or refund"))),
    };
    let canonical = serde_json::to_vec(&transition).expect("transition serialises");
    let route = format!("POST /v1/conversions/{id}/{action}");
    let key = key.map(|key| IdempotencyKey { request_hash: request_hash(&route, &canonical), key, render });
    let now_ms = (state.now_ms)();
    answer(state.conversions.write(Op::Transition { id: id.to_string(), transition }, key, now_ms).await?)
}
