//! When to try a delivery again, and what an attempt's answer means: pure functions of the
//! attempt count, the response, `now_ms` and an injected random value, so a test walks three
//! days of retries without waiting and a simulation replays them from its seed.

use time::macros::format_description;
use time::PrimitiveDateTime;

/// The delays before the attempts after the first: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
/// 20 h, 24 h, about three days and three hours in all, so a receiver down over a weekend still
/// gets its events.
pub const RETRY_DELAYS_MS: [u64; 9] =
    [5_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000, 5 * 3_600_000, 10 * 3_600_000, 14 * 3_600_000, 20 * 3_600_000, 24 * 3_600_000];
/// Attempts per event: the first and one per delay.
pub const ATTEMPTS_MAX: u32 = RETRY_DELAYS_MS.len() as u32 + 1;
/// Jitter either side of a delay, in permille of it. Jitter spreads the retries of a burst of
/// events that failed together, so a receiver coming back is not hit by all of them at once.
pub const JITTER_PERMILLE: u64 = 100;
/// The longest `Retry-After` honoured: a receiver cannot park an event for longer than this.
pub const RETRY_AFTER_MS_MAX: u64 = 3_600_000;
/// An endpoint that has failed every attempt for this long is disabled.
pub const DISABLE_AFTER_FAILING_MS: u64 = 5 * 86_400_000;

/// Why an attempt failed: a closed set, for the attempt's record and the metrics' labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// A 3xx: redirects are never followed, since a redirect could point anywhere, including
    /// past the SSRF guard.
    Redirect,
    /// A 1xx final status or another status outside 200..=599.
    Unexpected,
    /// A 4xx other than 410 and 429.
    ClientError,
    /// A 429.
    RateLimited,
    /// A 5xx.
    ServerError,
    /// No response within the attempt's timeout.
    Timeout,
    /// No connection: resolution, TCP or TLS failed, or the SSRF guard refused the address.
    Connect,
}

impl Failure {
    /// The label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Redirect => "redirect",
            Failure::Unexpected => "unexpected_status",
            Failure::ClientError => "client_error",
            Failure::RateLimited => "rate_limited",
            Failure::ServerError => "server_error",
            Failure::Timeout => "timeout",
            Failure::Connect => "connect",
        }
    }
}

/// What one attempt got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// A status line, with the `Retry-After` header if there was one.
    Status { status: u16, retry_after: Option<&'a str> },
    /// No answer before the timeout.
    TimedOut,
    /// No connection.
    ConnectFailed,
}

/// What an attempt's answer means for its event and its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: delivered.
    Delivered,
    /// A 410: the receiver says the endpoint is gone; it is disabled and nothing is retried.
    Gone,
    /// Anything else: the event is tried again. `retry_after_ms` is the receiver's
    /// `Retry-After` on a 429 or a 503, capped at `RETRY_AFTER_MS_MAX`.
    Failed { failure: Failure, retry_after_ms: Option<u64> },
}

/// Classifies an attempt's answer; `now_ms` turns an HTTP-date `Retry-After` into a delay.
pub fn classify(response: Response<'_>, now_ms: u64) -> Outcome {
    let (status, retry_after) = match response {
        Response::TimedOut => return Outcome::Failed { failure: Failure::Timeout, retry_after_ms: None },
        Response::ConnectFailed => return Outcome::Failed { failure: Failure::Connect, retry_after_ms: None },
        Response::Status { status, retry_after } => (status, retry_after),
    };
    let failure = match status {
        200..=299 => return Outcome::Delivered,
        410 => return Outcome::Gone,
        300..=399 => Failure::Redirect,
        429 => Failure::RateLimited,
        400..=499 => Failure::ClientError,
        500..=599 => Failure::ServerError,
        _ => Failure::Unexpected,
    };
    let retry_after_ms = match status {
        429 | 503 => retry_after.and_then(|v| retry_after_ms(v, now_ms)),
        _ => None,
    };
    Outcome::Failed { failure, retry_after_ms }
}

/// A `Retry-After` value as a delay from `now_ms`, capped at `RETRY_AFTER_MS_MAX`: either
/// delay-seconds or an IMF-fixdate (RFC 9110 §10.2.3). An unreadable value is ignored, and the
/// schedule applies.
pub fn retry_after_ms(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim_matches([' ', '\t']);
    let ms = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to parse is still "later than the cap".
        value.parse::<u64>().map_or(u64::MAX, |s| s.saturating_mul(1000))
    } else {
        let format = format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
        let at = PrimitiveDateTime::parse(value, &format).ok()?.assume_utc();
        let at_ms = u64::try_from(at.unix_timestamp()).ok()?.saturating_mul(1000);
        at_ms.saturating_sub(now_ms)
    };
    Some(ms.min(RETRY_AFTER_MS_MAX))
}

/// The delay before the attempt after attempt number `attempts_made` (1 for the first), or
/// `None` once `ATTEMPTS_MAX` attempts are spent. `random` is any value from the caller's
/// generator; it places the delay within ±`JITTER_PERMILLE`.
pub fn retry_delay_ms(attempts_made: u32, random: u64) -> Option<u64> {
    retry_delay_in(&RETRY_DELAYS_MS, attempts_made, random)
}

/// `retry_delay_ms` over another list of delays (`webhooks.retry_delays_ms`).
pub fn retry_delay_in(delays: &[u64], attempts_made: u32, random: u64) -> Option<u64> {
    let base = *delays.get(usize::try_from(attempts_made.checked_sub(1)?).ok()?)?;
    let span = 2 * JITTER_PERMILLE + 1;
    let permille = 1000 - JITTER_PERMILLE + random % span;
    Some(base * permille / 1000)
}

/// When to try again after a failed attempt number `attempts_made`, in ms since the epoch, or
/// `None` when the event has had its last attempt. A `Retry-After` is honoured as a floor: the
/// next attempt waits for the longer of it and the schedule's delay, so a receiver can slow us
/// down but a `Retry-After: 0` cannot spend every attempt in a second.
pub fn next_attempt_ms(attempts_made: u32, retry_after_ms: Option<u64>, now_ms: u64, random: u64) -> Option<u64> {
    next_attempt_in(&RETRY_DELAYS_MS, attempts_made, retry_after_ms, now_ms, random)
}

/// `next_attempt_ms` over another list of delays (`webhooks.retry_delays_ms`).
pub fn next_attempt_in(delays: &[u64], attempts_made: u32, retry_after_ms: Option<u64>, now_ms: u64, random: u64) -> Option<u64> {
    let delay = retry_delay_in(delays, attempts_made, random)?;
    let delay = delay.max(retry_after_ms.unwrap_or(0).min(RETRY_AFTER_MS_MAX));
    Some(now_ms.saturating_add(delay))
}

/// Whether an endpoint whose attempts have all failed since `failing_since_ms` (its first
/// failure after its last success; `None` while it succeeds) is disabled at `now_ms`.
pub fn disabled_by_failures(failing_since_ms: Option<u64>, now_ms: u64) -> bool {
    failing_since_ms.is_some_and(|since| now_ms.saturating_sub(since) >= DISABLE_AFTER_FAILING_MS)
}

#[cfg(test)]
mod tests;
