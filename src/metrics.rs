//! Prometheus metrics: every family registered in one place, handles cached in state.
//! Label values come only from closed sets (verdicts, reason codes, database kinds).

mod catalog;
mod payouts;

pub use catalog::{CatalogMetrics, CatalogSource};
pub use payouts::{PayoutMetrics, PayoutState};

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::events::sink::SinkMetrics;
use crate::model::GeoDbKind;
use crate::model::{Reason, Verdict};

mod webhooks;
pub use webhooks::{DeliveryOutcome, WebhookMetrics, OUTBOX_EVENT_TYPES};

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
    pub link_updates: IntCounter,
    pub bot_patterns: IntGauge,
    pub datacenter_asns: IntGauge,
    pub catalog: CatalogMetrics,
    pub core: CoreMetrics,
    pub api: ApiMetrics,
    pub cluster: ClusterMetrics,
    pub payouts: PayoutMetrics,
    pub webhooks: WebhookMetrics,
}

/// The core's click ingest, log and index.
#[derive(Clone)]
pub struct CoreMetrics {
    /// Events written to the click log and indexed.
    pub ingested: IntCounter,
    /// Events skipped because their click id was already held (broker redelivery, replays).
    pub duplicates: IntCounter,
    pub batches: IntCounter,
    /// Time to append, fsync and index one batch.
    pub batch_seconds: Histogram,
    pub index_clicks: IntGauge,
    pub index_visitors: IntGauge,
    /// Clicks dropped from the index to stay inside `core.index_clicks_max`.
    pub index_evictions: IntCounter,
    pub log_bytes: IntGauge,
    pub log_segments: IntGauge,
    /// Segments deleted by retention.
    pub segments_expired: IntCounter,
    /// Segments rewritten by compaction.
    pub segments_compacted: IntCounter,
    /// `fraud.alert` events raised, by `crate::fraud::AlertKind` (index order of `ALL`).
    pub fraud_alerts: Vec<IntCounter>,
    /// Alerts dropped because the writer's queue for them was full.
    pub fraud_alerts_dropped: IntCounter,
}

/// The API and conversions.
#[derive(Clone)]
pub struct ApiMetrics {
    requests: Vec<IntCounter>,
    attributions: Vec<IntCounter>,
    /// Time of a grouped commit of conversions: its work and its commit (the WAL's sync
    /// follows on a thread of its own, `wal_syncs`).
    pub commit_seconds: Histogram,
    /// Conversions per grouped commit.
    pub commit_batch_len: Histogram,
    /// Syncs of the store's WAL (SQLite's fdatasync, PostgreSQL's flush), each making every
    /// group committed before it durable, and only then acknowledged.
    pub wal_syncs: IntCounter,
}

/// API answers, by class.
#[derive(Debug, Clone, Copy)]
pub enum ApiOutcome {
    Ok,
    Created,
    Replayed,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Unprocessable,
    TooLarge,
    RateLimited,
    Error,
}

impl ApiOutcome {
    const ALL: [ApiOutcome; 12] = [
        ApiOutcome::Ok,
        ApiOutcome::Created,
        ApiOutcome::Replayed,
        ApiOutcome::BadRequest,
        ApiOutcome::Unauthorized,
        ApiOutcome::Forbidden,
        ApiOutcome::NotFound,
        ApiOutcome::Conflict,
        ApiOutcome::Unprocessable,
        ApiOutcome::TooLarge,
        ApiOutcome::RateLimited,
        ApiOutcome::Error,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ApiOutcome::Ok => "ok",
            ApiOutcome::Created => "created",
            ApiOutcome::Replayed => "replayed",
            ApiOutcome::BadRequest => "bad_request",
            ApiOutcome::Unauthorized => "unauthorized",
            ApiOutcome::Forbidden => "forbidden",
            ApiOutcome::NotFound => "not_found",
            ApiOutcome::Conflict => "conflict",
            ApiOutcome::Unprocessable => "unprocessable",
            ApiOutcome::TooLarge => "too_large",
            ApiOutcome::RateLimited => "rate_limited",
            ApiOutcome::Error => "error",
        }
    }
}

/// How a conversion was attributed.
#[derive(Debug, Clone, Copy)]
pub enum AttributionOutcome {
    ClickId,
    Visitor,
    Coupon,
    Unattributed,
}

impl AttributionOutcome {
    const ALL: [AttributionOutcome; 4] =
        [AttributionOutcome::ClickId, AttributionOutcome::Visitor, AttributionOutcome::Coupon, AttributionOutcome::Unattributed];

    fn as_str(self) -> &'static str {
        match self {
            AttributionOutcome::ClickId => "click_id",
            AttributionOutcome::Visitor => "visitor",
            AttributionOutcome::Coupon => "coupon",
            AttributionOutcome::Unattributed => "unattributed",
        }
    }
}

impl ApiMetrics {
    /// Counts an API answer.
    pub fn request(&self, o: ApiOutcome) {
        self.requests[o as usize].inc();
    }

    /// Counts a new conversion's attribution.
    pub fn attribution(&self, o: AttributionOutcome) {
        self.attributions[o as usize].inc();
    }
}

/// Cluster mode: the edge's publisher and spool, the core's JetStream consumer.
#[derive(Clone)]
pub struct ClusterMetrics {
    pub published: IntCounter,
    pub publish_failures: IntCounter,
    /// Events appended to the local spool because the broker was down or behind.
    pub spooled: IntCounter,
    pub spool_bytes: IntGauge,
    /// 1 while the edge has a working broker connection.
    pub broker_up: IntGauge,
    /// Click events the core consumed and acked after its durable write.
    pub consumed: IntCounter,
    /// Messages the core could not read (terminated so they do not loop), and batched events that did not decode.
    pub poison: IntCounter,
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

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric");
    registry.register(Box::new(h.clone())).expect("registered once");
    h
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
        let dbs: Vec<&str> = GeoDbKind::ALL.iter().map(|v| v.as_str()).collect();
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
                queue_depth: gauge(r, "clickgate_click_queue_depth", "Click events waiting in the queue, read at each scrape."),
                spill_depth: gauge(
                    r,
                    "clickgate_click_spill_queue_depth",
                    "Click events waiting in the spill queue for the spill thread to write them to the spool.",
                ),
                written: counter(r, "clickgate_click_events_written_total", "Click events the queue's consumer wrote to its writer."),
                spilled: counter(
                    r,
                    "clickgate_click_events_spilled_total",
                    "Click events the spill thread wrote to the spool because the queue was full or closed.",
                ),
                dropped: counter(
                    r,
                    "clickgate_click_events_dropped_total",
                    "Click events lost: both the queue and the spill queue were full, or a writer refused them (should be zero).",
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
            link_reloads: counter(r, "clickgate_link_table_reloads_total", "Times the link table was rebuilt whole and swapped."),
            link_updates: counter(
                r,
                "clickgate_link_table_updates_total",
                "Times the store's changes since the link table's version were applied to it and the result swapped.",
            ),
            bot_patterns: gauge(r, "clickgate_bot_patterns", "Crawler user-agent patterns compiled."),
            datacenter_asns: gauge(r, "clickgate_datacenter_asns", "ASNs whose clicks are datacenter_asn: the fetched list's and the config's, less its exceptions."),
            catalog: CatalogMetrics::register(r),
            core: CoreMetrics {
                ingested: counter(r, "clickgate_core_clicks_ingested_total", "Click events written to the core's click log and indexed."),
                duplicates: counter(
                    r,
                    "clickgate_core_click_duplicates_total",
                    "Click events skipped because their click id was already held.",
                ),
                batches: counter(r, "clickgate_core_ingest_batches_total", "Batches appended and fsynced to the click log."),
                batch_seconds: histogram(
                    r,
                    "clickgate_core_ingest_batch_seconds",
                    "Time to append, fsync and index one batch of click events.",
                    vec![0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
                ),
                index_clicks: gauge(r, "clickgate_core_index_clicks", "Clicks held by the attribution index."),
                index_visitors: gauge(r, "clickgate_core_index_visitors", "Visitors held by the attribution index."),
                index_evictions: counter(
                    r,
                    "clickgate_core_index_evictions_total",
                    "Clicks evicted from the index to stay inside its limit.",
                ),
                log_bytes: gauge(r, "clickgate_core_click_log_bytes", "Bytes in the click log's segments."),
                log_segments: gauge(r, "clickgate_core_click_log_segments", "Segments in the click log."),
                segments_expired: counter(r, "clickgate_core_click_log_segments_expired_total", "Click log segments deleted by retention."),
                segments_compacted: counter(
                    r,
                    "clickgate_core_click_log_segments_compacted_total",
                    "Click log segments rewritten by compaction.",
                ),
                fraud_alerts: counter_vec(
                    r,
                    "clickgate_fraud_alerts_total",
                    "fraud.alert events raised, by the rule that fired.",
                    "kind",
                    &crate::model::AlertKind::ALL.map(crate::model::AlertKind::as_str),
                ),
                fraud_alerts_dropped: counter(
                    r,
                    "clickgate_fraud_alerts_dropped_total",
                    "fraud.alert events dropped because the queue to the writer was full.",
                ),
            },
            api: ApiMetrics {
                requests: counter_vec(
                    r,
                    "clickgate_api_requests_total",
                    "API answers by outcome.",
                    "outcome",
                    &ApiOutcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
                ),
                attributions: counter_vec(
                    r,
                    "clickgate_conversions_attributed_total",
                    "New conversions by how they were attributed.",
                    "method",
                    &AttributionOutcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
                ),
                commit_seconds: histogram(
                    r,
                    "clickgate_conversion_commit_seconds",
                    "Time for one grouped commit of conversions (on SQLite without the WAL's fsync, which the sync thread runs).",
                    vec![0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
                ),
                commit_batch_len: histogram(
                    r,
                    "clickgate_conversion_commit_batch_len",
                    "Conversions per grouped commit.",
                    vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
                ),
                wal_syncs: counter(
                    r,
                    "clickgate_conversion_wal_syncs_total",
                    "WAL syncs (fdatasyncs of the SQLite store's WAL, or flushes of PostgreSQL's); each makes every grouped commit before it durable before it is answered.",
                ),
            },
            cluster: ClusterMetrics {
                published: counter(r, "clickgate_cluster_published_total", "Click events the broker acknowledged."),
                publish_failures: counter(r, "clickgate_cluster_publish_failures_total", "Click events whose publish failed or timed out."),
                spooled: counter(r, "clickgate_cluster_spooled_total", "Click events written to the local spool."),
                spool_bytes: gauge(r, "clickgate_cluster_spool_bytes", "Bytes waiting in the local spool."),
                broker_up: gauge(r, "clickgate_cluster_broker_up", "1 while the broker connection works."),
                consumed: counter(
                    r,
                    "clickgate_cluster_consumed_total",
                    "Click events the core consumed and acked after its durable write.",
                ),
                poison: counter(
                    r,
                    "clickgate_cluster_poison_total",
                    "Messages the core could not read (terminated), and batched events that did not decode.",
                ),
            },
            payouts: PayoutMetrics::register(r),
            webhooks: WebhookMetrics::register(r),
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
