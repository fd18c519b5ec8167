//! A local Stripe for the payout tests: a real hyper server on 127.0.0.1 that checks each
//! `POST /v1/transfers` the way Stripe documents it and answers the way Stripe does.
//!
//! It checks the method and path, `Authorization: Bearer <key>`, a `Stripe-Version` of the
//! date form, an `Idempotency-Key`, `Content-Type: application/x-www-form-urlencoded`, and the
//! form: a positive integer `amount`, a lower-case three-letter `currency`, an `acct_…`
//! `destination`, a `transfer_group`, `metadata[payout_id]` and `metadata[partner]`, and no
//! other parameter. A refusal is Stripe's error object naming the parameter.
//!
//! As Stripe does, it stores the answer of every request that reached execution under its
//! `Idempotency-Key` and replays it (with `Idempotent-Replayed: true`) for the same key and
//! parameters; the same key with other parameters is a 400 `idempotency_error`. Requests
//! refused by validation are not stored, so their retries are judged afresh.
//!
//! A test can make it answer `balance_insufficient` or `resource_missing` for a destination,
//! fail the next requests with a status before they execute (a 500 or 429 in front of the
//! API), lose the next answers after they execute (the transfer exists, the client sees a 500),
//! or hold the next requests without answering (a timeout).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

mod check;

use check::{error, Refusal};

/// The largest request body accepted.
const BODY_BYTES_MAX: usize = 64 * 1024;

/// A transfer the server created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub destination: String,
    pub transfer_group: String,
    pub metadata: BTreeMap<String, String>,
    pub idempotency_key: String,
}

/// A request as the server saw it, and the status it answered.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The form's pairs, decoded, in the order sent.
    pub form: Vec<(String, String)>,
    pub status: u16,
}

impl SeenRequest {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The first value of a form field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A stored answer, with the parameters it was given for.
struct Stored {
    form: Vec<(String, String)>,
    status: u16,
    body: String,
}

#[derive(Default)]
struct State {
    key: String,
    stored: HashMap<String, Stored>,
    transfers: Vec<Transfer>,
    requests: Vec<SeenRequest>,
    insufficient: HashSet<String>,
    missing: HashSet<String>,
    fail_next: Vec<u16>,
    lose_next: u32,
    stall_next: u32,
    next_id: u64,
}

/// The running server; it stops when dropped.
pub struct StripeServer {
    addr: SocketAddr,
    https: bool,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StripeServer {
    /// Starts a plain-HTTP server on 127.0.0.1 that accepts `secret_key`, on a thread and
    /// runtime of its own, so sync and async tests alike can use it.
    pub fn start(secret_key: &str) -> std::io::Result<StripeServer> {
        StripeServer::spawn(secret_key, None)
    }

    /// As `start`, but serving TLS with `tls` (a certificate for `localhost`).
    pub fn start_tls(secret_key: &str, tls: Arc<rustls::ServerConfig>) -> std::io::Result<StripeServer> {
        StripeServer::spawn(secret_key, Some(tokio_rustls::TlsAcceptor::from(tls)))
    }

    fn spawn(secret_key: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<StripeServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State { key: secret_key.to_string(), ..State::default() }));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let shared = state.clone();
        let https = tls.is_some();
        let thread = std::thread::Builder::new().name("stripe-test-server".into()).spawn(move || {
            runtime.block_on(serve(listener, tls, shared, stopped));
        })?;
        Ok(StripeServer { addr, https, state, stop: Some(stop), thread: Some(thread) })
    }

    /// The `api_base` to give the client: `http://127.0.0.1:<port>`, or
    /// `https://localhost:<port>` for a TLS server.
    pub fn base(&self) -> String {
        match self.https {
            true => format!("https://localhost:{}", self.addr.port()),
            false => format!("http://{}", self.addr),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The transfers created, in order.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.state().transfers.clone()
    }

    /// How many transfers were created.
    pub fn transfer_count(&self) -> usize {
        self.state().transfers.len()
    }

    /// Every request seen, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state().requests.clone()
    }

    /// Answer `balance_insufficient` for transfers to `destination` (`true`), or stop (`false`).
    pub fn set_insufficient(&self, destination: &str, on: bool) {
        let mut s = self.state();
        if on {
            s.insufficient.insert(destination.to_string());
        } else {
            s.insufficient.remove(destination);
        }
    }

    /// Answer `resource_missing` ("No such destination") for `destination`.
    pub fn set_missing(&self, destination: &str) {
        self.state().missing.insert(destination.to_string());
    }

    /// Answer the next `n` requests with `status` (500, 429, 503…) before they execute.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state().fail_next.extend(std::iter::repeat_n(status, n));
    }

    /// Execute (or replay) the next `n` valid requests but answer 500, as if the answer were lost.
    pub fn lose_next(&self, n: u32) {
        self.state().lose_next += n;
    }

    /// Hold the next `n` requests without answering until the server stops.
    pub fn stall_next(&self, n: u32) {
        self.state().stall_next += n;
    }
}

impl Drop for StripeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => continue,
            },
            _ = stopped.changed() => return,
        };
        let (state, tls, stopped) = (state.clone(), tls.clone(), stopped.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, state.clone(), stopped.clone()));
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                }
                Some(tls) => {
                    if let Ok(stream) = tls.accept(tcp).await {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            }
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers: Vec<(String, String)> =
        req.headers().iter().map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let body = match Limited::new(req.into_body(), BODY_BYTES_MAX).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(respond(413, &error("invalid_request_error", None, None, "The request body is too large."), false)),
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let mut seen = SeenRequest { method, path, headers, form, status: 0 };

    let decided = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if s.stall_next > 0 {
            s.stall_next -= 1;
            s.requests.push(seen);
            None
        } else {
            let (status, body, replayed) = answer(&mut s, &seen);
            seen.status = status;
            s.requests.push(seen);
            s.next_id += 1;
            Some((status, body, replayed))
        }
    };
    let Some((status, body, replayed)) = decided else {
        // A stalled request is answered only when the server stops; its status stays 0.
        let _ = stopped.wait_for(|stop| *stop).await;
        return Ok(respond(503, "{}", false));
    };
    Ok(respond(status, &body, replayed))
}

/// The server's whole decision for one request, in Stripe's order: route, authentication,
/// headers, injected failures, parameter validation, idempotency, then execution.
fn answer(s: &mut State, seen: &SeenRequest) -> (u16, String, bool) {
    let refused = |r: Refusal| (r.status, r.body, false);
    if let Err(r) = check::request(&s.key, seen) {
        return refused(r);
    }
    if !s.fail_next.is_empty() {
        let status = s.fail_next.remove(0);
        let (kind, message) = match status {
            429 => ("invalid_request_error", "Too many requests hit the API too quickly."),
            _ => ("api_error", "An unknown error occurred."),
        };
        return (status, error(kind, Some(if status == 429 { "rate_limit" } else { "api_error" }), None, message), false);
    }
    let params = match check::form(&seen.form) {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    let key = seen.header("idempotency-key").unwrap_or_default().to_string();
    let mut sorted = seen.form.clone();
    sorted.sort();
    if let Some(stored) = s.stored.get(&key) {
        if stored.form != sorted {
            let message = format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. \
                 Try using a key other than '{key}' if you meant to execute a different request."
            );
            return (400, error("idempotency_error", None, None, &message), false);
        }
        let replay = (stored.status, stored.body.clone(), true);
        return lose(s, replay);
    }
    let (status, body) = if s.missing.contains(&params.destination) {
        let message = format!("No such destination: '{}'", params.destination);
        (400, error("invalid_request_error", Some("resource_missing"), Some("destination"), &message))
    } else if s.insufficient.contains(&params.destination) {
        let message = "You have insufficient available funds in your Stripe account. Try adding funds directly to your available balance by creating Charges using the 4000000000000077 test card.";
        (400, error("invalid_request_error", Some("balance_insufficient"), None, message))
    } else {
        let id = format!("tr_test{:017}", s.transfers.len() + 1);
        let transfer = Transfer { id, idempotency_key: key.clone(), ..params };
        let body = check::transfer_json(&transfer, s.next_id);
        s.transfers.push(transfer);
        (200, body)
    };
    s.stored.insert(key, Stored { form: sorted, status, body: body.clone() });
    lose(s, (status, body, false))
}

/// The answer, or a 500 in its place while answers are being lost.
fn lose(s: &mut State, answer: (u16, String, bool)) -> (u16, String, bool) {
    if s.lose_next == 0 {
        return answer;
    }
    s.lose_next -= 1;
    (500, error("api_error", None, None, "An unknown error occurred."), false)
}

fn respond(status: u16, body: &str, replayed: bool) -> Response<Full<Bytes>> {
    let mut resp = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", format!("req_test{:012}", fastrand::u64(..1_000_000_000_000)));
    if replayed {
        resp = resp.header("idempotent-replayed", "true");
    }
    resp.body(Full::new(Bytes::from(body.to_string()))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
