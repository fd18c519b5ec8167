//! A Stripe Connect transfers client: one payout is one `POST /v1/transfers` to the partner's
//! connected account, as <https://docs.stripe.com/api/transfers/create> documents it.
//!
//! The request is form-encoded (`amount`, `currency` in lower case, `destination`,
//! `transfer_group` = the run id, `metadata[payout_id]`, `metadata[partner]`) with
//! `Authorization: Bearer <secret key>`, `Idempotency-Key: <payout id>` and a pinned
//! `Stripe-Version`. Every attempt carries the same key, so Stripe creates the transfer at most
//! once however often a lost answer makes us ask again.
//!
//! Answers: 2xx is paid, with the `tr_…` id; 400 `balance_insufficient` is retryable; any other
//! 4xx but 409 and 429 is a refusal with Stripe's message; 409, 429, 5xx, timeouts and
//! connection errors are retried with backoff, a bounded number of times, then retryable.

mod http;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::provider::{Destination, PayoutRequest, PayoutResult, StripeAccount};

/// The Stripe API version every request pins, so an account's default version changing on
/// Stripe's side never changes what a transfer request means.
pub const STRIPE_VERSION: &str = "2024-06-20";
/// Stripe's API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// The longest answer read from Stripe; a transfer object is a few kilobytes.
const RESPONSE_BYTES_MAX: usize = 256 * 1024;

/// Why a Stripe client could not be built or one attempt could not complete.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("payouts.stripe.api_base {base:?}: {why}")]
    ApiBase { base: String, why: String },
    #[error("the Stripe secret key is not an sk_ or rk_ key of visible characters")]
    SecretKey,
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("connecting to {authority}: {why}")]
    Connect { authority: String, why: String },
    #[error("connecting to {authority} took more than {timeout_ms} ms")]
    ConnectTimeout { authority: String, timeout_ms: u64 },
    #[error("the request to {authority} took more than {timeout_ms} ms")]
    RequestTimeout { authority: String, timeout_ms: u64 },
    #[error("the request to {authority} failed: {why}")]
    Http { authority: String, why: String },
}

/// A Stripe secret key. Its value never appears in `Debug`, a log line or an error. The
/// process reads it from its environment (`CLICKGATE_STRIPE_SECRET_KEY`, documented with the
/// config) and hands it over; the domain reads no environment.
#[derive(Clone)]
pub struct SecretKey(Arc<str>);

impl SecretKey {
    /// Checks a key's shape: `sk_` or `rk_` (a restricted key) and visible ASCII, so it fits
    /// a header as it is.
    pub fn new(key: &str) -> Result<SecretKey, StripeError> {
        let shape = (key.starts_with("sk_") || key.starts_with("rk_")) && key.len() > 3 && key.bytes().all(|b| b.is_ascii_graphic());
        if shape {
            Ok(SecretKey(key.into()))
        } else {
            Err(StripeError::SecretKey)
        }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(redacted)")
    }
}

/// How the client reaches Stripe and how hard it tries.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com`, or a local server's `http://127.0.0.1:<port>` in tests.
    pub api_base: String,
    /// Limit on the TCP connect and the TLS handshake.
    pub connect_timeout_ms: u64,
    /// Limit on one attempt as a whole: connect, send, and read the answer.
    pub request_timeout_ms: u64,
    /// Attempts per payout, the first included.
    pub attempts_max: u32,
    /// The first retry's delay; each next one doubles, up to `backoff_max_ms`, with jitter.
    pub backoff_base_ms: u64,
    /// The longest delay between two attempts.
    pub backoff_max_ms: u64,
    /// Kept-alive connections held for the next request.
    pub idle_connections_max: usize,
}

impl Default for StripeConfig {
    fn default() -> StripeConfig {
        StripeConfig {
            api_base: DEFAULT_API_BASE.to_string(),
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            attempts_max: 5,
            backoff_base_ms: 500,
            backoff_max_ms: 8_000,
            idle_connections_max: 16,
        }
    }
}

/// Waits between attempts. Injected, so tests walk the retries without waiting.
pub trait Sleep: Send + Sync {
    /// A future that completes after `delay`.
    fn sleep(&self, delay: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// Waits on tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

impl Sleep for TokioSleep {
    fn sleep(&self, delay: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(tokio::time::sleep(delay))
    }
}

/// The delay before retry `retry` (0 for the first retry): `base · 2^retry` capped at `max`,
/// then scaled into its upper half by `jitter` in [0, 1], so clients that failed together do
/// not retry together.
pub fn backoff_ms(retry: u32, base_ms: u64, max_ms: u64, jitter: f64) -> u64 {
    let full = base_ms.saturating_mul(1u64.checked_shl(retry.min(32)).unwrap_or(u64::MAX)).min(max_ms);
    let half = full / 2;
    half + ((full - half) as f64 * jitter.clamp(0.0, 1.0)) as u64
}

/// What one answer from Stripe means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The transfer exists; its id.
    Paid(String),
    /// 400 `balance_insufficient`, with Stripe's message.
    Insufficient(String),
    /// Stripe refused the request for good.
    Refused { status: u16, code: Option<String>, message: String },
    /// Worth asking again under the same key (409, 429, 5xx).
    Retry(String),
    /// An answer that says nothing certain and that asking again would only repeat (a 2xx
    /// without a transfer id, a redirect).
    Unknown(String),
}

/// Classifies Stripe's answer: its status and its JSON body.
pub fn classify(status: u16, body: &[u8]) -> Answer {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| json.as_ref().and_then(|j| j.get("error")?.get(name)?.as_str().map(str::to_string));
    match status {
        200..=299 => {
            let id = json.as_ref().and_then(|j| j.get("id")?.as_str());
            match id.filter(|id| id.strip_prefix("tr_").is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric()))) {
                Some(id) => Answer::Paid(id.to_string()),
                None => Answer::Unknown(format!("Stripe answered {status} without a transfer id: {}", excerpt(body))),
            }
        }
        409 | 429 | 500..=599 => Answer::Retry(format!("Stripe answered {status}: {}", field("message").unwrap_or_else(|| excerpt(body)))),
        400..=499 => {
            let code = field("code");
            let message = field("message").unwrap_or_else(|| excerpt(body));
            if status == 400 && code.as_deref() == Some("balance_insufficient") {
                Answer::Insufficient(message)
            } else {
                Answer::Refused { status, code, message }
            }
        }
        _ => Answer::Unknown(format!("Stripe answered an unexpected {status}: {}", excerpt(body))),
    }
}

/// The start of a body, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.trim().is_empty() {
        "an empty body".to_string()
    } else {
        format!("{:?}", text.trim())
    }
}

/// The form body of a transfer request.
pub fn form_body(req: &PayoutRequest, account: &StripeAccount) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("amount", &req.amount_minor().to_string())
        .append_pair("currency", &req.currency().as_str().to_ascii_lowercase())
        .append_pair("destination", account.as_str())
        .append_pair("transfer_group", req.run_id())
        .append_pair("metadata[payout_id]", req.payout_id())
        .append_pair("metadata[partner]", req.partner())
        .finish()
}

/// A Stripe Connect transfers client. Cheap to share: one per process, behind an `Arc`.
pub struct StripeClient {
    config: StripeConfig,
    key: SecretKey,
    transport: http::Transport,
    sleep: Arc<dyn Sleep>,
}

impl StripeClient {
    /// A client that trusts the Mozilla roots (webpki-roots) for `https` bases.
    pub fn new(config: StripeConfig, key: SecretKey) -> Result<StripeClient, StripeError> {
        StripeClient::with_tls(config, key, http::default_tls()?)
    }

    /// A client with its own TLS config, e.g. trusting a test server's certificate.
    pub fn with_tls(config: StripeConfig, key: SecretKey, tls: Arc<rustls::ClientConfig>) -> Result<StripeClient, StripeError> {
        let transport = http::Transport::new(&config, tls)?;
        Ok(StripeClient { config, key, transport, sleep: Arc::new(TokioSleep) })
    }

    /// Replaces the wait between attempts (tests pass one that returns at once).
    pub fn with_sleep(mut self, sleep: Arc<dyn Sleep>) -> StripeClient {
        self.sleep = sleep;
        self
    }

    /// Pays one payout: a transfer under the payout id's idempotency key, retried on 409, 429,
    /// 5xx, timeouts and connection errors up to `attempts_max` times.
    pub async fn transfer(&self, req: &PayoutRequest) -> PayoutResult {
        let Destination::Stripe(account) = req.destination() else {
            return PayoutResult::Failed {
                why: format!("partner {}'s payout goes by {}, not stripe", req.partner(), req.destination().method()),
            };
        };
        let body = bytes::Bytes::from(form_body(req, account));
        let headers = [
            ("authorization", self.key.bearer()),
            ("content-type", "application/x-www-form-urlencoded".to_string()),
            ("idempotency-key", req.payout_id().to_string()),
            ("stripe-version", STRIPE_VERSION.to_string()),
        ];
        let attempts = self.config.attempts_max.max(1);
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                let c = &self.config;
                let delay_ms = backoff_ms(attempt - 1, c.backoff_base_ms, c.backoff_max_ms, fastrand::f64());
                self.sleep.sleep(Duration::from_millis(delay_ms)).await;
            }
            let (status, should_retry, answer) = match self.transport.post("/v1/transfers", &headers, body.clone()).await {
                Ok(resp) => (Some(resp.status), resp.should_retry, classify(resp.status, &resp.body)),
                Err(e) => (None, None, Answer::Retry(e.to_string())),
            };
            tracing::debug!(payout = req.payout_id(), partner = req.partner(), attempt, status, "Stripe answered a transfer request.");
            match answer {
                Answer::Paid(transfer_id) => return PayoutResult::Paid { transfer_id },
                Answer::Insufficient(message) => {
                    let why = format!("Stripe's balance cannot cover partner {}'s payout: {message}", req.partner());
                    return PayoutResult::Retryable { why, insufficient_balance: true };
                }
                Answer::Refused { status, code, message } => {
                    let code = code.map(|c| format!(" {c}")).unwrap_or_default();
                    let why = format!(
                        "Stripe refused the transfer to partner {} ({}): {status}{code}: {message}",
                        req.partner(),
                        account.as_str()
                    );
                    return PayoutResult::Failed { why };
                }
                Answer::Unknown(why) => return PayoutResult::Retryable { why, insufficient_balance: false },
                Answer::Retry(why) => {
                    tracing::warn!(
                        payout = req.payout_id(),
                        partner = req.partner(),
                        attempt,
                        why,
                        "A Stripe transfer attempt failed; it is retried under the same key."
                    );
                    if should_retry == Some(false) {
                        let why = format!("{why} (Stripe-Should-Retry: false)");
                        return PayoutResult::Retryable { why, insufficient_balance: false };
                    }
                    last = why;
                }
            }
        }
        PayoutResult::Retryable {
            why: format!("partner {}: {attempts} attempts failed; the last: {last}", req.partner()),
            insufficient_balance: false,
        }
    }
}

#[cfg(test)]
mod tests;
