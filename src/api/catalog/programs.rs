//! `/v1/programs`: an admin's. The body of a `POST` is a program as the config's demo section
//! spells it; a `PATCH` takes any of its editable fields (`catalog::ProgramPatch`).

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;

use super::{filter, on_store, page, refused, view, write, Access, Writer};
use crate::api::{json, parse_json, ApiResult, ApiState};
use crate::catalog::{Catalogue, Kind, NewProgram, ProgramPatch};
use crate::model::Status;

/// The field a program's destination error is about.
const FIELD: &str = "fallback_url";

pub async fn create(state: &Arc<ApiState>, w: Writer, body: &Bytes) -> ApiResult {
    let p: NewProgram = parse_json(body)?;
    let made = write(state, w, move |a| a.add_program(&p).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::CREATED, &view(&made)))
}

pub async fn list(state: &Arc<ApiState>, query: &str) -> ApiResult {
    let (f, limit) = filter(query, &["status"])?;
    let rows = on_store(state, Access::Read, move |s| s.list_programs(&f).map_err(refused(FIELD))).await?;
    page("programs", rows, limit, view, |p| p.spec.id.clone())
}

pub async fn get(state: &Arc<ApiState>, id: &str) -> ApiResult {
    let id = id.to_string();
    let p = on_store(state, Access::Read, move |s| s.get_program(&id).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::OK, &view(&p)))
}

pub async fn edit(state: &Arc<ApiState>, w: Writer, id: &str, body: &Bytes) -> ApiResult {
    let patch: ProgramPatch = parse_json(body)?;
    let id = id.to_string();
    let p = write(state, w, move |a| a.edit_program(&id, &patch).map_err(refused(FIELD))).await?;
    Ok(json(StatusCode::OK, &view(&p)))
}

pub async fn set_status(state: &Arc<ApiState>, w: Writer, id: &str, status: Status) -> ApiResult {
    let id = id.to_string();
    let p = write(state, w, move |a| {
        a.set_status(Kind::Program, &id, status).and_then(|()| a.store().get_program(&id)).map_err(refused(FIELD))
    })
    .await?;
    Ok(json(StatusCode::OK, &view(&p)))
}
