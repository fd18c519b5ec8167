//! What the edge decided about a click: a verdict and a closed set of reason codes.

use serde::{Serialize, Serializer};

/// Why a click was not valid. A closed set: metrics label values come only from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    RateLimited,
    IpDenylisted,
    DatacenterAsn,
    AnonymousIp,
    GeoBlocked,
    BotUa,
    EmptyUa,
    NonBrowserUa,
    LinkPreview,
    HeadRequest,
    VelocityIp,
    VelocitySubnet,
    VelocityLinkIp,
    Duplicate,
    VelocityLinkSubnet,
    VelocityLink,
}

impl Reason {
    /// Every reason, in bit order.
    pub const ALL: [Reason; 16] = [
        Reason::RateLimited,
        Reason::IpDenylisted,
        Reason::DatacenterAsn,
        Reason::AnonymousIp,
        Reason::GeoBlocked,
        Reason::BotUa,
        Reason::EmptyUa,
        Reason::NonBrowserUa,
        Reason::LinkPreview,
        Reason::HeadRequest,
        Reason::VelocityIp,
        Reason::VelocitySubnet,
        Reason::VelocityLinkIp,
        Reason::Duplicate,
        Reason::VelocityLinkSubnet,
        Reason::VelocityLink,
    ];

    /// The reason code as it appears in events, metrics and `clickgate check`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RateLimited => "rate_limited",
            Reason::IpDenylisted => "ip_denylisted",
            Reason::DatacenterAsn => "datacenter_asn",
            Reason::AnonymousIp => "anonymous_ip",
            Reason::GeoBlocked => "geo_blocked",
            Reason::BotUa => "bot_ua",
            Reason::EmptyUa => "empty_ua",
            Reason::NonBrowserUa => "non_browser_ua",
            Reason::LinkPreview => "link_preview",
            Reason::HeadRequest => "head_request",
            Reason::VelocityIp => "velocity_ip",
            Reason::VelocitySubnet => "velocity_subnet",
            Reason::VelocityLinkIp => "velocity_link_ip",
            Reason::Duplicate => "duplicate",
            Reason::VelocityLinkSubnet => "velocity_link_subnet",
            Reason::VelocityLink => "velocity_link",
        }
    }

    /// Parses a reason code.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A set of reasons as a bitset, so findings never allocate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reasons(u32);

impl Reasons {
    /// Adds a reason.
    pub fn insert(&mut self, r: Reason) {
        self.0 |= 1 << r as u8;
    }

    /// Whether the set holds `r`.
    pub fn contains(self, r: Reason) -> bool {
        self.0 & (1 << r as u8) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The reasons in bit order.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl Serialize for Reasons {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Reason::as_str))
    }
}

impl<'de> serde::Deserialize<'de> for Reasons {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Unknown codes from a newer writer are skipped rather than failing the whole event.
        let codes = Vec::<String>::deserialize(d)?;
        let mut set = Reasons::default();
        codes.iter().filter_map(|c| Reason::parse(c)).for_each(|r| set.insert(r));
        Ok(set)
    }
}

/// The outcome of the pipeline for one click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Flagged,
    Blocked,
    RateLimited,
}

impl Verdict {
    /// Every verdict.
    pub const ALL: [Verdict; 4] = [Verdict::Valid, Verdict::Flagged, Verdict::Blocked, Verdict::RateLimited];

    /// The verdict as it appears in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Flagged => "flagged",
            Verdict::Blocked => "blocked",
            Verdict::RateLimited => "rate_limited",
        }
    }
}

/// Which rule raised a fraud alert (`crate::fraud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    PartnerFlaggedShare,
    LinkSurge,
}

impl AlertKind {
    /// Every kind, for metric labels.
    pub const ALL: [AlertKind; 2] = [AlertKind::PartnerFlaggedShare, AlertKind::LinkSurge];

    /// The kind as events and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::PartnerFlaggedShare => "partner_flagged_share",
            AlertKind::LinkSurge => "link_surge",
        }
    }
}
