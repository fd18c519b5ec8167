//! Stage 5: velocity per IP, per subnet and per (link, IP) over a sliding window.
//!
//! One count-min sketch of atomic counters holds all three key spaces, so memory is fixed
//! (`2 × depth × width × 4` bytes) whatever the traffic. Two window slots alternate (red/blue,
//! as pingora-limits): the current window counts, the previous one is weighted by how much of it
//! still overlaps the sliding window. Updates are conservative (only the minimal cells grow),
//! which keeps the overestimate small. Counts can only be overestimated, never under.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::ip_rules::ip_key;
use super::rate_limit::subnet_key;
use super::{Check, Click, Findings, Reason};
use crate::config::{self, Action};

/// A windowed count-min sketch.
pub struct WindowedSketch {
    window_ms: u64,
    depth: usize,
    mask: u64,
    width: usize,
    cells: [Box<[AtomicU32]>; 2],
    /// The window number each slot currently holds.
    epochs: [AtomicU64; 2],
}

impl WindowedSketch {
    /// A sketch of `depth` rows of `width` counters (a power of two) per slot.
    pub fn new(window_ms: u64, width: usize, depth: usize) -> WindowedSketch {
        let cells = || (0..width * depth).map(|_| AtomicU32::new(0)).collect::<Box<[_]>>();
        WindowedSketch {
            window_ms,
            depth,
            mask: width as u64 - 1,
            width,
            cells: [cells(), cells()],
            epochs: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        }
    }

    /// Bytes held by the counters.
    pub fn bytes(&self) -> usize {
        2 * self.width * self.depth * 4
    }

    fn index(&self, h: u128, row: usize) -> usize {
        let (h1, h2) = (h as u64, (h >> 64) as u64 | 1);
        row * self.width + (h1.wrapping_add((row as u64).wrapping_mul(h2)) & self.mask) as usize
    }

    /// Makes slot `s` hold window `epoch`, clearing it if it held an older one.
    fn claim(&self, s: usize, epoch: u64) -> bool {
        let held = self.epochs[s].load(Ordering::Acquire);
        if held == epoch {
            return true;
        }
        if held != u64::MAX && held > epoch {
            return false; // A late event for a window already recycled.
        }
        if self.epochs[s].compare_exchange(held, epoch, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            for c in self.cells[s].iter() {
                c.store(0, Ordering::Relaxed);
            }
        }
        true
    }

    fn estimate_slot(&self, s: usize, h: u128) -> u32 {
        (0..self.depth).map(|r| self.cells[s][self.index(h, r)].load(Ordering::Relaxed)).min().unwrap_or(0)
    }

    /// Counts one event for key hash `h` at `now_ms` and returns the sliding-window estimate.
    pub fn add(&self, h: u128, now_ms: u64) -> u32 {
        let epoch = now_ms / self.window_ms;
        let s = (epoch & 1) as usize;
        let mut current = 0;
        if self.claim(s, epoch) {
            let min = self.estimate_slot(s, h);
            for r in 0..self.depth {
                let cell = &self.cells[s][self.index(h, r)];
                if cell.load(Ordering::Relaxed) == min {
                    cell.fetch_add(1, Ordering::Relaxed);
                }
            }
            current = min.saturating_add(1);
        }
        let p = 1 - s;
        let previous = if epoch > 0 && self.epochs[p].load(Ordering::Acquire) == epoch - 1 { self.estimate_slot(p, h) } else { 0 };
        let overlap = self.window_ms - now_ms % self.window_ms;
        current.saturating_add((previous as u64 * overlap / self.window_ms) as u32)
    }
}

/// Hashes a tagged key.
fn key_hash(tag: u8, a: u128, b: u32) -> u128 {
    let mut buf = [0u8; 21];
    buf[0] = tag;
    buf[1..17].copy_from_slice(&a.to_le_bytes());
    buf[17..].copy_from_slice(&b.to_le_bytes());
    xxhash_rust::xxh3::xxh3_128(&buf)
}

/// The velocity stage.
pub struct VelocityCheck {
    sketch: WindowedSketch,
    ip_max: u32,
    subnet_max: u32,
    link_ip_max: u32,
    action: Action,
}

impl VelocityCheck {
    /// Builds the stage with its fixed-size sketch.
    pub fn new(cfg: &config::Velocity) -> VelocityCheck {
        VelocityCheck {
            sketch: WindowedSketch::new(cfg.window_ms, cfg.sketch_width, cfg.sketch_depth),
            ip_max: cfg.ip_max,
            subnet_max: cfg.subnet_max,
            link_ip_max: cfg.link_ip_max,
            action: cfg.action,
        }
    }

    /// Counts a click and returns the (ip, subnet, link+ip) estimates, 0 for counters that are off.
    pub fn count(&self, ip: IpAddr, link_id: u32, now_ms: u64) -> (u32, u32, u32) {
        let k = ip_key(ip);
        let ip_n = if self.ip_max > 0 { self.sketch.add(key_hash(b'i', k, 0), now_ms) } else { 0 };
        let subnet_n = if self.subnet_max > 0 { self.sketch.add(key_hash(b's', subnet_key(ip) as u128, 0), now_ms) } else { 0 };
        let link_n = if self.link_ip_max > 0 { self.sketch.add(key_hash(b'l', k, link_id), now_ms) } else { 0 };
        (ip_n, subnet_n, link_n)
    }
}

impl Check for VelocityCheck {
    fn run(&self, click: &Click<'_>, findings: &mut Findings) {
        if findings.not_a_click {
            return;
        }
        let (ip_n, subnet_n, link_n) = self.count(click.ip, click.link_id, click.now_ms);
        if self.ip_max > 0 && ip_n > self.ip_max {
            findings.hit(Reason::VelocityIp, self.action);
        }
        if self.subnet_max > 0 && subnet_n > self.subnet_max {
            findings.hit(Reason::VelocitySubnet, self.action);
        }
        if self.link_ip_max > 0 && link_n > self.link_ip_max {
            findings.hit(Reason::VelocityLinkIp, self.action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exactly_without_collisions_and_slides() {
        let s = WindowedSketch::new(60_000, 1 << 12, 4);
        let (a, b) = (key_hash(b'i', 1, 0), key_hash(b'i', 2, 0));
        let t0 = 60_000 * 1000;
        for i in 1..=50u32 {
            assert_eq!(s.add(a, t0 + i as u64), i);
        }
        assert_eq!(s.add(b, t0 + 100), 1);
        // Half-way into the next window, half of the previous window's 50 still counts.
        assert_eq!(s.add(a, t0 + 90_000), 1 + 25);
        // Two windows later nothing remains.
        assert_eq!(s.add(a, t0 + 240_000), 1);
    }

    #[test]
    fn never_underestimates_under_pressure() {
        let s = WindowedSketch::new(60_000, 1 << 10, 4);
        let t = 60_000 * 5;
        for i in 0..20_000u128 {
            s.add(key_hash(b'i', i, 0), t);
        }
        let hot = key_hash(b'i', 1 << 100, 0);
        let mut last = 0;
        for _ in 0..40 {
            last = s.add(hot, t);
        }
        assert!(last >= 40, "estimate {last} is below the true count 40");
    }
}
