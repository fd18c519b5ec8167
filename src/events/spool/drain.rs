//! `drain`: the loop that empties the spool into a sink, shared by the cluster publisher and the
//! embedded overflow path.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Spool, SpoolError, SpoolReader};
use crate::events::ClickEvent;

/// Where `drain` hands batches.
pub trait SpoolSink: Send {
    /// Why a delivery failed.
    type Error: std::fmt::Display + Send;

    /// Delivers `events` in order. `Ok` means all of them are durably handed on, so the spool
    /// commits past them; on `Err` the same batch is offered again after a pause. Delivering a
    /// batch twice must be harmless (downstream drops repeats by click id).
    fn deliver(&mut self, events: &[ClickEvent]) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Called every `retry_delay` while there is nothing to deliver: a chance to keep a
    /// connection warm. Does nothing by default.
    fn idle(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Runs `f` on the blocking pool with the reader, and hands the reader back.
pub(crate) async fn with_reader<T: Send + 'static>(
    reader: SpoolReader,
    f: impl FnOnce(&mut SpoolReader) -> T + Send + 'static,
) -> Result<(SpoolReader, T), SpoolError> {
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let out = f(&mut reader);
        (reader, out)
    })
    .await
    .map_err(|_| SpoolError::ReaderPanicked)
}

/// Whether `stop` is true, or its sender is gone (then nothing could ever stop the caller).
pub(crate) fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Waits `delay`, or less if `stop` turns true (or its sender goes); returns whether to stop.
pub(crate) async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if stopped(stop) {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => stopped(stop),
        _ = stop.changed() => stopped(stop),
    }
}

/// Drains `spool` into `sink` until `stop` turns true: reads up to `batch_len_max` events, hands
/// them to `sink.deliver` (again and again, `retry_delay` apart, until it succeeds), commits,
/// and sleeps until the next append when caught up. Disk reads and cursor writes run on the
/// blocking pool, so the async workers serving redirects never wait on them.
///
/// Returns when stopped; events not yet delivered stay in the spool for the next run. Fails only
/// if the spool already has a reader.
pub async fn drain<S: SpoolSink>(
    spool: Arc<Spool>,
    batch_len_max: usize,
    retry_delay: Duration,
    sink: &mut S,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SpoolError> {
    let batch_len_max = batch_len_max.max(1);
    let mut reader = spool.reader()?;
    loop {
        if stopped(&stop) {
            return Ok(());
        }
        let (r, read) = with_reader(reader, move |r| r.next_batch(batch_len_max)).await?;
        reader = r;
        let batch = match read {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "could not read the spool; retrying");
                if pause(retry_delay, &mut stop).await {
                    return Ok(());
                }
                continue;
            }
        };
        if batch.events.is_empty() {
            tokio::select! {
                _ = spool.appended() => {}
                _ = tokio::time::sleep(retry_delay) => sink.idle().await,
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut failures = 0u64;
        loop {
            match sink.deliver(&batch.events).await {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    // One line per outage, not one per retry.
                    if failures == 1 {
                        tracing::warn!(error = %e, events = batch.events.len(), "could not deliver spooled events; they stay in the spool and are retried");
                    } else {
                        tracing::debug!(error = %e, attempt = failures, "spooled events still not delivered");
                    }
                    if pause(retry_delay, &mut stop).await {
                        return Ok(());
                    }
                }
            }
        }
        if failures > 0 {
            tracing::info!(attempts = failures + 1, "spooled events delivered again after failures");
        }
        let end = batch.end;
        let (r, committed) = with_reader(reader, move |r| r.commit(end)).await?;
        reader = r;
        if let Err(e) = committed {
            // The events are delivered; an uncommitted cursor only means they may be delivered
            // again after a restart, and the next commit covers them.
            tracing::error!(error = %e, "could not commit the spool cursor; delivered events may be delivered again after a restart");
        }
    }
}
