//! The edge: the data plane. It turns a request into a redirect and a click event, with only
//! synchronous checks on the way; its one output is a `ClickEvent` handed to a bounded queue.
//!
//! Architecture invariant: nothing here touches the ledger, a database (the link table is an
//! in-memory copy), a webhook or DNS, and a redirect never waits on the core.

pub mod checks;
pub mod handler;
pub mod links;
pub mod server;
pub mod tls;

use std::net::IpAddr;

use arc_swap::ArcSwap;

use crate::model::ClickSigner;
use checks::{Click, Client, Findings, Pipeline, Reasons, Verdict};
use links::{EdgeLink, LinkTable};

use crate::config::{self, IpPrivacy};
use crate::events::sink::ClickSink;
use crate::metrics::Metrics;

/// What the pipeline decided for one request to a link code.
#[derive(Debug)]
pub enum Judgement<'t> {
    /// Refused with `429`.
    RateLimited { retry_after_ms: u64, observed: Reasons },
    /// No such link: `404`.
    UnknownCode { observed: Reasons },
    /// The link, its program or its partner is paused or expired: the program's fallback URL.
    Inactive { link: EdgeLink<'t>, observed: Reasons },
    /// A click with its verdict.
    Click { link: EdgeLink<'t>, findings: Findings, verdict: Verdict },
}

/// Runs the whole pipeline for one request. The same code serves the edge and `clickgate check`.
pub fn judge<'t>(pipeline: &Pipeline, table: &'t LinkTable, ip: IpAddr, ua: &str, code: &str, head: bool, now_ms: u64) -> Judgement<'t> {
    let client = Client::of(ip);
    let mut observed = Reasons::default();
    if let Err(retry_after_ms) = pipeline.rate_limit(client, now_ms, &mut observed) {
        return Judgement::RateLimited { retry_after_ms, observed };
    }
    let Some(link) = table.get(code) else {
        return Judgement::UnknownCode { observed };
    };
    if !link.active || now_ms >= link.expires_at_ms {
        return Judgement::Inactive { link, observed };
    }
    let mut findings = pipeline.evaluate(&Click { ip, client, ua, head, link_id: link.link_id, program: link.rules, now_ms });
    for r in observed.iter() {
        findings.observed.insert(r);
    }
    let verdict = findings.verdict();
    Judgement::Click { link, findings, verdict }
}

/// A logged click judged again (`clickgate rescore`): the rate limits, then every stage, for
/// the link it was made on, whatever that link's state is now. Returns the verdict and its
/// reasons; observed reasons are left out, as they change no verdict.
pub fn rejudge(pipeline: &Pipeline, link: &EdgeLink<'_>, ip: IpAddr, client: Client, ua: &str, now_ms: u64) -> (Verdict, Reasons) {
    let mut observed = Reasons::default();
    if pipeline.rate_limit(client, now_ms, &mut observed).is_err() {
        let mut reasons = Reasons::default();
        reasons.insert(crate::model::Reason::RateLimited);
        return (Verdict::RateLimited, reasons);
    }
    let findings = pipeline.evaluate(&Click { ip, client, ua, head: false, link_id: link.link_id, program: link.rules, now_ms });
    (findings.verdict(), findings.reasons)
}

/// Everything a request handler needs, built once at start.
pub struct EdgeState {
    pub pipeline: Pipeline,
    pub links: ArcSwap<LinkTable>,
    pub signer: std::sync::Arc<ClickSigner>,
    pub sink: ClickSink,
    pub metrics: Metrics,
    pub edge: config::Edge,
    pub privacy: IpPrivacy,
    /// HMAC-SHA256 keyed with `privacy.ip_hash_key` (used when `privacy.ip = "hash"`).
    pub ip_hasher: hmac::Hmac<sha2::Sha256>,
    /// The SipHash key of click events' client tags (`handler::client_tag`), derived from the
    /// click-id keys so every node tags a client alike.
    pub client_tag_key: [u8; 16],
    /// `; Path=/; Max-Age=…; HttpOnly; SameSite=Lax[; Secure]`, built once.
    pub cookie_suffix: Box<str>,
}
