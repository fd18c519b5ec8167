//! The admin listener: `/metrics`, `/healthz`, `/readyz`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use crate::edge::EdgeState;
use crate::metrics::Metrics;
use crate::model::GeoDbKind;

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Refreshes gauges that are read rather than pushed.
pub fn refresh_gauges(state: &EdgeState) {
    let m = &state.metrics;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for (i, kind) in GeoDbKind::ALL.into_iter().enumerate() {
        match state.pipeline.geo.get(kind) {
            Some(db) => {
                m.geoip_loaded[i].set(1);
                m.geoip_age[i].set(now.saturating_sub(db.build_epoch) as f64);
            }
            None => {
                m.geoip_loaded[i].set(0);
                m.geoip_age[i].set(0.0);
            }
        }
    }
    let (ip, subnet) = state.pipeline.rate_limits.key_counts();
    m.ratelimit_keys.with_label_values(&["ip"]).set(ip as i64);
    m.ratelimit_keys.with_label_values(&["subnet"]).set(subnet as i64);
    m.links_loaded.set(state.links.load().len() as i64);
    m.sink.queue_depth.set(state.sink.queue_len() as i64);
}

/// Handles one admin request. `edge` is absent in a core-only process.
pub fn handle<B>(metrics: &Metrics, edge: Option<&Arc<EdgeState>>, req: Request<B>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => {
            if let Some(state) = edge {
                refresh_gauges(state);
            }
            text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics.render())
        }
        "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" => {
            if edge.is_some_and(|state| state.links.load().is_empty()) {
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "no links loaded\n")
            } else {
                text(StatusCode::OK, "text/plain; charset=utf-8", "ready\n")
            }
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n"),
    }
}
