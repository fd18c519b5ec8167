//! The webhook delivery worker's families: outbox events by type, deliveries by outcome,
//! attempts, the outbox's lag and disabled endpoints. Outcomes are a closed set
//! (`DeliveryOutcome`), and so are event types (`OUTBOX_EVENT_TYPES`, `webhooks::EventType`'s
//! spellings in its order, which a test there holds equal).

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// How an attempt ended, as the deliveries counter labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A 2xx.
    Delivered,
    /// A failure that is tried again.
    Retried,
    /// A failure with no attempt left.
    Exhausted,
    /// A 410: the endpoint is disabled.
    Gone,
}

impl DeliveryOutcome {
    pub const ALL: [DeliveryOutcome; 4] =
        [DeliveryOutcome::Delivered, DeliveryOutcome::Retried, DeliveryOutcome::Exhausted, DeliveryOutcome::Gone];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retried => "retried",
            DeliveryOutcome::Exhausted => "exhausted",
            DeliveryOutcome::Gone => "gone",
        }
    }
}

/// Outbox event types as the events counter labels them, in `webhooks::EventType::ALL`'s order.
pub const OUTBOX_EVENT_TYPES: [&str; 8] = [
    "conversion.attributed",
    "commission.created",
    "commission.approved",
    "commission.reversed",
    "payout.sent",
    "payout.paid",
    "payout.failed",
    "fraud.alert",
];

/// The delivery worker's handles.
#[derive(Clone)]
pub struct WebhookMetrics {
    outcomes: Vec<IntCounter>,
    /// Outbox events fanned out, by type: the business's own event stream (conversions,
    /// commissions created, approved and reversed, payouts), counted once whichever core reads it.
    events: Vec<IntCounter>,
    /// Attempts made, whatever their answer.
    pub attempts: IntCounter,
    /// Seconds between now and the oldest outbox event fan-out has not read; 0 when caught up.
    pub outbox_lag_seconds: Gauge,
    /// Endpoints currently disabled (410 or 5 days of failures).
    pub disabled_endpoints: IntGauge,
    /// Endpoints disabled for failing 5 days: each one an alert in the log too.
    pub failing_alerts: IntCounter,
}

impl WebhookMetrics {
    /// Registers the families in `r`.
    pub fn register(r: &Registry) -> WebhookMetrics {
        let outcomes = IntCounterVec::new(
            Opts::new("clickgate_webhook_deliveries_total", "Webhook attempts by outcome: delivered, retried, exhausted, gone."),
            &["outcome"],
        )
        .expect("valid metric");
        r.register(Box::new(outcomes.clone())).expect("registered once");
        let events = IntCounterVec::new(
            Opts::new(
                "clickgate_outbox_events_total",
                "Outbox events fanned out to webhook endpoints, by type, whether or not any endpoint takes them.",
            ),
            &["type"],
        )
        .expect("valid metric");
        r.register(Box::new(events.clone())).expect("registered once");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let attempts = counter("clickgate_webhook_attempts_total", "Webhook delivery attempts made.");
        let failing_alerts =
            counter("clickgate_webhook_endpoints_disabled_failing_total", "Endpoints disabled after failing every attempt for 5 days.");
        let lag =
            Gauge::new("clickgate_webhook_outbox_lag_seconds", "Age of the oldest outbox event not yet fanned out; 0 when caught up.")
                .expect("valid metric");
        r.register(Box::new(lag.clone())).expect("registered once");
        let disabled =
            IntGauge::new("clickgate_webhook_endpoints_disabled", "Webhook endpoints currently disabled.").expect("valid metric");
        r.register(Box::new(disabled.clone())).expect("registered once");
        WebhookMetrics {
            outcomes: DeliveryOutcome::ALL.iter().map(|o| outcomes.with_label_values(&[o.as_str()])).collect(),
            events: OUTBOX_EVENT_TYPES.iter().map(|t| events.with_label_values(&[t])).collect(),
            attempts,
            outbox_lag_seconds: lag,
            disabled_endpoints: disabled,
            failing_alerts,
        }
    }

    /// Counts an attempt's outcome.
    pub fn delivery(&self, o: DeliveryOutcome) {
        self.outcomes[o as usize].inc();
    }

    /// Counts an outbox event of the type at `index` in `OUTBOX_EVENT_TYPES`.
    pub fn outbox_event(&self, index: usize) {
        if let Some(c) = self.events.get(index) {
            c.inc();
        }
    }

    /// The count of one outcome (tests, benches).
    pub fn deliveries(&self, o: DeliveryOutcome) -> u64 {
        self.outcomes[o as usize].get()
    }
}
