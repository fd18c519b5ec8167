//! A privacy erase, one code path for `POST /v1/privacy/erase` and `clickgate privacy erase`:
//! the click log and index through the `Ingest` that owns them (the server's own, or the
//! command line's on a stopped data dir), then the conversion store's rows.

use anyhow::Context as _;

use crate::audit::{Action, Actor, AuditLog, Entry};
use crate::ingest::Ingest;
use crate::privacy::{Erasure, ErasureReport};
use crate::storage::offline::StoreAt;

/// Erases `what`, records it in the audit log and answers what it changed. Blocking: call it
/// on a blocking thread.
pub fn erase(
    ingest: &Ingest,
    at: &StoreAt,
    what: &Erasure,
    audit: &(impl AuditLog + ?Sized),
    actor: &Actor,
) -> anyhow::Result<ErasureReport> {
    let mut report = ErasureReport { target: what.kind(), ..ErasureReport::default() };
    if let Some(visitor) = what.visitor() {
        let clicks = ingest.erase_visitor(&visitor).context("erasing the visitor's clicks from the click log")?;
        (report.clicks, report.click_log_segments) = (clicks.clicks, clicks.segments);
    }
    let rows = crate::storage::erase::erase_rows(at, what)?;
    (report.conversions, report.stored_answers) = (rows.conversions, rows.answers);
    // The entry names the kind of target and the counts, never the erased value: the log must
    // not become the place where it survives.
    let after = serde_json::to_value(&report).context("the erase's audit entry")?;
    audit
        .append_audit(&Entry::new(actor, Action::PrivacyErase, what.kind(), crate::app::now_ms(), None, Some(after)))
        .context("the erase is done, but its audit entry was not stored")?;
    tracing::info!(
        kind = what.kind(),
        clicks = report.clicks,
        conversions = report.conversions,
        answers = report.stored_answers,
        actor = actor.as_str(),
        "privacy erase done"
    );
    Ok(report)
}
