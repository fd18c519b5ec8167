//! Prometheus metrics: every family registered in one place, handles cached in state.
//! Label values come only from closed sets (verdicts, reason codes, database kinds).

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::edge::checks::geo::DbKind;
use crate::edge::checks::{Reason, Verdict};
use crate::events::sink::SinkMetrics;

/// Outcomes of edge requests that are not clicks.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    UnknownCode,
    Fallback,
    NotFound,
    MethodNotAllowed,
    BodyTooLarge,
}

impl Outcome {
    const ALL: [Outcome; 5] =
        [Outcome::UnknownCode, Outcome::Fallback, Outcome::NotFound, Outcome::MethodNotAllowed, Outcome::BodyTooLarge];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::UnknownCode => "unknown_code",
            Outcome::Fallback => "fallback",
            Outcome::NotFound => "not_found",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::BodyTooLarge => "body_too_large",
        }
    }
}

/// Every metric handle.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    clicks: Vec<IntCounter>,
    reasons: Vec<IntCounter>,
    observed: Vec<IntCounter>,
    outcomes: Vec<IntCounter>,
    pub redirect_latency: Histogram,
    pub sink: SinkMetrics,
    pub geoip_age: Vec<Gauge>,
    pub geoip_loaded: Vec<IntGauge>,
    pub ratelimit_keys: IntGaugeVec,
    pub connections_open: IntGauge,
    pub connections_refused: IntCounter,
    pub links_loaded: IntGauge,
    pub link_reloads: IntCounter,
    pub bot_patterns: IntGauge,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str, values: &[&str]) -> Vec<IntCounter> {
    let vec = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    registry.register(Box::new(vec.clone())).expect("registered once");
    values.iter().map(|v| vec.with_label_values(&[v])).collect()
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("registered once");
    c
}

impl Metrics {
    /// Registers every family in a fresh registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let verdicts: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        let reasons: Vec<&str> = Reason::ALL.iter().map(|v| v.as_str()).collect();
        let outcomes: Vec<&str> = Outcome::ALL.iter().map(|v| v.as_str()).collect();
        let dbs: Vec<&str> = DbKind::ALL.iter().map(|v| v.as_str()).collect();
        let redirect_latency = Histogram::with_opts(
            HistogramOpts::new("clickgate_redirect_latency_seconds", "Time from request to redirect decision on the edge.")
                .buckets(vec![0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01]),
        )
        .expect("valid metric");
        r.register(Box::new(redirect_latency.clone())).expect("registered once");
        let geo_age = prometheus::GaugeVec::new(
            Opts::new("clickgate_geoip_database_age_seconds", "Age of each loaded GeoIP database, from its build time."),
            &["db"],
        )
        .expect("valid metric");
        r.register(Box::new(geo_age.clone())).expect("registered once");
        let geo_loaded = IntGaugeVec::new(
            Opts::new("clickgate_geoip_database_loaded", "1 when a GeoIP database is loaded, 0 when its checks are off."),
            &["db"],
        )
        .expect("valid metric");
        r.register(Box::new(geo_loaded.clone())).expect("registered once");
        let ratelimit_keys = IntGaugeVec::new(Opts::new("clickgate_ratelimit_keys", "Keys held by the keyed rate limiters."), &["kind"])
            .expect("valid metric");
        r.register(Box::new(ratelimit_keys.clone())).expect("registered once");
        Metrics {
            clicks: counter_vec(r, "clickgate_clicks_total", "Clicks on /r and /q by verdict.", "verdict", &verdicts),
            reasons: counter_vec(r, "clickgate_click_reasons_total", "Reasons found on clicks (enforced rules).", "reason", &reasons),
            observed: counter_vec(
                r,
                "clickgate_click_observed_total",
                "Reasons rules in observe mode would have acted on.",
                "reason",
                &reasons,
            ),
            outcomes: counter_vec(
                r,
                "clickgate_edge_requests_total",
                "Edge requests that were not clicks, by outcome.",
                "outcome",
                &outcomes,
            ),
            redirect_latency,
            sink: SinkMetrics {
                queue_depth: gauge(r, "clickgate_click_queue_depth", "Click events waiting in the queue."),
                written: counter(r, "clickgate_click_events_written_total", "Click events written to the click log by the consumer."),
                spilled: counter(
                    r,
                    "clickgate_click_events_spilled_total",
                    "Click events written directly to the click log because the queue was full.",
                ),
                dropped: counter(
                    r,
                    "clickgate_click_events_dropped_total",
                    "Click events lost because neither the queue nor the log took them (should be zero).",
                ),
            },
            geoip_age: dbs.iter().map(|d| geo_age.with_label_values(&[d])).collect(),
            geoip_loaded: dbs.iter().map(|d| geo_loaded.with_label_values(&[d])).collect(),
            ratelimit_keys,
            connections_open: gauge(r, "clickgate_edge_connections_open", "Open edge connections."),
            connections_refused: counter(
                r,
                "clickgate_edge_connections_refused_total",
                "Edge connections closed at accept because of connections_max.",
            ),
            links_loaded: gauge(r, "clickgate_links_loaded", "Links in the edge's in-memory table."),
            link_reloads: counter(r, "clickgate_link_table_reloads_total", "Times the link table was rebuilt and swapped."),
            bot_patterns: gauge(r, "clickgate_bot_patterns", "Crawler user-agent patterns compiled."),
            registry,
        }
    }

    /// Counts a click verdict.
    pub fn click(&self, v: Verdict) {
        self.clicks[v as usize].inc();
    }

    /// Counts an enforced reason.
    pub fn reason(&self, r: Reason) {
        self.reasons[r as usize].inc();
    }

    /// Counts an observed reason.
    pub fn observed(&self, r: Reason) {
        self.observed[r as usize].inc();
    }

    /// Counts a non-click outcome.
    pub fn outcome(&self, o: Outcome) {
        self.outcomes[o as usize].inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
