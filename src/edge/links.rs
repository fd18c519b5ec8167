//! The link table: every link with its redirect strings precomputed, swapped atomically when
//! the store changes. A request does one hash lookup and no database access.

use std::collections::HashMap;
use std::sync::Arc;

use super::checks::ProgramRules;
use crate::model::{destination, BlockedAction, Channel};

/// A program as the link table needs it.
#[derive(Debug, Clone, Copy)]
pub struct ProgramSpec<'a> {
    pub id: &'a str,
    pub fallback_url: &'a str,
    pub country_allow: &'a [String],
    pub country_deny: &'a [String],
    pub blocked_action: BlockedAction,
    /// False when the program is paused or expired.
    pub active: bool,
}

/// A partner as the link table needs it.
#[derive(Debug, Clone, Copy)]
pub struct PartnerSpec<'a> {
    pub id: &'a str,
    /// False when the partner is paused or expired.
    pub active: bool,
}

/// A link as the catalog stores it.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec<'a> {
    /// The link's numeric id, carried in its click ids.
    pub link_id: u32,
    /// The partner's numeric id, carried in its click ids.
    pub partner_id: u32,
    pub code: &'a str,
    pub program: &'a str,
    pub partner: &'a str,
    /// A destination that passed `destination::check` when the link was created.
    pub destination: &'a str,
    pub channel: Channel,
    /// `utm_source`, `utm_medium`, `utm_campaign`, checked at creation; empty ones are left out.
    pub utm: [&'a str; 3],
    /// Unix seconds after which the link counts as expired.
    pub expires_at_s: Option<i64>,
    /// False when the link is paused or expired.
    pub active: bool,
}

/// A link as the edge serves it.
#[derive(Debug)]
pub struct EdgeLink {
    pub link_id: u32,
    pub partner_id: u32,
    pub code: Arc<str>,
    pub program: Arc<str>,
    pub partner: Arc<str>,
    pub channel: Channel,
    /// False when the link, its program or its partner is paused or expired.
    pub active: bool,
    /// Unix ms after which the link counts as expired.
    pub expires_at_ms: u64,
    /// `destination[?&]utm_...&cgid=`: the click id follows.
    pub location_prefix: Box<str>,
    /// `destination[?&]utm_...` without a click id (blocked clicks, HEAD-free fallbacks).
    pub location_plain: Box<str>,
    /// `#fragment` or empty, appended last.
    pub fragment: Box<str>,
    pub fallback: Arc<str>,
    pub rules: Arc<ProgramRules>,
}

/// All links by code.
#[derive(Debug, Default)]
pub struct LinkTable {
    by_code: HashMap<Arc<str>, EdgeLink>,
}

/// What every link of a program shares: rules, fallback URL, id, and whether it is active.
type ProgramShare = (Arc<ProgramRules>, Arc<str>, Arc<str>, bool);

fn countries(list: &[String]) -> Box<[[u8; 2]]> {
    list.iter().filter_map(|c| c.as_bytes().try_into().ok()).collect()
}

impl LinkTable {
    /// Builds the table from the catalog's programs, partners and links. Links whose program
    /// or partner is unknown are left out; a destination that no longer parses is logged and
    /// left out.
    pub fn build<'a>(
        programs: &[ProgramSpec<'_>],
        partners: &[PartnerSpec<'_>],
        links: impl IntoIterator<Item = LinkSpec<'a>>,
    ) -> LinkTable {
        let rules: HashMap<&str, ProgramShare> = programs
            .iter()
            .map(|p| {
                let r = ProgramRules {
                    country_allow: countries(p.country_allow),
                    country_deny: countries(p.country_deny),
                    blocked_action: p.blocked_action,
                };
                (p.id, (Arc::new(r), Arc::from(p.fallback_url), Arc::from(p.id), p.active))
            })
            .collect();
        let partner_active: HashMap<&str, (bool, Arc<str>)> = partners.iter().map(|p| (p.id, (p.active, Arc::from(p.id)))).collect();
        let mut by_code = HashMap::new();
        for l in links {
            let Some((rules, fallback, program, program_active)) = rules.get(l.program) else { continue };
            let Some((partner_ok, partner)) = partner_active.get(l.partner) else { continue };
            // The catalog validated this destination at creation; parse again to split it.
            let Ok(dest) = destination::parse(l.destination) else {
                tracing::error!(code = %l.code, "stored destination no longer parses; link skipped");
                continue;
            };
            let mut utm = String::new();
            for (k, v) in [("utm_source", l.utm[0]), ("utm_medium", l.utm[1]), ("utm_campaign", l.utm[2])] {
                if !v.is_empty() {
                    utm.push_str(k);
                    utm.push('=');
                    utm.push_str(v);
                    utm.push('&');
                }
            }
            let sep = if dest.base.contains('?') {
                if dest.base.ends_with(['?', '&']) {
                    ""
                } else {
                    "&"
                }
            } else {
                "?"
            };
            let plain = if utm.is_empty() { dest.base.to_string() } else { format!("{}{sep}{}", dest.base, utm.trim_end_matches('&')) };
            let code: Arc<str> = Arc::from(l.code);
            by_code.insert(
                code.clone(),
                EdgeLink {
                    link_id: l.link_id,
                    partner_id: l.partner_id,
                    code,
                    program: program.clone(),
                    partner: partner.clone(),
                    channel: l.channel,
                    active: l.active && *program_active && *partner_ok,
                    expires_at_ms: l.expires_at_s.map_or(u64::MAX, |s| (s.max(0) as u64).saturating_mul(1000)),
                    location_prefix: format!("{}{sep}{utm}cgid=", dest.base).into(),
                    location_plain: plain.into(),
                    fragment: dest.fragment.into(),
                    fallback: fallback.clone(),
                    rules: rules.clone(),
                },
            );
        }
        LinkTable { by_code }
    }

    /// The link for a code.
    pub fn get(&self, code: &str) -> Option<&EdgeLink> {
        self.by_code.get(code)
    }

    /// How many links the table holds.
    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}
