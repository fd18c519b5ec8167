//! Commission rules: `GET`/`PUT /v1/programs/{id}/commission` and
//! `GET /v1/commission-rules/{version}`.
//!
//! A `PUT` validates the rules (a `422` names the path, such as `rules.tiers[1].from_minor`),
//! records them in the audit log (`commission_rules.put`, with the rules before and after),
//! stores them in the program's spec and swaps a freshly loaded catalog in before it answers,
//! so the next conversion is computed under them. Every rule set is shown with its
//! `version` (`RuleSet::version_hash`), which each commission records; the stored set of a
//! version stays readable for as long as the commissions it produced.

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Map, Value};

use super::scope::Caller;
use super::{json, parse_json, read_blocking, ApiError, ApiResult, ApiState};
use crate::catalog::{Audited, CatalogError};
use crate::commission::{ProgramRules, RuleSet};

/// A rule set as JSON with its `version`.
fn set_json(s: &RuleSet) -> Value {
    let mut v = serde_json::to_value(s).expect("rules serialise");
    v["version"] = Value::String(s.version_hash());
    v
}

/// A program's rules as the API shows them.
fn rules_json(program: &str, r: &ProgramRules) -> Value {
    let partners: Map<String, Value> = r.partners.iter().map(|(p, s)| (p.clone(), set_json(s))).collect();
    json!({ "program": program, "rules": set_json(&r.rules), "partners": partners })
}

fn unknown_program(id: &str) -> ApiError {
    ApiError::not_found(format!("program {id:?} not found"))
}

/// The rules the running catalog computes commissions with.
pub async fn get(state: &Arc<ApiState>, program: &str) -> ApiResult {
    let catalog = state.catalog.load();
    let p = catalog.program(program).ok_or_else(|| unknown_program(program))?;
    Ok(json(StatusCode::OK, &rules_json(program, &p.commission)))
}

/// Why storing the rules or reloading the catalog failed.
enum PutError {
    Store(CatalogError),
    /// The rules were stored; the catalog could not be loaded again.
    Reload(CatalogError),
}

pub async fn put(state: &Arc<ApiState>, caller: &Caller, program: &str, body: &Bytes) -> ApiResult {
    if state.catalog.load().program(program).is_none() {
        return Err(unknown_program(program));
    }
    let rules: ProgramRules = parse_json(body)?;
    rules.validate().map_err(|e| ApiError::invalid(&e.path, e.why))?;
    let (st, id, actor, now_ms) = (state.clone(), program.to_string(), caller.actor(), (state.now_ms)());
    let stored = tokio::task::spawn_blocking(move || {
        // The store's lock serialises rule changes, and the catalog's reload lock, held from the
        // write to the swap, keeps the upkeep thread's reload (its own connection) from
        // swapping in a catalog it read before this write: the older rules never come back.
        let store = st.store.lock().unwrap_or_else(|e| e.into_inner());
        let reload = st.catalog.lock();
        let p = Audited::new(&**store, actor, now_ms).set_commission_rules(&id, &rules).map_err(PutError::Store)?;
        reload.reload(&**store).map_err(PutError::Reload)?;
        Ok(p.spec.commission)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "a commission rules write task failed");
        ApiError::internal("the rules write failed; retry")
    })?;
    match stored {
        Ok(r) => Ok(json(StatusCode::OK, &rules_json(program, &r))),
        Err(PutError::Store(CatalogError::NotFound { .. })) => Err(unknown_program(program)),
        Err(PutError::Store(CatalogError::Invalid { field, why })) => Err(ApiError::invalid(field, why)),
        Err(PutError::Store(e)) => {
            tracing::error!(error = %e, program, "storing commission rules failed");
            Err(ApiError::internal("the rules were not stored; retry"))
        }
        Err(PutError::Reload(e)) => {
            tracing::error!(error = %e, program, "commission rules stored, but the catalog could not be reloaded");
            Err(ApiError::internal("the rules were stored, but are not in use yet: the catalog reloads on the next store change"))
        }
    }
}

/// The stored rule set of a version, recorded when it first produced a commission.
pub async fn version(state: &Arc<ApiState>, version: &str) -> ApiResult {
    if version.len() != 16 || !version.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ApiError::invalid("version", format!("{version:?} must be a rule version: 16 lower-case hex digits")));
    }
    let reader = state.reader.clone();
    let key = version.to_string();
    let found =
        read_blocking("rule version", move || reader.rule_set(&key)).await?.map_err(super::commissions::read_failed("rule version"))?;
    let Some(text) = found else {
        return Err(ApiError::not_found(format!(
            "no commission was made under rule version {version}; a version is recorded with the first commission it produces"
        )));
    };
    let rules: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(json(StatusCode::OK, &json!({ "version": version, "rules": rules })))
}
