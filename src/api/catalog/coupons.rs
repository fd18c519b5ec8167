//! `/v1/coupons`: coupon codes that credit a partner. An admin creates them; a partner key
//! reads and lists its own (`scope` decides). A coupon is named by its program and its code,
//! which matches case-insensitively and is stored upper-case. An admin pauses, resumes and
//! expires one; attribution by a paused or expired coupon credits no one.

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;

use super::{filter, on_store, page, refused, view, write, Access, Writer};
use crate::api::{json, parse_json, ApiResult, ApiState};
use crate::catalog::{coupon_key, Catalogue, Kind, NewCoupon};
use crate::model::Status;

const FIELD: &str = "code";

pub async fn create(state: &Arc<ApiState>, w: Writer, body: &Bytes) -> ApiResult {
    let c: NewCoupon = parse_json(body)?;
    let made = write(state, w, move |a| a.add_coupon(&c).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::CREATED, &view(&made)))
}

pub async fn list(state: &Arc<ApiState>, query: &str) -> ApiResult {
    let (f, limit) = filter(query, &["program", "partner", "status"])?;
    let rows = on_store(state, Access::Read, move |s| s.list_coupons(&f).map_err(refused(FIELD))).await?;
    page("coupons", rows, limit, view, |c| coupon_key(&c.spec.program, &c.spec.code))
}

pub async fn get(state: &Arc<ApiState>, program: &str, code: &str) -> ApiResult {
    let (program, code) = (program.to_string(), code.to_string());
    let c = on_store(state, Access::Read, move |s| s.get_coupon(&program, &code).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::OK, &view(&c)))
}

pub async fn set_status(state: &Arc<ApiState>, w: Writer, program: &str, code: &str, status: Status) -> ApiResult {
    let (program, code) = (program.to_string(), code.to_string());
    let c = write(state, w, move |a| {
        a.set_status(Kind::Coupon, &coupon_key(&program, &code), status)
            .and_then(|()| a.store().get_coupon(&program, &code))
            .map_err(refused(FIELD))
    })
    .await?;
    Ok(json(StatusCode::OK, &view(&c)))
}
