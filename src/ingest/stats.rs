//! Daily click counters per partner and per program, for reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{DayClicks, StatsScope};
use crate::events::ClickEvent;
use crate::model::Reason;

/// Milliseconds in a UTC day.
pub const DAY_MS: u64 = 86_400_000;

type Days = BTreeMap<u32, DayClicks>;

/// Counters by scope and UTC day. Only days from `first_day` on are kept, so a restart (which
/// counts what is left in the log after retention) rebuilds exactly what was kept.
#[derive(Default)]
pub(super) struct DailyCounts {
    partners: HashMap<Arc<str>, Days, foldhash::fast::RandomState>,
    programs: HashMap<Arc<str>, Days, foldhash::fast::RandomState>,
    first_day: u32,
}

impl DailyCounts {
    /// Counts one written event.
    pub fn add(&mut self, ev: &ClickEvent) {
        let day = (ev.ts_ms / DAY_MS) as u32;
        if day < self.first_day {
            return;
        }
        let unique = !ev.reasons.contains(Reason::Duplicate);
        for (map, name) in [(&mut self.partners, &ev.partner), (&mut self.programs, &ev.program)] {
            let days = match map.get_mut(&**name) {
                Some(days) => days,
                None => map.entry(name.clone()).or_default(),
            };
            let d = days.entry(day).or_insert_with(|| DayClicks { day, ..DayClicks::default() });
            d.total += 1;
            d.unique += u64::from(unique);
            d.by_verdict[ev.verdict as usize] += 1;
            for r in ev.reasons.iter() {
                d.by_reason[r as usize] += 1;
            }
        }
    }

    /// Forgets the days before `first_day` and ignores them from now on.
    pub fn keep_from(&mut self, first_day: u32) {
        self.first_day = self.first_day.max(first_day);
        let first_day = self.first_day;
        for map in [&mut self.partners, &mut self.programs] {
            map.retain(|_, days| {
                *days = days.split_off(&first_day);
                !days.is_empty()
            });
        }
    }

    /// Days `from_day..=to_day` of a scope that had clicks, oldest first.
    pub fn get(&self, scope: StatsScope<'_>, from_day: u32, to_day: u32) -> Vec<DayClicks> {
        let (map, name) = match scope {
            StatsScope::Partner(p) => (&self.partners, p),
            StatsScope::Program(p) => (&self.programs, p),
        };
        match map.get(name) {
            Some(days) if from_day <= to_day => days.range(from_day..=to_day).map(|(_, d)| d.clone()).collect(),
            _ => Vec::new(),
        }
    }
}

/// The first UTC day whose clicks are all still inside retention at `now_ms`: segments
/// are deleted once their newest click is older than `now_ms - retention`, so any day that
/// starts before that horizon may have lost clicks.
pub(super) fn first_kept_day(now_ms: u64, retention_days: u32) -> u32 {
    let horizon_ms = now_ms.saturating_sub(u64::from(retention_days) * DAY_MS);
    horizon_ms.div_ceil(DAY_MS) as u32
}
