//! A fixed-size hash table from a 64-bit key to a `u32` value (a ring position or a slot).
//!
//! Open addressing with linear probing, at most half full, and backward-shift deletion: no
//! tombstones, so the table never needs to grow or rehash once sized for its maximum, and a
//! lookup costs one cache line in the common case. Each slot is one `u64`: the key's high 32
//! bits (which also pick the home slot) and the value plus one (0 marks an empty slot). Keys
//! are not stored whole: a lookup confirms a candidate with the caller's `is` check against the
//! full key where it lives.

/// The table. Sized once for `items_max`.
pub(super) struct Table {
    slots: Box<[u64]>,
    mask: usize,
    len: usize,
}

fn tag(key: u64) -> u64 {
    key >> 32
}

impl Table {
    /// A table for up to `items_max` entries (at least 2 slots per entry).
    pub fn new(items_max: usize) -> Table {
        let n = (items_max.max(8) * 2).next_power_of_two();
        debug_assert!(n <= 1 << 32, "home slots come from 32 bits of the key");
        Table { slots: vec![0u64; n].into_boxed_slice(), mask: n - 1, len: 0 }
    }

    fn home(&self, slot: u64) -> usize {
        (slot >> 32) as usize & self.mask
    }

    /// The value stored under `key` for which `is(value)` holds.
    pub fn find(&self, key: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let t = tag(key);
        let mut i = t as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s >> 32 == t {
                let v = (s as u32).wrapping_sub(1);
                if is(v) {
                    return Some(v);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The raw content of `key`'s home slot: a load to warm the cache line, nothing more.
    pub fn home_slot(&self, key: u64) -> u64 {
        self.slots[tag(key) as usize & self.mask]
    }

    /// Adds `value` under `key`; the caller has checked it is absent.
    pub fn insert(&mut self, key: u64, value: u32) {
        assert!(self.len < self.slots.len() / 2, "table sized for its maximum");
        debug_assert!(value < u32::MAX);
        let t = tag(key);
        let mut i = t as usize & self.mask;
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = t << 32 | u64::from(value + 1);
        self.len += 1;
    }

    /// Removes the entry (`key`, `value`); false if there is none.
    pub fn remove(&mut self, key: u64, value: u32) -> bool {
        let want = tag(key) << 32 | u64::from(value + 1);
        let mut i = tag(key) as usize & self.mask;
        loop {
            match self.slots[i] {
                0 => return false,
                s if s == want => break,
                _ => i = (i + 1) & self.mask,
            }
        }
        // Backward shift: pull later entries of the cluster into the hole when the hole lies
        // between their home and where they sit, so every probe sequence stays unbroken.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = self.home(s);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(i) & self.mask) {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = 0;
        self.len -= 1;
        true
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inserts_and_removes_through_collisions() {
        let mut t = Table::new(64);
        // Keys that share a home slot and tags, told apart only by `is`.
        let key = |n: u64| (n % 3) << 32 | n;
        for n in 0..64u64 {
            assert_eq!(t.find(key(n), |v| v == n as u32), None);
            t.insert(key(n), n as u32);
        }
        assert_eq!(t.len(), 64);
        for n in (0..64u64).step_by(2) {
            assert!(t.remove(key(n), n as u32));
            assert!(!t.remove(key(n), n as u32));
        }
        for n in 0..64u64 {
            let want = (n % 2 == 1).then_some(n as u32);
            assert_eq!(t.find(key(n), |v| v == n as u32), want, "key {n}");
        }
        // Wrapping clusters at the end of the table.
        let mut t = Table::new(8);
        let last = (t.mask as u64) << 32;
        for v in 0..8 {
            t.insert(last, v);
        }
        assert!(t.remove(last, 0));
        assert!((1..8).all(|v| t.find(last, |x| x == v) == Some(v)));
        assert_eq!(t.len(), 7);
    }

    #[test]
    fn matches_a_model_under_churn() {
        let mut t = Table::new(500);
        let mut model = std::collections::HashMap::new();
        let mut rng = fastrand::Rng::with_seed(3);
        for step in 0..200_000u32 {
            // Few distinct home slots, so clusters are long and wrap.
            let k = rng.u64(0..2000);
            let key = (k % 97) << 32 | k;
            if let Some(v) = model.get(&k).copied() {
                assert_eq!(t.find(key, |x| x == v), Some(v));
                if rng.bool() {
                    assert!(t.remove(key, v));
                    model.remove(&k);
                }
            } else if model.len() < 500 {
                t.insert(key, step);
                model.insert(k, step);
            }
        }
        assert_eq!(t.len(), model.len());
        for (k, v) in model {
            assert_eq!(t.find((k % 97) << 32 | k, |x| x == v), Some(v));
        }
    }
}
