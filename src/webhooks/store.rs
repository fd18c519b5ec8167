//! What the delivery worker, the API and the CLI need from a store: endpoints, the fan-out
//! cursor over the outbox, each (endpoint, event) delivery with its retry state, and its
//! attempts. Each backend implements `WebhookStore` on a connection of its own, so delivery
//! state never waits on the conversion writer's connection; every method is one transaction.

use super::endpoint::{DisabledReason, Endpoint};
use super::event::EventType;
use super::outbox::OutboxEvent;
use super::signature::Secret;
use crate::audit::Stamp;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Storage(String),
    /// A stored row does not read back (an unknown type, a bad secret).
    #[error("a stored webhook row is not valid: {0}")]
    Corrupt(String),
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub kind: EventType,
    pub cause: String,
    pub partner: Option<String>,
    pub occurred_ms: i64,
    pub data: String,
}

impl StoredEvent {
    /// The row as the outbox renders it: its id and its envelope.
    pub fn outbox(&self) -> OutboxEvent<'_> {
        OutboxEvent {
            kind: self.kind,
            cause: &self.cause,
            partner: self.partner.as_deref(),
            occurred_ms: self.occurred_ms,
            data: &self.data,
        }
    }
}

/// A delivery to create (fan-out) or to send again (replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub endpoint_id: String,
    pub seq: i64,
    pub event_id: String,
    pub kind: EventType,
}

/// A delivery whose next attempt is due, with its event.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery_id: i64,
    pub endpoint_id: String,
    /// Attempts in all (the next one's number is this plus one).
    pub attempts: u32,
    /// Attempts since the last replay: the schedule's place.
    pub tries: u32,
    /// Replays so far; the attempt's record changes the delivery's state only if none came since.
    pub replays: u32,
    pub event: StoredEvent,
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Every attempt of the schedule failed, or the endpoint is gone.
    Failed,
}

impl DeliveryStatus {
    /// Every status, as the API's filter lists them.
    pub const ALL: [DeliveryStatus; 3] = [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses the stored spelling strictly.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// What an attempt leaves behind for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Delivered,
    /// Tried again at this time.
    Retry {
        next_attempt_ms: u64,
    },
    /// No attempt is left, or the endpoint is gone.
    Failed,
}

/// What an attempt leaves behind for its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointChange {
    /// A success: the endpoint is no longer failing.
    Succeeded,
    /// A failure at this time: the endpoint is failing since then unless it already was.
    Failed { at_ms: u64 },
    /// The endpoint is disabled.
    Disable { reason: DisabledReason, at_ms: u64 },
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub endpoint_id: String,
    /// 1 for the first attempt of the delivery, counting across replays.
    pub attempt: u32,
    pub at_ms: u64,
    /// The HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// Why there was none (`schedule::Failure::as_str`).
    pub error: Option<&'static str>,
    pub latency_ms: u64,
    /// The body's first KiB, or the error's text.
    pub excerpt: String,
    /// The delivery's replay count when the attempt was taken (`Due::replays`).
    pub replays: u32,
    pub then: Then,
    pub endpoint: EndpointChange,
}

/// An attempt as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptView {
    pub attempt: u32,
    pub at_ms: u64,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub response_excerpt: String,
}

/// A delivery as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryView {
    /// The event's `webhook-id`.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub endpoint_id: String,
    pub seq: i64,
    pub status: String,
    pub attempts: u32,
    pub next_attempt_ms: Option<u64>,
    pub updated_ms: u64,
    pub attempt_log: Vec<AttemptView>,
    /// The delivery's own id: the listing's order, and its cursor.
    #[serde(skip)]
    pub delivery_id: i64,
}

/// The API's filter over deliveries, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint_id: Option<String>,
    /// Only deliveries to endpoints registered for this partner (a partner key's view).
    pub partner: Option<String>,
    pub status: Option<DeliveryStatus>,
    /// Only deliveries older than this one (the cursor).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// A backend's webhook tables on a connection of its own.
///
/// An operator's write to an endpoint (insert, delete, rotate, enable) appends its audit entry
/// (`stamp`'s actor and time, the endpoint before and after by `Endpoint::view`, which holds no
/// secret) in its own transaction.
pub trait WebhookStore: Send {
    fn insert_endpoint(&mut self, e: &Endpoint, stamp: &Stamp) -> Result<(), StoreError>;
    fn endpoint(&mut self, id: &str) -> Result<Option<Endpoint>, StoreError>;
    /// Every endpoint, enabled or not, oldest first.
    fn endpoints(&mut self) -> Result<Vec<Endpoint>, StoreError>;
    /// Removes the endpoint with its deliveries and their attempts; false when there was none.
    fn delete_endpoint(&mut self, id: &str, stamp: &Stamp) -> Result<bool, StoreError>;
    /// Makes `secret` current and keeps the current one signing until `previous_until_ms`.
    fn rotate_secret(&mut self, id: &str, secret: &Secret, previous_until_ms: u64, stamp: &Stamp) -> Result<bool, StoreError>;

    /// Whether this connection's worker is the one that delivers: true unless several
    /// processes share the store, where one holds a lock on it and the rest stand by (and take
    /// over when its connection goes).
    fn lead(&mut self) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Enables an endpoint again, its failure record cleared; false when there is none.
    fn enable(&mut self, id: &str, now_ms: u64, stamp: &Stamp) -> Result<bool, StoreError>;

    /// The last outbox `seq` fan-out has read.
    fn cursor(&mut self) -> Result<i64, StoreError>;
    /// Up to `limit` outbox rows after `seq`, in order.
    fn events_after(&mut self, seq: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    /// Creates these deliveries (due at `now_ms`; one that exists is left alone) and moves the
    /// cursor to `cursor`, in one transaction.
    fn fan_out(&mut self, deliveries: &[NewDelivery], cursor: i64, now_ms: u64) -> Result<(), StoreError>;
    /// Makes these deliveries pending and due at `now_ms`, creating those that do not exist,
    /// with the schedule started again; returns how many.
    fn requeue(&mut self, deliveries: &[NewDelivery], now_ms: u64) -> Result<u64, StoreError>;
    /// The deliveries recorded for an event, as replays resend them.
    fn deliveries_of_event(&mut self, event_id: &str) -> Result<Vec<NewDelivery>, StoreError>;
    /// Up to `limit` of an enabled endpoint's pending deliveries due at `now_ms`, the earliest first.
    fn due(&mut self, endpoint_id: &str, now_ms: u64, limit: usize) -> Result<Vec<Due>, StoreError>;
    /// Records attempts with their deliveries' and endpoints' new states, in one transaction.
    fn record(&mut self, attempts: &[AttemptRecord]) -> Result<(), StoreError>;
    /// `record`, then `fan_out` when given: what the worker writes in one round. A store whose
    /// writers queue for one lock does both in one transaction, so a round costs the conversion
    /// writer one wait, not two.
    fn record_and_fan_out(
        &mut self,
        attempts: &[AttemptRecord],
        fan: Option<(&[NewDelivery], i64)>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if !attempts.is_empty() {
            self.record(attempts)?;
        }
        match fan {
            Some((deliveries, cursor)) => self.fan_out(deliveries, cursor, now_ms),
            None => Ok(()),
        }
    }
    /// Deliveries newest first, with their attempts.
    fn deliveries(&mut self, filter: &DeliveryFilter) -> Result<Vec<DeliveryView>, StoreError>;
    /// Deletes an endpoint's deliveries of events before `seq` (which retention purged).
    fn purge_deliveries(&mut self, endpoint_id: &str, before_seq: i64) -> Result<u64, StoreError>;
    /// The outbox's first `seq`, if it holds any event.
    fn first_event_seq(&mut self) -> Result<Option<i64>, StoreError>;
}
