//! `GET /v1/clicks/{click_id}`, and the attributor that joins the index, the catalog and the
//! click-id signer for the conversion writer.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::json;

use super::{json, ApiError, ApiResult, ApiState};
use crate::attribution::engine::{self, Attribution, Facts, TouchSource};
use crate::catalog::{Catalog, SharedCatalog};
use crate::commission::ProgramRules;
use crate::conversions::view::rfc3339;
use crate::conversions::{Attributor, NewConversion};
use crate::index::IndexedClick;
use crate::ingest::Ingest;
use crate::model::{ClickId, ClickIdError, ClickSigner, VisitorId};

pub fn get(state: &ApiState, id: &str) -> ApiResult {
    // Age does not matter for a lookup; the signature does.
    let click = match state.signer.verify(id, u64::MAX / 2, u64::MAX) {
        Ok(c) => c,
        Err(ClickIdError::Malformed) => return Err(ApiError::invalid("click_id", "is not a click id")),
        Err(e) => return Err(ApiError::invalid("click_id", e)),
    };
    let Some(c) = state.ingest.click(&click) else {
        return Err(ApiError::not_found(
            "the click id is authentic, but the index does not hold it (not yet ingested, or older than the index keeps)",
        ));
    };
    Ok(json(
        StatusCode::OK,
        &json!({
            "click_id": c.click_id,
            "ts": rfc3339(c.ts_ms as i64),
            "program": &*c.program,
            "partner": &*c.partner,
            "link": &*c.link,
            "channel": c.channel,
            "verdict": c.verdict,
            "reasons": c.reasons,
            "visitor_id": c.visitor_id,
        }),
    ))
}

/// Attribution against the live index and catalog.
pub struct CoreAttributor {
    pub ingest: Arc<Ingest>,
    pub catalog: Arc<SharedCatalog>,
    pub signer: Arc<ClickSigner>,
    pub click_max_age_ms: u64,
}

struct Source<'a> {
    ingest: &'a Ingest,
    catalog: &'a Catalog,
}

impl TouchSource for Source<'_> {
    fn click(&self, id: &ClickId) -> Option<IndexedClick> {
        self.ingest.click(id)
    }

    fn visitor_touches(&self, visitor: &VisitorId, since_ms: u64, until_ms: u64) -> Vec<IndexedClick> {
        self.ingest.visitor_touches(visitor, since_ms, until_ms)
    }

    fn coupon(&self, program: &str, code: &str) -> Option<(Arc<str>, crate::model::Status)> {
        self.catalog.coupon(program, code)
    }

    fn is_partner(&self, partner: &str, customer_ref: &str) -> bool {
        self.catalog.is_partner(partner, customer_ref)
    }
}

impl Attributor for CoreAttributor {
    fn attribute(&self, c: &NewConversion) -> Attribution {
        let catalog = self.catalog.load();
        let settings = catalog.program(&c.program).map(|p| p.attribution).unwrap_or_default();
        // A click id is judged at the conversion's time: expired means older than the id's
        // lifetime when the sale happened, and a click after the sale is "from the future".
        let click_id = c.click_id.as_deref().map(|s| self.signer.verify(s, c.occurred_at_ms, self.click_max_age_ms));
        let facts = Facts {
            program: &c.program,
            occurred_at_ms: c.occurred_at_ms,
            amount_minor: c.amount_minor,
            click_id,
            visitor_id: c.visitor_id.as_deref().and_then(VisitorId::decode),
            coupon_code: c.coupon_code.as_deref(),
            customer_ref: c.customer_ref.as_deref(),
        };
        engine::attribute(&settings, &facts, &Source { ingest: &self.ingest, catalog: &catalog })
    }

    fn commission_rules(&self, program: &str) -> Arc<ProgramRules> {
        self.catalog.load().program(program).map(|p| p.commission.clone()).unwrap_or_default()
    }
}
