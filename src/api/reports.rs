//! `GET /v1/reports/partners/{id}`, `GET /v1/reports/programs/{id}`, `GET /v1/reports/links/{code}`
//! and `GET /v1/reports/channels/{channel}`: per UTC day, clicks by verdict and reason, unique
//! clicks, conversions, conversion rate and revenue; for a partner or a program, commissions by
//! status and EPC too.
//!
//! A link's or a channel's conversions are those credited through its links (`link_days`): a
//! conversion counts once for each link whose counted touches carry a share of it, and its
//! revenue is that share. A sale credited by coupon has no link and counts in neither.
//! Commissions are a partner's, per conversion, not a link's, so these two reports carry none
//! and no EPC. A channel's report covers every program, or one (`?program=`), or one partner
//! (`?partner=`; a partner key's report is always its own).
//!
//! `?from=YYYY-MM-DD&to=YYYY-MM-DD` picks the days (default: the last 30 days through today; at
//! most 366). Clicks come from the core's daily counters, conversions from the conversion
//! tables. For a partner, revenue is the partner's attributed share; for a program, the whole
//! amount of every conversion, attributed or not.
//!
//! Commissions count on the UTC day they were created, per currency and status: how many, what
//! they were created at (`amount_minor`) and what is left of them (`remaining_minor`). EPC,
//! earnings per valid click, is the remaining amount of the commissions that still stand (not
//! voided or reversed) over the valid clicks of the same days, per currency; absent without
//! valid clicks.
//!
//! As CSV (`Accept: text/csv`, or `?format=csv`, which wins): one row per figure, in long form,
//! `date,measure,key,currency,value`, the days first and then `total`, so every figure has one
//! place and a spreadsheet's pivot table puts it back together. `measure` is `clicks`,
//! `unique_clicks`, `clicks_by_verdict` and `clicks_by_reason` (`key` the verdict or reason),
//! `conversions`, `cancelled`, `conversion_rate`, `revenue_minor` and `refunded_minor` (per
//! `currency`), `commissions_count`, `commissions_amount_minor` and
//! `commissions_remaining_minor` (`key` the status, per `currency`), and `epc_minor`.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::StatusCode;
use serde::Serialize;

use super::{json, read_blocking, ApiError, ApiResult, ApiState};
use crate::conversions::view::{DayCommissions, LinkDaysScope, ReportScope, StatusTotals};
use crate::conversions::DayConversions;
use crate::ingest::{ChannelFilter, DayClicks, StatsScope};
use crate::lifecycle::CommissionStatus;
use crate::model::{Channel, Currency, Reason, Verdict};

const DAYS_MAX: u32 = 366;

#[derive(Serialize, Default, utoipa::ToSchema)]
#[schema(as = ReportClicks)]
pub(super) struct Clicks {
    total: u64,
    unique: u64,
    #[schema(value_type = BTreeMap<String, u64>)]
    by_verdict: BTreeMap<&'static str, u64>,
    #[schema(value_type = BTreeMap<String, u64>)]
    by_reason: BTreeMap<&'static str, u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReportRevenue)]
pub(super) struct Revenue {
    #[schema(value_type = String)]
    currency: Currency,
    revenue_minor: i64,
    refunded_minor: i64,
}

/// Commissions in one currency and status.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReportCommissions)]
pub(super) struct Commissions {
    #[schema(value_type = String)]
    currency: Currency,
    #[schema(value_type = String)]
    status: CommissionStatus,
    #[serde(flatten)]
    totals: StatusTotals,
}

/// Earnings per valid click in one currency.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReportEpc)]
pub(super) struct Epc {
    #[schema(value_type = String)]
    currency: Currency,
    /// The remaining amount of commissions not voided or reversed.
    earnings_minor: i64,
    valid_clicks: u64,
    /// `earnings_minor / valid_clicks`.
    epc_minor: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReportDay)]
pub(super) struct Day {
    date: String,
    clicks: Clicks,
    conversions: u64,
    cancelled: u64,
    /// Conversions per valid click; absent without valid clicks.
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_rate: Option<f64>,
    revenue: Vec<Revenue>,
    /// By currency, then status in lifecycle order; absent from a link's or a channel's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    commissions: Option<Vec<Commissions>>,
    /// Absent without valid clicks.
    #[serde(skip_serializing_if = "Option::is_none")]
    epc: Option<Vec<Epc>>,
}

/// Commission totals keyed by currency and the status's place in `CommissionStatus::ALL`, so
/// they come out in lifecycle order.
type ByStatus = BTreeMap<(Currency, usize), StatusTotals>;

fn status_key(currency: Currency, status: CommissionStatus) -> (Currency, usize) {
    (currency, CommissionStatus::ALL.iter().position(|s| *s == status).unwrap_or(0))
}

/// The rows of one day or of the totals, by currency then status in lifecycle order.
fn commission_rows(rows: ByStatus) -> Vec<Commissions> {
    rows.into_iter().map(|((currency, i), totals)| Commissions { currency, status: CommissionStatus::ALL[i], totals }).collect()
}

/// EPC per currency of `rows` over `valid` clicks; `None` without valid clicks.
fn epc(rows: &[Commissions], valid: u64) -> Option<Vec<Epc>> {
    if valid == 0 {
        return None;
    }
    let mut earnings: BTreeMap<Currency, i64> = BTreeMap::new();
    for c in rows.iter().filter(|c| !matches!(c.status, CommissionStatus::Voided | CommissionStatus::Reversed)) {
        *earnings.entry(c.currency).or_default() += c.totals.remaining_minor;
    }
    Some(
        earnings
            .into_iter()
            .map(|(currency, e)| Epc { currency, earnings_minor: e, valid_clicks: valid, epc_minor: e as f64 / valid as f64 })
            .collect(),
    )
}

fn add(into: &mut StatusTotals, t: &StatusTotals) {
    into.count += t.count;
    into.amount_minor += t.amount_minor;
    into.remaining_minor += t.remaining_minor;
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

/// Whether an `Accept` header asks for CSV before JSON: `text/csv` listed, and listed before
/// any JSON type.
pub fn wants_csv(accept: &str) -> bool {
    let types: Vec<&str> = accept.split(',').map(|t| t.split(';').next().unwrap_or("").trim()).collect();
    let csv = types.iter().position(|t| t.eq_ignore_ascii_case("text/csv"));
    let json = types.iter().position(|t| t.eq_ignore_ascii_case("application/json"));
    matches!((csv, json), (Some(c), j) if j.is_none_or(|j| c < j))
}

/// What the store's read of a subject is, without its borrowed ids: the read runs on a thread
/// of its own, with the ids copied.
#[derive(Debug, Clone, Copy)]
enum Read {
    Partner,
    Program,
    Link,
    Channel(Channel),
    ChannelOfProgram(Channel),
    ChannelOfPartner(Channel),
}

impl Read {
    fn of(subject: StatsScope<'_>) -> Read {
        match subject {
            StatsScope::Partner(_) => Read::Partner,
            StatsScope::Program(_) => Read::Program,
            StatsScope::Link(_) => Read::Link,
            StatsScope::Channel(c, ChannelFilter::All) => Read::Channel(c),
            StatsScope::Channel(c, ChannelFilter::Program(_)) => Read::ChannelOfProgram(c),
            StatsScope::Channel(c, ChannelFilter::Partner(_)) => Read::ChannelOfPartner(c),
        }
    }
}

/// Answers `GET /v1/reports/{kind}/{id}`; `kind` is `partners`, `programs`, `links` or
/// `channels`.
pub async fn handle(state: &Arc<ApiState>, kind: &str, id: &str, query: &str, accept_csv: bool) -> ApiResult {
    let today = ((state.now_ms)() / 86_400_000) as u32;
    let mut from = today.saturating_sub(29);
    let mut to = today;
    let mut as_csv = accept_csv;
    let (mut program_filter, mut partner_filter) = (None, None);
    let channels = kind == "channels";
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    for (k, v) in &params {
        match k.as_str() {
            "from" => from = day_of(v, "from")?,
            "to" => to = day_of(v, "to")?,
            "format" => {
                as_csv = match v.as_str() {
                    "csv" => true,
                    "json" => false,
                    _ => return Err(ApiError::invalid("format", "must be json or csv")),
                }
            }
            "program" if channels => program_filter = Some(v.as_str()),
            "partner" if channels => partner_filter = Some(v.as_str()),
            other if channels => {
                return Err(ApiError::bad_request(format!("{other}: unknown parameter; use from, to, format, and program or partner")))
            }
            other => return Err(ApiError::bad_request(format!("{other}: unknown parameter; use from, to and format"))),
        }
    }
    if from > to {
        return Err(ApiError::invalid("from", "must not be after to"));
    }
    if to - from >= DAYS_MAX {
        return Err(ApiError::invalid("to", format!("a report spans at most {DAYS_MAX} days")));
    }
    let subject = subject(state, kind, id, program_filter, partner_filter).await?;
    let click_days = state.ingest.click_stats(subject, from, to);
    let (reader, read) = (state.reader.clone(), Read::of(subject));
    let (key, filter) = (id.to_string(), program_filter.or(partner_filter).unwrap_or("").to_string());
    let (conv_days, commission_days): (Vec<DayConversions>, Option<Vec<DayCommissions>>) = read_blocking("report", move || {
        let links = |scope| reader.link_days(scope, from, to);
        Ok::<_, crate::conversions::ConversionError>(match read {
            Read::Partner => (reader.partner_days(&key, from, to)?, Some(reader.commission_days(ReportScope::Partner(&key), from, to)?)),
            Read::Program => (reader.program_days(&key, from, to)?, Some(reader.commission_days(ReportScope::Program(&key), from, to)?)),
            Read::Link => (links(LinkDaysScope::Link(&key))?, None),
            Read::Channel(c) => (links(LinkDaysScope::Channel(c))?, None),
            Read::ChannelOfProgram(c) => (links(LinkDaysScope::ChannelOfProgram(c, &filter))?, None),
            Read::ChannelOfPartner(c) => (links(LinkDaysScope::ChannelOfPartner(c, &filter))?, None),
        })
    })
    .await??;
    let with_commissions = commission_days.is_some();
    let commission_days = commission_days.unwrap_or_default();

    let mut days: BTreeMap<u32, Day> = BTreeMap::new();
    let blank = |day: u32| Day {
        date: date_of(day),
        clicks: Clicks::default(),
        conversions: 0,
        cancelled: 0,
        conversion_rate: None,
        revenue: vec![],
        commissions: with_commissions.then(Vec::new),
        epc: None,
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
    let mut day_commissions: BTreeMap<u32, ByStatus> = BTreeMap::new();
    let mut total_commissions = ByStatus::new();
    for c in commission_days {
        days.entry(c.day).or_insert_with(|| blank(c.day));
        add(day_commissions.entry(c.day).or_default().entry(status_key(c.currency, c.status)).or_default(), &c.totals);
        add(total_commissions.entry(status_key(c.currency, c.status)).or_default(), &c.totals);
    }
    for (day, rows) in day_commissions {
        if let Some(d) = days.get_mut(&day) {
            d.commissions = Some(commission_rows(rows));
        }
    }
    let mut totals = Clicks::default();
    let (mut conversions, mut valid) = (0u64, 0u64);
    for d in days.values_mut() {
        let v = d.clicks.by_verdict.get("valid").copied().unwrap_or(0);
        d.conversion_rate = (v > 0).then(|| d.conversions as f64 / v as f64);
        d.epc = d.commissions.as_deref().and_then(|c| epc(c, v));
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
    let mut revenue: BTreeMap<Currency, (i64, i64)> = BTreeMap::new();
    for r in days.values().flat_map(|d| &d.revenue) {
        let e = revenue.entry(r.currency).or_default();
        e.0 += r.revenue_minor;
        e.1 += r.refunded_minor;
    }
    let mut body = serde_json::json!({
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
    });
    if with_commissions {
        let total_commissions = commission_rows(total_commissions);
        if let Some(e) = epc(&total_commissions, valid) {
            body["totals"]["epc"] = serde_json::json!(e);
        }
        body["totals"]["commissions"] = serde_json::json!(total_commissions);
    }
    if let StatsScope::Channel(_, filter) = subject {
        match filter {
            ChannelFilter::All => {}
            ChannelFilter::Program(p) => body["program"] = serde_json::json!(p),
            ChannelFilter::Partner(p) => body["partner"] = serde_json::json!(p),
        }
    }
    if as_csv {
        return csv_answer(&body, &format!("{}-{id}.csv", kind.trim_end_matches('s')));
    }
    Ok(json(StatusCode::OK, &body))
}

/// The scope a report's path names (its subject), once it is known to exist: an unknown one is `404`.
async fn subject<'a>(
    state: &Arc<ApiState>,
    kind: &str,
    id: &'a str,
    program: Option<&'a str>,
    partner: Option<&'a str>,
) -> Result<StatsScope<'a>, ApiError> {
    let missing = |what: &str, id: &str| ApiError::not_found(format!("{what} {id:?} not found"));
    let catalog = || state.catalog.load();
    match kind {
        "partners" => catalog().partner(id).map(|_| StatsScope::Partner(id)).ok_or_else(|| missing("partner", id)),
        "programs" => catalog().program(id).map(|_| StatsScope::Program(id)).ok_or_else(|| missing("program", id)),
        "links" => {
            let (st, code) = (state.clone(), id.to_string());
            let found = read_blocking("link", move || {
                let store = st.store.lock().unwrap_or_else(|e| e.into_inner());
                store.link(&code)
            })
            .await?
            .map_err(|e| ApiError::internal(format!("reading the link: {e}")))?;
            found.map(|_| StatsScope::Link(id)).ok_or_else(|| missing("link", id))
        }
        _ => {
            let channel = Channel::parse(id).ok_or_else(|| {
                let known: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
                ApiError::not_found(format!("channel {id:?} not found; the channels are {}", known.join(", ")))
            })?;
            let filter = match (program, partner) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::invalid("program", "a channel's report is of one program or one partner, not both"))
                }
                (Some(p), None) => {
                    catalog().program(p).ok_or_else(|| missing("program", p))?;
                    ChannelFilter::Program(p)
                }
                (None, Some(p)) => {
                    catalog().partner(p).ok_or_else(|| missing("partner", p))?;
                    ChannelFilter::Partner(p)
                }
                (None, None) => ChannelFilter::All,
            };
            Ok(StatsScope::Channel(channel, filter))
        }
    }
}

/// The report as long-form CSV (see the module docs), read off its JSON so both say the same.
fn csv_answer(body: &serde_json::Value, filename: &str) -> ApiResult {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| ApiError::internal(format!("writing the CSV report: {e}"));
    w.write_record(["date", "measure", "key", "currency", "value"]).map_err(fail)?;
    let empty = Vec::new();
    let days = body["days"].as_array().unwrap_or(&empty);
    let rows = days.iter().map(|d| (d["date"].as_str().unwrap_or(""), d)).chain(std::iter::once(("total", &body["totals"])));
    for (date, d) in rows {
        let mut row = |measure: &str, key: &str, currency: &str, value: &serde_json::Value| {
            let value = match value {
                serde_json::Value::Null => return Ok(()),
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            w.write_record([date, measure, key, currency, &value])
        };
        let clicks = &d["clicks"];
        row("clicks", "", "", &clicks["total"]).map_err(fail)?;
        row("unique_clicks", "", "", &clicks["unique"]).map_err(fail)?;
        for (measure, field) in [("clicks_by_verdict", "by_verdict"), ("clicks_by_reason", "by_reason")] {
            for (k, n) in clicks[field].as_object().into_iter().flatten() {
                row(measure, k, "", n).map_err(fail)?;
            }
        }
        row("conversions", "", "", &d["conversions"]).map_err(fail)?;
        row("cancelled", "", "", &d["cancelled"]).map_err(fail)?;
        row("conversion_rate", "", "", &d["conversion_rate"]).map_err(fail)?;
        for r in d["revenue"].as_array().into_iter().flatten() {
            let currency = r["currency"].as_str().unwrap_or("");
            row("revenue_minor", "", currency, &r["revenue_minor"]).map_err(fail)?;
            row("refunded_minor", "", currency, &r["refunded_minor"]).map_err(fail)?;
        }
        for c in d["commissions"].as_array().into_iter().flatten() {
            let (currency, status) = (c["currency"].as_str().unwrap_or(""), c["status"].as_str().unwrap_or(""));
            row("commissions_count", status, currency, &c["count"]).map_err(fail)?;
            row("commissions_amount_minor", status, currency, &c["amount_minor"]).map_err(fail)?;
            row("commissions_remaining_minor", status, currency, &c["remaining_minor"]).map_err(fail)?;
        }
        for e in d["epc"].as_array().into_iter().flatten() {
            row("epc_minor", "", e["currency"].as_str().unwrap_or(""), &e["epc_minor"]).map_err(fail)?;
        }
    }
    let bytes = w.into_inner().map_err(|e| ApiError::internal(format!("writing the CSV report: {e}")))?;
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(bytes)));
    let h = r.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(hyper::header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}
