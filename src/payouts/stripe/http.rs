//! The HTTP/1.1 transport under the Stripe client: hyper's client connection over TCP, with
//! rustls (ring) for `https`, a small pool of kept-alive connections, and timeouts on the
//! connect and on the whole attempt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::{StripeConfig, StripeError, RESPONSE_BYTES_MAX};

/// rustls with ring and the Mozilla roots, offering HTTP/1.1 by ALPN.
pub(super) fn default_tls() -> Result<Arc<rustls::ClientConfig>, StripeError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StripeError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// An answer: its status, Stripe's `Stripe-Should-Retry` hint, and the body.
pub(super) struct Response {
    pub status: u16,
    pub should_retry: Option<bool>,
    pub body: Bytes,
}

/// Where requests go and how.
pub(super) struct Transport {
    tls: Option<tokio_rustls::TlsConnector>,
    host: String,
    port: u16,
    /// `host` or `host:port`: the `Host` header and the name in errors.
    authority: String,
    /// The base's path without its trailing slash, prefixed to every request path.
    prefix: String,
    connect_timeout_ms: u64,
    request_timeout_ms: u64,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    idle_max: usize,
}

impl Transport {
    /// Parses `api_base`: `https://host[:port][/path]`, or `http://` for a local server.
    pub(super) fn new(config: &StripeConfig, tls: Arc<rustls::ClientConfig>) -> Result<Transport, StripeError> {
        let base = &config.api_base;
        let bad = |why: &str| StripeError::ApiBase { base: base.clone(), why: why.to_string() };
        let url = url::Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("the scheme is neither https nor http")),
        };
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a base holds no user, query or fragment"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(bad("no host")),
        };
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_string(),
        };
        let tls = https.then(|| tokio_rustls::TlsConnector::from(tls));
        Ok(Transport {
            tls,
            host,
            port,
            authority,
            prefix: url.path().trim_end_matches('/').to_string(),
            connect_timeout_ms: config.connect_timeout_ms,
            request_timeout_ms: config.request_timeout_ms,
            idle: Mutex::new(Vec::new()),
            idle_max: config.idle_connections_max,
        })
    }

    /// One POST, within the request timeout. A kept-alive connection that the server closed
    /// in the meantime is replaced once by a fresh one; the caller's idempotency key makes
    /// sending twice harmless.
    pub(super) async fn post(&self, path: &str, headers: &[(&str, String)], body: Bytes) -> Result<Response, StripeError> {
        let timeout = Duration::from_millis(self.request_timeout_ms);
        let attempt = async {
            if let Some(sender) = self.take_idle() {
                if let Ok(resp) = self.send(sender, path, headers, body.clone()).await {
                    return Ok(resp);
                }
            }
            let sender = self.connect().await?;
            self.send(sender, path, headers, body).await
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| StripeError::RequestTimeout { authority: self.authority.clone(), timeout_ms: self.request_timeout_ms })?
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.idle_max && !sender.is_closed() {
            idle.push(sender);
        }
    }

    async fn send(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Response, StripeError> {
        let http = |e: &dyn std::fmt::Display| StripeError::Http { authority: self.authority.clone(), why: e.to_string() };
        let mut req =
            hyper::Request::post(format!("{}{path}", self.prefix)).header("host", &self.authority).header("user-agent", USER_AGENT);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let req = req.body(Full::new(body)).map_err(|e| http(&e))?;
        sender.ready().await.map_err(|e| http(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| http(&e))?;
        let status = resp.status().as_u16();
        let should_retry = match resp.headers().get("stripe-should-retry").map(|v| v.as_bytes()) {
            Some(b"true") => Some(true),
            Some(b"false") => Some(false),
            _ => None,
        };
        let body = Limited::new(resp.into_body(), RESPONSE_BYTES_MAX).collect().await.map_err(|e| http(&*e))?.to_bytes();
        self.put_idle(sender);
        Ok(Response { status, should_retry, body })
    }

    /// A new connection: TCP, then TLS for `https`, within the connect timeout.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, StripeError> {
        let err = |why: String| StripeError::Connect { authority: self.authority.clone(), why };
        let connect = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| err(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => handshake(tcp).await.map_err(|e| err(e.to_string())),
                Some(tls) => {
                    let name = ServerName::try_from(self.host.clone()).map_err(|e| err(e.to_string()))?;
                    let stream = tls.connect(name, tcp).await.map_err(|e| err(format!("TLS: {e}")))?;
                    handshake(stream).await.map_err(|e| err(e.to_string()))
                }
            }
        };
        tokio::time::timeout(Duration::from_millis(self.connect_timeout_ms), connect)
            .await
            .map_err(|_| StripeError::ConnectTimeout { authority: self.authority.clone(), timeout_ms: self.connect_timeout_ms })?
    }
}

/// What the client calls itself, as Stripe's own libraries do.
const USER_AGENT: &str = concat!("clickgate/", env!("CARGO_PKG_VERSION"));

/// An HTTP/1.1 handshake over a connected stream; the connection runs on its own task and
/// ends when the last sender is dropped.
async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "A connection to Stripe ended with an error.");
        }
    });
    Ok(sender)
}
