//! What a grouped transaction keeps in memory of the tables that commit with the ledger, on
//! either backend: the partners' period states, what the group adds to partner and link days, and the
//! rule versions known stored. The lifecycle and the conversion jobs running in the group read
//! and write it; the backend's `flush` stores it before each savepoint's release and the
//! commit, and a rollback to a savepoint forgets it, so the rows are read anew.
//!
//! A group of a few hundred conversions touches each partner's period and day rows many times;
//! kept here, each is read once and written once per group instead of once per conversion.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::commission::PeriodState;
use crate::conversions::store::{LinkDayKey, PartnerDay};
use crate::lifecycle::PeriodRef;
use crate::model::Currency;

/// The grouped state of the tables beside the ledger.
#[derive(Default)]
pub(crate) struct GroupState {
    /// The partners' period states (`commission_periods`) the group read or changed, and
    /// whether changed.
    pub periods: HashMap<PeriodRef, (PeriodState, bool)>,
    /// What the group added to each (partner, day, currency) of `partner_days`, summed.
    pub days: BTreeMap<(String, i64, Currency), PartnerDay>,
    /// What the group added to each row of `link_days`, summed.
    pub link_days: BTreeMap<LinkDayKey, PartnerDay>,
    /// Rule versions known to be in `commission_rules`.
    pub rule_versions: HashSet<String>,
}

impl GroupState {
    /// Adds to a partner's day, summed until the flush.
    pub fn add_day(&mut self, partner: &str, day: i64, currency: Currency, d: PartnerDay) {
        self.days.entry((partner.to_string(), day, currency)).or_default().add(d);
    }

    /// Adds to a link's day, summed until the flush.
    pub fn add_link_day(&mut self, key: LinkDayKey, d: PartnerDay) {
        self.link_days.entry(key).or_default().add(d);
    }

    /// The period states changed since the last flush, now counted as written.
    pub fn take_changed_periods(&mut self) -> Vec<(PeriodRef, PeriodState)> {
        let mut out = Vec::new();
        for (key, (state, changed)) in self.periods.iter_mut().filter(|(_, (_, changed))| *changed) {
            out.push((key.clone(), *state));
            *changed = false;
        }
        out
    }
}
