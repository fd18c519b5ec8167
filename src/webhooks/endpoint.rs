//! Webhook endpoints: where events go, which ones, for which partner, signed with which
//! secrets, and whether the endpoint still takes them.
//!
//! A registration is checked here before it is stored: the URL by the SSRF guard (`check_url`
//! and one resolution, `resolve_and_check`), a non-empty set of known event types, and a
//! partner id of the catalog's shape. The secret is generated here and shown once.

use std::fmt;
use std::str::FromStr;

use super::event::{EventError, EventType};
use super::signature::{signing_secrets, Secret, SignatureError, ROTATION_OVERLAP_MS};
use super::ssrf::{check_url, Host, Policy, SsrfError};

/// Why a registration or a stored endpoint was refused.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("url: {0}")]
    Url(#[from] SsrfError),
    #[error("event_types: {0}")]
    EventType(#[from] EventError),
    #[error("event_types: name at least one of {}", EventType::ALL.map(|t| t.as_str()).join(", "))]
    NoEventTypes,
    #[error("partner: {0:?} is not 1 to 64 letters, digits, '-' or '_'")]
    Partner(String),
    #[error("secret: {0}")]
    Secret(#[from] SignatureError),
    #[error("endpoint id {0:?} is not \"we_\" and 24 lower-case hex digits")]
    BadId(String),
    #[error("stored endpoint status {0:?} is not enabled, disabled:gone or disabled:failing")]
    BadStatus(String),
}

/// Why an endpoint stopped taking events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisabledReason {
    /// The receiver answered `410 Gone`.
    Gone,
    /// Every attempt failed for `schedule::DISABLE_AFTER_FAILING_MS`.
    Failing,
}

impl DisabledReason {
    /// The stored and shown spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DisabledReason::Gone => "gone",
            DisabledReason::Failing => "failing",
        }
    }
}

impl FromStr for DisabledReason {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, EndpointError> {
        match s {
            "gone" => Ok(DisabledReason::Gone),
            "failing" => Ok(DisabledReason::Failing),
            _ => Err(EndpointError::BadStatus(s.to_owned())),
        }
    }
}

/// Whether an endpoint takes events, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Enabled,
    Disabled(DisabledReason),
}

/// A registered endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `we_` and 24 hex digits.
    pub id: String,
    /// A URL that passed `check_url` when it was registered (and is checked again per attempt).
    pub url: String,
    /// The subscribed types: sorted, without duplicates, never empty.
    pub event_types: Vec<EventType>,
    /// When set, only this partner's events.
    pub partner: Option<String>,
    pub secret: Secret,
    /// The secret before the last rotation, and until when it still signs.
    pub previous: Option<(Secret, u64)>,
    pub status: Status,
    /// When the status last changed.
    pub status_ms: u64,
    pub created_ms: u64,
    /// The first failure after the last success; `None` while the endpoint succeeds.
    pub failing_since_ms: Option<u64>,
}

impl Endpoint {
    /// Whether an event of `kind` concerning `partner` goes to this endpoint: a subscribed type,
    /// and, for an endpoint registered for a partner, that partner's event.
    pub fn wants(&self, kind: EventType, partner: Option<&str>) -> bool {
        let partner_ok = match &self.partner {
            None => true,
            Some(p) => partner == Some(p.as_str()),
        };
        partner_ok && self.event_types.binary_search(&kind).is_ok()
    }

    /// The secrets that sign an attempt at `now_ms`: the current one, and the previous one
    /// during a rotation's overlap.
    pub fn signing_secrets(&self, now_ms: u64) -> Vec<&Secret> {
        let previous = self.previous.as_ref().map(|(s, until)| (s, until.saturating_sub(ROTATION_OVERLAP_MS)));
        signing_secrets(&self.secret, previous, now_ms)
    }

    /// The subscribed types as stored: space-separated.
    pub fn event_types_text(&self) -> String {
        self.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" ")
    }

    /// What the API and the CLI show: everything but the secrets.
    pub fn view(&self) -> serde_json::Value {
        let (status, reason) = match self.status {
            Status::Enabled => ("enabled", None),
            Status::Disabled(r) => ("disabled", Some(r.as_str())),
        };
        serde_json::json!({
            "id": self.id,
            "url": self.url,
            "event_types": self.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "partner": self.partner,
            "status": status,
            "disabled_reason": reason,
            "status_changed_ms": self.status_ms,
            "created_ms": self.created_ms,
            "failing_since_ms": self.failing_since_ms,
            "previous_secret_until_ms": self.previous.as_ref().map(|(_, until)| *until),
        })
    }
}

/// Parses the stored, space-separated types strictly.
pub fn parse_event_types(text: &str) -> Result<Vec<EventType>, EndpointError> {
    let types = text.split(' ').map(EventType::from_str).collect::<Result<Vec<_>, _>>()?;
    normalize_types(types)
}

/// Sorts and de-duplicates the subscribed types; an empty set is refused.
pub fn normalize_types(mut types: Vec<EventType>) -> Result<Vec<EventType>, EndpointError> {
    types.sort();
    types.dedup();
    if types.is_empty() {
        return Err(EndpointError::NoEventTypes);
    }
    Ok(types)
}

/// Parses a stored status and reason.
pub fn parse_status(status: &str, reason: Option<&str>) -> Result<Status, EndpointError> {
    match (status, reason) {
        ("enabled", None) => Ok(Status::Enabled),
        ("disabled", Some(r)) => Ok(Status::Disabled(r.parse()?)),
        _ => Err(EndpointError::BadStatus(format!("{status}:{}", reason.unwrap_or("")))),
    }
}

/// A new endpoint's id: `we_` and 24 hex digits from the OS's generator.
pub fn new_id() -> Result<String, EndpointError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| SignatureError::Random(e.to_string()))?;
    Ok(format!("we_{}", hex::encode(bytes)))
}

/// Whether `s` is an endpoint id.
pub fn is_id(s: &str) -> bool {
    s.strip_prefix("we_").is_some_and(|h| h.len() == 24 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The catalog's id rule for partners.
fn is_partner_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A registration as the API and the CLI take it.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(default)]
    pub partner: Option<String>,
}

/// How long a registration waits for its URL's name to resolve.
pub const REGISTRATION_RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Checks a registration and makes its endpoint with a fresh secret: the URL through the SSRF
/// guard, including one resolution of its name, so a name that resolves to a private address
/// is refused now rather than at every attempt.
pub async fn register(reg: &Registration, policy: &Policy, now_ms: u64) -> Result<Endpoint, EndpointError> {
    let url = check_url(&reg.url, policy)?;
    // The caller (an API request, a CLI run) waits on it: a resolver that never answers is
    // an error, not a hang.
    match tokio::time::timeout(REGISTRATION_RESOLVE_TIMEOUT, url.resolve(policy)).await {
        Ok(resolved) => resolved?,
        Err(_) => {
            let error = format!("no answer from the resolver within {} s", REGISTRATION_RESOLVE_TIMEOUT.as_secs());
            let host = match url.host() {
                Host::Name(n) => n.clone(),
                Host::Ip(ip) => ip.to_string(),
            };
            return Err(SsrfError::Resolve { host, error }.into());
        }
    };
    let types = reg.event_types.iter().map(|t| t.parse::<EventType>()).collect::<Result<Vec<_>, _>>()?;
    let event_types = normalize_types(types)?;
    if let Some(p) = &reg.partner {
        if !is_partner_id(p) {
            return Err(EndpointError::Partner(p.clone()));
        }
    }
    Ok(Endpoint {
        id: new_id()?,
        url: url.as_str().to_owned(),
        event_types,
        partner: reg.partner.clone(),
        secret: Secret::generate()?,
        previous: None,
        status: Status::Enabled,
        status_ms: now_ms,
        created_ms: now_ms,
        failing_since_ms: None,
    })
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Enabled => f.write_str("enabled"),
            Status::Disabled(r) => write!(f, "disabled ({})", r.as_str()),
        }
    }
}
