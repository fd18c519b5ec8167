//! Daily click counters per partner, program, link and channel, for reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{ChannelFilter, DayClicks, StatsScope};
use crate::events::ClickEvent;
use crate::model::{Channel, Reason};

/// Milliseconds in a UTC day.
pub const DAY_MS: u64 = 86_400_000;

type Days = BTreeMap<u32, DayClicks>;
type Named = HashMap<Arc<str>, Days, foldhash::fast::RandomState>;

/// Counters by scope and UTC day. Only days from `first_day` on are kept, so a restart (which
/// counts what is left in the log after retention) rebuilds exactly what was kept.
///
/// A click counts in seven places: its partner, its program, its link, its channel, and its
/// channel within its program and within its partner. A link's days cost what a partner's do
/// (one `DayClicks`, about 200 bytes, per link and day with clicks).
#[derive(Default)]
pub(super) struct DailyCounts {
    partners: Named,
    programs: Named,
    links: Named,
    channels: [Days; Channel::ALL.len()],
    /// By channel (`Channel as usize`), then program or partner.
    channel_programs: [Named; Channel::ALL.len()],
    channel_partners: [Named; Channel::ALL.len()],
    first_day: u32,
}

/// Adds one click to its day of `days`.
fn bump(days: &mut Days, day: u32, ev: &ClickEvent, unique: bool) {
    let d = days.entry(day).or_insert_with(|| DayClicks { day, ..DayClicks::default() });
    d.total += 1;
    d.unique += u64::from(unique);
    d.by_verdict[ev.verdict as usize] += 1;
    for r in ev.reasons.iter() {
        d.by_reason[r as usize] += 1;
    }
}

/// Keeps the days from `first_day` on and says whether any are left.
fn trim(days: &mut Days, first_day: u32) -> bool {
    *days = days.split_off(&first_day);
    !days.is_empty()
}

fn range(days: Option<&Days>, from_day: u32, to_day: u32) -> Vec<DayClicks> {
    match days {
        Some(days) if from_day <= to_day => days.range(from_day..=to_day).map(|(_, d)| d.clone()).collect(),
        _ => Vec::new(),
    }
}

impl DailyCounts {
    /// Counts one written event.
    pub fn add(&mut self, ev: &ClickEvent) {
        let day = (ev.ts_ms / DAY_MS) as u32;
        if day < self.first_day {
            return;
        }
        let unique = !ev.reasons.contains(Reason::Duplicate);
        let c = ev.channel as usize;
        for (map, name) in [
            (&mut self.partners, &ev.partner),
            (&mut self.programs, &ev.program),
            (&mut self.links, &ev.link),
            (&mut self.channel_programs[c], &ev.program),
            (&mut self.channel_partners[c], &ev.partner),
        ] {
            // One look-up when the name has days already; the name is cloned only when new.
            let days = match map.get_mut(&**name) {
                Some(days) => days,
                None => map.entry(name.clone()).or_default(),
            };
            bump(days, day, ev, unique);
        }
        bump(&mut self.channels[c], day, ev, unique);
    }

    /// Forgets the days before `first_day` and ignores them from now on.
    pub fn keep_from(&mut self, first_day: u32) {
        self.first_day = self.first_day.max(first_day);
        let first_day = self.first_day;
        let named = [&mut self.partners, &mut self.programs, &mut self.links].into_iter();
        for map in named.chain(&mut self.channel_programs).chain(&mut self.channel_partners) {
            map.retain(|_, days| trim(days, first_day));
        }
        for days in &mut self.channels {
            trim(days, first_day);
        }
    }

    /// Days `from_day..=to_day` of a scope that had clicks, oldest first.
    pub fn get(&self, scope: StatsScope<'_>, from_day: u32, to_day: u32) -> Vec<DayClicks> {
        let days = match scope {
            StatsScope::Partner(p) => self.partners.get(p),
            StatsScope::Program(p) => self.programs.get(p),
            StatsScope::Link(l) => self.links.get(l),
            StatsScope::Channel(c, ChannelFilter::All) => Some(&self.channels[c as usize]),
            StatsScope::Channel(c, ChannelFilter::Program(p)) => self.channel_programs[c as usize].get(p),
            StatsScope::Channel(c, ChannelFilter::Partner(p)) => self.channel_partners[c as usize].get(p),
        };
        range(days, from_day, to_day)
    }
}

/// The first UTC day whose clicks are all still inside retention at `now_ms`: segments
/// are deleted once their newest click is older than `now_ms - retention`, so any day that
/// starts before that horizon may have lost clicks.
pub(super) fn first_kept_day(now_ms: u64, retention_days: u32) -> u32 {
    let horizon_ms = now_ms.saturating_sub(u64::from(retention_days) * DAY_MS);
    horizon_ms.div_ceil(DAY_MS) as u32
}
