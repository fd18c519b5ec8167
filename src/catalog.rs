//! What the core needs to know about programs, partners and coupons, as one read-mostly
//! snapshot loaded from the store and swapped whole when the store changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::attribution::Settings;
use crate::commission::ProgramRules;
use crate::model::{Currency, Status};
use crate::store::{Store, StoreError};

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

    /// Takes the reload lock; a write to the store made while it is held, then `reload`, is
    /// never overtaken by another reload.
    pub fn lock(&self) -> ReloadGuard<'_> {
        ReloadGuard { cell: self, _held: self.reloads.lock().unwrap_or_else(|e| e.into_inner()) }
    }

    /// Loads the catalog from `store` and puts it in use; on error the current one stays.
    pub fn reload(&self, store: &Store) -> Result<(), StoreError> {
        self.lock().reload(store)
    }
}

impl ReloadGuard<'_> {
    /// Loads the catalog from `store` and puts it in use; on error the current one stays.
    pub fn reload(&self, store: &Store) -> Result<(), StoreError> {
        self.reload_from(|| Catalog::load(store))
    }

    fn reload_from(&self, load: impl FnOnce() -> Result<Catalog, StoreError>) -> Result<(), StoreError> {
        let catalog = load()?;
        self.cell.current.store(Arc::new(catalog));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commission::ProgramRules;
    use crate::store::NewProgram;

    fn rules_with_lock_days(days: u32) -> ProgramRules {
        let mut r = ProgramRules::default();
        r.rules.lock_days = days;
        r
    }

    /// The upkeep thread's reload reads the store on its own connection, and is slow to swap
    /// (held up after its read); meanwhile a rule change is written and reloaded as the API does
    /// it. Without the reload lock the slow reload would swap the older rules back in after the
    /// change had been put in use.
    #[test]
    fn a_reload_that_read_before_a_rule_change_never_swaps_in_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add_program(&NewProgram { commission: rules_with_lock_days(1), ..crate::store::tests::program() }).unwrap();
        let shared = Arc::new(SharedCatalog::new(Catalog::load(&store).unwrap()));
        let (read_tx, read_rx) = std::sync::mpsc::channel();
        let slow_reload = {
            let (shared, path) = (shared.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                let own = Store::open(&path).unwrap();
                shared
                    .lock()
                    .reload_from(|| {
                        let read = Catalog::load(&own);
                        read_tx.send(()).unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        read
                    })
                    .unwrap();
            })
        };
        read_rx.recv().unwrap();
        {
            let held = shared.lock();
            store.set_commission_rules("shop", &rules_with_lock_days(2)).unwrap();
            held.reload(&store).unwrap();
        }
        slow_reload.join().unwrap();
        let in_use = shared.load().program("shop").unwrap().commission.rules.lock_days;
        assert_eq!(in_use, 2, "the slow reload swapped the rules read before the change back in");
        // And a reload after the change reads it.
        shared.reload(&Store::open(dir.path()).unwrap()).unwrap();
        assert_eq!(shared.load().program("shop").unwrap().commission.rules.lock_days, 2);
    }
}
