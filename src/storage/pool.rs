//! A fixed set of read connections shared by the API's tasks. A read takes the first idle
//! connection; only when every one is busy does it wait, for the next in turn. One connection
//! behind one mutex made every report wait behind the slowest, however many cores were idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

/// Read connections when the caller names no number: the API's default
/// (`api.read_connections_max`).
pub const READ_CONNECTIONS_DEFAULT: usize = 4;

/// `connections` behind a mutex each.
pub(crate) struct Pool<C> {
    slots: Box<[Mutex<C>]>,
    /// Where a read that found every connection busy queues next.
    next: AtomicUsize,
}

impl<C> Pool<C> {
    /// A pool of these connections; at least one.
    pub fn new(connections: Vec<C>) -> Pool<C> {
        assert!(!connections.is_empty(), "a pool needs a connection");
        Pool { slots: connections.into_iter().map(Mutex::new).collect(), next: AtomicUsize::new(0) }
    }

    /// An idle connection, or the next one in turn once it is free. A connection whose holder
    /// panicked is handed on: each read runs in a transaction of its own, which the panic
    /// ended.
    pub fn get(&self) -> MutexGuard<'_, C> {
        for slot in self.slots.iter() {
            match slot.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::Pool;

    #[test]
    fn a_read_takes_an_idle_connection_while_another_is_held() {
        let pool = Pool::new(vec![0, 1, 2]);
        let a = pool.get();
        let b = pool.get();
        let c = pool.get();
        assert_eq!([*a, *b, *c], [0, 1, 2], "each read got a connection of its own");
        drop(b);
        assert_eq!(*pool.get(), 1, "the freed one is taken next");
    }

    #[test]
    fn a_read_waits_for_a_busy_connection_when_all_are_busy() {
        let pool = std::sync::Arc::new(Pool::new(vec![7]));
        let held = pool.get();
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || *pool.get())
        };
        // The waiter can only finish once the connection is released.
        assert!(!waiter.is_finished(), "a second read waits while the only connection is held");
        drop(held);
        assert_eq!(waiter.join().unwrap(), 7);
    }
}
