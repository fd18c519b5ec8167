//! The worker's decisions, pure: which endpoints get an event, and what an attempt's answer
//! means for its delivery and its endpoint.

use super::http::Sent;
use crate::metrics::DeliveryOutcome;
use crate::webhooks::endpoint::{DisabledReason, Endpoint, Status};
use crate::webhooks::schedule::{classify, disabled_by_failures, next_attempt_in, Failure, Outcome};
use crate::webhooks::store::{AttemptRecord, Due, EndpointChange, NewDelivery, StoredEvent, Then};

/// The deliveries of `events` to the enabled endpoints among `endpoints` that want them.
pub fn fan_out(endpoints: &[Endpoint], events: &[StoredEvent]) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for event in events {
        let id = match event.outbox().id() {
            Ok(id) => id.to_string(),
            Err(e) => {
                tracing::error!(seq = event.seq, error = %e, "an outbox event has no valid id; it is not delivered");
                continue;
            }
        };
        for e in endpoints.iter().filter(|e| e.status == Status::Enabled && e.wants(event.kind, event.partner.as_deref())) {
            out.push(NewDelivery { endpoint_id: e.id.clone(), seq: event.seq, event_id: id.clone(), kind: event.kind });
        }
    }
    out
}

/// What one finished attempt decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub record: AttemptRecord,
    pub outcome: DeliveryOutcome,
    /// The endpoint has failed for 5 days and is disabled now: raise an alert.
    pub alert: bool,
}

impl Decision {
    /// Brings the worker's copy of the endpoint up to what the record stores.
    pub fn apply(&self, endpoint: &mut Endpoint) {
        match self.record.endpoint {
            EndpointChange::Succeeded => endpoint.failing_since_ms = None,
            EndpointChange::Failed { at_ms } => {
                endpoint.failing_since_ms.get_or_insert(at_ms);
            }
            EndpointChange::Disable { reason, at_ms } => {
                endpoint.failing_since_ms.get_or_insert(at_ms);
                if endpoint.status == Status::Enabled {
                    endpoint.status = Status::Disabled(reason);
                    endpoint.status_ms = at_ms;
                }
            }
        }
    }
}

/// Decides what the answer `sent` to the attempt on `due`, finished at `now_ms`, means: the
/// delivery is delivered, tried again (the schedule's next delay over `delays`, with jitter
/// from `random`, or the receiver's capped `Retry-After` if longer) or failed for good; the
/// endpoint succeeds, fails, or is disabled (a 410, or failures for 5 days).
pub fn decide(endpoint: &Endpoint, due: &Due, sent: &Sent, now_ms: u64, latency_ms: u64, random: u64, delays: &[u64]) -> Decision {
    let outcome = classify(sent.response(), now_ms);
    let (http_status, error, excerpt) = match sent {
        Sent::Answered { status, excerpt, .. } => (Some(*status), None, excerpt.clone()),
        Sent::TimedOut => (None, Some(Failure::Timeout.as_str()), "no answer within the attempt's timeout".to_owned()),
        Sent::NotConnected(why) => (None, Some(Failure::Connect.as_str()), why.clone()),
    };
    let enabled = endpoint.status == Status::Enabled;
    let (then, change, counted, alert) = match outcome {
        Outcome::Delivered => (Then::Delivered, EndpointChange::Succeeded, DeliveryOutcome::Delivered, false),
        Outcome::Gone => {
            (Then::Failed, EndpointChange::Disable { reason: DisabledReason::Gone, at_ms: now_ms }, DeliveryOutcome::Gone, false)
        }
        Outcome::Failed { retry_after_ms, .. } => {
            let next = next_attempt_in(delays, due.tries + 1, retry_after_ms, now_ms, random);
            let since = endpoint.failing_since_ms.unwrap_or(now_ms);
            let disable = enabled && disabled_by_failures(Some(since), now_ms);
            let change = if disable {
                EndpointChange::Disable { reason: DisabledReason::Failing, at_ms: now_ms }
            } else {
                EndpointChange::Failed { at_ms: now_ms }
            };
            match next {
                Some(n) => (Then::Retry { next_attempt_ms: n }, change, DeliveryOutcome::Retried, disable),
                None => (Then::Failed, change, DeliveryOutcome::Exhausted, disable),
            }
        }
    };
    let record = AttemptRecord {
        delivery_id: due.delivery_id,
        endpoint_id: due.endpoint_id.clone(),
        attempt: due.attempts + 1,
        at_ms: now_ms,
        http_status,
        error,
        latency_ms,
        excerpt: super::http::cut(&excerpt),
        replays: due.replays,
        then,
        endpoint: change,
    };
    Decision { record, outcome: counted, alert }
}
