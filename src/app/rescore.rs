//! The replay behind `clickgate rescore`: the click log read beside a running core and judged
//! again by a new pipeline, with the clock at each click's own time.
//!
//! The replay starts with empty counters and filters. So that the first clicks of the window
//! meet the state the edge had, the clicks of the warm-up before `since` (the longest window
//! of the new rules) are judged too, and only counted into the state.
//!
//! What a logged click gives the pipeline:
//! - the agent, kept in events since they carry it (`ClickEvent::ua`); a click logged before is
//!   kept as logged, since the bot rules cannot see it;
//! - the address as the privacy setting kept it, and the client by its tag when the address is
//!   truncated, so per-client rules count each client apart as the edge did. Address rules
//!   (CIDR lists, geography, networks) see the truncated address: for IPv4 its /24, which is
//!   where those rules draw their lines. With `privacy.ip = "hash"` no address is kept, and
//!   those rules see none (`Replay::without_address` counts such clicks);
//! - the link by its code in today's catalog, for its id and its program's rules, whatever
//!   its state now; a click whose link is gone is kept as logged.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::click_log::{ReadReport, SegmentLog};
use crate::config::Checks;
use crate::edge::checks::{Client, Pipeline};
use crate::edge::links::LinkTable;
use crate::edge::rejudge;
use crate::fraud::rescore::{Flips, Tally};

/// The clicks to judge: `since_ms..until_ms`, after a warm-up of `warmup_ms` before.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub since_ms: u64,
    pub until_ms: u64,
    pub warmup_ms: u64,
}

impl Window {
    /// The warm-up the new rules need: their longest window.
    pub fn warmup_for(checks: &Checks) -> u64 {
        checks.velocity.window_ms.max(checks.velocity.link_baseline_window_ms).max(checks.dedup.window_ms)
    }
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replay {
    pub tally: Tally,
    pub flips: Flips,
    pub read: ReadReport,
    /// Clicks of the warm-up, judged only to fill the state.
    pub warmup: u64,
    /// Clicks in the window with no address kept (`privacy.ip = "hash"`).
    pub without_address: u64,
}

/// Replays the log in `log_dir` through `pipeline`, links from `table`.
pub fn replay(pipeline: &Pipeline, table: &LinkTable, log_dir: &Path, window: Window) -> std::io::Result<Replay> {
    let mut out = Replay::default();
    let start = window.since_ms.saturating_sub(window.warmup_ms);
    let empty_ua = xxhash_rust::xxh3::xxh3_64(b"");
    // The log is in the order the core wrote it, which is close to the clicks' order; the
    // replay's clock, like the edge's, never runs backwards.
    let mut clock_ms = 0;
    out.read = SegmentLog::read(log_dir, |ev| {
        if ev.ts_ms < start || ev.ts_ms >= window.until_ms {
            return;
        }
        let counted = ev.ts_ms >= window.since_ms;
        let ua = match (&ev.ua, ev.ua_hash == empty_ua) {
            (Some(ua), _) => Some(&**ua),
            (None, true) => Some(""),
            (None, false) => None,
        };
        let link = table.get(&ev.link);
        let (Some(ua), Some(link)) = (ua, link) else {
            if counted {
                out.tally.keep(ev.verdict);
            }
            return;
        };
        let ip = ev.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let client = match ev.client_tag {
            Some(tag) => Client::tagged(tag, ev.ip),
            None => Client::of(ip),
        };
        clock_ms = clock_ms.max(ev.ts_ms);
        let (verdict, reasons) = rejudge(pipeline, &link, ip, client, ua, clock_ms);
        if !counted {
            out.warmup += 1;
            return;
        }
        out.without_address += u64::from(ev.ip.is_none());
        if let Some(now_valid) = out.tally.add((ev.verdict, ev.reasons), (verdict, reasons)) {
            out.flips.insert(ev.click_id, now_valid);
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;
