//! Stage 6: duplicates of (link, client, user agent) inside the dedup window, in Bloom filters.
//! A client is an IPv4 address or an IPv6 /64 (`client_key`). Addresses of carriers that put
//! many subscribers behind one address are not deduplicated: there, one address and one
//! phone model are many people.
//!
//! Each shard holds a current and a previous filter. Windows are aligned to `window_ms`, so a
//! click is remembered for at least one full window and at most two. A filter that reaches its
//! design capacity rotates early, so the false-positive rate stays at or under `fp_rate` even
//! under IP spray; memory is fixed at two filters per shard.

use std::sync::Mutex;

use bloomfilter::Bloom;

use super::{Check, Click, Findings, Reason};
use crate::config::{self, Action};

struct Shard {
    current: Bloom<u64>,
    previous: Bloom<u64>,
    epoch: u64,
    inserted: usize,
}

/// The dedup stage.
pub struct DedupCheck {
    shards: Box<[Mutex<Shard>]>,
    window_ms: u64,
    shard_capacity: usize,
    filter_fp_rate: f64,
    seed: u64,
    action: Action,
    /// Sorted: carriers whose addresses many subscribers share.
    shared_address_asns: Box<[u32]>,
}

/// The dedup key of a click, under the filter's secret seed.
pub fn dedup_key(seed: u64, link_id: u32, client: u128, ua: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::with_seed(seed);
    h.update(&link_id.to_le_bytes());
    h.update(&client.to_le_bytes());
    h.update(ua.as_bytes());
    h.digest()
}

impl DedupCheck {
    /// Builds the shards. A lookup consults two filters, whose false positives add, so each is
    /// sized for its share of `capacity` at half of `fp_rate`.
    pub fn new(cfg: &config::Dedup) -> DedupCheck {
        let shard_capacity = cfg.capacity.div_ceil(cfg.shards);
        let filter_fp_rate = cfg.fp_rate / 2.0;
        // bloomfilter derives its two hash keys from the seed's halves: equal halves would make
        // both hashes the same and multiply the false-positive rate. The filter seed can be
        // fixed because the keys themselves are hashed under a secret per-process seed.
        let seed: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        let bloom = || Bloom::new_for_fp_rate_with_seed(shard_capacity, filter_fp_rate, &seed).expect("validated dedup capacity and rate");
        DedupCheck {
            shards: (0..cfg.shards).map(|_| Mutex::new(Shard { current: bloom(), previous: bloom(), epoch: 0, inserted: 0 })).collect(),
            window_ms: cfg.window_ms,
            shard_capacity,
            filter_fp_rate,
            seed: super::secret_seed(),
            action: cfg.action,
            shared_address_asns: {
                let mut asns = cfg.shared_address_asns.clone();
                asns.sort_unstable();
                asns.dedup();
                asns.into_boxed_slice()
            },
        }
    }

    /// Bytes held by the filters.
    pub fn bytes(&self) -> usize {
        self.shards.len() * 2 * Bloom::<u64>::compute_bitmap_size(self.shard_capacity, self.filter_fp_rate).max(1)
    }

    /// Records `key` at `now_ms`; true when it was (probably) seen within the window.
    pub fn seen(&self, key: u64, now_ms: u64) -> bool {
        let shard = &self.shards[(key >> 48) as usize & (self.shards.len() - 1)];
        let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = now_ms / self.window_ms;
        if epoch > s.epoch {
            if epoch == s.epoch + 1 {
                rotate(&mut s);
            } else {
                s.current.clear();
                s.previous.clear();
                s.inserted = 0;
            }
            s.epoch = epoch;
        }
        if s.previous.check(&key) {
            return true;
        }
        let dup = s.current.check_and_set(&key);
        if !dup {
            s.inserted += 1;
            if s.inserted >= self.shard_capacity {
                rotate(&mut s);
            }
        }
        dup
    }
}

fn rotate(s: &mut Shard) {
    std::mem::swap(&mut s.current, &mut s.previous);
    s.current.clear();
    s.inserted = 0;
}

impl Check for DedupCheck {
    fn run(&self, click: &Click<'_>, findings: &mut Findings) {
        // The geo stage, which runs before, has found the address's network.
        if findings.not_a_click || (findings.asn != 0 && self.shared_address_asns.binary_search(&findings.asn).is_ok()) {
            return;
        }
        if self.seen(dedup_key(self.seed, click.link_id, click.client.key, click.ua), click.now_ms) {
            findings.hit(Reason::Duplicate, self.action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::checks::ip_rules::client_key;

    fn dedup(window_ms: u64) -> DedupCheck {
        DedupCheck::new(&config::Dedup { window_ms, capacity: 10_000, shards: 4, ..config::Dedup::default() })
    }

    #[test]
    fn remembers_for_a_window_and_forgets_after_two() {
        let d = dedup(3_600_000);
        let k = dedup_key(d.seed, 1, client_key("192.0.2.1".parse().unwrap()), "Mozilla/5.0");
        let t = 3_600_000 * 100;
        assert!(!d.seen(k, t));
        assert!(d.seen(k, t + 1));
        assert!(d.seen(k, t + 3_600_000), "still seen in the next window");
        assert!(!d.seen(k, t + 3 * 3_600_000), "forgotten two windows later");
        assert!(!d.seen(dedup_key(d.seed, 2, client_key("192.0.2.1".parse().unwrap()), "Mozilla/5.0"), t), "another link is another click");
    }

    #[test]
    fn false_positive_rate_holds_at_design_capacity() {
        let d = DedupCheck::new(&config::Dedup { capacity: 200_000, shards: 4, ..config::Dedup::default() });
        let t = 3_600_000 * 100;
        let key = |i: u64| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes());
        // Fill the previous filters to capacity, then the current ones to just under it.
        for i in 0..200_000 {
            d.seen(key(i), t);
        }
        for i in 200_000..390_000 {
            d.seen(key(i), t + 3_600_000);
        }
        let fp = (1_000_000..1_100_000).filter(|i| d.seen(key(*i), t + 3_600_000)).count();
        // Configured 0.001; 100k probes give about 100 expected, with room for chance.
        assert!(fp < 160, "{fp} false positives in 100000 probes");
    }

    #[test]
    fn early_rotation_keeps_recent_keys() {
        let d = dedup(3_600_000);
        let t = 3_600_000 * 100;
        for i in 0..50_000u64 {
            d.seen(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()), t);
        }
        // The most recent keys survive rotation (they are in current or previous).
        let recent = xxhash_rust::xxh3::xxh3_64(&49_999u64.to_le_bytes());
        assert!(d.seen(recent, t));
    }
}
