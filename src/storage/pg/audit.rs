//! The audit log in PostgreSQL (`audit::AuditLog` on `PgCatalog`'s connection, the one the
//! catalog and the API keys write through, so an entry joins its write's transaction).
//!
//! An append first takes a transaction-scoped advisory lock, as the catalog's change log does:
//! entries then commit in `seq` order, so a reader paging by `seq` never skips one that an
//! earlier transaction commits later.

use ::postgres::GenericClient;

use super::catalog::PgCatalog;
use crate::audit::{AuditError, AuditLog, Entry, Query, Record};
use crate::catalog::CatalogError;

fn storage(e: CatalogError) -> AuditError {
    AuditError::Storage(e.to_string())
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Appends `e` in the transaction open on `c` (the catalog's, the keys', a webhook endpoint's).
pub(crate) fn append(c: &mut impl GenericClient, e: &Entry) -> Result<(), ::postgres::Error> {
    let (before, after) = (e.before.as_ref().map(|v| v.to_string()), e.after.as_ref().map(|v| v.to_string()));
    let (actor, action, object_type) = (e.actor.as_str(), e.action.as_str(), e.object_type());
    c.execute("SELECT pg_advisory_xact_lock(hashtext('clickgate_audit.' || current_schema()))", &[])?;
    c.execute(
        "INSERT INTO audit_log (at_ms, actor, action, object_type, object_id, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&ms(e.at_ms), &actor, &action, &object_type, &e.object_id, &before, &after],
    )?;
    Ok(())
}

impl AuditLog for PgCatalog {
    fn append_audit(&self, e: &Entry) -> Result<(), AuditError> {
        // Inside the write's transaction (`atomically`) this joins it; alone it is its own.
        self.in_transaction(|| {
            self.with(|c| Ok(append(c, e)?))?;
            Ok(((), true))
        })
        .map_err(storage)
    }

    fn audit_page(&self, q: &Query) -> Result<Vec<Record>, AuditError> {
        let since = q.since_ms.map(ms);
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let after = q.after_seq.unwrap_or(0);
        let rows = self
            .with(|c| {
                Ok(c.query(
                    "SELECT seq, at_ms, actor, action, object_id, before, after FROM audit_log
                     WHERE ($1::text IS NULL OR object_type = $1) AND ($2::text IS NULL OR object_id = $2)
                       AND ($3::text IS NULL OR actor = $3) AND ($4::bigint IS NULL OR at_ms >= $4) AND seq > $5
                     ORDER BY seq LIMIT $6",
                    &[&q.object_type, &q.object_id, &q.actor, &since, &after, &limit],
                )?)
            })
            .map_err(storage)?;
        rows.iter()
            .map(|r| {
                let get = |e: ::postgres::Error| AuditError::Storage(format!("PostgreSQL: {e}"));
                Record::from_row(
                    r.try_get(0).map_err(get)?,
                    r.try_get(1).map_err(get)?,
                    r.try_get(2).map_err(get)?,
                    r.try_get::<_, &str>(3).map_err(get)?,
                    r.try_get(4).map_err(get)?,
                    r.try_get(5).map_err(get)?,
                    r.try_get(6).map_err(get)?,
                )
            })
            .collect()
    }
}
