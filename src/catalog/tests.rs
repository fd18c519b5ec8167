use super::*;
use crate::commission::ProgramRules;
use crate::model::{BlockedAction, Currency};
use crate::storage::sqlite::SqliteCatalog as Store;

mod audit;
mod store;

/// Program `shop` (EUR), as the store's tests and others that need a stored program use it.
pub(crate) fn program() -> NewProgram {
    NewProgram {
        id: "shop".into(),
        name: "Shop".into(),
        currency: Currency::parse("EUR").unwrap(),
        allowed_domains: vec!["example.com".into()],
        fallback_url: "https://example.com/".into(),
        blocked_action: BlockedAction::Redirect,
        country_allow: vec![],
        country_deny: vec!["KP".into()],
        attribution: Default::default(),
        commission: Default::default(),
        payout_threshold_minor: 5000,
        payout_schedule: "off".into(),
        partners_create_links: false,
    }
}

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
    store.add_program(&NewProgram { commission: rules_with_lock_days(1), ..program() }).unwrap();
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
