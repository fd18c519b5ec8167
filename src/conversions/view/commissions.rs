//! Reading commissions for the API: the filtered list in a stable order, one commission with its
//! events, a partner's balances, stored rule versions and per-day report rows.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lifecycle::{Commission, CommissionStatus};
use crate::model::Currency;

/// Which commissions to list, and where the page starts. Every filter is an exact match.
#[derive(Debug, Clone, Default)]
pub struct CommissionFilter {
    pub partner: Option<String>,
    pub program: Option<String>,
    pub status: Option<CommissionStatus>,
    /// A period label, such as `2026-11`.
    pub period: Option<String>,
    pub conversion_id: Option<String>,
    pub payout_id: Option<String>,
    /// The page starts after this `(created_at_ms, rowid)`, exclusive: a page's `last`.
    pub after: Option<(i64, i64)>,
    pub limit: usize,
}

/// One page of commissions, in `(created_at_ms, rowid)` order: by creation time, and in the
/// order they were stored within a millisecond.
#[derive(Debug, Clone)]
pub struct CommissionPage {
    pub commissions: Vec<Commission>,
    /// True when at least one more commission matches after the last one here.
    pub more: bool,
    /// `(created_at_ms, rowid)` of the last commission here: where the next page starts.
    pub last: Option<(i64, i64)>,
}

/// Count and sums of commissions in one status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StatusTotals {
    pub count: u64,
    /// As created.
    pub amount_minor: i64,
    /// Created less voided less reversed.
    pub remaining_minor: i64,
}

/// A partner's money in one currency: the ledger's balances, and its commissions by status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrencyBalance {
    pub currency: Currency,
    /// Reserved and not yet approved: partner_pending's pending credits.
    pub pending_minor: i64,
    /// Owed to the partner: partner_payable's posted credits less debits. Negative after a
    /// clawback of paid commission: the partner owes it against future earnings.
    pub approved_minor: i64,
    /// Paid out: partner_paid's net posted.
    pub paid_minor: i64,
    /// Sent by a payout run and not yet paid or failed: partner_paid's pending credits. Still
    /// counted in `approved_minor` until the payout posts.
    pub in_transit_minor: i64,
    /// Every status, zero when none.
    pub commissions: BTreeMap<&'static str, StatusTotals>,
}

/// A partner's balances per currency, put together from its ledger accounts' rows and its
/// commissions' totals by status, as both readers read them.
#[derive(Default)]
pub struct BalanceSheet(BTreeMap<Currency, CurrencyBalance>);

impl BalanceSheet {
    fn currency(&mut self, currency: Currency) -> &mut CurrencyBalance {
        self.0.entry(currency).or_insert_with_key(|currency| CurrencyBalance {
            currency: *currency,
            pending_minor: 0,
            approved_minor: 0,
            paid_minor: 0,
            in_transit_minor: 0,
            commissions: CommissionStatus::ALL.iter().map(|s| (s.as_str(), StatusTotals::default())).collect(),
        })
    }

    /// One of the partner's accounts: its kind, currency, pending credits and net posted.
    pub fn account(&mut self, kind: &str, currency: Currency, credits_pending: i64, net_posted: i64) {
        let b = self.currency(currency);
        match kind {
            "partner_pending" => b.pending_minor = credits_pending,
            "partner_payable" => b.approved_minor = net_posted,
            _ => {
                b.paid_minor = net_posted;
                b.in_transit_minor = credits_pending;
            }
        }
    }

    /// The totals of the partner's commissions in one currency and status.
    pub fn status(&mut self, currency: Currency, status: &str, totals: StatusTotals) {
        if let Some(status) = CommissionStatus::parse(status) {
            self.currency(currency).commissions.insert(status.as_str(), totals);
        }
    }

    /// Currencies in order; empty when the partner has no money yet.
    pub fn into_balances(self) -> Vec<CurrencyBalance> {
        self.0.into_values().collect()
    }
}

/// One day's commissions in one currency and status, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCommissions {
    /// Days since the Unix epoch of the commission's creation (UTC).
    pub day: u32,
    pub currency: Currency,
    pub status: CommissionStatus,
    pub totals: StatusTotals,
}

/// The scope of a report.
#[derive(Debug, Clone, Copy)]
pub enum ReportScope<'a> {
    Partner(&'a str),
    Program(&'a str),
}

#[cfg(test)]
mod tests {

    /// The hand-written formatter agrees with `time`'s everywhere: at the ends of its range,
    /// around leap days and century years, outside its range (where it hands over), and at
    /// 100 000 times spread over the whole range.
    #[test]
    fn rfc3339_by_hand_agrees_with_time() {
        use super::super::{rfc3339, rfc3339_by_time};
        let day = 86_400_000;
        let mut cases = vec![0, 1, 999, 1000, day - 1, day, -1, -day - 1, i64::MIN, i64::MAX, 253_402_300_799_999, 253_402_300_800_000];
        for (y, m, d) in [(1972, 2, 29), (2000, 2, 29), (2000, 3, 1), (2100, 2, 28), (2100, 3, 1), (2400, 2, 29), (2026, 12, 31)] {
            let days = time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap().to_julian_day() - 2_440_588;
            cases.extend([i64::from(days) * day - 1, i64::from(days) * day, i64::from(days) * day + 12 * 3_600_000 + 34 * 60_000 + 56_789]);
        }
        cases.extend((0..100_000i64).map(|i| i * 2_534_023_007_993 % 253_402_300_800_000));
        for ms in cases {
            assert_eq!(rfc3339(ms), rfc3339_by_time(ms), "{ms}");
        }
        assert_eq!(rfc3339(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
    }
}
