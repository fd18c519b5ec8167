//! The outbox: each event is written in the transaction of the change that caused it, so an
//! event exists exactly when its change committed, and the delivery worker reads it from there.
//! A backend implements `OutboxTx` on its transaction; `emit` renders the data once, from
//! typed fields straight into its JSON. The writer emits on its own thread, two events per
//! conversion, so a row holds only what a delivery cannot derive: the type, the cause (the
//! event's id derives from it, `EventId::derive`), the partner, the time and the data. The
//! envelope every attempt sends is `OutboxEvent::envelope`, the same bytes every time.

use serde::Serialize;

use super::event::{rfc3339_ms, EventError, EventId, EventType, CAUSE_BYTES_MAX};

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The backend failed; the caller's transaction rolls back with the change.
    #[error("storage: {0}")]
    Storage(String),
    #[error(transparent)]
    Event(#[from] EventError),
}

/// One event as the outbox stores it: its type, its cause, the partner it concerns, when it
/// happened, and its data (a JSON object).
#[derive(Debug, Clone, Copy)]
pub struct OutboxEvent<'a> {
    pub kind: EventType,
    pub cause: &'a str,
    pub partner: Option<&'a str>,
    pub occurred_ms: i64,
    pub data: &'a str,
}

impl OutboxEvent<'_> {
    /// The id every attempt carries as `webhook-id`.
    pub fn id(&self) -> Result<EventId, EventError> {
        EventId::derive(self.kind, self.cause)
    }

    /// The body every attempt sends and signs: `{"type","timestamp","data"}`.
    pub fn envelope(&self) -> Result<String, EventError> {
        let timestamp = rfc3339_ms(self.occurred_ms)?;
        let mut body = String::with_capacity(self.data.len() + 80);
        body.push_str(r#"{"type":""#);
        body.push_str(self.kind.as_str());
        body.push_str(r#"","timestamp":""#);
        body.push_str(&timestamp);
        body.push_str(r#"","data":"#);
        body.push_str(self.data);
        body.push('}');
        Ok(body)
    }
}

/// A backend's open transaction, as the outbox appends to it.
pub trait OutboxTx {
    /// Appends one event.
    fn append_event(&mut self, event: &OutboxEvent<'_>) -> Result<(), OutboxError>;
}

/// The last millisecond an envelope's timestamp can show (9999-12-31T23:59:59.999Z).
const EVENT_MS_MAX: i64 = 253_402_300_799_999;

/// Writes the event of type `kind` caused by `cause` at `occurred_ms`, whose data is `data` (a
/// struct or map: it serializes as the envelope's object), inside the caller's transaction.
/// `partner` names the partner the event concerns: an endpoint registered for a partner gets
/// only that partner's events.
pub fn emit<T: OutboxTx + ?Sized, D: Serialize>(
    tx: &mut T,
    kind: EventType,
    cause: &str,
    occurred_ms: i64,
    partner: Option<&str>,
    data: &D,
) -> Result<(), OutboxError> {
    if cause.is_empty() || cause.len() > CAUSE_BYTES_MAX {
        return Err(EventError::BadCause.into());
    }
    if !(0..=EVENT_MS_MAX).contains(&occurred_ms) {
        return Err(EventError::BadTime(occurred_ms).into());
    }
    let data = serde_json::to_string(data).map_err(|e| EventError::Envelope(e.to_string()))?;
    if !data.starts_with('{') {
        return Err(EventError::DataNotObject.into());
    }
    tx.append_event(&OutboxEvent { kind, cause, partner, occurred_ms, data: &data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::Envelope as Parsed;

    /// Keeps each event as a delivery would send it: (id, type, partner, time, envelope).
    #[derive(Default)]
    struct Kept(Vec<(String, String, Option<String>, i64, String)>);

    impl OutboxTx for Kept {
        fn append_event(&mut self, e: &OutboxEvent<'_>) -> Result<(), OutboxError> {
            let body = e.envelope()?;
            self.0.push((e.id()?.to_string(), e.kind.as_str().into(), e.partner.map(str::to_string), e.occurred_ms, body));
            Ok(())
        }
    }

    #[derive(Serialize)]
    struct Data<'a> {
        commission_id: &'a str,
        amount_minor: i64,
    }

    #[test]
    fn the_envelope_wraps_the_typed_data_and_the_id_derives_from_the_cause() {
        let mut tx = Kept::default();
        let data = Data { commission_id: "cm_1", amount_minor: 150 };
        emit(&mut tx, EventType::CommissionCreated, "commission:cm_1:created", 1_763_800_000_123, Some("bob"), &data).unwrap();
        let (id, kind, partner, at, body) = &tx.0[0];
        assert_eq!(*id, EventId::derive(EventType::CommissionCreated, "commission:cm_1:created").unwrap().to_string());
        assert_eq!((kind.as_str(), partner.as_deref(), *at), ("commission.created", Some("bob"), 1_763_800_000_123));
        assert_eq!(
            body,
            r#"{"type":"commission.created","timestamp":"2025-11-22T08:26:40.123Z","data":{"commission_id":"cm_1","amount_minor":150}}"#
        );
        assert_eq!(Parsed::parse(body.as_bytes()).unwrap().data["amount_minor"], 150);
    }

    #[test]
    fn data_that_is_not_an_object_bad_causes_and_times_out_of_range_are_refused() {
        let mut tx = Kept::default();
        let data = Data { commission_id: "x", amount_minor: 1 };
        let not_object = |e: Result<(), OutboxError>| matches!(e, Err(OutboxError::Event(EventError::DataNotObject)));
        assert!(not_object(emit(&mut tx, EventType::FraudAlert, "alert:1", 0, None, &5)));
        assert!(not_object(emit(&mut tx, EventType::FraudAlert, "alert:1", 0, None, &"{}")));
        assert!(not_object(emit(&mut tx, EventType::FraudAlert, "alert:1", 0, None, &[1, 2])));
        assert!(not_object(emit(&mut tx, EventType::FraudAlert, "alert:1", 0, None, &())));
        assert!(matches!(
            emit(&mut tx, EventType::FraudAlert, "alert:1", i64::MAX, None, &data),
            Err(OutboxError::Event(EventError::BadTime(i64::MAX)))
        ));
        assert!(emit(&mut tx, EventType::FraudAlert, "alert:1", -1, None, &data).is_err());
        assert!(emit(&mut tx, EventType::FraudAlert, "", 0, None, &data).is_err());
        assert!(emit(&mut tx, EventType::FraudAlert, &"x".repeat(513), 0, None, &data).is_err());
        assert!(tx.0.is_empty());
    }
}
