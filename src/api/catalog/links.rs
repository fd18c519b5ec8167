//! `/v1/links`: an admin's, and a partner key's for its own links (`scope` decides which).
//! A partner key creates links for itself only, in a program that lets partners create links
//! (`partners_create_links`); `scope::may_create_link` decides that once the body is read.
//! Every write lands in the store's change log, which the edge reads within its reload interval.

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;

use super::{filter, on_store, page, refused, view, write, Access, Writer};
use crate::api::{json, parse_json, scope, ApiResult, ApiState};
use crate::catalog::{Catalogue, Kind, LinkPatch, NewLink};
use crate::model::Status;

const FIELD: &str = "destination";

pub async fn create(state: &Arc<ApiState>, w: Writer, body: &Bytes, caller: Option<String>) -> ApiResult {
    let l: NewLink = parse_json(body)?;
    let made = write(state, w, move |a| {
        if let Some(me) = caller.as_deref() {
            let program = a.store().program(&l.program).map_err(refused(FIELD))?;
            scope::may_create_link(me, &l, program.as_ref())?;
        }
        a.add_link(&l).map_err(refused(FIELD))
    })
    .await?;
    Ok(json(StatusCode::CREATED, &view(&made)))
}

pub async fn list(state: &Arc<ApiState>, query: &str) -> ApiResult {
    let (f, limit) = filter(query, &["program", "partner", "status"])?;
    let rows = on_store(state, Access::Read, move |s| s.list_links(&f).map_err(refused(FIELD))).await?;
    page("links", rows, limit, view, |l| l.spec.code.clone())
}

pub async fn get(state: &Arc<ApiState>, code: &str) -> ApiResult {
    let code = code.to_string();
    let l = on_store(state, Access::Read, move |s| s.get_link(&code).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::OK, &view(&l)))
}

pub async fn edit(state: &Arc<ApiState>, w: Writer, code: &str, body: &Bytes) -> ApiResult {
    let patch: LinkPatch = parse_json(body)?;
    let code = code.to_string();
    let l = write(state, w, move |a| a.edit_link(&code, &patch).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::OK, &view(&l)))
}

pub async fn set_status(state: &Arc<ApiState>, w: Writer, code: &str, status: Status) -> ApiResult {
    let code = code.to_string();
    let l =
        write(state, w, move |a| a.set_status(Kind::Link, &code, status).and_then(|()| a.store().get_link(&code)).map_err(refused(FIELD)))
            .await?;
    Ok(json(StatusCode::OK, &view(&l)))
}
