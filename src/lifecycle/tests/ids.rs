//! Commission ids and the transfer ids derived from their causes.

use super::*;

#[test]
fn commission_ids_derive_from_conversion_partner_and_item() {
    let cv = |id| ConversionRef { id, occurred_at_ms: 1_700_000_000_999 };
    let id = commission_id(&cv("cv_1"), "alice", "base");
    assert_eq!(id, commission_id(&cv("cv_1"), "alice", "base"));
    assert!(id.starts_with("cm_") && id.len() == 27 && id[3..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
    assert!(id.starts_with("cm_6553f100"), "the second it occurred at leads: {id}");
    assert!(id.starts_with(&cv("cv_1").commission_prefix()) && !id.starts_with(&cv("cv_2").commission_prefix()));
    // Parts are separated, so moving a character from one to the next changes the id.
    assert_ne!(id, commission_id(&cv("cv_1a"), "lice", "base"));
    assert_ne!(id, commission_id(&cv("cv_1"), "alice", "bonus:0"));
    assert_ne!(id, commission_id(&cv("cv_2"), "alice", "base"));
    // Later conversions sort after; the ledger's ids of its transfers follow.
    let later = commission_id(&ConversionRef { id: "cv_0", occurred_at_ms: 1_700_000_001_000 }, "alice", "base");
    assert!(later > id);
    let reserve = |c: &str| TransferId::derive(&format!("commission:{c}:reserve:0"));
    assert!(reserve(&later) > reserve(&id));
}
