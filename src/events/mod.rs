//! Click events: what the edge hands to the core, and how they travel.
//!
//! A `ClickEvent` is encoded with rmp-serde using field names (`to_vec_named`), so a reader
//! ignores fields it does not know and a writer may add fields without breaking old readers.

pub mod sink;
pub mod spool;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::Channel;
use crate::model::{ClickId, VisitorId};
use crate::model::{Reasons, Verdict};

/// A framed event larger than this is corrupt by definition (click log and spool alike).
pub const FRAME_BYTES_MAX: usize = 64 * 1024;

/// The longest user agent an event keeps; a longer one is cut at a character boundary.
pub const UA_BYTES_MAX: usize = 512;

/// Sub-ids passed through from `?sub1=..&sub5=`.
pub const SUB_IDS_MAX: usize = 5;

/// One click, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickEvent {
    pub click_id: ClickId,
    pub ts_ms: u64,
    pub program: Arc<str>,
    pub partner: Arc<str>,
    pub link: Arc<str>,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_ids: Option<Box<[Option<Box<str>>; SUB_IDS_MAX]>>,
    pub verdict: Verdict,
    pub reasons: Reasons,
    #[serde(default)]
    pub observed: Reasons,
    pub visitor_id: VisitorId,
    #[serde(default)]
    pub new_visitor: bool,
    #[serde(default, with = "country_code", skip_serializing_if = "Option::is_none")]
    pub country: Option<[u8; 2]>,
    #[serde(default)]
    pub asn: u32,
    pub ua_hash: u64,
    /// The user agent, up to `UA_BYTES_MAX` bytes, so a replay of the log judges the agent
    /// (`clickgate rescore`); absent in events logged before it was kept, and for an empty one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ua: Option<Box<str>>,
    /// A keyed hash of the client (an IPv4 address, an IPv6 /64) when `ip` is truncated or
    /// absent, so a replay counts each client apart as the edge did without keeping its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tag: Option<u64>,
    /// The client IP as the privacy setting allows: truncated, or absent when hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// A keyed hash of the full IP, when `privacy.ip = "hash"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_hash: Option<u64>,
}

impl ClickEvent {
    /// Encodes with field names.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), rmp_serde::encode::Error> {
        self.serialize(&mut rmp_serde::Serializer::new(buf).with_struct_map())
    }

    /// Decodes one event.
    pub fn decode(bytes: &[u8]) -> Result<ClickEvent, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}

/// Truncates an address to its /24 (IPv4) or /48 (IPv6).
pub fn truncate_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1))),
        },
    }
}

mod country_code {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<[u8; 2]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(cc) => s.serialize_str(std::str::from_utf8(cc).unwrap_or("??")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 2]>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        Ok(s.and_then(|s| s.as_bytes().try_into().ok()))
    }
}

#[cfg(test)]
mod tests;
