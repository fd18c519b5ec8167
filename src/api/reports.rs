//! `GET /v1/reports/partners/{id}` and `GET /v1/reports/programs/{id}`: per UTC day, clicks by
//! verdict and reason, unique clicks, conversions, conversion rate and revenue.
//!
//! `?from=YYYY-MM-DD&to=YYYY-MM-DD` picks the days (default: the last 30 days through today; at
//! most 366). Clicks come from the core's daily counters, conversions from the conversion
//! tables. For a partner, revenue is the partner's attributed share; for a program, the whole
//! amount of every conversion, attributed or not.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::StatusCode;
use serde::Serialize;

use super::{json, read_blocking, ApiError, ApiResult, ApiState};
use crate::core::conversions::DayConversions;
use crate::core::ingest::{DayClicks, StatsScope};
use crate::edge::checks::{Reason, Verdict};

const DAYS_MAX: u32 = 366;

#[derive(Serialize, Default)]
struct Clicks {
    total: u64,
    unique: u64,
    by_verdict: BTreeMap<&'static str, u64>,
    by_reason: BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
struct Revenue {
    currency: String,
    revenue_minor: i64,
    refunded_minor: i64,
}

#[derive(Serialize)]
struct Day {
    date: String,
    clicks: Clicks,
    conversions: u64,
    cancelled: u64,
    /// Conversions per valid click; absent without valid clicks.
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_rate: Option<f64>,
    revenue: Vec<Revenue>,
}

fn day_of(s: &str, field: &str) -> Result<u32, ApiError> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &f).map_err(|_| ApiError::invalid(field, format!("{s:?} is not a date such as 2026-11-22")))?;
    let days = (d - time::Date::from_calendar_date(1970, time::Month::January, 1).expect("epoch")).whole_days();
    u32::try_from(days).map_err(|_| ApiError::invalid(field, "must be after 1970-01-01"))
}

fn date_of(day: u32) -> String {
    let d = time::Date::from_calendar_date(1970, time::Month::January, 1).expect("epoch") + time::Duration::days(day.into());
    let f = time::macros::format_description!("[year]-[month]-[day]");
    d.format(&f).unwrap_or_default()
}

fn clicks(c: &DayClicks) -> Clicks {
    Clicks {
        total: c.total,
        unique: c.unique,
        by_verdict: Verdict::ALL.iter().map(|v| (v.as_str(), c.by_verdict[*v as usize])).collect(),
        by_reason: Reason::ALL.iter().filter(|r| c.by_reason[**r as usize] > 0).map(|r| (r.as_str(), c.by_reason[*r as usize])).collect(),
    }
}

pub async fn handle(state: &Arc<ApiState>, kind: &str, id: &str, query: &str) -> ApiResult {
    let today = ((state.now_ms)() / 86_400_000) as u32;
    let mut from = today.saturating_sub(29);
    let mut to = today;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "from" => from = day_of(&v, "from")?,
            "to" => to = day_of(&v, "to")?,
            other => return Err(ApiError::bad_request(format!("{other}: unknown parameter; use from and to"))),
        }
    }
    if from > to {
        return Err(ApiError::invalid("from", "must not be after to"));
    }
    if to - from >= DAYS_MAX {
        return Err(ApiError::invalid("to", format!("a report spans at most {DAYS_MAX} days")));
    }
    let catalog = state.catalog.load();
    let partner = kind == "partners";
    let known = if partner { catalog.partner(id).is_some() } else { catalog.program(id).is_some() };
    if !known {
        return Err(ApiError::not_found(format!("{} {id:?} not found", if partner { "partner" } else { "program" })));
    }
    let scope = if partner { StatsScope::Partner(id) } else { StatsScope::Program(id) };
    let click_days = state.ingest.click_stats(scope, from, to);
    let reader = state.reader.clone();
    let key = id.to_string();
    let conv_days: Vec<DayConversions> =
        read_blocking("report", move || if partner { reader.partner_days(&key, from, to) } else { reader.program_days(&key, from, to) })
            .await?
            .map_err(crate::core::conversions::ConversionError::from)?;

    let mut days: BTreeMap<u32, Day> = BTreeMap::new();
    let blank = |day: u32| Day {
        date: date_of(day),
        clicks: Clicks::default(),
        conversions: 0,
        cancelled: 0,
        conversion_rate: None,
        revenue: vec![],
    };
    for c in &click_days {
        days.entry(c.day).or_insert_with(|| blank(c.day)).clicks = clicks(c);
    }
    for c in conv_days {
        let d = days.entry(c.day).or_insert_with(|| blank(c.day));
        d.conversions += c.conversions;
        d.cancelled += c.cancelled;
        d.revenue.push(Revenue { currency: c.currency, revenue_minor: c.revenue_minor, refunded_minor: c.refunded_minor });
    }
    let mut totals = Clicks::default();
    let (mut conversions, mut valid) = (0u64, 0u64);
    for d in days.values_mut() {
        let v = d.clicks.by_verdict.get("valid").copied().unwrap_or(0);
        d.conversion_rate = (v > 0).then(|| d.conversions as f64 / v as f64);
        totals.total += d.clicks.total;
        totals.unique += d.clicks.unique;
        for (k, n) in &d.clicks.by_verdict {
            *totals.by_verdict.entry(k).or_default() += n;
        }
        for (k, n) in &d.clicks.by_reason {
            *totals.by_reason.entry(k).or_default() += n;
        }
        conversions += d.conversions;
        valid += v;
    }
    let mut revenue: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in days.values().flat_map(|d| &d.revenue) {
        let e = revenue.entry(r.currency.clone()).or_default();
        e.0 += r.revenue_minor;
        e.1 += r.refunded_minor;
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            kind.trim_end_matches('s'): id,
            "from": date_of(from),
            "to": date_of(to),
            "days": days.into_values().collect::<Vec<_>>(),
            "totals": {
                "clicks": totals,
                "conversions": conversions,
                "conversion_rate": (valid > 0).then(|| conversions as f64 / valid as f64),
                "revenue": revenue.into_iter().map(|(currency, (r, f))| Revenue { currency, revenue_minor: r, refunded_minor: f }).collect::<Vec<_>>(),
            },
        }),
    ))
}
