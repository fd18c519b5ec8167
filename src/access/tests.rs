use super::*;
use crate::storage::sqlite::SqliteCatalog;

fn keys_on(dir: &std::path::Path) -> Keys {
    Keys::new(Box::new(SqliteCatalog::open(dir).unwrap()))
}

#[test]
fn a_minted_key_has_its_shape_and_is_new_each_time() {
    let a = mint("ops", Scope::Admin, 1).unwrap();
    let b = mint("ops", Scope::Admin, 1).unwrap();
    assert!(well_formed(&a.secret) && a.secret.starts_with("cgk_") && a.secret.len() == 36, "{}", a.secret);
    assert_ne!((a.secret.as_str(), a.key.id.as_str()), (b.secret.as_str(), b.key.id.as_str()));
    assert!(is_key_id(&a.key.id), "{}", a.key.id);
    assert_eq!(a.key.prefix, a.secret[..10]);
    assert_eq!(a.sha256, sha256(&a.secret));
    for bad in ["", "cgk_short", &format!("cgk_{}", "-".repeat(32)), &format!("cgx_{}", "a".repeat(32)), &format!("{}é", &a.secret[..35])]
    {
        assert!(!well_formed(bad), "{bad:?}");
    }
    assert!(matches!(mint("  ", Scope::Admin, 1), Err(AccessError::Invalid { field: "name", .. })));
    assert!(matches!(mint("a\nb", Scope::Admin, 1), Err(AccessError::Invalid { field: "name", .. })));
}

#[test]
fn scopes_parse_strictly_and_print_back() {
    for s in ["admin", "partner:bob", "partner:a-b_9"] {
        assert_eq!(Scope::parse(s).unwrap().to_string(), s);
    }
    for s in ["", "Admin", "partner:", "partner:a b", "partner", "root:bob", &format!("partner:{}", "x".repeat(65))] {
        assert!(Scope::parse(s).is_err(), "{s:?}");
    }
}

#[test]
fn keys_authenticate_until_revoked_and_record_their_use() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_on(dir.path());
    let exists = |p: &str| p == "bob";
    assert!(matches!(keys.create("x", "partner:carol", exists, 1_000, &Actor::Cli), Err(AccessError::Invalid { field: "scope", .. })));
    let m = keys.create("bob's", "partner:bob", exists, 1_000, &Actor::Cli).unwrap();
    let t = 10_000_000;
    let found = keys.authenticate(&m.secret, t).unwrap().unwrap();
    assert_eq!((found.scope, found.id.as_str()), (Scope::Partner("bob".into()), m.key.id.as_str()));
    assert_eq!(keys.get(&m.key.id).unwrap().last_used_ms, Some(t));
    keys.authenticate(&m.secret, t + 30_000).unwrap().unwrap();
    assert_eq!(keys.get(&m.key.id).unwrap().last_used_ms, Some(t), "a use is written at most once a minute");
    keys.authenticate(&m.secret, t + 61_000).unwrap().unwrap();
    assert_eq!(keys.get(&m.key.id).unwrap().last_used_ms, Some(t + 61_000));
    assert!(keys.authenticate(&format!("cgk_{}", "Z".repeat(32)), t).unwrap().is_none(), "an unknown key");
    assert!(keys.authenticate("not a key", t).unwrap().is_none());

    // Revoked by another process on the same store: trusted for at most CACHE_MS more.
    let other = keys_on(dir.path());
    let revoked = other.revoke(&m.key.id, t + 62_000, &Actor::Cli).unwrap();
    assert_eq!(revoked.revoked_ms, Some(t + 62_000));
    assert_eq!(other.revoke(&m.key.id, t + 70_000, &Actor::Cli).unwrap().revoked_ms, Some(t + 62_000), "the first revocation stands");
    assert!(keys.authenticate(&m.secret, t + 61_500).unwrap().is_some(), "still cached");
    assert!(keys.authenticate(&m.secret, t + 61_000 + CACHE_MS).unwrap().is_none(), "gone once the cache entry is stale");
    assert!(other.authenticate(&m.secret, t + 63_000).unwrap().is_none());

    // Revoked here: at once.
    let n = keys.create("ops", "admin", exists, 2_000, &Actor::Cli).unwrap();
    assert!(keys.authenticate(&n.secret, t).unwrap().is_some());
    keys.revoke(&n.key.id, t, &Actor::Cli).unwrap();
    assert!(keys.authenticate(&n.secret, t).unwrap().is_none());
    assert!(matches!(keys.revoke("ak_000000000000000000000000", t, &Actor::Cli), Err(AccessError::NotFound(_))));
    let listed: Vec<String> = keys.list().unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(listed, [n.key.id.clone(), m.key.id.clone()], "newest first");
}
