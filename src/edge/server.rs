//! Listeners: accept loops with a connection cap, hyper's header-read timeout and header
//! limits, optional TLS, and a graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config;
use crate::metrics::Metrics;

/// Limits applied to every connection of a listener.
#[derive(Clone)]
pub struct ListenerLimits {
    pub connections_max: usize,
    pub header_read_timeout: Duration,
    pub headers_max: usize,
    pub header_bytes_max: usize,
    pub drain: Duration,
}

impl ListenerLimits {
    /// The limits from the `[edge]` section.
    pub fn from_edge(e: &config::Edge) -> ListenerLimits {
        ListenerLimits {
            connections_max: e.connections_max,
            header_read_timeout: Duration::from_millis(e.header_read_timeout_ms),
            headers_max: e.headers_max,
            header_bytes_max: e.header_bytes_max,
            drain: Duration::from_millis(e.shutdown_drain_ms),
        }
    }
}

fn http1_builder(limits: &ListenerLimits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_header_size(limits.header_bytes_max);
    b.max_buf_size(limits.header_bytes_max.max(8192));
    // hyper's default is 100 headers on the stack; setting it moves them to the heap per request.
    if limits.headers_max != 100 {
        b.max_headers(limits.headers_max);
    }
    b
}

/// Serves `handler` on `listener` until `shutdown` flips, then drains open connections for up
/// to `limits.drain`.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ListenerLimits,
    metrics: Option<Metrics>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let graceful = GracefulShutdown::new();
    let h1 = http1_builder(&limits);
    let mut auto = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    auto.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.header_bytes_max.max(8192))
        .max_headers(limits.headers_max);
    auto.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.header_bytes_max as u32)
        .max_concurrent_streams(100)
        // HTTP/2 has no header-read timeout: keep-alive pings close peers that stop answering.
        // (A peer that answers pings but never sends a request still holds its slot.)
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Some(m) = &metrics {
                m.connections_refused.inc();
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let h = handler.clone();
        let svc = service_fn(move |req| {
            let fut = h(peer, req);
            async move { Ok::<_, Infallible>(fut.await) }
        });
        let open = metrics.as_ref().map(|m| m.connections_open.clone());
        if let Some(g) = &open {
            g.inc();
        }
        match &tls {
            None => {
                let conn = graceful.watch(h1.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                    if let Some(g) = open {
                        g.dec();
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let auto = auto.clone();
                let timeout = limits.header_read_timeout;
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    if let Ok(Ok(tls_stream)) = tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        let conn = auto.serve_connection(TokioIo::new(tls_stream), svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                    drop(permit);
                    if let Some(g) = open {
                        g.dec();
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(drain_ms = limits.drain.as_millis() as u64, "connections still open after the drain period; closing them");
    }
}
