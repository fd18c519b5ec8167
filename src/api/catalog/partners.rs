//! `/v1/partners`: an admin's, but for a partner key's reads of itself (`GET /v1/partners`
//! holds it to its own row; `scope` decides). A `PATCH` takes the name, email and payout
//! details (`catalog::PartnerPatch`; `null` clears `stripe_account` or `paypal_email`).

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;

use super::{filter, on_store, page, refused, view, write, Access, Writer};
use crate::api::{json, parse_json, ApiResult, ApiState};
use crate::catalog::{Catalogue, Kind, NewPartner, PartnerPatch};
use crate::model::Status;

const FIELD: &str = "payout_method";

pub async fn create(state: &Arc<ApiState>, w: Writer, body: &Bytes) -> ApiResult {
    let p: NewPartner = parse_json(body)?;
    let made = write(state, w, move |a| a.add_partner(&p).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::CREATED, &view(&made)))
}

pub async fn list(state: &Arc<ApiState>, query: &str) -> ApiResult {
    let (f, limit) = filter(query, &["partner", "status"])?;
    let rows = on_store(state, Access::Read, move |s| s.list_partners(&f).map_err(refused(FIELD))).await?;
    page("partners", rows, limit, view, |p| p.spec.id.clone())
}

pub async fn get(state: &Arc<ApiState>, id: &str) -> ApiResult {
    let id = id.to_string();
    let p = on_store(state, Access::Read, move |s| s.get_partner(&id).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::OK, &view(&p)))
}

pub async fn edit(state: &Arc<ApiState>, w: Writer, id: &str, body: &Bytes) -> ApiResult {
    let patch: PartnerPatch = parse_json(body)?;
    let id = id.to_string();
    let p = write(state, w, move |a| a.edit_partner(&id, &patch).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::OK, &view(&p)))
}

pub async fn set_status(state: &Arc<ApiState>, w: Writer, id: &str, status: Status) -> ApiResult {
    let id = id.to_string();
    let p = write(state, w, move |a| {
        a.set_status(Kind::Partner, &id, status).and_then(|()| a.store().get_partner(&id)).map_err(refused(FIELD))
    })
    .await?;
    Ok(json(StatusCode::OK, &view(&p)))
}
