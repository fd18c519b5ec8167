//! The outbox: each event is written in the transaction of the change that caused it, so an
//! event exists exactly when its change committed, and the delivery worker reads it from there.
//! A backend implements `OutboxTx` on its transaction; `emit` renders the envelope once, and the
//! stored body is what every attempt sends and signs.

use super::event::{Event, EventError};

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The backend failed; the caller's transaction rolls back with the change.
    #[error("storage: {0}")]
    Storage(String),
    #[error(transparent)]
    Event(#[from] EventError),
}

/// A backend's open transaction, as the outbox appends to it.
pub trait OutboxTx {
    /// Appends one event: its id, type, the partner it concerns, its time and its envelope.
    fn append_event(&mut self, event: &Event, partner: Option<&str>, body: &str) -> Result<(), OutboxError>;
}

/// Writes `event` to the outbox, inside the caller's transaction. `partner` names the partner
/// the event concerns: an endpoint registered for a partner gets only that partner's events.
pub fn emit<T: OutboxTx + ?Sized>(tx: &mut T, event: &Event, partner: Option<&str>) -> Result<(), OutboxError> {
    let body = event.body()?;
    tx.append_event(event, partner, &body)
}
