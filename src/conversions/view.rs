//! Reading conversions: the JSON view the API answers with, and per-day report rows; the
//! commission and ledger reads (`commissions`, `ledger`) share the same read connection.

mod commissions;
mod ledger;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::store::{ConversionEvent, ConversionRow, ViewSource};
use super::ConversionError;
use crate::lifecycle::{Commission, CommissionEvent, ConversionRef};
use crate::model::Currency;

pub use commissions::{BalanceSheet, CommissionFilter, CommissionPage, CurrencyBalance, DayCommissions, ReportScope, StatusTotals};
pub use ledger::{LedgerFilter, LedgerPage};

/// A conversion's stored fields as the view shows them.
pub(super) struct ConversionFields<'a> {
    pub id: &'a str,
    pub program: &'a str,
    pub order_id: &'a str,
    pub amount_minor: i64,
    pub currency: Currency,
    pub occurred_at_ms: i64,
    pub received_at_ms: i64,
    pub click_id: Option<&'a str>,
    pub visitor_id: Option<&'a str>,
    pub coupon_code: Option<&'a str>,
    pub customer_ref: Option<&'a str>,
    pub origin: &'a str,
    /// The stored attribution JSON.
    pub attribution: &'a str,
    pub status: &'a str,
    pub refunded_minor: i64,
}

/// The JSON the API shows for a conversion: its fields, its events, and its commissions (each
/// with its events, ordered by partner and item as `render` reads them). Serialized straight
/// from borrowed fields (keys in alphabetical order, as every other answer of the API; absent
/// fields left out), with the stored attribution embedded as it is: the writer builds one of
/// these per conversion.
pub(super) fn conversion_json(
    f: &ConversionFields<'_>,
    events: &[ConversionEvent],
    commissions: &[(Commission, Vec<CommissionEvent>)],
) -> String {
    #[derive(Serialize)]
    struct Event<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        amount_minor: Option<i64>,
        at: String,
        kind: &'a str,
    }
    #[derive(Serialize)]
    struct View<'a> {
        amount_minor: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        attribution: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        click_id: Option<&'a str>,
        commissions: Vec<CommissionView<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        coupon_code: Option<&'a str>,
        currency: Currency,
        #[serde(skip_serializing_if = "Option::is_none")]
        customer_ref: Option<&'a str>,
        events: Vec<Event<'a>>,
        id: &'a str,
        occurred_at: String,
        order_id: &'a str,
        origin: &'a str,
        program: &'a str,
        received_at: String,
        refunded_minor: i64,
        status: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        visitor_id: Option<&'a str>,
    }
    let view = View {
        amount_minor: f.amount_minor,
        attribution: serde_json::from_str(f.attribution).ok(),
        click_id: f.click_id,
        commissions: commissions.iter().map(|(c, steps)| CommissionView::new(c, Some(steps))).collect(),
        coupon_code: f.coupon_code,
        currency: f.currency,
        customer_ref: f.customer_ref,
        events: events.iter().map(|(kind, amount_minor, at)| Event { amount_minor: *amount_minor, at: rfc3339(*at), kind }).collect(),
        id: f.id,
        occurred_at: rfc3339(f.occurred_at_ms),
        order_id: f.order_id,
        origin: f.origin,
        program: f.program,
        received_at: rfc3339(f.received_at_ms),
        refunded_minor: f.refunded_minor,
        status: f.status,
        visitor_id: f.visitor_id,
    };
    serde_json::to_string(&view).unwrap_or_else(|e| {
        // Borrowed strings, numbers and validated raw JSON cannot fail to serialize.
        tracing::error!(error = %e, id = f.id, "rendering a conversion failed");
        String::from("{}")
    })
}

/// A new conversion's first answer, from what its job wrote: as `view::render` would read it
/// back right after the job (pending, one `recorded` event, and each new commission with its
/// `created` event). The writer hands it over unrendered; `render` runs on the caller's task.
#[derive(Debug)]
pub struct First {
    pub(crate) id: String,
    pub(crate) conversion: std::sync::Arc<super::NewConversion>,
    pub(crate) attribution_json: std::sync::Arc<str>,
    pub(crate) commissions: Vec<Commission>,
    pub(crate) now_ms: u64,
}

impl First {
    pub fn render(self) -> String {
        let c = &*self.conversion;
        let fields = ConversionFields {
            id: &self.id,
            program: &c.program,
            order_id: &c.order_id,
            amount_minor: c.amount_minor,
            currency: c.currency,
            occurred_at_ms: c.occurred_at_ms as i64,
            received_at_ms: self.now_ms as i64,
            click_id: c.click_id.as_deref(),
            visitor_id: c.visitor_id.as_deref(),
            coupon_code: c.coupon_code.as_deref(),
            customer_ref: c.customer_ref.as_deref(),
            origin: c.origin.as_str(),
            attribution: &self.attribution_json,
            status: super::Status::Pending.as_str(),
            refunded_minor: 0,
        };
        first_json(&fields, self.commissions)
    }
}

/// A conversion's first answer from its fields and its commissions as created.
fn first_json(fields: &ConversionFields<'_>, commissions: Vec<Commission>) -> String {
    let mut commissions: Vec<_> = commissions
        .into_iter()
        .map(|cm| {
            let created = CommissionEvent {
                commission_id: cm.id.clone(),
                kind: "created",
                amount_minor: cm.amount_minor,
                transfer_id: cm.reserve_id(0),
                at_ms: cm.created_at_ms,
            };
            (cm, vec![created])
        })
        .collect();
    commissions.sort_by(|(a, _), (b, _)| (&a.partner, &a.item).cmp(&(&b.partner, &b.item)));
    conversion_json(fields, &[("recorded".to_string(), None, fields.received_at_ms)], &commissions)
}

/// A stored conversion's first answer, rebuilt: what `First::render` gave when it was recorded.
/// Everything in it is kept: the conversion's fields and attribution never change, and a
/// commission's created fields are its row less what later steps changed, which only grows
/// from zero (voided, reversed), was none (approval, payment) or was the first reserve.
/// `None` when it does not exist. Retries replay this instead of a stored copy of the answer.
pub fn render_first<S: ViewSource + ?Sized>(src: &mut S, id: &str) -> Result<Option<String>, ConversionError> {
    let Some(r) = src.conversion_row(id)? else { return Ok(None) };
    let fields = ConversionFields { status: super::Status::Pending.as_str(), refunded_minor: 0, ..fields(&r, id) };
    let conversion = ConversionRef { id, occurred_at_ms: r.occurred_at_ms as u64 };
    let created = src
        .view_commissions(&conversion)?
        .into_iter()
        .map(|c| Commission {
            voided_minor: 0,
            reversed_minor: 0,
            status: crate::lifecycle::CommissionStatus::Pending,
            approved_at_ms: None,
            paid_at_ms: None,
            payout_id: None,
            reserve_seq: 0,
            ..c
        })
        .collect();
    Ok(Some(first_json(&fields, created)))
}

fn fields<'a>(r: &'a ConversionRow, id: &'a str) -> ConversionFields<'a> {
    ConversionFields {
        id,
        program: &r.program,
        order_id: &r.order_id,
        amount_minor: r.amount_minor,
        currency: r.currency,
        occurred_at_ms: r.occurred_at_ms,
        received_at_ms: r.received_at_ms,
        click_id: r.click_id.as_deref(),
        visitor_id: r.visitor_id.as_deref(),
        coupon_code: r.coupon_code.as_deref(),
        customer_ref: r.customer_ref.as_deref(),
        origin: &r.origin,
        attribution: &r.attribution,
        status: &r.status,
        refunded_minor: r.refunded_minor,
    }
}

/// Renders one conversion as the API shows it; `None` when it does not exist.
pub fn render<S: ViewSource + ?Sized>(src: &mut S, id: &str) -> Result<Option<String>, ConversionError> {
    let Some(r) = src.conversion_row(id)? else { return Ok(None) };
    let fields = fields(&r, id);
    let mut events: Vec<ConversionEvent> = vec![("recorded".to_string(), None, r.received_at_ms)];
    events.extend(src.conversion_events(id)?);
    let conversion = ConversionRef { id, occurred_at_ms: r.occurred_at_ms as u64 };
    Ok(Some(conversion_json(&fields, &events, &commissions(src, &conversion)?)))
}

/// A conversion's commissions, each with how it was computed and every step it went through
/// (with the ledger transfer that moved the money), so the explanation covers the money too.
fn commissions<S: ViewSource + ?Sized>(
    src: &mut S,
    conversion: &ConversionRef<'_>,
) -> Result<Vec<(Commission, Vec<CommissionEvent>)>, ConversionError> {
    let mut rows = src.view_commissions(conversion)?;
    rows.sort_by(|a, b| (&a.partner, &a.item).cmp(&(&b.partner, &b.item)));
    let mut out = Vec::with_capacity(rows.len());
    for c in rows {
        let steps = src.view_events(&c.id)?;
        out.push((c, steps));
    }
    Ok(out)
}

/// One commission as the API shows it, with its steps when they were read.
#[derive(Serialize)]
struct CommissionView<'a> {
    amount_minor: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_at: Option<String>,
    conversion_id: &'a str,
    created_at: String,
    currency: Currency,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<CommissionEventView<'a>>>,
    id: &'a str,
    item: &'a str,
    lock_until: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    paid_at: Option<String>,
    partner: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payout_id: Option<&'a str>,
    period: &'a str,
    program: &'a str,
    remaining_minor: i64,
    reversed_minor: i64,
    rule_version: &'a str,
    status: &'a str,
    voided_minor: i64,
}

impl<'a> CommissionView<'a> {
    fn new(c: &'a Commission, events: Option<&'a [CommissionEvent]>) -> CommissionView<'a> {
        CommissionView {
            amount_minor: c.amount_minor,
            approved_at: c.approved_at_ms.map(rfc3339),
            conversion_id: &c.conversion_id,
            created_at: rfc3339(c.created_at_ms),
            currency: c.currency,
            detail: serde_json::from_str(&c.detail).ok(),
            events: events.map(|e| e.iter().map(CommissionEventView::new).collect()),
            id: &c.id,
            item: &c.item,
            lock_until: rfc3339(c.lock_until_ms),
            paid_at: c.paid_at_ms.map(rfc3339),
            partner: &c.partner,
            payout_id: c.payout_id.as_deref(),
            period: &c.period,
            program: &c.program,
            remaining_minor: c.remaining_minor(),
            reversed_minor: c.reversed_minor,
            rule_version: &c.rule_version,
            status: c.status.as_str(),
            voided_minor: c.voided_minor,
        }
    }
}

/// One step of a commission as the API shows it, with the ledger transfer that moved the money.
#[derive(Serialize)]
struct CommissionEventView<'a> {
    amount_minor: i64,
    at: String,
    kind: &'a str,
    transfer_id: String,
}

impl<'a> CommissionEventView<'a> {
    fn new(e: &'a CommissionEvent) -> CommissionEventView<'a> {
        CommissionEventView { amount_minor: e.amount_minor, at: rfc3339(e.at_ms), kind: e.kind, transfer_id: e.transfer_id.to_string() }
    }
}

/// One commission as the API shows it; with `events`, its steps too.
pub fn commission_json(c: &Commission, events: Option<&[CommissionEvent]>) -> Value {
    serde_json::to_value(CommissionView::new(c, events)).unwrap_or(Value::Null)
}

/// Unix milliseconds as RFC 3339 (UTC, millisecond precision).
///
/// Written out by hand for the years 1970 to 9999 (the writer formats several times per
/// conversion, and `time`'s formatter cost more than the rest of the answer's fields); other
/// times go through `time`, as they always did.
pub fn rfc3339(ms: i64) -> String {
    const MS_MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    if !(0..=MS_MAX).contains(&ms) {
        return rfc3339_by_time(ms);
    }
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, sec, milli) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    // Digits placed by hand: `format!` with widths cost as much as `time`.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    for (at, width, mut v) in [(0, 4, year), (5, 2, month), (8, 2, day), (11, 2, h), (14, 2, m), (17, 2, sec), (20, 3, milli)] {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    out.iter().map(|&b| char::from(b)).collect()
}

fn rfc3339_by_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&f).unwrap_or_default()
}

/// One day of conversions for a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayConversions {
    pub day: u32,
    pub currency: Currency,
    /// Conversions not cancelled.
    pub conversions: u64,
    /// Amounts of those conversions (for a partner: the partner's attributed shares).
    pub revenue_minor: i64,
    pub refunded_minor: i64,
    pub cancelled: u64,
}

/// Which rows of `link_days` a report sums: a link's, or a channel's (all of them, or those of
/// one program or one partner).
#[derive(Debug, Clone, Copy)]
pub enum LinkDaysScope<'a> {
    Link(&'a str),
    Channel(crate::model::Channel),
    ChannelOfProgram(crate::model::Channel, &'a str),
    ChannelOfPartner(crate::model::Channel, &'a str),
}

impl<'a> LinkDaysScope<'a> {
    /// The columns of `link_days` the scope fixes, with their values: one or two.
    pub fn columns(&self) -> Vec<(&'static str, &'a str)> {
        match *self {
            LinkDaysScope::Link(code) => vec![("link", code)],
            LinkDaysScope::Channel(c) => vec![("channel", c.as_str())],
            LinkDaysScope::ChannelOfProgram(c, p) => vec![("channel", c.as_str()), ("program", p)],
            LinkDaysScope::ChannelOfPartner(c, p) => vec![("channel", c.as_str()), ("partner", p)],
        }
    }
}

/// The API's reads, on the store's backend (`storage::sqlite::SqliteReader`,
/// `storage::pg::PgReader`). Every read of several rows runs in one read transaction, so what
/// it answers is one snapshot.
pub trait Reader: Send + Sync {
    /// One conversion as JSON.
    fn get(&self, id: &str) -> Result<Option<String>, ConversionError>;
    /// Per-day conversions credited to a partner, days `from..=to`.
    fn partner_days(&self, partner: &str, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError>;
    /// Per-day conversions of a program (attributed or not), days `from..=to`.
    fn program_days(&self, program: &str, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError>;
    /// Per-day conversions credited through links (`link_days`), days `from..=to`.
    fn link_days(&self, scope: LinkDaysScope<'_>, from_day: u32, to_day: u32) -> Result<Vec<DayConversions>, ConversionError>;
    /// A page of commissions matching `f`, in the listing's order.
    fn commissions(&self, f: &CommissionFilter) -> Result<CommissionPage, ConversionError>;
    /// One commission and its events in order; `None` when it does not exist.
    fn commission(&self, id: &str) -> Result<Option<(Commission, Vec<CommissionEvent>)>, ConversionError>;
    /// A partner's balances per currency; currencies in order.
    fn partner_balances(&self, partner: &str) -> Result<Vec<CurrencyBalance>, ConversionError>;
    /// The stored JSON of the rule set with this version.
    fn rule_set(&self, version: &str) -> Result<Option<String>, ConversionError>;
    /// Commissions by the UTC day they were created, currency and status, days `from..=to`.
    fn commission_days(&self, scope: ReportScope<'_>, from_day: u32, to_day: u32) -> Result<Vec<DayCommissions>, ConversionError>;
    /// A page of the ledger's transfers matching `f`, in `seq` order.
    fn ledger_transfers(&self, f: &LedgerFilter) -> Result<LedgerPage, ConversionError>;
}
