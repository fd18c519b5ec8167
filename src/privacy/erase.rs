//! A privacy erase: what it targets, and what it answers. The API runs it (`api::privacy::run`)
//! through the component that owns each store: the ingest's click log and index, and the
//! conversion store (`storage::erase`).

use crate::model::VisitorId;

use super::PrivacyError;

/// Whose data an erase removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erasure {
    /// A visitor id, as its cookie holds it (22 characters of URL-safe base64).
    Visitor(String),
    /// A customer reference, as conversions were sent with it.
    CustomerRef(String),
}

impl Erasure {
    /// The target from an API body's or the command line's fields: exactly one of the two.
    pub fn from_fields(visitor_id: Option<&str>, customer_ref: Option<&str>) -> Result<Erasure, PrivacyError> {
        match (visitor_id.map(str::trim), customer_ref.map(str::trim)) {
            (Some(v), None) => {
                VisitorId::decode(v).ok_or_else(|| PrivacyError::Target("visitor_id is not a visitor id (22 characters)".into()))?;
                Ok(Erasure::Visitor(v.to_string()))
            }
            (None, Some(c)) if !c.is_empty() && c.len() <= 256 => Ok(Erasure::CustomerRef(c.to_string())),
            (None, Some(_)) => Err(PrivacyError::Target("customer_ref must be 1 to 256 characters".into())),
            _ => Err(PrivacyError::Target("give exactly one of visitor_id and customer_ref".into())),
        }
    }

    /// The visitor, when the target is one.
    pub fn visitor(&self) -> Option<VisitorId> {
        match self {
            Erasure::Visitor(v) => VisitorId::decode(v),
            Erasure::CustomerRef(_) => None,
        }
    }

    /// The target's kind, for the answer and the audit log: `visitor_id` or `customer_ref`.
    pub fn kind(&self) -> &'static str {
        match self {
            Erasure::Visitor(_) => "visitor_id",
            Erasure::CustomerRef(_) => "customer_ref",
        }
    }
}

/// What an erase changed in the conversion store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ErasedRows {
    /// Conversions whose visitor id or customer reference was cleared.
    pub conversions: u64,
    /// Stored idempotent answers deleted because they carried the target.
    pub answers: u64,
}

/// What an erase answers. Fields in alphabetical order, as every answer of the API.
#[derive(Debug, Default, Clone, serde::Serialize, PartialEq, Eq)]
pub struct ErasureReport {
    /// Clicks anonymised in the click log and the index.
    pub clicks: u64,
    /// Click log segment files rewritten.
    pub click_log_segments: u64,
    /// Conversions whose visitor id or customer reference was cleared (amounts kept).
    pub conversions: u64,
    /// `visitor_id` or `customer_ref`.
    pub target: &'static str,
    /// Stored idempotent answers deleted.
    pub stored_answers: u64,
}
