use super::*;
use crate::catalog::tests::program;
use crate::catalog::Catalogue;

fn temp_store() -> (tempfile::TempDir, SqliteCatalog) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCatalog::open(dir.path()).unwrap();
    (dir, store)
}

fn link(code: &str, destination: &str) -> NewLink {
    NewLink {
        code: code.into(),
        program: "shop".into(),
        partner: "alice".into(),
        destination: destination.into(),
        channel: Channel::Web,
        utm_source: "cg".into(),
        utm_medium: String::new(),
        utm_campaign: String::new(),
        expires_at: None,
    }
}

fn seeded() -> (tempfile::TempDir, SqliteCatalog) {
    let (dir, store) = temp_store();
    store.add_program(&program()).unwrap();
    store
        .add_partner(&NewPartner { id: "alice".into(), name: "Alice".into(), email: "a@example.com".into(), ..NewPartner::default() })
        .unwrap();
    (dir, store)
}

#[test]
fn adds_lists_and_pauses() {
    let (_dir, store) = seeded();
    let l = store.add_link(&link("spring", "https://shop.example.com/sale")).unwrap();
    assert_eq!(l.status, Status::Active);
    assert_eq!(store.links().unwrap().len(), 1);
    store.set_status(Kind::Link, "spring", Status::Paused).unwrap();
    assert_eq!(store.links().unwrap()[0].status, Status::Paused);
    assert!(matches!(store.set_status(Kind::Link, "nope", Status::Paused), Err(CatalogError::NotFound { .. })));
    assert!(matches!(store.add_link(&link("spring", "https://example.com/")), Err(CatalogError::Exists { .. })));
}

#[test]
fn refuses_destinations_outside_the_allowlist_with_a_clear_message() {
    let (_dir, store) = seeded();
    for (dest, want) in [
        ("https://evil.com/", "not in the program's allowlist"),
        ("https://example.com@evil.com/", "userinfo"),
        ("javascript:alert(document.cookie)", "scheme \"javascript\" is not allowed"),
        ("//evil.com/", "scheme-relative"),
        ("https://example.com/\r\nLocation: https://evil.com", "CR/LF"),
    ] {
        let err = store.add_link(&link("x", dest)).unwrap_err().to_string();
        assert!(err.contains(want), "{dest:?}: {err}");
    }
    assert!(store.links().unwrap().is_empty(), "nothing was written");
}

#[test]
fn validates_programs_and_partners() {
    let (_dir, store) = temp_store();
    let mut p = program();
    p.fallback_url = "https://elsewhere.org/".into();
    assert!(store.add_program(&p).unwrap_err().to_string().contains("not in the program's allowlist"));
    let mut p = program();
    p.country_deny = vec!["korea".into()];
    assert!(store.add_program(&p).unwrap_err().to_string().contains("ISO 3166"));
    let err = store
        .add_partner(&NewPartner { id: "bad id".into(), name: "x".into(), email: String::new(), ..NewPartner::default() })
        .unwrap_err();
    assert!(err.to_string().contains("[A-Za-z0-9_-]"), "{err}");
}

#[test]
fn seeds_only_an_empty_store() {
    let (_dir, store) = temp_store();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/clickgate.toml")).unwrap();
    let cfg = crate::config::Config::parse(&text, std::path::Path::new("config/clickgate.toml")).unwrap();
    assert!(crate::app::seed_demo(&store, &cfg.demo).unwrap());
    assert!(!crate::app::seed_demo(&store, &cfg.demo).unwrap());
    assert!(store.links().unwrap().iter().any(|l| l.spec.code == "demo"));
}

#[test]
fn the_catalog_version_moves_when_another_connection_changes_it() {
    let (dir, store) = seeded();
    let v = store.version().unwrap();
    let other = SqliteCatalog::open(dir.path()).unwrap();
    other.add_link(&link("new", "https://example.com/")).unwrap();
    assert_ne!(store.version().unwrap(), v);
}

/// `open` is the app's open at start: it migrates a fresh data dir. `connect`, the reloads'
/// open, only checks the version: it refuses a data dir `open` did not make, creating nothing,
/// and one a newer build migrated, as `open` does.
#[test]
fn open_migrates_a_fresh_data_dir_and_connect_only_checks_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let e = SqliteCatalog::connect(dir.path()).err().expect("connect opened a missing store");
    assert!(e.to_string().contains("has no schema yet"), "{e}");
    assert!(!super::schema::path(dir.path()).exists(), "connect created the file");
    let store = SqliteCatalog::open(dir.path()).unwrap();
    let version = |dir: &std::path::Path| -> u32 {
        Connection::open(super::schema::path(dir)).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(version(dir.path()), crate::storage::sqlite::migrations::LATEST);
    store.add_program(&program()).unwrap();
    assert_eq!(SqliteCatalog::connect(dir.path()).unwrap().programs().unwrap().len(), 1);
    assert_eq!(SqliteCatalog::open(dir.path()).unwrap().programs().unwrap().len(), 1, "a second open changes nothing");
    Connection::open(super::schema::path(dir.path())).unwrap().pragma_update(None, "user_version", 99).unwrap();
    for e in [SqliteCatalog::connect(dir.path()).err(), SqliteCatalog::open(dir.path()).err()] {
        let e = e.expect("a store at version 99 was opened").to_string();
        let want =
            format!("is at schema version 99; this build knows 1..={}; run a newer clickgate", crate::storage::sqlite::migrations::LATEST);
        assert!(e.contains(&want), "{e}");
    }
    assert_eq!(version(dir.path()), 99);
}
