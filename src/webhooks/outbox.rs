//! The outbox: each event is written in the transaction of the change that caused it, so an
//! event exists exactly when its change committed, and the delivery worker reads it from there.
//! A backend implements `OutboxTx` on its transaction; `emit` renders the envelope once, from
//! typed data straight into its JSON, and the stored body is what every attempt sends and
//! signs. The writer emits on its own thread, per conversion, so the rendering allocates only
//! the body.

use serde::Serialize;

use super::event::{rfc3339_ms, EventError, EventId, EventType};

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The backend failed; the caller's transaction rolls back with the change.
    #[error("storage: {0}")]
    Storage(String),
    #[error(transparent)]
    Event(#[from] EventError),
}

/// One event as the outbox stores it: its id, type, the partner it concerns, when it happened,
/// and the envelope every attempt sends.
#[derive(Debug, Clone, Copy)]
pub struct OutboxEvent<'a> {
    pub id: EventId,
    pub kind: EventType,
    pub partner: Option<&'a str>,
    pub occurred_ms: i64,
    pub body: &'a str,
}

/// A backend's open transaction, as the outbox appends to it.
pub trait OutboxTx {
    /// Appends one event.
    fn append_event(&mut self, event: &OutboxEvent<'_>) -> Result<(), OutboxError>;
}

/// The envelope, borrowed: `{"type","timestamp","data"}` in that order, as `Event::body`.
#[derive(Serialize)]
struct Envelope<'a, D> {
    #[serde(rename = "type")]
    kind: EventType,
    timestamp: &'a str,
    data: &'a D,
}

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
) -> Result<EventId, OutboxError> {
    let id = EventId::derive(kind, cause)?;
    let timestamp = rfc3339_ms(occurred_ms)?;
    let body = serde_json::to_string(&Envelope { kind, timestamp: &timestamp, data }).map_err(|e| EventError::Envelope(e.to_string()))?;
    if !body.ends_with("}}") {
        return Err(EventError::DataNotObject.into());
    }
    tx.append_event(&OutboxEvent { id, kind, partner, occurred_ms, body: &body })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::Envelope as Parsed;

    #[derive(Default)]
    struct Kept(Vec<(String, String, Option<String>, i64, String)>);

    impl OutboxTx for Kept {
        fn append_event(&mut self, e: &OutboxEvent<'_>) -> Result<(), OutboxError> {
            self.0.push((e.id.to_string(), e.kind.as_str().into(), e.partner.map(str::to_string), e.occurred_ms, e.body.into()));
            Ok(())
        }
    }

    #[derive(Serialize)]
    struct Data<'a> {
        commission_id: &'a str,
        amount_minor: i64,
    }

    #[test]
    fn the_body_is_the_envelope_of_the_typed_data_and_the_id_derives_from_the_cause() {
        let mut tx = Kept::default();
        let data = Data { commission_id: "cm_1", amount_minor: 150 };
        let id = emit(&mut tx, EventType::CommissionCreated, "commission:cm_1:created", 1_763_800_000_123, Some("bob"), &data).unwrap();
        let (stored_id, kind, partner, at, body) = &tx.0[0];
        assert_eq!(*stored_id, id.to_string());
        assert_eq!(id, EventId::derive(EventType::CommissionCreated, "commission:cm_1:created").unwrap());
        assert_eq!((kind.as_str(), partner.as_deref(), *at), ("commission.created", Some("bob"), 1_763_800_000_123));
        assert_eq!(
            body,
            r#"{"type":"commission.created","timestamp":"2025-11-22T08:26:40.123Z","data":{"commission_id":"cm_1","amount_minor":150}}"#
        );
        let parsed = Parsed::parse(body.as_bytes()).unwrap();
        assert_eq!(parsed.data["amount_minor"], 150);
    }

    #[test]
    fn data_that_is_not_an_object_and_times_out_of_range_are_refused() {
        let mut tx = Kept::default();
        assert!(emit(&mut tx, EventType::FraudAlert, "alert:1", 0, None, &5).is_err());
        assert!(emit(&mut tx, EventType::FraudAlert, "alert:1", -1, None, &Data { commission_id: "x", amount_minor: 1 }).is_err());
        assert!(emit(&mut tx, EventType::FraudAlert, "", 0, None, &Data { commission_id: "x", amount_minor: 1 }).is_err());
        assert!(tx.0.is_empty());
    }
}
