//! The catalog store's conformance suite: every backend (`SqliteCatalog`, `PgCatalog`) passes
//! the same cases, the change log and the API keys beside the catalog included, so an edge
//! follows a PostgreSQL catalog exactly as it follows the data dir's file.

use std::ops::Deref;

use super::program;
use crate::access::{ApiKey, KeyStore, Scope};
use crate::catalog::*;
use crate::model::Channel;
use crate::storage::conformance::{conformance, Backends};
use crate::storage::pg::PgCatalog;
use crate::storage::sqlite::SqliteCatalog;
use crate::testing::PgSchema;

/// A store, a way to open a second connection to the same catalog, and what keeps it alive
/// (the temporary data dir, the schema).
pub(crate) struct Held<S> {
    store: S,
    reopen: Box<dyn Fn() -> S>,
    _guard: Box<dyn std::any::Any>,
}

impl<S> Held<S> {
    /// Another connection to the same store.
    pub(super) fn reopen(&self) -> S {
        (self.reopen)()
    }
}

impl<S> Deref for Held<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.store
    }
}

pub(super) struct Stores;

impl Backends for Stores {
    type Sqlite = Held<SqliteCatalog>;
    type Pg = Held<PgCatalog>;

    fn sqlite(_grouped: bool) -> Held<SqliteCatalog> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        Held {
            store: SqliteCatalog::open(&path).unwrap(),
            reopen: Box::new(move || SqliteCatalog::connect(&path).unwrap()),
            _guard: Box::new(dir),
        }
    }

    fn pg(_grouped: bool) -> Held<PgCatalog> {
        let schema = PgSchema::new("catalog");
        let url = schema.url.clone();
        Held {
            store: PgCatalog::open(&url).unwrap(),
            reopen: Box::new(move || PgCatalog::connect(&url).unwrap()),
            _guard: Box::new(schema),
        }
    }
}

conformance!(stores Stores:
    adds_lists_and_pauses,
    updates_programs_partners_and_coupons,
    edits_partners_and_links_and_logs_the_link_change,
    the_version_moves_with_every_change_and_another_connection_sees_it,
    reads_every_link_or_only_those_changed_since_a_version,
    a_read_of_changes_refuses_what_the_trimmed_log_no_longer_reaches,
    atomically_commits_only_what_answers_true,
    a_batch_reports_each_code_taken,
    keeps_api_keys_beside_the_catalog,
);

pub(super) fn link(code: &str) -> NewLink {
    NewLink {
        code: code.into(),
        program: "shop".into(),
        partner: "alice".into(),
        destination: format!("https://example.com/{code}"),
        channel: Channel::Web,
        utm_source: "cg".into(),
        utm_medium: String::new(),
        utm_campaign: String::new(),
        expires_at: Some(1_900_000_000),
    }
}

pub(super) fn seed<S: CatalogStore>(s: &S) {
    s.add_program(&program()).unwrap();
    s.add_partner(&NewPartner { id: "alice".into(), name: "Alice".into(), email: "a@example.com".into(), ..NewPartner::default() })
        .unwrap();
}

fn adds_lists_and_pauses<S: CatalogStore>(h: Held<S>) {
    seed(&*h);
    let l = h.add_link(&link("spring")).unwrap();
    assert_eq!(
        (l.status, l.spec.destination.as_str(), l.spec.expires_at),
        (Status::Active, "https://example.com/spring", Some(1_900_000_000))
    );
    h.set_status(Kind::Link, "spring", Status::Paused).unwrap();
    assert_eq!(h.links().unwrap()[0].status, Status::Paused);
    assert!(matches!(h.set_status(Kind::Link, "nope", Status::Paused), Err(CatalogError::NotFound { .. })));
    assert!(matches!(h.add_link(&link("spring")), Err(CatalogError::Exists { .. })));
    assert!(matches!(h.add_link(&NewLink { partner: "nobody".into(), ..link("x") }), Err(CatalogError::NotFound { .. })));
    assert!(h.add_link(&NewLink { destination: "https://evil.com/".into(), ..link("y") }).is_err());
    assert_eq!(h.links().unwrap().len(), 1, "refused links are not written");
    assert!(matches!(h.add_program(&program()), Err(CatalogError::Exists { .. })));
    assert!(h.link("nope").unwrap().is_none() && h.program("nope").unwrap().is_none());
}

fn updates_programs_partners_and_coupons<S: CatalogStore>(h: Held<S>) {
    seed(&*h);
    let p = h.set_program_payout("shop", 9000, "monthly:1").unwrap();
    assert_eq!((p.spec.payout_threshold_minor, p.spec.payout_schedule.as_str()), (9000, "monthly:1"));
    h.set_partner_payout("alice", crate::payouts::PayoutMethod::Paypal, None, Some("a@example.com".into())).unwrap();
    let alice = h.partners().unwrap().remove(0);
    assert_eq!(
        (alice.spec.payout_method, alice.spec.paypal_email.as_deref()),
        (crate::payouts::PayoutMethod::Paypal, Some("a@example.com"))
    );
    let c = h.add_coupon(&NewCoupon { code: "spring10".into(), program: "shop".into(), partner: "alice".into() }).unwrap();
    assert_eq!((c.spec.code.as_str(), c.status), ("SPRING10", Status::Active));
    assert!(matches!(h.add_coupon(&c.spec), Err(CatalogError::Exists { .. })));
    assert_eq!(h.coupons().unwrap(), vec![c]);
    h.set_status(Kind::Partner, "alice", Status::Paused).unwrap();
    h.set_status(Kind::Program, "shop", Status::Expired).unwrap();
    assert_eq!((h.partners().unwrap()[0].status, h.get_program("shop").unwrap().status), (Status::Paused, Status::Expired));
}

fn edits_partners_and_links_and_logs_the_link_change<S: CatalogStore>(h: Held<S>) {
    seed(&*h);
    h.add_link(&link("spring")).unwrap();
    let v = h.version().unwrap();
    let patch = PartnerPatch { name: Some("Alice B".into()), email: Some("ab@example.com".into()), ..PartnerPatch::default() };
    let alice = h.edit_partner("alice", &patch).unwrap();
    assert_eq!((alice.spec.name.as_str(), alice.spec.email.as_str()), ("Alice B", "ab@example.com"));
    assert_eq!(h.get_partner("alice").unwrap().spec.name, "Alice B", "stored, not only answered");
    let patch = LinkPatch {
        destination: Some("https://example.com/summer".into()),
        channel: Some(Channel::Email),
        expires_at: Some(None),
        ..LinkPatch::default()
    };
    let l = h.edit_link("spring", &patch).unwrap();
    assert_eq!((l.spec.destination.as_str(), l.spec.channel, l.spec.expires_at), ("https://example.com/summer", Channel::Email, None));
    let stored = h.link("spring").unwrap().unwrap();
    assert_eq!(
        (stored.spec.destination.as_str(), stored.spec.program.as_str(), stored.spec.partner.as_str()),
        ("https://example.com/summer", "shop", "alice")
    );
    // An edge following the change log sees the new link.
    let changed = read(&*h, Some(v), 10).unwrap();
    assert_eq!(changed.links.iter().map(|l| (l.0.as_str(), l.2, l.3)).collect::<Vec<_>>(), [("spring", Channel::Email, None)]);
    // A destination outside the program's allowlist is refused and nothing changes.
    assert!(h.edit_link("spring", &LinkPatch { destination: Some("https://evil.com/".into()), ..LinkPatch::default() }).is_err());
    assert_eq!(h.link("spring").unwrap().unwrap().spec.destination, "https://example.com/summer");
    assert!(matches!(h.edit_link("nope", &patch), Err(CatalogError::NotFound { .. })));
}

fn the_version_moves_with_every_change_and_another_connection_sees_it<S: CatalogStore>(h: Held<S>) {
    let v0 = h.version().unwrap();
    seed(&*h);
    let v1 = h.version().unwrap();
    assert!(v1 > v0);
    let other = (h.reopen)();
    assert_eq!(other.version().unwrap(), v1);
    other.add_link(&link("new")).unwrap();
    let v2 = h.version().unwrap();
    assert!(v2 > v1, "{v2} after {v1}");
    assert!(!h.update_status(Kind::Link, "nope", Status::Paused).unwrap());
    assert_eq!(h.version().unwrap(), v2, "a change to nothing is no change");
}

/// What a read hands over, in order.
#[derive(Default)]
struct Read {
    head: Option<(i64, bool, bool, bool)>,
    removed: Vec<String>,
    links: Vec<(String, Status, Channel, Option<i64>)>,
}

impl LinkReader for Read {
    fn head(&mut self, h: LinkReadHead) {
        self.head = Some((h.version, h.full, h.owners.is_some(), h.others_changed));
    }
    fn removed(&mut self, code: &str) {
        self.removed.push(code.into());
    }
    fn link(&mut self, r: LinkRow<'_>) {
        self.links.push((r.code.into(), r.status, r.channel, r.expires_at));
    }
}

fn read<S: CatalogStore>(s: &S, since: Option<i64>, max: usize) -> Option<Read> {
    let mut r = Read::default();
    s.read_links(since, max, &mut r).unwrap().then_some(r)
}

fn reads_every_link_or_only_those_changed_since_a_version<S: CatalogStore>(h: Held<S>) {
    seed(&*h);
    for code in ["a", "b", "c"] {
        h.add_link(&link(code)).unwrap();
    }
    let all = read(&*h, None, 0).unwrap();
    let v = h.version().unwrap();
    assert_eq!(all.head, Some((v, true, true, true)));
    let mut codes: Vec<_> = all.links.iter().map(|l| l.0.as_str()).collect();
    codes.sort();
    assert_eq!(codes, ["a", "b", "c"]);
    assert_eq!(all.links[0].3, Some(1_900_000_000));

    let none = read(&*h, Some(v), 10).unwrap();
    assert_eq!((none.head, none.links.len()), (Some((v, false, false, false)), 0));

    h.set_status(Kind::Link, "b", Status::Paused).unwrap();
    h.add_link(&link("d")).unwrap();
    let changed = read(&*h, Some(v), 10).unwrap();
    let v2 = h.version().unwrap();
    assert_eq!(changed.head, Some((v2, false, false, false)));
    assert_eq!(changed.removed, ["b"], "an updated link's old code goes first");
    let mut links = changed.links.clone();
    links.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(links.iter().map(|l| (l.0.as_str(), l.1)).collect::<Vec<_>>(), [("b", Status::Paused), ("d", Status::Active)]);
    assert!(read(&*h, Some(v), 1).is_none(), "more link changes than asked for: read everything");
    assert!(read(&*h, Some(v2 + 1), 10).is_none(), "a version from the future");

    h.set_status(Kind::Partner, "alice", Status::Paused).unwrap();
    let owners = read(&*h, Some(v2), 10).unwrap();
    assert_eq!(owners.head, Some((h.version().unwrap(), false, true, true)));
    let v3 = h.version().unwrap();
    h.add_coupon(&NewCoupon { code: "X".into(), program: "shop".into(), partner: "alice".into() }).unwrap();
    assert_eq!(read(&*h, Some(v3), 10).unwrap().head, Some((h.version().unwrap(), false, false, true)), "a coupon is not an owner");
}

fn a_read_of_changes_refuses_what_the_trimmed_log_no_longer_reaches<S: CatalogStore>(h: Held<S>) {
    seed(&*h);
    let v = h.version().unwrap();
    for i in 0..20 {
        h.add_link(&link(&format!("l{i}"))).unwrap();
    }
    let newest = h.version().unwrap();
    assert_eq!(h.trim_changes(100).unwrap(), 0, "nothing to trim");
    let dropped = h.trim_changes(4).unwrap();
    assert!(dropped >= 18, "dropped {dropped}");
    assert_eq!(h.version().unwrap(), newest, "trimming never moves the version");
    assert!(read(&*h, Some(v), 100).is_none(), "the log no longer reaches back to {v}");
    assert_eq!(read(&*h, Some(newest - 4), 100).unwrap().links.len(), 4);
    assert_eq!(read(&*h, None, 0).unwrap().links.len(), 20);
    h.add_link(&link("after")).unwrap();
    assert!(h.version().unwrap() > newest);
}

fn atomically_commits_only_what_answers_true<S: CatalogStore>(h: Held<S>) {
    seed(&*h);
    let v = h.version().unwrap();
    assert!(!h.atomically(&mut || { h.add_link(&link("no")).map(|_| false) }).unwrap());
    let failed = h.atomically(&mut || {
        h.add_link(&link("err"))?;
        Err(CatalogError::Storage("refused".into()))
    });
    assert!(failed.is_err());
    assert!(h.links().unwrap().is_empty(), "rolled back");
    assert_eq!(h.version().unwrap(), v);
    let done = h
        .atomically(&mut || {
            h.add_link(&link("yes"))?;
            h.atomically(&mut || h.add_link(&link("inner")).map(|_| true))
        })
        .unwrap();
    assert!(done);
    assert_eq!(h.links().unwrap().len(), 2);
}

fn a_batch_reports_each_code_taken<S: CatalogStore>(h: Held<S>) {
    seed(&*h);
    h.add_link(&link("taken")).unwrap();
    let (p, a) = (h.get_program("shop").unwrap(), h.partners().unwrap().remove(0));
    // The batch's second "new" differs: the first row of a code is the one written.
    let again = NewLink { destination: "https://example.com/second".into(), expires_at: None, ..link("new") };
    let plain = NewLink { utm_campaign: "spring".into(), expires_at: None, channel: Channel::Qr, ..link("other") };
    let links = [link("taken"), link("new"), again, plain.clone()];
    let rows: Vec<_> =
        links.iter().map(|l| NewLinkRow { link: l, status: Status::Paused, program_row_id: p.row_id, partner_row_id: a.row_id }).collect();
    let v = h.version().unwrap();
    assert_eq!(h.insert_links(&rows).unwrap(), [false, true, false, true]);
    assert_eq!(h.version().unwrap(), v + 2, "one change for each link written");
    let new = h.link("new").unwrap().unwrap();
    assert_eq!((new.status, new.spec), (Status::Paused, link("new")));
    assert_eq!(h.link("other").unwrap().unwrap().spec, plain);
    assert_eq!(h.link("taken").unwrap().unwrap().status, Status::Active);
    assert!(h.insert_links(&[]).unwrap().is_empty());
    assert!(h.insert_links(&rows[..1]).unwrap() == [false] && h.version().unwrap() == v + 2, "nothing written, nothing logged");
}

fn keeps_api_keys_beside_the_catalog<S: KeyStore>(h: Held<S>) {
    let key = |id: &str, created_ms| ApiKey {
        id: id.into(),
        prefix: "cgk_abcdef".into(),
        name: "ci".into(),
        scope: Scope::parse("partner:alice").unwrap(),
        created_ms,
        last_used_ms: None,
        revoked_ms: None,
    };
    h.insert_key(&key("ak_1", 10), &[1; 32]).unwrap();
    h.insert_key(&key("ak_2", 20), &[2; 32]).unwrap();
    assert!(h.insert_key(&key("ak_3", 30), &[2; 32]).is_err(), "a hash is stored once");
    assert_eq!(h.key_by_hash(&[1; 32]).unwrap(), Some(key("ak_1", 10)));
    assert_eq!(h.keys().unwrap().iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["ak_2", "ak_1"]);
    h.touch_key("ak_1", 50).unwrap();
    h.touch_key("ak_1", 40).unwrap();
    assert_eq!(h.key("ak_1").unwrap().unwrap().last_used_ms, Some(50), "a touch never goes back");
    assert_eq!(h.revoke_key("ak_1", 60).unwrap().unwrap().revoked_ms, Some(60));
    assert_eq!(h.revoke_key("ak_1", 70).unwrap().unwrap().revoked_ms, Some(60), "the first revocation stays");
    assert!(h.revoke_key("ak_9", 70).unwrap().is_none() && h.key("ak_9").unwrap().is_none());
}
