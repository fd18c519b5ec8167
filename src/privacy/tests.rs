use super::sealed::{is_sealed, sealed_by};
use super::{DataKey, Field, PrivacyError};

fn key(b: u8) -> DataKey {
    DataKey::from_bytes(&[b; 32])
}

const EMAIL: Field<'static> = Field { table: "partners", column: "email", row: "alice" };

#[test]
fn a_sealed_value_opens_under_its_key_and_field_only() {
    let k = key(1);
    let sealed = k.seal(EMAIL, "alice@example.com").unwrap();
    assert!(!sealed.contains("alice"), "{sealed}");
    assert!(is_sealed(&sealed));
    assert_eq!(k.open(EMAIL, &sealed).unwrap(), "alice@example.com");
    assert_eq!(sealed_by(&sealed).unwrap(), k.id_hex());
    // Another row, another column, another key: refused.
    let bob = Field { row: "bob", ..EMAIL };
    assert!(matches!(k.open(bob, &sealed), Err(PrivacyError::Opening { .. })));
    let paypal = Field { column: "paypal_email", ..EMAIL };
    assert!(k.open(paypal, &sealed).is_err());
    let err = key(2).open(EMAIL, &sealed).unwrap_err().to_string();
    assert!(err.contains(&k.id_hex()), "{err}");
}

#[test]
fn each_seal_takes_a_new_nonce() {
    let k = key(1);
    assert_ne!(k.seal(EMAIL, "x").unwrap(), k.seal(EMAIL, "x").unwrap());
}

#[test]
fn empty_stays_empty_and_clear_text_is_refused() {
    let k = key(1);
    assert_eq!(k.seal(EMAIL, "").unwrap(), "");
    assert_eq!(k.open(EMAIL, "").unwrap(), "");
    assert!(!is_sealed("alice@example.com"));
    assert!(k.open(EMAIL, "alice@example.com").is_err());
    assert!(k.open(EMAIL, "enc1.AAAA").is_err());
}

#[test]
fn a_flipped_byte_does_not_open() {
    let k = key(1);
    let sealed = k.seal(EMAIL, "alice@example.com").unwrap();
    let mut b = sealed.into_bytes();
    let last = b.len() - 2;
    b[last] = if b[last] == b'A' { b'B' } else { b'A' };
    assert!(k.open(EMAIL, &String::from_utf8(b).unwrap()).is_err());
}

#[test]
fn keys_parse_from_hex_and_base64() {
    let hex = "07".repeat(32);
    let b64 = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    assert_eq!(DataKey::parse(&hex).unwrap().id_hex(), key(7).id_hex());
    assert_eq!(DataKey::parse(b64).unwrap().id_hex(), key(7).id_hex());
    assert_eq!(DataKey::parse(b64.trim_end_matches('=')).unwrap().id_hex(), key(7).id_hex());
    assert!(DataKey::parse("07").is_err());
    assert!(DataKey::parse(&"07".repeat(31)).is_err());
    assert!(DataKey::parse("not a key").is_err());
}

#[test]
fn the_lookup_hash_is_keyed() {
    let (a, b) = (key(1), key(2));
    assert_eq!(a.lookup_hash("cust-9"), a.lookup_hash("cust-9"));
    assert_ne!(a.lookup_hash("cust-9"), a.lookup_hash("cust-8"));
    assert_ne!(a.lookup_hash("cust-9"), b.lookup_hash("cust-9"));
    assert_eq!(a.lookup_hash("cust-9").len(), 64);
}

#[test]
fn the_key_id_is_the_first_twelve_base64_characters() {
    // The stores select values under a key by this prefix.
    let k = key(3);
    let s = k.seal(EMAIL, "x").unwrap();
    assert_eq!(&s[..super::sealed::PREFIX.len() + 12], super::sealed::stored_prefix(&k));
}
