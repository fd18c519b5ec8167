//! The audit log in the store file (`audit::AuditLog` on `SqliteCatalog`'s connection, the one
//! the catalog and the API keys write through, so an entry joins its write's transaction).

use rusqlite::params;

use super::SqliteCatalog;
use crate::audit::{AuditError, AuditLog, Entry, Query, Record};

fn storage(e: rusqlite::Error) -> AuditError {
    AuditError::Storage(format!("sqlite: {e}"))
}

fn text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// Appends `e` on `conn`, joining the transaction open there: what every writer of the file
/// that records its writes calls (the catalog, the keys, the webhook endpoints).
pub(crate) fn append(conn: &rusqlite::Connection, e: &Entry) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at_ms, actor, action, object_type, object_id, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        i64::try_from(e.at_ms).unwrap_or(i64::MAX),
        e.actor.as_str(),
        e.action.as_str(),
        e.object_type(),
        e.object_id,
        text(&e.before),
        text(&e.after)
    ])?;
    Ok(())
}

impl AuditLog for SqliteCatalog {
    fn append_audit(&self, e: &Entry) -> Result<(), AuditError> {
        append(self.conn(), e).map_err(storage)
    }

    fn audit_page(&self, q: &Query) -> Result<Vec<Record>, AuditError> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT seq, at_ms, actor, action, object_id, before, after FROM audit_log
                 WHERE (?1 IS NULL OR object_type = ?1) AND (?2 IS NULL OR object_id = ?2) AND (?3 IS NULL OR actor = ?3)
                   AND (?4 IS NULL OR at_ms >= ?4) AND seq > ?5
                 ORDER BY seq LIMIT ?6",
            )
            .map_err(storage)?;
        let since = q.since_ms.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![q.object_type, q.object_id, q.actor, since, q.after_seq.unwrap_or(0), limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .map_err(storage)?;
        rows.map(|r| {
            let (seq, at_ms, actor, action, object_id, before, after) = r.map_err(storage)?;
            Record::from_row(seq, at_ms, actor, &action, object_id, before, after)
        })
        .collect()
    }
}
