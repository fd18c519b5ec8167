//! A privacy erase, one code path for `POST /v1/privacy/erase` and `clickgate privacy erase`:
//! the click log and index through the `Ingest` that owns them (the server's own, or the
//! command line's on a stopped data dir), then the conversion store's rows.

use anyhow::Context as _;

use crate::ingest::Ingest;
use crate::privacy::{Erasure, ErasureReport};
use crate::storage::offline::StoreAt;

/// Who asked for an erase, for its audit row: an API key's id, or `cli`.
pub type Actor<'a> = &'a str;

/// Erases `what` and answers what it changed. Blocking: call it on a blocking thread.
pub fn erase(ingest: &Ingest, at: &StoreAt, what: &Erasure, actor: Actor<'_>) -> anyhow::Result<ErasureReport> {
    let mut report = ErasureReport { target: what.kind(), ..ErasureReport::default() };
    if let Some(visitor) = what.visitor() {
        let clicks = ingest.erase_visitor(&visitor).context("erasing the visitor's clicks from the click log")?;
        (report.clicks, report.click_log_segments) = (clicks.clicks, clicks.segments);
    }
    let rows = crate::storage::erase::erase_rows(at, what)?;
    (report.conversions, report.stored_answers) = (rows.conversions, rows.answers);
    record_audit(what, &report, actor);
    tracing::info!(
        kind = what.kind(),
        clicks = report.clicks,
        conversions = report.conversions,
        answers = report.stored_answers,
        actor,
        "privacy erase done"
    );
    Ok(report)
}

/// Where an erase records its audit row: the audit log (another change) hooks in here, with
/// the action `privacy.erase`, the actor and the counts, never the erased value itself.
fn record_audit(what: &Erasure, report: &ErasureReport, actor: Actor<'_>) {
    tracing::debug!(action = "privacy.erase", kind = what.kind(), actor, clicks = report.clicks, "audit hook: privacy erase");
}
