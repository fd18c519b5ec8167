//! Daily click counters per partner, program, link and channel, for reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{ChannelFilter, DayClicks, StatsScope};
use crate::events::ClickEvent;
use crate::model::{Channel, Reason};

/// Milliseconds in a UTC day.
pub const DAY_MS: u64 = 86_400_000;

type Days = BTreeMap<u32, DayClicks>;

/// Counters by scope and UTC day. Only days from `first_day` on are kept, so a restart (which
/// counts what is left in the log after retention) rebuilds exactly what was kept.
///
/// A click counts in seven places: its partner, its program, its link, its channel, and its
/// channel within its program and within its partner. A link's days cost what a partner's do
/// (one `DayClicks`, about 200 bytes, per link and day with clicks).
#[derive(Default)]
pub(super) struct DailyCounts {
    partners: HashMap<Arc<str>, Days, foldhash::fast::RandomState>,
    programs: HashMap<Arc<str>, Days, foldhash::fast::RandomState>,
    links: HashMap<Arc<str>, Days, foldhash::fast::RandomState>,
    channels: [Days; Channel::ALL.len()],
    channel_programs: HashMap<(Channel, Arc<str>), Days, foldhash::fast::RandomState>,
    channel_partners: HashMap<(Channel, Arc<str>), Days, foldhash::fast::RandomState>,
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

/// The days of `name` in `map`, created on its first click (the name is cloned only then).
fn days_of<'m>(map: &'m mut HashMap<Arc<str>, Days, foldhash::fast::RandomState>, name: &Arc<str>) -> &'m mut Days {
    if !map.contains_key(&**name) {
        map.insert(name.clone(), Days::new());
    }
    map.get_mut(&**name).expect("inserted above")
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
        for (map, name) in [(&mut self.partners, &ev.partner), (&mut self.programs, &ev.program), (&mut self.links, &ev.link)] {
            bump(days_of(map, name), day, ev, unique);
        }
        bump(&mut self.channels[ev.channel as usize], day, ev, unique);
        for (map, name) in [(&mut self.channel_programs, &ev.program), (&mut self.channel_partners, &ev.partner)] {
            bump(map.entry((ev.channel, name.clone())).or_default(), day, ev, unique);
        }
    }

    /// Forgets the days before `first_day` and ignores them from now on.
    pub fn keep_from(&mut self, first_day: u32) {
        self.first_day = self.first_day.max(first_day);
        let first_day = self.first_day;
        for map in [&mut self.partners, &mut self.programs, &mut self.links] {
            map.retain(|_, days| trim(days, first_day));
        }
        for days in &mut self.channels {
            trim(days, first_day);
        }
        for map in [&mut self.channel_programs, &mut self.channel_partners] {
            map.retain(|_, days| trim(days, first_day));
        }
    }

    /// Days `from_day..=to_day` of a scope that had clicks, oldest first.
    pub fn get(&self, scope: StatsScope<'_>, from_day: u32, to_day: u32) -> Vec<DayClicks> {
        let days = match scope {
            StatsScope::Partner(p) => self.partners.get(p),
            StatsScope::Program(p) => self.programs.get(p),
            StatsScope::Link(l) => self.links.get(l),
            StatsScope::Channel(c, ChannelFilter::All) => Some(&self.channels[c as usize]),
            StatsScope::Channel(c, ChannelFilter::Program(p)) => self.channel_programs.get(&(c, Arc::from(p))),
            StatsScope::Channel(c, ChannelFilter::Partner(p)) => self.channel_partners.get(&(c, Arc::from(p))),
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
