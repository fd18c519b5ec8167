//! The audit log and coupon status on every catalog backend: an audited write and its entry
//! commit together, the entries read back with their filters and pages, and nothing sensitive
//! reaches them in clear.

use super::store::{link, seed, Held, Stores};
use crate::access::{KeyStore, Keys};
use crate::audit::{Actor, Query, Record, REDACTED};
use crate::catalog::*;
use crate::model::Status;
use crate::storage::conformance::conformance;

conformance!(stores Stores:
    an_audited_write_records_who_what_and_the_object_before_and_after,
    the_log_reads_by_object_actor_time_and_page,
    a_refused_write_records_nothing,
    api_keys_record_their_creation_and_revocation,
    a_coupon_is_paused_resumed_and_expired_and_the_core_sees_it,
);

fn all<S: CatalogStore>(s: &S, f: impl FnOnce(&mut Query)) -> Vec<Record> {
    let mut q = Query { limit: 100, ..Query::default() };
    f(&mut q);
    s.audit_page(&q).unwrap()
}

fn alice() -> NewPartner {
    NewPartner {
        id: "alice".into(),
        name: "Alice".into(),
        email: "alice@example.com".into(),
        payout_method: crate::payouts::PayoutMethod::Paypal,
        paypal_email: Some("pay-alice@example.com".into()),
        stripe_account: None,
    }
}

const KEY: &str = "ak_0123456789abcdef01234567";

fn an_audited_write_records_who_what_and_the_object_before_and_after<S: CatalogStore>(h: Held<S>) {
    let store: &S = &h;
    Audited::new(store, Actor::Cli, 1_000).add_program(&program()).unwrap();
    let key = Audited::new(store, Actor::Key(KEY.into()), 2_000);
    key.add_partner(&alice()).unwrap();
    key.edit_partner("alice", &PartnerPatch { name: Some("Alice B".into()), ..Default::default() }).unwrap();
    Audited::new(store, Actor::Admin, 3_000).set_status(Kind::Partner, "alice", Status::Paused).unwrap();
    let log = all(store, |_| {});
    let seen: Vec<(&str, &str, &str, u64)> = log.iter().map(|r| (r.actor.as_str(), r.action, r.object_id.as_str(), r.at_ms)).collect();
    assert_eq!(
        seen,
        [
            ("cli", "program.create", "shop", 1_000),
            (KEY, "partner.create", "alice", 2_000),
            (KEY, "partner.update", "alice", 2_000),
            ("admin", "partner.pause", "alice", 3_000)
        ]
    );
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq), "seq grows");
    let create = &log[1];
    assert_eq!((create.object_type, &create.before), ("partner", &None));
    let after = create.after.as_ref().unwrap();
    assert_eq!((after["id"].as_str(), after["status"].as_str()), (Some("alice"), Some("active")));
    assert_eq!((after["email"].as_str(), after["paypal_email"].as_str()), (Some(REDACTED), Some(REDACTED)));
    assert!(after.get("row_id").is_none(), "the store's row ids stay out");
    let update = &log[2];
    assert_eq!(
        (update.before.as_ref().unwrap()["name"].as_str(), update.after.as_ref().unwrap()["name"].as_str()),
        (Some("Alice"), Some("Alice B"))
    );
    let pause = &log[3];
    assert_eq!(
        (pause.before.as_ref().unwrap()["status"].as_str(), pause.after.as_ref().unwrap()["status"].as_str()),
        (Some("active"), Some("paused"))
    );
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains("alice@example.com") && !text.contains("pay-alice"), "{text}");
    assert_eq!(h.get_partner("alice").unwrap().spec.email, "alice@example.com", "the store keeps the real value");
}

fn the_log_reads_by_object_actor_time_and_page<S: CatalogStore>(h: Held<S>) {
    let store: &S = &h;
    Audited::new(store, Actor::Cli, 1_000).add_program(&program()).unwrap();
    Audited::new(store, Actor::Cli, 1_000).add_partner(&alice()).unwrap();
    let key = Audited::new(store, Actor::Key(KEY.into()), 5_000);
    for code in ["a1", "a2", "a3"] {
        key.add_link(&link(code)).unwrap();
    }
    key.set_status(Kind::Link, "a2", Status::Expired).unwrap();
    let ids = |rows: Vec<Record>| rows.into_iter().map(|r| format!("{}:{}", r.action, r.object_id)).collect::<Vec<_>>();
    assert_eq!(
        ids(all(store, |q| q.object_type = Some("link".into()))),
        ["link.create:a1", "link.create:a2", "link.create:a3", "link.expire:a2"]
    );
    assert_eq!(ids(all(store, |q| *q = q.clone().object("link:a2").unwrap())), ["link.create:a2", "link.expire:a2"]);
    assert_eq!(ids(all(store, |q| q.actor = Some("cli".into()))), ["program.create:shop", "partner.create:alice"]);
    assert_eq!(all(store, |q| q.since_ms = Some(5_000)).len(), 4);
    assert_eq!(all(store, |q| q.since_ms = Some(5_001)).len(), 0);
    // Pages of two, each after the last seq of the one before, cover the log once, in order.
    let mut q = Query { limit: 2, ..Query::default() };
    let mut paged = Vec::new();
    loop {
        let page = h.audit_page(&q).unwrap();
        let Some(last) = page.last() else { break };
        q.after_seq = Some(last.seq);
        paged.extend(page);
    }
    assert_eq!(paged, all(store, |_| {}));
    assert_eq!(paged.len(), 6);
}

fn a_refused_write_records_nothing<S: CatalogStore>(h: Held<S>) {
    let store: &S = &h;
    let w = Audited::new(store, Actor::Cli, 1_000);
    w.add_program(&program()).unwrap();
    assert!(matches!(w.add_program(&program()), Err(CatalogError::Exists { .. })));
    assert!(matches!(w.set_status(Kind::Link, "nope", Status::Paused), Err(CatalogError::NotFound { .. })));
    assert!(w.add_link(&NewLink { destination: "https://evil.com/".into(), ..link("x") }).is_err());
    assert_eq!(all(store, |_| {}).len(), 1, "only the program's creation");
    // A write that rolls back takes its entry with it.
    let before = all(store, |_| {}).len();
    let rolled = h.atomically(&mut || {
        w.set_status(Kind::Program, "shop", Status::Paused)?;
        Ok(false)
    });
    assert!(!rolled.unwrap());
    assert_eq!((all(store, |_| {}).len(), h.get_program("shop").unwrap().status), (before, Status::Active));
}

fn api_keys_record_their_creation_and_revocation<S: CatalogStore + KeyStore + Send + 'static>(h: Held<S>) {
    seed(&*h);
    let keys = Keys::new(Box::new(h.reopen()));
    let made = keys.create("ops", "partner:alice", |p| p == "alice", 7_000, &Actor::Admin).unwrap();
    keys.revoke(&made.key.id, 8_000, &Actor::Key(KEY.into())).unwrap();
    assert!(keys.revoke("ak_000000000000000000000000", 9_000, &Actor::Cli).is_err());
    let log = all(&*h, |q| q.object_type = Some("api_key".into()));
    let seen: Vec<(&str, &str, &str)> = log.iter().map(|r| (r.actor.as_str(), r.action, r.object_id.as_str())).collect();
    assert_eq!(seen, [("admin", "api_key.create", made.key.id.as_str()), (KEY, "api_key.revoke", made.key.id.as_str())]);
    let revoked = log[1].after.as_ref().unwrap();
    assert_eq!((revoked["revoked_ms"].as_u64(), log[1].before.as_ref().unwrap()["revoked_ms"].is_null()), (Some(8_000), true));
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&made.secret) && !text.contains("sha256"), "{text}");
}

fn a_coupon_is_paused_resumed_and_expired_and_the_core_sees_it<S: CatalogStore>(h: Held<S>) {
    seed(&*h);
    let store: &S = &h;
    let w = Audited::new(store, Actor::Cli, 1_000);
    w.add_coupon(&NewCoupon { code: "spring10".into(), program: "shop".into(), partner: "alice".into() }).unwrap();
    w.add_coupon(&NewCoupon { code: "fall".into(), program: "shop".into(), partner: "alice".into() }).unwrap();
    let version = h.version().unwrap();
    w.set_status(Kind::Coupon, "shop:spring10", Status::Paused).unwrap();
    assert!(h.version().unwrap() > version, "a coupon's status is a catalog change");
    assert_eq!(h.get_coupon("shop", "Spring10").unwrap().status, Status::Paused);
    let status = |s| ListFilter { status: Some(s), limit: 10, ..Default::default() };
    let codes = |f| h.list_coupons(&f).unwrap().into_iter().map(|c| c.spec.code).collect::<Vec<_>>();
    assert_eq!((codes(status(Status::Paused)), codes(status(Status::Active))), (vec!["SPRING10".to_string()], vec!["FALL".to_string()]));
    assert_eq!(
        Catalog::load(store).unwrap().coupon("shop", "spring10").map(|(p, s)| (p.to_string(), s)),
        Some(("alice".into(), Status::Paused))
    );
    w.set_status(Kind::Coupon, "shop:SPRING10", Status::Active).unwrap();
    w.set_status(Kind::Coupon, "shop:fall", Status::Expired).unwrap();
    let loaded = Catalog::load(store).unwrap();
    assert_eq!((loaded.coupon("shop", "SPRING10").unwrap().1, loaded.coupon("shop", "fall").unwrap().1), (Status::Active, Status::Expired));
    assert!(matches!(w.set_status(Kind::Coupon, "shop:nope", Status::Paused), Err(CatalogError::NotFound { .. })));
    assert!(matches!(w.set_status(Kind::Coupon, "nocolon", Status::Paused), Err(CatalogError::NotFound { .. })));
    let log = all(store, |q| q.object_type = Some("coupon".into()));
    let seen: Vec<(&str, &str)> = log.iter().map(|r| (r.action, r.object_id.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("coupon.create", "shop:SPRING10"),
            ("coupon.create", "shop:FALL"),
            ("coupon.pause", "shop:SPRING10"),
            ("coupon.resume", "shop:SPRING10"),
            ("coupon.expire", "shop:FALL")
        ]
    );
}

fn program() -> NewProgram {
    super::program()
}
