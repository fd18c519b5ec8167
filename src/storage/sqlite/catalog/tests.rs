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

/// Collects what `read_links` hands over.
#[derive(Default)]
struct Seen {
    removed: Vec<String>,
    links: Vec<(String, String, Status)>,
}

impl LinkReader for Seen {
    fn head(&mut self, _: crate::catalog::LinkReadHead) {}
    fn removed(&mut self, code: &str) {
        self.removed.push(code.to_string());
    }
    fn link(&mut self, row: crate::catalog::LinkRow<'_>) {
        self.links.push((row.code.to_string(), row.destination.to_string(), row.status));
    }
}

#[test]
fn an_edited_or_expired_link_reaches_the_change_log_the_edge_reads() {
    let (_dir, store) = seeded();
    store.add_link(&link("spring", "https://shop.example.com/sale")).unwrap();
    let before = store.version().unwrap();
    let patch = crate::catalog::LinkPatch { destination: Some("https://shop.example.com/new".into()), ..Default::default() };
    let l = store.edit_link("spring", &patch).unwrap();
    assert_eq!((l.spec.destination.as_str(), l.spec.utm_source.as_str()), ("https://shop.example.com/new", "cg"));
    let mut seen = Seen::default();
    assert!(store.read_links(Some(before), 100, &mut seen).unwrap());
    assert_eq!(seen.links, [("spring".to_string(), "https://shop.example.com/new".to_string(), Status::Active)]);
    let before = store.version().unwrap();
    store.set_status(Kind::Link, "spring", Status::Expired).unwrap();
    let mut seen = Seen::default();
    assert!(store.read_links(Some(before), 100, &mut seen).unwrap());
    assert_eq!(seen.links[0].2, Status::Expired);
    let outside = crate::catalog::LinkPatch { destination: Some("https://evil.com/".into()), ..Default::default() };
    assert!(matches!(store.edit_link("spring", &outside), Err(CatalogError::Destination(_))));
    assert_eq!(store.get_link("spring").unwrap().spec.destination, "https://shop.example.com/new", "nothing was written");
}

#[test]
fn a_narrower_allowlist_is_refused_while_a_link_points_outside_it() {
    let (_dir, store) = seeded();
    store.add_link(&link("spring", "https://shop.example.com/sale")).unwrap();
    let narrow = crate::catalog::ProgramPatch {
        allowed_domains: Some(vec!["other.example.org".into()]),
        fallback_url: Some("https://other.example.org/".into()),
        ..Default::default()
    };
    match store.edit_program("shop", &narrow) {
        Err(CatalogError::Invalid { field, why }) => assert!(field == "allowed_domains" && why.contains("spring"), "{field}: {why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get_program("shop").unwrap().spec.fallback_url, "https://example.com/", "nothing was written");
    let p = store.edit_program("shop", &crate::catalog::ProgramPatch { partners_create_links: Some(true), ..Default::default() }).unwrap();
    assert!(p.spec.partners_create_links);
}

#[test]
fn pages_follow_the_ids_and_their_filters_on_sqlite_and_by_default() {
    let (_dir, store) = seeded();
    store.add_partner(&NewPartner { id: "bob".into(), name: "Bob".into(), ..NewPartner::default() }).unwrap();
    for (code, partner) in [("a1", "alice"), ("b1", "bob"), ("a2", "alice"), ("a3", "alice")] {
        store.add_link(&NewLink { partner: partner.into(), ..link(code, "https://shop.example.com/") }).unwrap();
        store.add_coupon(&NewCoupon { code: format!("c-{code}"), program: "shop".into(), partner: partner.into() }).unwrap();
    }
    store.set_status(Kind::Link, "a2", Status::Paused).unwrap();
    /// The same store, with `CatalogStore`'s defaults in place of its queries.
    struct Plain<'a>(&'a SqliteCatalog);
    impl CatalogStore for Plain<'_> {
        fn version(&self) -> Result<i64, CatalogError> {
            self.0.version()
        }
        fn insert_program(&self, p: &NewProgram) -> Result<bool, CatalogError> {
            self.0.insert_program(p)
        }
        fn update_program(&self, p: &NewProgram) -> Result<bool, CatalogError> {
            self.0.update_program(p)
        }
        fn program(&self, id: &str) -> Result<Option<Program>, CatalogError> {
            self.0.program(id)
        }
        fn programs(&self) -> Result<Vec<Program>, CatalogError> {
            self.0.programs()
        }
        fn insert_partner(&self, p: &NewPartner) -> Result<bool, CatalogError> {
            self.0.insert_partner(p)
        }
        fn partners(&self) -> Result<Vec<Partner>, CatalogError> {
            self.0.partners()
        }
        fn update_partner_payout(&self, p: &NewPartner) -> Result<bool, CatalogError> {
            self.0.update_partner_payout(p)
        }
        fn update_partner(&self, p: &NewPartner) -> Result<bool, CatalogError> {
            self.0.update_partner(p)
        }
        fn update_link(&self, l: &NewLink) -> Result<bool, CatalogError> {
            self.0.update_link(l)
        }
        fn insert_link(&self, l: &NewLink, program: &Program) -> Result<bool, CatalogError> {
            self.0.insert_link(l, program)
        }
        fn insert_links(&self, rows: &[NewLinkRow<'_>]) -> Result<Vec<bool>, CatalogError> {
            self.0.insert_links(rows)
        }
        fn link(&self, code: &str) -> Result<Option<Link>, CatalogError> {
            self.0.link(code)
        }
        fn links(&self) -> Result<Vec<Link>, CatalogError> {
            self.0.links()
        }
        fn insert_coupon(&self, c: &NewCoupon, program: &Program) -> Result<bool, CatalogError> {
            self.0.insert_coupon(c, program)
        }
        fn coupons(&self) -> Result<Vec<Coupon>, CatalogError> {
            self.0.coupons()
        }
        fn update_status(&self, kind: Kind, id: &str, status: Status) -> Result<bool, CatalogError> {
            self.0.update_status(kind, id, status)
        }
        fn read_links(&self, since: Option<i64>, changes_max: usize, reader: &mut dyn LinkReader) -> Result<bool, CatalogError> {
            self.0.read_links(since, changes_max, reader)
        }
        fn trim_changes(&self, keep: u64) -> Result<u64, CatalogError> {
            self.0.trim_changes(keep)
        }
        fn atomically(&self, f: &mut dyn FnMut() -> Result<bool, CatalogError>) -> Result<bool, CatalogError> {
            self.0.atomically(f)
        }
    }
    impl crate::audit::AuditLog for Plain<'_> {
        fn append_audit(&self, e: &crate::audit::Entry) -> Result<(), crate::audit::AuditError> {
            crate::audit::AuditLog::append_audit(self.0, e)
        }
        fn audit_page(&self, q: &crate::audit::Query) -> Result<Vec<crate::audit::Record>, crate::audit::AuditError> {
            crate::audit::AuditLog::audit_page(self.0, q)
        }
    }
    let plain = Plain(&store);
    let stores: [&dyn CatalogStore; 2] = [&store, &plain];
    for s in stores {
        let codes = |f: ListFilter| s.list_links(&f).unwrap().into_iter().map(|l| l.spec.code).collect::<Vec<_>>();
        let f = |partner: Option<&str>, status, after: Option<&str>, limit| ListFilter {
            program: Some("shop".into()),
            partner: partner.map(Into::into),
            status,
            after: after.map(Into::into),
            limit,
        };
        assert_eq!(codes(f(None, None, None, 2)), ["a1", "a2"]);
        assert_eq!(codes(f(None, None, Some("a2"), 2)), ["a3", "b1"]);
        assert_eq!(codes(f(Some("alice"), Some(Status::Active), None, 10)), ["a1", "a3"]);
        assert_eq!(codes(f(Some("bob"), None, Some("b1"), 10)), Vec::<String>::new());
        let coupons = s.list_coupons(&f(Some("alice"), None, Some("shop:C-A1"), 10)).unwrap();
        assert_eq!(coupons.iter().map(|c| c.spec.code.as_str()).collect::<Vec<_>>(), ["C-A2", "C-A3"]);
        let partners = s.list_partners(&ListFilter { partner: Some("bob".into()), limit: 10, ..Default::default() }).unwrap();
        assert_eq!(partners.iter().map(|p| p.spec.id.as_str()).collect::<Vec<_>>(), ["bob"]);
        let programs = s.list_programs(&ListFilter { status: Some(Status::Paused), limit: 10, ..Default::default() }).unwrap();
        assert!(programs.is_empty());
        assert_eq!(s.coupon("shop", "c-b1").unwrap().unwrap().spec.partner, "bob");
        assert_eq!(s.partner("bob").unwrap().unwrap().spec.name, "Bob");
    }
}

#[test]
fn the_audit_log_refuses_changes_and_deletions() {
    use crate::audit::{Action, Actor, AuditLog, Entry, Query};
    let (_dir, store) = temp_store();
    store.append_audit(&Entry::new(&Actor::Cli, Action::ProgramCreate, "shop", 1, None, Some(serde_json::json!({"id": "shop"})))).unwrap();
    for sql in ["UPDATE audit_log SET actor = 'admin'", "DELETE FROM audit_log"] {
        let e = store.conn().execute(sql, []).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    let e =
        store.conn().execute("INSERT INTO audit_log (at_ms, actor, action, object_type, object_id) VALUES (1, 'root', 'x', 'y', 'z')", []);
    assert!(e.is_err(), "an actor is a key id, admin or cli");
    assert_eq!(store.audit_page(&Query { limit: 10, ..Query::default() }).unwrap()[0].actor, "cli");
}
