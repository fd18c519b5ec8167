//! Webhooks: `POST/GET /v1/webhook-endpoints`, `GET/DELETE /v1/webhook-endpoints/{id}`,
//! `POST /v1/webhook-endpoints/{id}/rotate-secret`, `POST /v1/webhook-endpoints/{id}/enable`, `GET /v1/webhook-events?endpoint&status`
//! (deliveries with their attempts, newest first, with a cursor) and
//! `POST /v1/webhook-events/{id}/replay`.
//!
//! A secret is in the answer of the registration and of a rotation, and nowhere else.

use std::sync::Arc;

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};

use super::commissions::Params;
use super::scope::Caller;
use super::{json, parse_json, read_body, ApiError, ApiResult, ApiState};
use crate::webhooks::endpoint::{is_id, Status};
use crate::webhooks::store::{DeliveryFilter, DeliveryStatus};
use crate::webhooks::{AdminError, EventId, Registration};

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::Invalid(e) => {
                let text = e.to_string();
                let field = text.split(':').next().filter(|f| ["url", "event_types", "partner"].contains(f)).unwrap_or("endpoint");
                let mut err = ApiError::invalid(field, "");
                err.message = text;
                err
            }
            AdminError::NoEndpoint(_) | AdminError::NoEvent(_) => ApiError::not_found(e.to_string()),
            AdminError::Store(e) => {
                tracing::error!(error = %e, "a webhook store call failed");
                ApiError::internal("the webhook store failed; retry later")
            }
        }
    }
}

/// Routes `/v1/webhook-endpoints…` and `/v1/webhook-events…`.
/// `partner` is a partner key's (`scope::authorize` let it through): its registrations are for
/// it, and its lists and replays hold only its endpoints.
pub(super) async fn route(state: &Arc<ApiState>, req: Request<Incoming>, segments: &[&str], caller: &Caller) -> ApiResult {
    let (partner, actor) = (caller.partner(), caller.actor());
    let now_ms = (state.now_ms)();
    let admin = &state.webhooks;
    match (req.method().clone(), segments) {
        (Method::POST, ["v1", "webhook-endpoints"]) => {
            let body = read_body(state, req).await?;
            let mut reg: Registration = parse_json(&body)?;
            if let Some(me) = partner {
                match reg.partner.as_deref() {
                    Some(p) if p != me => return Err(ApiError::not_found(format!("partner {p:?} not found"))),
                    _ => reg.partner = Some(me.to_string()),
                }
            }
            let endpoint = admin.add(&reg, now_ms, &actor).await?;
            let mut view = endpoint.view();
            view["secret"] = Value::String(endpoint.secret.to_whsec());
            Ok(json(StatusCode::CREATED, &view))
        }
        (Method::GET, ["v1", "webhook-endpoints"]) => {
            let mut list = admin.list().await?;
            if let Some(me) = partner {
                list.retain(|e| e.partner.as_deref() == Some(me));
            }
            Ok(json(StatusCode::OK, &json!({ "endpoints": list.iter().map(|e| e.view()).collect::<Vec<_>>() })))
        }
        (Method::GET, ["v1", "webhook-endpoints", id]) => {
            let id = known(id)?;
            Ok(json(StatusCode::OK, &admin.get(id).await?.view()))
        }
        (Method::DELETE, ["v1", "webhook-endpoints", id]) => {
            let id = known(id)?;
            admin.remove(id, now_ms, &actor).await?;
            Ok(json(StatusCode::OK, &json!({ "id": id, "deleted": true })))
        }
        (Method::POST, ["v1", "webhook-endpoints", id, "rotate-secret"]) => {
            let id = known(id)?;
            let (endpoint, secret) = admin.rotate(id, now_ms, &actor).await?;
            let mut view = endpoint.view();
            view["secret"] = Value::String(secret.to_whsec());
            Ok(json(StatusCode::OK, &view))
        }
        (Method::POST, ["v1", "webhook-endpoints", id, "enable"]) => {
            let id = known(id)?;
            let before = admin.get(id).await?;
            let endpoint = admin.enable(id, now_ms, &actor).await?;
            let mut view = endpoint.view();
            // What to replay: the events since it was disabled never reached it.
            if before.status != Status::Enabled {
                view["disabled_since_ms"] = Value::from(before.status_ms);
            }
            Ok(json(StatusCode::OK, &view))
        }
        (Method::GET, ["v1", "webhook-events"]) => events(state, req.uri().query().unwrap_or(""), partner).await,
        (Method::POST, ["v1", "webhook-events", id, "replay"]) => {
            if EventId::parse(id).is_err() {
                return Err(ApiError::not_found(format!("webhook event {id:?} not found")));
            }
            let n = admin.replay_event(id, partner, now_ms).await?;
            Ok(json(StatusCode::ACCEPTED, &json!({ "event_id": id, "deliveries": n })))
        }
        (method, _) => Err(ApiError::not_found(format!("no route for {method} /{}", segments.join("/")))),
    }
}

/// An endpoint id, or a `404` without a lookup.
fn known(id: &str) -> Result<&str, ApiError> {
    if is_id(id) {
        Ok(id)
    } else {
        Err(ApiError::not_found(format!("webhook endpoint {id:?} not found")))
    }
}

/// The opaque cursor after a delivery: base64url of its id.
fn encode_cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_string())
}

fn decode_cursor(s: &str) -> Option<i64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

async fn events(state: &Arc<ApiState>, query: &str, partner: Option<&str>) -> ApiResult {
    let p = Params::parse(query, &["endpoint", "status", "cursor", "limit"])?;
    let filter = DeliveryFilter {
        endpoint_id: p.get("endpoint", is_id, "an endpoint id (we_ and 24 hex digits)")?,
        partner: partner.map(str::to_owned),
        status: p
            .get("status", |s| DeliveryStatus::parse(s).is_some(), "one of pending, delivered, failed")?
            .and_then(|s| DeliveryStatus::parse(&s)),
        before_id: p.get("cursor", |s| decode_cursor(s).is_some(), "a next_cursor from a previous page")?.and_then(|c| decode_cursor(&c)),
        limit: p.limit()? + 1,
    };
    let limit = filter.limit - 1;
    let mut page = state.webhooks.deliveries(filter).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let mut body = json!({ "events": page });
    if let (true, Some(last)) = (more, page.last()) {
        body["next_cursor"] = Value::String(encode_cursor(last.delivery_id));
    }
    Ok(json(StatusCode::OK, &body))
}
