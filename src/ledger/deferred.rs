//! What a grouped transaction writes once, at its end, instead of once per transfer: the chain
//! head and the balances.
//!
//! Every transfer moves the head and two balances. In a group of a few hundred conversions,
//! that was one head update and two balance updates per transfer, each a b-tree search and a
//! page rewritten, for rows whose only lasting value is the last one. A backend in grouped mode
//! reads the head once, moves it in memory, sums each account's deltas, and writes both when the
//! caller flushes, before the commit (and before each job's savepoint is released, when jobs
//! have one). Reads inside the group see the deferred values: `head` returns the moved head,
//! `balance` adds the pending delta, `balances` flushes first.

use std::collections::BTreeMap;

use super::{AccountKey, Balance};

/// The head and balance writes held back in a grouped transaction.
#[derive(Debug, Default)]
pub struct Deferred {
    /// The head as read at the group's first transfer, then moved by each append.
    head: Option<(u64, [u8; 32])>,
    /// Whether `head` moved since it was read or last flushed.
    head_moved: bool,
    /// Each account's summed delta since the last flush, in account order (the balance table's
    /// key order, so the flush walks its b-tree forward).
    balances: BTreeMap<AccountKey, Balance>,
}

/// What a flush writes.
pub struct Flush {
    /// The head to store, when it moved.
    pub head: Option<(u64, [u8; 32])>,
    pub balances: BTreeMap<AccountKey, Balance>,
}

impl Deferred {
    /// The head, if read in this group.
    pub fn head(&self) -> Option<(u64, [u8; 32])> {
        self.head
    }

    /// The head as just read from the store.
    pub fn read_head(&mut self, head: (u64, [u8; 32])) {
        self.head = Some(head);
    }

    /// An append moved the head.
    pub fn move_head(&mut self, seq: u64, hash: [u8; 32]) {
        self.head = Some((seq, hash));
        self.head_moved = true;
    }

    pub fn add(&mut self, key: &AccountKey, d: &Balance) {
        // Look up by reference first: most deltas go to an account already in the map.
        if let Some(b) = self.balances.get_mut(key) {
            *b = b.plus(d);
        } else {
            self.balances.insert(key.clone(), *d);
        }
    }

    /// The delta not yet written for an account.
    pub fn pending(&self, key: &AccountKey) -> Balance {
        self.balances.get(key).copied().unwrap_or_default()
    }

    /// Takes what is to be written; the head stays known, as flushed.
    pub fn take(&mut self) -> Flush {
        let head = if std::mem::take(&mut self.head_moved) { self.head } else { None };
        Flush { head, balances: std::mem::take(&mut self.balances) }
    }

    /// Forgets everything: after a rollback, the store's rows are right again and are read anew.
    pub fn forget(&mut self) {
        *self = Deferred::default();
    }
}
