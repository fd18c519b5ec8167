//! Stage 2: governor rate limits keyed by client (an IPv4 address or an IPv6 /64), by IPv4 /24
//! or IPv6 /64, and one global limit.
//!
//! Keyed state grows with every new key, so a timer calls `trim`, which drops keys whose
//! bucket has refilled (`retain_recent`) and gives the memory back (`shrink_to_fit`).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::clock::{set_now_ms, CallerClock};
use super::ip_rules::{client_key, Client};
use super::{Reason, Reasons};
use crate::config::{self, Mode};

/// foldhash (seeded per process) instead of SipHash: keys are hashed twice per click.
type Hasher = foldhash::fast::RandomState;
type Keyed<K> = RateLimiter<K, DashMapStateStore<K, Hasher>, CallerClock, NoOpMiddleware<Nanos>>;
type Direct = RateLimiter<NotKeyed, InMemoryState, CallerClock, NoOpMiddleware<Nanos>>;

/// The three limits.
pub struct RateLimits {
    mode: Mode,
    ip: Option<Keyed<u128>>,
    subnet: Option<Keyed<u64>>,
    global: Option<Direct>,
}

fn quota(per_s: u32, burst: u32) -> Option<Quota> {
    let per_s = NonZeroU32::new(per_s)?;
    Some(Quota::per_second(per_s).allow_burst(NonZeroU32::new(burst).unwrap_or(per_s)))
}

/// The /24 (IPv4) or /64 (IPv6) an address belongs to, as one key. IPv4 keys carry a tag in
/// the top bits that no global-unicast IPv6 /64 has.
pub fn subnet_key(ip: IpAddr) -> u64 {
    subnet_of(client_key(ip))
}

/// `subnet_key` from a `client_key` already computed.
pub fn subnet_of(k: u128) -> u64 {
    if k >> 32 == 0xffff {
        0xffff_0000_0000_0000 | ((k as u32) >> 8) as u64
    } else {
        (k >> 64) as u64
    }
}

impl RateLimits {
    /// Builds the limits; a `*_per_s` of 0 leaves that limit out.
    pub fn new(cfg: &config::RateLimit) -> RateLimits {
        // Governor takes its start instant from the clock at construction: make that the Unix
        // epoch, whatever time this thread last judged a click at.
        set_now_ms(0);
        let off = cfg.mode == Mode::Off;
        RateLimits {
            mode: cfg.mode,
            ip: quota(cfg.ip_per_s, cfg.ip_burst)
                .filter(|_| !off)
                .map(|q| RateLimiter::dashmap_with_clock_and_hasher(q, CallerClock, Hasher::default())),
            subnet: quota(cfg.subnet_per_s, cfg.subnet_burst)
                .filter(|_| !off)
                .map(|q| RateLimiter::dashmap_with_clock_and_hasher(q, CallerClock, Hasher::default())),
            global: quota(cfg.global_per_s, cfg.global_burst).filter(|_| !off).map(|q| RateLimiter::direct_with_clock(q, CallerClock)),
        }
    }

    /// `Err(retry_after_ms)` when any limit is exceeded in enforce mode.
    pub fn check(&self, client: Client, now_ms: u64, observed: &mut Reasons) -> Result<(), u64> {
        if self.mode == Mode::Off {
            return Ok(());
        }
        set_now_ms(now_ms);
        let now = Nanos::from(now_ms.saturating_mul(1_000_000));
        let wait = |d: std::time::Duration| d.as_millis().max(1) as u64;
        let result = (|| {
            if let Some(l) = &self.global {
                l.check().map_err(|n| wait(n.wait_time_from(now)))?;
            }
            if let Some(l) = &self.subnet {
                l.check_key(&client.subnet).map_err(|n| wait(n.wait_time_from(now)))?;
            }
            if let Some(l) = &self.ip {
                l.check_key(&client.key).map_err(|n| wait(n.wait_time_from(now)))?;
            }
            Ok(())
        })();
        match (result, self.mode) {
            (Err(_), Mode::Observe) => {
                observed.insert(Reason::RateLimited);
                Ok(())
            }
            (r, _) => r,
        }
    }

    /// Drops keys whose buckets have refilled by `now_ms` and releases their memory.
    pub fn trim(&self, now_ms: u64) {
        set_now_ms(now_ms);
        if let Some(l) = &self.ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.subnet {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// (IP keys, subnet keys) currently held.
    pub fn key_counts(&self) -> (usize, usize) {
        (self.ip.as_ref().map_or(0, |l| l.len()), self.subnet.as_ref().map_or(0, |l| l.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ip_per_s: u32, ip_burst: u32) -> RateLimits {
        RateLimits::new(&config::RateLimit { ip_per_s, ip_burst, subnet_per_s: 0, global_per_s: 0, ..config::RateLimit::default() })
    }

    #[test]
    fn burst_then_limited_with_retry_after() {
        let l = limits(1, 3);
        let ip = Client::of("198.51.100.1".parse().unwrap());
        let mut obs = Reasons::default();
        let t = 1_700_000_000_000;
        for _ in 0..3 {
            assert_eq!(l.check(ip, t, &mut obs), Ok(()));
        }
        let wait = l.check(ip, t, &mut obs).unwrap_err();
        assert!((1..=1000).contains(&wait), "retry after {wait} ms");
        // Another address is unaffected; after the wait the first is allowed again.
        assert_eq!(l.check(Client::of("198.51.100.2".parse().unwrap()), t, &mut obs), Ok(()));
        assert_eq!(l.check(ip, t + wait, &mut obs), Ok(()));
    }

    #[test]
    fn trim_forgets_refilled_keys() {
        let l = limits(10, 10);
        let mut obs = Reasons::default();
        let t = 1_700_000_000_000;
        for i in 0..1000u32 {
            l.check(Client::of(IpAddr::from(i.to_be_bytes())), t, &mut obs).unwrap();
        }
        assert_eq!(l.key_counts().0, 1000);
        l.trim(t + 10);
        assert_eq!(l.key_counts().0, 1000, "buckets not yet refilled");
        l.trim(t + 2_000);
        assert_eq!(l.key_counts().0, 0);
    }

    #[test]
    fn observe_mode_counts_without_refusing() {
        let l = RateLimits::new(&config::RateLimit { mode: Mode::Observe, ip_per_s: 1, ip_burst: 1, ..config::RateLimit::default() });
        let ip = Client::of("198.51.100.1".parse().unwrap());
        let mut obs = Reasons::default();
        l.check(ip, 1, &mut obs).unwrap();
        assert_eq!(l.check(ip, 1, &mut obs), Ok(()));
        assert!(obs.contains(Reason::RateLimited));
    }

    #[test]
    fn subnet_keys_group_addresses() {
        let k = |s: &str| subnet_key(s.parse().unwrap());
        assert_eq!(k("192.0.2.1"), k("192.0.2.254"));
        assert_ne!(k("192.0.2.1"), k("192.0.3.1"));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::1"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
    }
}
