//! How the worker speaks of a store that keeps failing: the first failure of a run at `error`,
//! then one line a minute with the count while it lasts, and one when it ends. A store that is
//! down (PostgreSQL restarting, a full disk) fails every poll; a line per poll would bury
//! everything else in the log without saying more.

use std::time::{Duration, Instant};

/// How often a lasting outage is logged again.
pub const REPEAT_EVERY: Duration = Duration::from_secs(60);

/// What to log after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum Say {
    /// Nothing new.
    Nothing,
    /// The first failure of a run.
    Failed,
    /// The run goes on: failures so far and for how long.
    StillFailing { failures: u64, for_s: u64 },
    /// The run ended: how many steps failed in it.
    Recovered { failures: u64, for_s: u64 },
}

/// A run of failed steps.
#[derive(Debug, Default)]
pub struct Outage {
    /// When the run began and when it was last logged; `None` outside a run.
    run: Option<(Instant, Instant)>,
    failures: u64,
}

impl Outage {
    /// A step failed at `now`.
    pub fn failed(&mut self, now: Instant) -> Say {
        self.failures += 1;
        match &mut self.run {
            None => {
                self.run = Some((now, now));
                Say::Failed
            }
            Some((began, logged)) if now.duration_since(*logged) >= REPEAT_EVERY => {
                *logged = now;
                Say::StillFailing { failures: self.failures, for_s: now.duration_since(*began).as_secs() }
            }
            Some(_) => Say::Nothing,
        }
    }

    /// A step succeeded at `now`.
    pub fn succeeded(&mut self, now: Instant) -> Say {
        let Some((began, _)) = self.run.take() else { return Say::Nothing };
        let failures = std::mem::take(&mut self.failures);
        Say::Recovered { failures, for_s: now.duration_since(began).as_secs() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_outage_is_logged_first_then_once_a_minute_then_at_its_end() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut o = Outage::default();
        assert_eq!(o.succeeded(at(0)), Say::Nothing, "no run, nothing to end");
        assert_eq!(o.failed(at(0)), Say::Failed);
        // A poll every 500 ms for a minute says nothing more...
        for n in 1..120 {
            assert_eq!(o.failed(at(n * 500)), Say::Nothing, "poll {n}");
        }
        // ...until a minute has passed since the last line.
        assert_eq!(o.failed(at(60_000)), Say::StillFailing { failures: 121, for_s: 60 });
        assert_eq!(o.failed(at(60_500)), Say::Nothing);
        assert_eq!(o.succeeded(at(75_000)), Say::Recovered { failures: 122, for_s: 75 });
        assert_eq!(o.succeeded(at(75_500)), Say::Nothing);
        // A new run starts afresh.
        assert_eq!(o.failed(at(80_000)), Say::Failed);
        assert_eq!(o.succeeded(at(80_500)), Say::Recovered { failures: 1, for_s: 0 });
    }
}
