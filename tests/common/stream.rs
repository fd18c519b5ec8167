//! A stream of conversions at full speed into the API of `clickgate serve` or of several
//! `clickgate core`s on one database, for the crash tests.
//!
//! `clients` clients (hyper's HTTP/1.1 client, a keep-alive connection per API address), each
//! sending one request at a time: mostly new conversions under coupon `BOB10`, some partial or
//! full refunds of conversions it was already answered for, and some exact retries of requests
//! already answered, which must replay the first answer. With several API addresses, each
//! request goes to one picked at random, as a load balancer would spread them. A request whose
//! connection fails (its server was killed) is sent again with the same Idempotency-Key and
//! body, to the next address, until it gets its answer: so a retry lands on another server
//! too, and a request counts as acknowledged only once its 2xx arrived. Any answer other than
//! a 2xx or a 5xx ends the client with an error; 5xx answers are retried and counted. A few
//! requests (`hedge_per_mille`) go through two addresses at once, as a load balancer that gave
//! up waiting sends one again: both copies must get the same answer, at most one of them not a
//! replay.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Requests answered before this long after a client's first attempt, or the client fails.
const REQUEST_DEADLINE: Duration = Duration::from_secs(120);
/// One attempt's limit: a killed server resets its connections at once, so this only bounds a hang.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Acknowledged requests each client keeps for exact retries (the most recent ones).
const REPLAY_POOL_LEN: usize = 256;

/// What to stream, and where.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The API addresses requests are spread over; at least one.
    pub apis: Vec<SocketAddr>,
    pub admin_key: String,
    pub clients: usize,
    pub seed: u64,
    pub program: String,
    pub currency: String,
    pub coupon: String,
    /// Conversions happen up to this long before they are sent (spread evenly).
    pub occurred_ago_ms_max: u64,
    /// Requests per thousand also sent at once through the next API address, on a connection
    /// of their own (with one address, a second connection to it).
    pub hedge_per_mille: u32,
}

/// A conversion the API acknowledged.
#[derive(Debug, Clone)]
pub struct AckedConversion {
    pub id: String,
    pub order_id: String,
    pub amount_minor: i64,
    /// The commissions its answer named: (id, amount_minor).
    pub commissions: Vec<(String, i64)>,
    /// The amounts of its acknowledged refunds, in order.
    pub refunds_minor: Vec<i64>,
}

impl AckedConversion {
    /// What its acknowledged refunds add up to.
    pub fn refunded_minor(&self) -> i64 {
        self.refunds_minor.iter().sum()
    }
}

/// Everything the clients sent and were answered.
#[derive(Debug, Default)]
pub struct StreamLog {
    pub conversions: Vec<AckedConversion>,
    pub refunds_acked: u64,
    /// Exact retries of acknowledged requests, each checked to replay the first answer.
    pub replays_checked: u64,
    /// Requests with at least one failed attempt (connection refused, reset or cut mid-answer).
    pub retried_requests: u64,
    pub failed_attempts: u64,
    /// Retried requests whose answer was a replay: the killed process had committed them but
    /// never answered.
    pub committed_unanswered: u64,
    /// Retried requests answered by another API address than the one whose attempt failed
    /// (of which `replayed_elsewhere` were replays: committed by one server, answered by another).
    pub answered_elsewhere: u64,
    pub replayed_elsewhere: u64,
    /// Requests sent twice at once (`hedge_per_mille`), each pair answered as one write.
    pub hedged: u64,
    /// `5xx` answers (retried); the first few are in `server_error_samples`.
    pub server_errors: u64,
    pub server_error_samples: Vec<String>,
}

impl StreamLog {
    fn merge(&mut self, other: StreamLog) {
        self.conversions.extend(other.conversions);
        self.refunds_acked += other.refunds_acked;
        self.replays_checked += other.replays_checked;
        self.retried_requests += other.retried_requests;
        self.failed_attempts += other.failed_attempts;
        self.committed_unanswered += other.committed_unanswered;
        self.answered_elsewhere += other.answered_elsewhere;
        self.replayed_elsewhere += other.replayed_elsewhere;
        self.hedged += other.hedged;
        self.server_errors += other.server_errors;
        let room = 5usize.saturating_sub(self.server_error_samples.len());
        self.server_error_samples.extend(other.server_error_samples.into_iter().take(room));
    }
}

/// A running stream; `finish` stops it.
pub struct Stream {
    rt: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    /// Per API address.
    answered: Arc<[AtomicU64]>,
    clients: Vec<tokio::task::JoinHandle<Result<StreamLog, String>>>,
}

impl Stream {
    /// Starts the clients on a runtime of their own.
    pub fn start(config: StreamConfig) -> Stream {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
        let stop = Arc::new(AtomicBool::new(false));
        assert!(!config.apis.is_empty(), "a stream needs an API address");
        let answered: Arc<[AtomicU64]> = config.apis.iter().map(|_| AtomicU64::new(0)).collect();
        let config = Arc::new(config);
        let clients = (0..config.clients)
            .map(|n| {
                let client = Client::new(config.clone(), n, stop.clone(), answered.clone());
                rt.spawn(client.run())
            })
            .collect();
        Stream { rt, stop, answered, clients }
    }

    /// Requests answered so far by every client (5xx answers, which are retried, not counted).
    pub fn answered(&self) -> u64 {
        self.answered.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }

    /// Requests answered so far through `config.apis[api]`.
    pub fn answered_by(&self, api: usize) -> u64 {
        self.answered[api].load(Ordering::Relaxed)
    }

    /// Stops new requests, lets every client finish (retrying) the one it is on, and returns
    /// what was acknowledged; an error names the first client that failed.
    pub fn finish(self, timeout: Duration) -> Result<StreamLog, String> {
        self.stop.store(true, Ordering::SeqCst);
        let clients = self.clients;
        self.rt.block_on(async move {
            let mut log = StreamLog::default();
            let deadline = tokio::time::Instant::now() + timeout;
            for c in clients {
                match tokio::time::timeout_at(deadline, c).await {
                    Ok(Ok(Ok(l))) => log.merge(l),
                    Ok(Ok(Err(e))) => return Err(e),
                    Ok(Err(e)) => return Err(format!("a stream client panicked: {e}")),
                    Err(_) => return Err(format!("the stream clients did not finish within {timeout:?}")),
                }
            }
            Ok(log)
        })
    }
}

/// One request, sent again byte for byte when retried.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    key: String,
    body: String,
}

/// An answer: status, whether it was a replay, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    replayed: bool,
    body: Bytes,
}

/// An acknowledged request kept for an exact retry, with a hash of its first answer.
struct Acked {
    request: Request,
    status: u16,
    body_hash: u64,
}

struct Client {
    config: Arc<StreamConfig>,
    n: usize,
    stop: Arc<AtomicBool>,
    rng: fastrand::Rng,
    sender: Sender,
    next_id: u64,
    log: StreamLog,
    /// Indexes into `log.conversions` of those with something left to refund.
    refundable: Vec<usize>,
    replay_pool: VecDeque<Acked>,
}

impl Client {
    fn new(config: Arc<StreamConfig>, n: usize, stop: Arc<AtomicBool>, answered: Arc<[AtomicU64]>) -> Client {
        let mut rng = fastrand::Rng::with_seed(config.seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let sender = Sender::new(config.clone(), answered, rng.u64(..));
        Client { config, n, stop, rng, sender, next_id: 0, log: StreamLog::default(), refundable: Vec::new(), replay_pool: VecDeque::new() }
    }

    async fn run(mut self) -> Result<StreamLog, String> {
        while !self.stop.load(Ordering::Relaxed) {
            let roll = self.rng.u32(0..100);
            if roll < 5 && !self.replay_pool.is_empty() {
                self.replay().await?;
            } else if roll < 15 && !self.refundable.is_empty() {
                self.refund().await?;
            } else {
                self.convert().await?;
            }
        }
        self.log.merge(self.sender.log);
        Ok(self.log)
    }

    fn key(&mut self, what: &str) -> String {
        self.next_id += 1;
        format!("crash-{}-{}-{what}-{}", self.config.seed, self.n, self.next_id)
    }

    async fn convert(&mut self) -> Result<(), String> {
        let order_id = self.key("order");
        // A few sales too small to earn a commission (5% of under 20 rounds down to 0).
        let amount_minor = if self.rng.u32(0..50) == 0 { self.rng.i64(1..20) } else { self.rng.i64(20..=200_000) };
        let occurred_at = rfc3339(now_ms() - self.rng.u64(1_000..=self.config.occurred_ago_ms_max));
        let body = serde_json::json!({
            "order_id": order_id, "program": self.config.program, "amount_minor": amount_minor,
            "currency": self.config.currency, "occurred_at": occurred_at, "coupon_code": self.config.coupon,
        });
        let request = Request { path: "/v1/conversions".into(), key: order_id.clone(), body: body.to_string() };
        let reply = self.send(&request).await?;
        if reply.status != 201 {
            return Err(format!("conversion {order_id}: status {} (want 201): {}", reply.status, text(&reply.body)));
        }
        let v: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|e| format!("conversion {order_id}: {e}"))?;
        let id = v["id"].as_str().ok_or_else(|| format!("conversion {order_id}: no id in {v}"))?.to_string();
        let commissions = v["commissions"]
            .as_array()
            .ok_or_else(|| format!("conversion {order_id}: no commissions in {v}"))?
            .iter()
            .map(|c| (c["id"].as_str().unwrap_or_default().to_string(), c["amount_minor"].as_i64().unwrap_or(-1)))
            .collect();
        if v["amount_minor"] != amount_minor || v["order_id"] != order_id.as_str() {
            return Err(format!("conversion {order_id}: the answer is another conversion: {v}"));
        }
        self.acked(request, &reply);
        self.refundable.push(self.log.conversions.len());
        self.log.conversions.push(AckedConversion { id, order_id, amount_minor, commissions, refunds_minor: Vec::new() });
        Ok(())
    }

    async fn refund(&mut self) -> Result<(), String> {
        let slot = self.rng.usize(0..self.refundable.len());
        let i = self.refundable[slot];
        let (id, refunded) = (self.log.conversions[i].id.clone(), self.log.conversions[i].refunded_minor());
        let left = self.log.conversions[i].amount_minor - refunded;
        // One refund in eight takes what is left; the others a part of it.
        let amount = if self.rng.u32(0..8) == 0 { left } else { self.rng.i64(1..=(left + 1) / 2) };
        let want_refunded = refunded + amount;
        let request = Request {
            path: format!("/v1/conversions/{id}/refund"),
            key: self.key("refund"),
            body: serde_json::json!({ "amount_minor": amount }).to_string(),
        };
        let reply = self.send(&request).await?;
        if reply.status != 200 {
            return Err(format!("refund {} of {}: status {} (want 200): {}", request.key, request.path, reply.status, text(&reply.body)));
        }
        let v: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|e| format!("refund {}: {e}", request.key))?;
        if v["refunded_minor"] != want_refunded {
            return Err(format!(
                "refund {} of {amount}: the answer says refunded_minor {} (want {want_refunded})",
                request.key, v["refunded_minor"]
            ));
        }
        self.acked(request, &reply);
        self.log.refunds_acked += 1;
        let c = &mut self.log.conversions[i];
        c.refunds_minor.push(amount);
        if c.refunded_minor() == c.amount_minor {
            self.refundable.swap_remove(slot);
        }
        Ok(())
    }

    /// Sends an acknowledged request again: it must replay its first answer.
    async fn replay(&mut self) -> Result<(), String> {
        let i = self.rng.usize(0..self.replay_pool.len());
        let request = self.replay_pool[i].request.clone();
        let reply = self.send(&request).await?;
        let first = &self.replay_pool[i];
        if !reply.replayed || reply.status != first.status || hash(&reply.body) != first.body_hash {
            return Err(format!(
                "an exact retry of {} {} did not replay its first answer (status {} then {}, replayed {}): {}",
                request.path,
                request.key,
                first.status,
                reply.status,
                reply.replayed,
                text(&reply.body)
            ));
        }
        self.log.replays_checked += 1;
        Ok(())
    }

    fn acked(&mut self, request: Request, reply: &Reply) {
        if self.replay_pool.len() == REPLAY_POOL_LEN {
            self.replay_pool.pop_front();
        }
        self.replay_pool.push_back(Acked { request, status: reply.status, body_hash: hash(&reply.body) });
    }

    /// Sends `request` through an API address picked at random until it is answered (see
    /// `Sender::call`); now and then through the next one at the same time too (a hedge).
    async fn send(&mut self, request: &Request) -> Result<Reply, String> {
        let n = self.config.apis.len();
        let api = self.rng.usize(0..n);
        if self.rng.u32(0..1000) >= self.config.hedge_per_mille {
            return self.sender.call(api, request).await;
        }
        // The copies race through the writers, in one group or in two cores' groups that queue
        // on the ledger head: idempotency must make them one write with one answer.
        let mut twin = Sender::new(self.config.clone(), self.sender.answered.clone(), self.rng.u64(..));
        let (first, second) = tokio::join!(self.sender.call(api, request), twin.call((api + 1) % n, request));
        self.log.merge(twin.log);
        let (first, second) = (first?, second?);
        if first.status != second.status || hash(&first.body) != hash(&second.body) || !(first.replayed || second.replayed) {
            return Err(format!(
                "two copies of {} {} sent at once were not answered as one write (status {} and {}, replayed {} and {}): {} | {}",
                request.path,
                request.key,
                first.status,
                second.status,
                first.replayed,
                second.replayed,
                text(&first.body),
                text(&second.body)
            ));
        }
        self.log.hedged += 1;
        Ok(first)
    }
}

/// Connections to each API address, and the retry loop of a request over them.
struct Sender {
    config: Arc<StreamConfig>,
    auth: String,
    /// Per API address.
    answered: Arc<[AtomicU64]>,
    /// A connection per API address, opened when first needed.
    conns: Vec<Option<SendRequest<Full<Bytes>>>>,
    /// For the pauses between attempts.
    rng: fastrand::Rng,
    /// The attempts' counters.
    log: StreamLog,
}

impl Sender {
    fn new(config: Arc<StreamConfig>, answered: Arc<[AtomicU64]>, seed: u64) -> Sender {
        let auth = format!("Bearer {}", config.admin_key);
        let conns = config.apis.iter().map(|_| None).collect();
        Sender { config, auth, answered, conns, rng: fastrand::Rng::with_seed(seed), log: StreamLog::default() }
    }

    /// Sends `request` until it is answered with a 2xx (or another 4xx, returned as is): first
    /// through API address `api`, after a failed attempt through the next one.
    async fn call(&mut self, mut api: usize, request: &Request) -> Result<Reply, String> {
        let started = Instant::now();
        let mut failed = 0u64;
        // The address of the last failed attempt.
        let mut failed_at = None;
        loop {
            match self.attempt(api, request).await {
                Ok(reply) if reply.status >= 500 => {
                    self.log.server_errors += 1;
                    if self.log.server_error_samples.len() < 5 {
                        self.log.server_error_samples.push(format!("{} {}: {}", reply.status, request.path, text(&reply.body)));
                    }
                }
                Ok(reply) => {
                    self.answered[api].fetch_add(1, Ordering::Relaxed);
                    if failed > 0 {
                        self.log.retried_requests += 1;
                        self.log.committed_unanswered += u64::from(reply.replayed);
                        if failed_at.is_some_and(|f| f != api) {
                            self.log.answered_elsewhere += 1;
                            self.log.replayed_elsewhere += u64::from(reply.replayed);
                        }
                    }
                    return Ok(reply);
                }
                Err(_) => {
                    self.conns[api] = None;
                    failed += 1;
                    self.log.failed_attempts += 1;
                    failed_at = Some(api);
                    api = (api + 1) % self.config.apis.len();
                }
            }
            if started.elapsed() > REQUEST_DEADLINE {
                return Err(format!("{} {} was not answered within {REQUEST_DEADLINE:?}", request.path, request.key));
            }
            tokio::time::sleep(Duration::from_millis(self.rng.u64(5..=25))).await;
        }
    }

    async fn attempt(&mut self, api: usize, request: &Request) -> Result<Reply, String> {
        let conn = match &mut self.conns[api] {
            Some(c) => c,
            None => self.conns[api].insert(connect(self.config.apis[api]).await?),
        };
        conn.ready().await.map_err(|e| e.to_string())?;
        let req = hyper::Request::post(&request.path)
            .header(hyper::header::HOST, "api.test")
            .header(hyper::header::AUTHORIZATION, &self.auth)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", &request.key)
            .body(Full::new(Bytes::from(request.body.clone())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let replayed = resp.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
            let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>(Reply { status, replayed, body })
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, exchange).await.map_err(|_| "timed out".to_string())?
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

fn hash(body: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(body)
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(400).collect()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

/// Unix milliseconds as RFC 3339 (UTC).
pub fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("a valid time");
    t.format(&time::format_description::well_known::Rfc3339).expect("formats")
}
