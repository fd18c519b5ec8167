//! What the writer's jobs and the conversion view read and write, as one interface with a
//! backend each: SQLite (`sqlite.rs`, the embedded default, one file) and PostgreSQL (`pg.rs`,
//! cluster mode). The rules (what a retry replays, which transitions are allowed, what a
//! refund credits back) live in `jobs.rs` and `view.rs`, once; a backend only reads and writes
//! rows, inside a transaction its caller opened and commits.

use super::{Answer, ConversionError, IdempotencyKey, NewConversion, Purge, Status};
use crate::lifecycle::{Commission, CommissionEvent, CommissionTx, ConversionRef};
use crate::model::Currency;
use crate::webhooks::OutboxTx;

/// One event of a conversion: kind, amount, time.
pub type ConversionEvent = (String, Option<i64>, i64);

/// A stored conversion as the view shows it.
#[derive(Debug, Clone)]
pub struct ConversionRow {
    pub program: String,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub occurred_at_ms: i64,
    pub received_at_ms: i64,
    pub click_id: Option<String>,
    pub visitor_id: Option<String>,
    pub coupon_code: Option<String>,
    pub customer_ref: Option<String>,
    pub origin: String,
    /// The attribution's JSON, as stored.
    pub attribution: String,
    pub status: String,
    pub refunded_minor: i64,
}

/// What a transition reads of a conversion.
#[derive(Debug, Clone)]
pub struct StoredConversion {
    pub status: Status,
    pub amount_minor: i64,
    pub refunded_minor: i64,
    pub occurred_at_ms: u64,
    pub currency: Currency,
    pub attribution: String,
    pub program: String,
}

/// A new conversion's row.
pub struct NewRow<'a> {
    pub id: &'a str,
    pub conversion: &'a NewConversion,
    pub fingerprint: &'a [u8; 32],
    pub received_at_ms: u64,
    /// Days since the Unix epoch of `occurred_at`.
    pub day: i64,
    pub method: &'a str,
    pub attribution: &'a str,
}

/// A change to one row of a partner's days.
#[derive(Debug, Default, Clone, Copy)]
pub struct PartnerDay {
    pub conversions: i64,
    pub revenue_minor: i64,
    pub refunded_minor: i64,
    pub cancelled: i64,
}

impl PartnerDay {
    /// Adds `d` to this change.
    pub fn add(&mut self, d: PartnerDay) {
        self.conversions += d.conversions;
        self.revenue_minor += d.revenue_minor;
        self.refunded_minor += d.refunded_minor;
        self.cancelled += d.cancelled;
    }
}

/// The row of `link_days` a change is to: a link, the channel its clicks came through, the
/// UTC day of the sale and its currency; the link's program and partner ride along.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkDayKey {
    pub link: String,
    pub channel: &'static str,
    pub day: i64,
    pub currency: Currency,
    pub program: String,
    pub partner: String,
}

/// The reads a conversion's view is built from. Reads only: the API's read connection
/// implements it as well as the writer's transaction.
pub trait ViewSource {
    fn conversion_row(&mut self, id: &str) -> Result<Option<ConversionRow>, ConversionError>;
    /// A conversion's events after its creation, in order.
    fn conversion_events(&mut self, id: &str) -> Result<Vec<ConversionEvent>, ConversionError>;
    /// A conversion's commissions, by id.
    fn view_commissions(&mut self, conversion: &ConversionRef<'_>) -> Result<Vec<Commission>, ConversionError>;
    /// A commission's events, in order.
    fn view_events(&mut self, commission_id: &str) -> Result<Vec<CommissionEvent>, ConversionError>;
}

/// One open transaction of the store, with the ledger, the commissions and the webhook outbox
/// in it: the writer's jobs run on this.
pub trait ConversionTx: CommissionTx + ViewSource + OutboxTx {
    /// The request hash and the first answer stored under an idempotency key.
    fn stored_answer(&mut self, key: &str) -> Result<Option<(Vec<u8>, Answer)>, ConversionError>;
    /// Stores the first answer under its idempotency key.
    fn keep_answer(&mut self, key: &IdempotencyKey, answer: &Answer, now_ms: u64) -> Result<(), ConversionError>;
    /// Forgets idempotency answers stored, and webhook events that happened, before `purge`'s
    /// times.
    fn purge(&mut self, purge: &Purge) -> Result<(), ConversionError>;
    /// A recorded conversion's fingerprint.
    fn recorded(&mut self, id: &str) -> Result<Option<Vec<u8>>, ConversionError>;
    /// Inserts a new conversion's row; `false`, writing nothing, when its id is already
    /// recorded (a retry, or the same order with other fields: `recorded` tells which).
    fn insert_conversion(&mut self, row: &NewRow<'_>) -> Result<bool, ConversionError>;
    /// Adds `d` to a partner's day in a currency.
    fn add_partner_day(&mut self, partner: &str, day: i64, currency: Currency, d: PartnerDay) -> Result<(), ConversionError>;
    /// Adds `d` to a link's day in a currency (`link_days`, the same measures as a partner's).
    fn add_link_day(&mut self, key: LinkDayKey, d: PartnerDay) -> Result<(), ConversionError>;
    /// A conversion as a transition reads it; locked until the commit where that means
    /// anything (PostgreSQL).
    fn for_transition(&mut self, id: &str) -> Result<Option<StoredConversion>, ConversionError>;
    fn set_status(&mut self, id: &str, status: Status) -> Result<(), ConversionError>;
    /// Adds a refund to the conversion and sets its status.
    fn add_refund(&mut self, id: &str, amount_minor: i64, status: Status) -> Result<(), ConversionError>;
    /// Appends one of the conversion's events.
    fn add_event(&mut self, id: &str, kind: &str, amount_minor: Option<i64>, at_ms: u64) -> Result<(), ConversionError>;
}
