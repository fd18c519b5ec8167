//! The link table: every link with its redirect strings precomputed, swapped atomically when
//! the store changes. A request does one hash lookup and no database access.

use std::collections::HashMap;
use std::sync::Arc;

use super::checks::ProgramRules;
use crate::store::{self, Channel, Status, Store, StoreError};

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
    /// Builds the table from the store.
    pub fn load(store: &Store) -> Result<LinkTable, StoreError> {
        let programs = store.programs()?;
        let partners = store.partners()?;
        let rules: HashMap<&str, ProgramShare> = programs
            .iter()
            .map(|p| {
                let r = ProgramRules {
                    country_allow: countries(&p.spec.country_allow),
                    country_deny: countries(&p.spec.country_deny),
                    blocked_action: p.spec.blocked_action,
                };
                (
                    p.spec.id.as_str(),
                    (Arc::new(r), Arc::from(p.spec.fallback_url.as_str()), Arc::from(p.spec.id.as_str()), p.status == Status::Active),
                )
            })
            .collect();
        let partner_active: HashMap<&str, (bool, Arc<str>)> =
            partners.iter().map(|p| (p.spec.id.as_str(), (p.status == Status::Active, Arc::from(p.spec.id.as_str())))).collect();
        let mut by_code = HashMap::new();
        for l in store.links()? {
            let Some((rules, fallback, program, program_active)) = rules.get(l.spec.program.as_str()) else { continue };
            let Some((partner_ok, partner)) = partner_active.get(l.spec.partner.as_str()) else { continue };
            // The store validated this destination at creation; parse again to split it.
            let Ok(dest) = store::destination::parse(&l.spec.destination) else {
                tracing::error!(code = %l.spec.code, "stored destination no longer parses; link skipped");
                continue;
            };
            let mut utm = String::new();
            for (k, v) in [("utm_source", &l.spec.utm_source), ("utm_medium", &l.spec.utm_medium), ("utm_campaign", &l.spec.utm_campaign)] {
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
            let code: Arc<str> = Arc::from(l.spec.code.as_str());
            by_code.insert(
                code.clone(),
                EdgeLink {
                    link_id: l.row_id as u32,
                    partner_id: l.partner_row_id as u32,
                    code,
                    program: program.clone(),
                    partner: partner.clone(),
                    channel: l.spec.channel,
                    active: l.status == Status::Active && *program_active && *partner_ok,
                    expires_at_ms: l.spec.expires_at.map_or(u64::MAX, |s| (s.max(0) as u64).saturating_mul(1000)),
                    location_prefix: format!("{}{sep}{utm}cgid=", dest.base).into(),
                    location_plain: plain.into(),
                    fragment: dest.fragment.into(),
                    fallback: fallback.clone(),
                    rules: rules.clone(),
                },
            );
        }
        Ok(LinkTable { by_code })
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
