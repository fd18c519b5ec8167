//! The clock governor reads: the caller's `now`, passed through a thread-local.
//!
//! Governor asks its clock for the time instead of taking it as an argument. The pipeline's
//! time is always passed in (the wall clock on the edge, the log's `ts` in `clickgate check`),
//! so the pipeline stores it here just before calling governor, on the same thread.

use std::cell::Cell;

use governor::nanos::Nanos;

thread_local! {
    static NOW_NS: Cell<u64> = const { Cell::new(0) };
}

/// Sets the time governor sees on this thread, in Unix milliseconds.
pub fn set_now_ms(now_ms: u64) {
    NOW_NS.with(|c| c.set(now_ms.saturating_mul(1_000_000)));
}

/// A governor clock that reads the caller's time.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallerClock;

impl governor::clock::Clock for CallerClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(NOW_NS.with(Cell::get))
    }
}
