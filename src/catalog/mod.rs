//! Programs, partners, links and coupons: the objects and the rules they pass on the way in
//! (`objects`), what a backend implements to hold them (`store`), and what the core needs to
//! know of them, as one read-mostly snapshot loaded from the store and swapped whole when the
//! store changes.

mod audited;
mod changes;
mod edit;
pub mod import;
mod objects;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::attribution::Settings;
use crate::commission::ProgramRules;
use crate::model::{Currency, Status};

pub use crate::model::destination::DestinationError;
pub use audited::Audited;
pub use changes::{LinkReadHead, LinkReader, LinkRow};
pub use edit::{coupon_key, LinkPatch, ListFilter, PartnerPatch, ProgramPatch};
pub use objects::{Coupon, Link, NewCoupon, NewLink, NewPartner, NewProgram, Partner, Program, Seed};
pub use store::{CatalogStore, Catalogue, Kind, NewLinkRow};

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The backend failed, or holds what this build cannot read (its schema version).
    #[error("{0}")]
    Storage(String),
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error(transparent)]
    Destination(#[from] DestinationError),
    #[error("{kind} {id:?} already exists")]
    Exists { kind: &'static str, id: String },
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
}

/// One program as the core sees it.
#[derive(Debug, Clone)]
pub struct ProgramInfo {
    pub id: Arc<str>,
    pub currency: Currency,
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
    /// (program, upper-case code) → partner and the coupon's status.
    coupons: HashMap<(String, String), (Arc<str>, Status)>,
}

impl Catalog {
    /// Loads everything from the store.
    pub fn load(store: &(impl CatalogStore + ?Sized)) -> Result<Catalog, CatalogError> {
        let mut c = Catalog::default();
        for p in store.programs()? {
            let id: Arc<str> = p.spec.id.as_str().into();
            c.programs.insert(
                p.spec.id.clone(),
                ProgramInfo {
                    id,
                    currency: p.spec.currency,
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
            c.coupons.insert((k.spec.program, k.spec.code), (k.spec.partner.as_str().into(), k.status));
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

    /// The partner a coupon credits and the coupon's status; codes match case-insensitively.
    pub fn coupon(&self, program: &str, code: &str) -> Option<(Arc<str>, Status)> {
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

/// The catalog in use, swapped whole when the store changes.
///
/// Every reload holds one lock from its read of the store to its swap, and a writer that
/// changes the store and then reloads (a rule change through the API) holds it across both.
/// So a reload that read the store before a change can never swap in after the catalog loaded
/// for that change: the older rules never come back, not even for a moment.
pub struct SharedCatalog {
    current: ArcSwap<Catalog>,
    reloads: Mutex<()>,
}

/// The reload lock, held: the store can be written and then reloaded with no other reload in
/// between.
pub struct ReloadGuard<'a> {
    cell: &'a SharedCatalog,
    _held: MutexGuard<'a, ()>,
}

impl SharedCatalog {
    pub fn new(catalog: Catalog) -> SharedCatalog {
        SharedCatalog { current: ArcSwap::from_pointee(catalog), reloads: Mutex::new(()) }
    }

    /// The catalog in use now.
    pub fn load(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.current.load()
    }

    /// The current catalog, to keep past the moment (a blocking task's).
    pub fn load_full(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Takes the reload lock; a write to the store made while it is held, then `reload`, is
    /// never overtaken by another reload.
    pub fn lock(&self) -> ReloadGuard<'_> {
        ReloadGuard { cell: self, _held: self.reloads.lock().unwrap_or_else(|e| e.into_inner()) }
    }

    /// Loads the catalog from `store` and puts it in use; on error the current one stays.
    pub fn reload(&self, store: &(impl CatalogStore + ?Sized)) -> Result<(), CatalogError> {
        self.lock().reload(store)
    }
}

impl ReloadGuard<'_> {
    /// Loads the catalog from `store` and puts it in use; on error the current one stays.
    pub fn reload(&self, store: &(impl CatalogStore + ?Sized)) -> Result<(), CatalogError> {
        self.reload_from(|| Catalog::load(store))
    }

    fn reload_from(&self, load: impl FnOnce() -> Result<Catalog, CatalogError>) -> Result<(), CatalogError> {
        let catalog = load()?;
        self.cell.current.store(Arc::new(catalog));
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
