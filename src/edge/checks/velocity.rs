//! Stage 5: velocity per client (an IPv4 address or an IPv6 /64), per subnet (an IPv4 /24 or
//! an IPv6 /64), per (link, client) and per (link, subnet) over a sliding window, and each
//! link's rate against its own baseline.
//!
//! One count-min sketch of atomic counters holds the four address key spaces, and two small
//! ones each link's counts in the window and over its baseline window, so memory is fixed
//! whatever the traffic. Two window slots alternate (red/blue, as pingora-limits): the current
//! window counts, the previous one is weighted by how much of it still overlaps the sliding
//! window. Updates are conservative (only the minimal cells grow), which keeps the overestimate
//! small; counts are never underestimated within a window.
//!
//! The sketch is blocked: a key hashes to one 64-byte line holding both slots' counters, and
//! its `depth` counters are picked inside that line, so one key costs one cache miss instead
//! of `2 × depth`. Each slot of a line carries the window number it counts for and is reset
//! when first touched in a newer window: there is never a sweep over the whole sketch on the
//! request path.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::ip_rules::Client;
use super::{Check, Click, Findings, Reason};
use crate::config::{self, Action, Mode};

/// Counters per slot in a line (a prime, so a stride walk visits distinct counters).
const PER_SLOT: usize = 7;

/// One cache line: `[tag 0][tag 1][slot 0: 7 counters][slot 1: 7 counters]`. A tag is the
/// window number its slot counts for.
#[repr(C, align(64))]
struct Line([AtomicU32; 2 + 2 * PER_SLOT]);

/// A windowed, blocked count-min sketch.
pub struct WindowedSketch {
    window_ms: u64,
    depth: usize,
    mask: u64,
    lines: Box<[Line]>,
}

impl WindowedSketch {
    /// A sketch with about the memory of `depth` rows of `width` counters per slot
    /// (`depth` at most 7).
    pub fn new(window_ms: u64, width: usize, depth: usize) -> WindowedSketch {
        let depth = depth.clamp(1, PER_SLOT);
        let lines = (width * depth / 8).max(1).next_power_of_two();
        WindowedSketch {
            window_ms,
            depth,
            mask: lines as u64 - 1,
            // Tag u32::MAX means "never used" and matches no window.
            lines: (0..lines).map(|_| Line(std::array::from_fn(|i| AtomicU32::new(if i < 2 { u32::MAX } else { 0 })))).collect(),
        }
    }

    /// Bytes held by the counters.
    pub fn bytes(&self) -> usize {
        self.lines.len() * std::mem::size_of::<Line>()
    }

    /// The line of a key and the offsets of its counters within a slot: distinct, by a stride
    /// walk modulo a prime.
    fn cells(&self, h: u128) -> (&Line, impl Iterator<Item = usize>) {
        let line = &self.lines[(h as u64 & self.mask) as usize];
        let bits = (h >> 64) as u64;
        let start = (bits % PER_SLOT as u64) as usize;
        let stride = 1 + ((bits >> 8) % (PER_SLOT as u64 - 1)) as usize;
        (line, (0..self.depth).map(move |r| (start + r * stride) % PER_SLOT))
    }

    fn counter(line: &Line, slot: usize, offset: usize) -> &AtomicU32 {
        &line.0[2 + slot * PER_SLOT + offset]
    }

    /// Loads the line of key hash `h`, so that a later `add` finds it in cache.
    pub fn touch(&self, h: u128) {
        std::hint::black_box(self.lines[(h as u64 & self.mask) as usize].0[0].load(Ordering::Relaxed));
    }

    /// Counts one event for key hash `h` at `now_ms` and returns the sliding-window estimate.
    pub fn add(&self, h: u128, now_ms: u64) -> u32 {
        let epoch = now_ms / self.window_ms;
        let tag = epoch as u32;
        let s = (epoch & 1) as usize;
        let (line, _) = self.cells(h);
        let held = line.0[s].load(Ordering::Acquire);
        let mut current = 0;
        // A line last used in an older window starts this one from zero. A tag newer than
        // `tag` means this event is late for a recycled window: it is not counted.
        let fresh = held != tag && (held == u32::MAX || held < tag);
        if fresh {
            for c in &line.0[2 + s * PER_SLOT..2 + (s + 1) * PER_SLOT] {
                c.store(0, Ordering::Relaxed);
            }
            line.0[s].store(tag, Ordering::Release);
        }
        if fresh || held == tag {
            let (_, offsets) = self.cells(h);
            let min = offsets.map(|o| Self::counter(line, s, o).load(Ordering::Relaxed)).min().unwrap_or(0);
            let (_, offsets) = self.cells(h);
            for o in offsets {
                let c = Self::counter(line, s, o);
                if c.load(Ordering::Relaxed) == min {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
            current = min.saturating_add(1);
        }
        let p = 1 - s;
        let previous = if epoch > 0 && line.0[p].load(Ordering::Acquire) == tag.wrapping_sub(1) {
            let (_, offsets) = self.cells(h);
            offsets.map(|o| Self::counter(line, p, o).load(Ordering::Relaxed)).min().unwrap_or(0)
        } else {
            0
        };
        let overlap = self.window_ms - now_ms % self.window_ms;
        current.saturating_add((previous as u64 * overlap / self.window_ms) as u32)
    }
}

/// Hashes a tagged key under a per-process secret seed, so nobody can search offline for an
/// address that lands on a victim's counters.
fn key_hash(seed: u64, tag: u8, a: u128, b: u32) -> u128 {
    let mut buf = [0u8; 21];
    buf[0] = tag;
    buf[1..17].copy_from_slice(&a.to_le_bytes());
    buf[17..].copy_from_slice(&b.to_le_bytes());
    xxhash_rust::xxh3::xxh3_128_with_seed(&buf, seed)
}

/// The velocity stage.
pub struct VelocityCheck {
    sketch: WindowedSketch,
    /// Each link's clicks in the window and over `link_baseline_window_ms`, in two small
    /// sketches of their own: links are far fewer than addresses, so these stay in cache.
    links: Option<LinkRates>,
    seed: u64,
    window_ms: u64,
    ip_max: u32,
    subnet_max: u32,
    link_ip_max: u32,
    link_subnet_max: u32,
    link_subnet_mode: Mode,
    surge: Surge,
    /// The first click's time: a baseline is never longer than the time since then.
    started_ms: AtomicU64,
    action: Action,
}

struct LinkRates {
    window: WindowedSketch,
    baseline: WindowedSketch,
}

/// The `velocity_link` rule: a link's clicks in the window against its own baseline.
#[derive(Clone, Copy)]
struct Surge {
    mode: Mode,
    factor: f64,
    min: u32,
    baseline_ms: u64,
}

/// What one click counted: the sliding-window estimates, 0 for counters that are off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ip: u32,
    pub subnet: u32,
    pub link_ip: u32,
    pub link_subnet: u32,
    /// The link's clicks in the window, and over the baseline window.
    pub link: u32,
    pub link_baseline: u32,
}

impl VelocityCheck {
    /// Builds the stage with its fixed-size sketches.
    pub fn new(cfg: &config::Velocity) -> VelocityCheck {
        let surge = Surge {
            mode: cfg.link_surge_mode,
            factor: cfg.link_surge_factor,
            min: cfg.link_surge_min,
            baseline_ms: cfg.link_baseline_window_ms,
        };
        VelocityCheck {
            sketch: WindowedSketch::new(cfg.window_ms, cfg.sketch_width, cfg.sketch_depth),
            // A sixteenth of the main sketch's width each: room for about 16k busy links at the
            // default size. A collision adds another link's clicks to both counts alike.
            links: (surge.mode != Mode::Off).then(|| {
                let width = (cfg.sketch_width / 16).max(1024);
                LinkRates {
                    window: WindowedSketch::new(cfg.window_ms, width, cfg.sketch_depth),
                    baseline: WindowedSketch::new(surge.baseline_ms, width, cfg.sketch_depth),
                }
            }),
            seed: super::secret_seed(),
            window_ms: cfg.window_ms,
            ip_max: cfg.ip_max,
            subnet_max: cfg.subnet_max,
            link_ip_max: cfg.link_ip_max,
            link_subnet_max: cfg.link_subnet_max,
            link_subnet_mode: cfg.link_subnet_mode,
            surge,
            started_ms: AtomicU64::new(u64::MAX),
            action: cfg.action,
        }
    }

    /// Bytes held by the counters.
    pub fn bytes(&self) -> usize {
        self.sketch.bytes() + self.links.as_ref().map_or(0, |l| l.window.bytes() + l.baseline.bytes())
    }

    /// Counts a click under every key that is on.
    pub fn count(&self, client: Client, link_id: u32, now_ms: u64) -> Counts {
        let (k, subnet) = (client.key, u128::from(client.subnet));
        let hash = |on: bool, tag: u8, a: u128, b: u32| on.then(|| key_hash(self.seed, tag, a, b));
        let keys = [
            hash(self.ip_max > 0, b'i', k, 0),
            hash(self.subnet_max > 0, b's', subnet, 0),
            hash(self.link_ip_max > 0, b'l', k, link_id),
            hash(self.link_subnet_max > 0 && self.link_subnet_mode != Mode::Off, b'n', subnet, link_id),
        ];
        // Each key's line is most likely a cache miss: touching them all first lets the misses
        // overlap instead of queueing one behind the other's update.
        for h in keys.iter().flatten() {
            self.sketch.touch(*h);
        }
        let [ip, subnet, link_ip, link_subnet] = keys.map(|h| h.map_or(0, |h| self.sketch.add(h, now_ms)));
        let mut c = Counts { ip, subnet, link_ip, link_subnet, ..Counts::default() };
        if let Some(l) = &self.links {
            // Read first: the write happens once, so clicks on many threads share the line.
            if now_ms < self.started_ms.load(Ordering::Relaxed) {
                self.started_ms.fetch_min(now_ms, Ordering::Relaxed);
            }
            let h = key_hash(self.seed, b'k', 0, link_id);
            c.link = l.window.add(h, now_ms);
            c.link_baseline = l.baseline.add(h, now_ms);
        }
        c
    }

    /// Whether a link's count in the window is a surge over its own baseline: above the floor,
    /// and above `factor` times the baseline scaled to one window. The baseline window holds
    /// the surge too, so a surge that lasts raises its own bar; the floor keeps a new link's
    /// first clicks, which have no baseline yet, from firing it. After a start the baseline
    /// covers only the time since the first click (at least one window): a busy link is not a
    /// surge because the process is young.
    fn surging(&self, link: u32, baseline: u32, now_ms: u64) -> bool {
        let seen_ms = now_ms.saturating_sub(self.started_ms.load(Ordering::Relaxed)).clamp(self.window_ms, self.surge.baseline_ms);
        let per_window = f64::from(baseline) * self.window_ms as f64 / seen_ms as f64;
        link > self.surge.min && f64::from(link) > self.surge.factor * per_window
    }
}

impl Check for VelocityCheck {
    fn run(&self, click: &Click<'_>, findings: &mut Findings) {
        if findings.not_a_click {
            return;
        }
        let c = self.count(click.client, click.link_id, click.now_ms);
        if self.ip_max > 0 && c.ip > self.ip_max {
            findings.hit(Reason::VelocityIp, self.action);
        }
        if self.subnet_max > 0 && c.subnet > self.subnet_max {
            findings.hit(Reason::VelocitySubnet, self.action);
        }
        if self.link_ip_max > 0 && c.link_ip > self.link_ip_max {
            findings.hit(Reason::VelocityLinkIp, self.action);
        }
        if self.link_subnet_max > 0 && c.link_subnet > self.link_subnet_max {
            findings.hit_as(self.link_subnet_mode, Reason::VelocityLinkSubnet, self.action);
        }
        if self.links.is_some() && self.surging(c.link, c.link_baseline, click.now_ms) {
            findings.hit_as(self.surge.mode, Reason::VelocityLink, self.action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exactly_without_collisions_and_slides() {
        let s = WindowedSketch::new(60_000, 1 << 12, 4);
        let (a, b) = (key_hash(9, b'i', 1, 0), key_hash(9, b'i', 2, 0));
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
            s.add(key_hash(9, b'i', i, 0), t);
        }
        let hot = key_hash(9, b'i', 1 << 100, 0);
        let mut last = 0;
        for _ in 0..40 {
            last = s.add(hot, t);
        }
        assert!(last >= 40, "estimate {last} is below the true count 40");
    }
}
