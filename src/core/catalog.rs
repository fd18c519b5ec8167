//! What the core needs to know about programs, partners and coupons, as one read-mostly
//! snapshot loaded from the store and swapped whole when the store changes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::core::attribution::Settings;
use crate::core::commission::ProgramRules;
use crate::store::{Status, Store, StoreError};

/// One program as the core sees it.
#[derive(Debug, Clone)]
pub struct ProgramInfo {
    pub id: Arc<str>,
    pub currency: String,
    pub status: Status,
    pub attribution: Settings,
    /// Commission rules, shared with the writer without a copy per conversion.
    pub commission: Arc<ProgramRules>,
}

/// One partner as the core sees it.
#[derive(Debug, Clone)]
pub struct PartnerInfo {
    pub id: Arc<str>,
    pub email: String,
    pub status: Status,
}

/// Programs, partners and coupons.
#[derive(Debug, Default)]
pub struct Catalog {
    programs: HashMap<String, ProgramInfo>,
    partners: HashMap<String, PartnerInfo>,
    /// (program, upper-case code) → partner.
    coupons: HashMap<(String, String), Arc<str>>,
}

impl Catalog {
    /// Loads everything from the store.
    pub fn load(store: &Store) -> Result<Catalog, StoreError> {
        let mut c = Catalog::default();
        for p in store.programs()? {
            let id: Arc<str> = p.spec.id.as_str().into();
            c.programs.insert(
                p.spec.id.clone(),
                ProgramInfo {
                    id,
                    currency: p.spec.currency.clone(),
                    status: p.status,
                    attribution: p.spec.attribution,
                    commission: Arc::new(p.spec.commission.clone()),
                },
            );
        }
        for p in store.partners()? {
            c.partners.insert(p.spec.id.clone(), PartnerInfo { id: p.spec.id.as_str().into(), email: p.spec.email, status: p.status });
        }
        for k in store.coupons()? {
            c.coupons.insert((k.program, k.code), k.partner.as_str().into());
        }
        Ok(c)
    }

    /// One program.
    pub fn program(&self, id: &str) -> Option<&ProgramInfo> {
        self.programs.get(id)
    }

    /// One partner.
    pub fn partner(&self, id: &str) -> Option<&PartnerInfo> {
        self.partners.get(id)
    }

    /// The partner a coupon credits; codes match case-insensitively.
    pub fn coupon_partner(&self, program: &str, code: &str) -> Option<Arc<str>> {
        self.coupons.get(&(program.to_string(), code.trim().to_ascii_uppercase())).cloned()
    }

    /// Whether `customer_ref` names the partner: their id or email, ignoring case and spaces.
    pub fn is_partner(&self, partner: &str, customer_ref: &str) -> bool {
        let c = customer_ref.trim();
        if c.is_empty() {
            return false;
        }
        c.eq_ignore_ascii_case(partner)
            || self.partners.get(partner).is_some_and(|p| !p.email.is_empty() && c.eq_ignore_ascii_case(&p.email))
    }
}
