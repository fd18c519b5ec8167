//! Payout runs in `serve` and `core`: the API's `Desk` (the store, the catalog, the Stripe
//! key from `CLICKGATE_STRIPE_SECRET_KEY`) and the timer that starts each program's scheduled
//! runs when they are due.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::PayoutMetrics;
use crate::payouts::SecretKey;
use crate::storage::offline::StoreAt;
use crate::storage::payouts::Desk;

/// The Stripe key from the environment; `None` when unset or empty.
pub fn stripe_key() -> anyhow::Result<Option<SecretKey>> {
    match std::env::var("CLICKGATE_STRIPE_SECRET_KEY") {
        Ok(k) if !k.is_empty() => Ok(Some(SecretKey::new(&k).context("CLICKGATE_STRIPE_SECRET_KEY")?)),
        _ => Ok(None),
    }
}

/// The payout desk of this process; called on the runtime, whose handle its Stripe client uses.
pub fn desk(config: &Config, data_dir: &Path, metrics: PayoutMetrics) -> anyhow::Result<Arc<Desk>> {
    let at = match config.core.database_url()? {
        Some(url) => StoreAt::Pg(url),
        None => StoreAt::File(data_dir.to_path_buf()),
    };
    let key = stripe_key()?;
    if key.is_none() {
        tracing::info!("CLICKGATE_STRIPE_SECRET_KEY is not set: payout runs leave Stripe payouts sent until a run has the key");
    }
    let desk = Desk::new(at, data_dir, &config.payouts, key, tokio::runtime::Handle::current(), Some(metrics))
        .context("setting up payout runs ([payouts])")?;
    Ok(Arc::new(desk))
}

/// Every `payouts.schedule_check_ms`, starts the runs the programs' schedules make due, one
/// at a time on a blocking thread.
pub fn spawn_schedule(desk: Option<Arc<Desk>>, config: &crate::config::Payouts, mut stop: watch::Receiver<bool>) {
    let Some(desk) = desk else { return };
    let every = Duration::from_millis(config.schedule_check_ms);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let desk = desk.clone();
            let done = tokio::task::spawn_blocking(move || desk.scheduled(&|| super::now_ms() as i64)).await;
            match done {
                Ok(Ok(runs)) => {
                    for (program, out) in runs {
                        match out {
                            Ok(r) => tracing::info!(
                                program,
                                run = r.run_id,
                                paid = r.paid.count,
                                sent = r.sent.count,
                                "A scheduled payout run finished."
                            ),
                            Err(e) => {
                                tracing::error!(program, error = %e, "A scheduled payout run failed; it is due again at the next check.")
                            }
                        }
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "The payout schedule could not be read; it is checked again at the next tick."),
                Err(e) => tracing::error!(error = %e, "The payout schedule's task failed."),
            }
        }
    });
}
