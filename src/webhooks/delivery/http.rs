//! One attempt over the network: check the URL, resolve its name once, check every address,
//! connect to a checked address (pinned, so a second answer from DNS cannot move the
//! connection), speak TLS with the URL's host as SNI when the URL is `https`, post the signed
//! envelope and read the status and at most the first KiB of the body. Redirects are answers
//! like any other: never followed. The whole attempt runs under one timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::webhooks::schedule::Response;
use crate::webhooks::signature::Headers;
use crate::webhooks::ssrf::{check_resolved, check_url, Host, Policy, SsrfError, WebhookUrl};

/// The longest response excerpt kept, in bytes.
pub const EXCERPT_BYTES_MAX: usize = 1024;

/// Resolves a host name: the system's resolver, or a test's.
pub trait Resolver: Send + Sync {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// The operating system's resolver (`/etc/hosts`, then DNS).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// What every attempt shares: the guard's policy, the TLS roots, the resolver and the timeout.
pub struct Transport {
    pub policy: Policy,
    pub tls: Arc<rustls::ClientConfig>,
    pub resolver: Arc<dyn Resolver>,
    pub timeout: Duration,
}

impl Transport {
    /// A transport with the public web PKI's roots and the system's resolver.
    pub fn new(policy: Policy, timeout: Duration) -> Result<Transport, rustls::Error> {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Transport { policy, tls: Arc::new(tls), resolver: Arc::new(SystemResolver), timeout })
    }
}

/// What an attempt got: an answer (a status, its `Retry-After`, the body's first KiB), or none
/// and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Answered {
        status: u16,
        retry_after: Option<String>,
        excerpt: String,
    },
    TimedOut,
    /// No connection: the guard refused, resolution, TCP, TLS or HTTP failed. The text says which.
    NotConnected(String),
}

impl Sent {
    /// The answer as `schedule::classify` reads it.
    pub fn response(&self) -> Response<'_> {
        match self {
            Sent::Answered { status, retry_after, .. } => Response::Status { status: *status, retry_after: retry_after.as_deref() },
            Sent::TimedOut => Response::TimedOut,
            Sent::NotConnected(_) => Response::ConnectFailed,
        }
    }
}

/// Posts `body` to `url` with the attempt's headers.
pub async fn send(transport: &Transport, url: &str, headers: &Headers, body: Bytes) -> Sent {
    match tokio::time::timeout(transport.timeout, attempt(transport, url, headers, body)).await {
        Ok(Ok(sent)) => sent,
        Ok(Err(why)) => Sent::NotConnected(cut(&why)),
        Err(_) => Sent::TimedOut,
    }
}

/// The addresses a URL may be reached at now: its literal address, or its name resolved once,
/// each checked.
pub async fn resolve(transport: &Transport, url: &WebhookUrl) -> Result<Vec<SocketAddr>, SsrfError> {
    match url.host() {
        Host::Ip(ip) => {
            transport.policy.check_ip(*ip)?;
            Ok(vec![SocketAddr::new(*ip, url.port())])
        }
        Host::Name(name) => {
            let resolved = transport
                .resolver
                .lookup(name, url.port())
                .await
                .map_err(|e| SsrfError::Resolve { host: name.clone(), error: e.to_string() })?;
            check_resolved(name.clone(), resolved, &transport.policy)
        }
    }
}

async fn attempt(transport: &Transport, url: &str, headers: &Headers, body: Bytes) -> Result<Sent, String> {
    let url = check_url(url, &transport.policy).map_err(|e| e.to_string())?;
    let addrs = resolve(transport, &url).await.map_err(|e| e.to_string())?;
    let mut last = String::from("no address");
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    let tcp = tcp.ok_or(last)?;
    let _ = tcp.set_nodelay(true);
    let request = request(&url, headers, body)?;
    if url.is_https() {
        let name = match url.host() {
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            Host::Name(n) => ServerName::try_from(n.clone()).map_err(|e| format!("TLS server name {n:?}: {e}"))?,
        };
        let tls = tokio_rustls::TlsConnector::from(transport.tls.clone()).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

fn request(url: &WebhookUrl, headers: &Headers, body: Bytes) -> Result<hyper::Request<Full<Bytes>>, String> {
    let value = |s: &str| HeaderValue::from_str(s).map_err(|e| format!("header value: {e}"));
    hyper::Request::post(url.path_and_query())
        .header(HOST, value(url.authority())?)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(USER_AGENT, HeaderValue::from_static(concat!("clickgate-webhooks/", env!("CARGO_PKG_VERSION"))))
        .header("webhook-id", value(&headers.id)?)
        .header("webhook-timestamp", value(&headers.timestamp)?)
        .header("webhook-signature", value(&headers.signature)?)
        .body(Full::new(body))
        .map_err(|e| format!("building the request: {e}"))
}

async fn exchange<I>(io: I, request: hyper::Request<Full<Bytes>>) -> Result<Sent, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"));
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return Err(e);
        }
    };
    let status = response.status().as_u16();
    let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut body = response.into_body();
    let mut kept: Vec<u8> = Vec::new();
    while kept.len() < EXCERPT_BYTES_MAX {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    kept.extend_from_slice(&data[..data.len().min(EXCERPT_BYTES_MAX - kept.len())]);
                }
            }
            // A body cut short still leaves its status: the answer counts.
            Some(Err(_)) | None => break,
        }
    }
    // The connection is not reused: each attempt resolves and checks again.
    driver.abort();
    Ok(Sent::Answered { status, retry_after, excerpt: excerpt(&kept) })
}

/// The text kept of a response body: NUL is dropped, since PostgreSQL's text refuses it and one
/// receiver's bytes must never stop the attempts recorded beside it; invalid UTF-8 is replaced.
pub fn excerpt(body: &[u8]) -> String {
    cut(&String::from_utf8_lossy(body).replace('\0', ""))
}

/// `s` cut to at most `EXCERPT_BYTES_MAX` bytes on a character boundary.
pub fn cut(s: &str) -> String {
    if s.len() <= EXCERPT_BYTES_MAX {
        return s.to_owned();
    }
    let mut end = EXCERPT_BYTES_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
