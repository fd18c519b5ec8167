//! Tampering with the real SQLite file through a second connection, as someone with the file
//! would: drop the append-only triggers, switch the checks off, then change, or delete, a row.
//! `verify` must name it.

use super::super::*;
use super::harness::{open_sqlite, Harness, Sqlite};
use super::{payable, pending, post, single};
use crate::storage::sqlite::SqliteTx;

/// A ledger of five transfers: seq 1 single 100, 2 single 200, 3 pending 300, 4 post 250 of it,
/// 5 single 50.
fn ledger() -> Sqlite {
    let mut h = Sqlite::new();
    for r in [single("t1", 100), single("t2", 200), pending("t3", 300), post("t4", "t3", 250), single("t5", 50)] {
        h.run(|tx| apply(tx, &r)).unwrap();
    }
    h.run(|tx| verify(tx)).expect("clean before tampering");
    h
}

/// Runs `sql` through a separate connection to the same file, with the triggers dropped and
/// the checks off (an unknown account kind is then stored, which the schema refuses).
fn tamper(h: &Sqlite, sql: &str) {
    let conn = open_sqlite(h.path());
    conn.execute_batch("DROP TRIGGER ledger_transfers_no_update; DROP TRIGGER ledger_transfers_no_delete;").unwrap();
    conn.pragma_update(None, "ignore_check_constraints", true).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn verify_error(h: &mut Sqlite) -> VerifyError {
    match h.run(|tx| verify(tx)) {
        Ok(r) => panic!("verify passed a tampered ledger: {r:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_changed_amount_is_named_by_seq() {
    let mut h = ledger();
    tamper(&h, "UPDATE ledger_transfers SET amount_minor = 201 WHERE seq = 2");
    let e = verify_error(&mut h);
    let id = TransferId::derive("t2");
    assert!(matches!(&e, VerifyError::Transfer { seq: 2, id: i, .. } if *i == id), "{e}");
    assert_eq!(e.to_string(), format!("transfer seq 2 (id {id}): hash does not match its fields"));
}

/// A stored currency that is not an ISO 4217 code is a storage error naming the row and the
/// column, never a guess.
#[test]
fn an_unknown_stored_currency_is_named_by_seq_and_column() {
    let mut h = ledger();
    tamper(&h, "UPDATE ledger_transfers SET currency = 'XYZ' WHERE seq = 2");
    let e = verify_error(&mut h).to_string();
    assert!(e.contains("transfer seq 2 cannot be read: column currency: \"XYZ\" is not an ISO 4217 code"), "{e}");
}

#[test]
fn a_changed_amount_with_its_hash_recomputed_breaks_the_next_link() {
    let mut h = ledger();
    // Recompute seq 2's hash for its new amount; seq 3 still points at the old one.
    let mut t = h.run(|tx| tx.transfers_after(1, 1).unwrap()).remove(0);
    t.transfer.amount_minor = 201;
    let hash = t.computed_hash();
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    tamper(&h, &format!("UPDATE ledger_transfers SET amount_minor = 201, hash = x'{hex}' WHERE seq = 2"));
    let e = verify_error(&mut h);
    assert!(matches!(&e, VerifyError::Transfer { seq: 3, .. }), "{e}");
    assert!(e.to_string().contains("prev_hash does not match the hash of seq 2"), "{e}");
}

#[test]
fn a_changed_balance_is_named_by_account_and_field() {
    let mut h = ledger();
    tamper(&h, "UPDATE ledger_balances SET credits_posted = 500 WHERE kind = 'partner_payable' AND owner = 'alice'");
    let e = verify_error(&mut h);
    assert!(matches!(&e, VerifyError::Account { account, .. } if *account == payable("alice")), "{e}");
    assert_eq!(e.to_string(), "account partner_payable:alice:USD: credits_posted is 500, transfers sum to 600");
}

#[test]
fn a_deleted_balance_is_named() {
    let mut h = ledger();
    tamper(&h, "DELETE FROM ledger_balances WHERE kind = 'partner_payable'");
    let e = verify_error(&mut h);
    assert_eq!(e.to_string(), "account partner_payable:alice:USD: has no stored balance, but its transfers sum to credits_posted 600");
}

#[test]
fn a_deleted_transfer_is_named_by_seq() {
    let mut h = ledger();
    tamper(&h, "DELETE FROM ledger_transfers WHERE seq = 2");
    let e = verify_error(&mut h);
    assert!(matches!(&e, VerifyError::Missing { seq: 2, .. }), "{e}");
    assert_eq!(e.to_string(), "transfer seq 2 is missing: the next stored transfer is seq 3");
}

#[test]
fn a_deleted_last_transfer_is_caught_by_the_head() {
    let mut h = ledger();
    tamper(&h, "DELETE FROM ledger_transfers WHERE seq = 5");
    let e = verify_error(&mut h);
    assert_eq!(e.to_string(), "chain head: the head is at seq 5 but the last stored transfer is seq 4");
}

#[test]
fn a_second_resolution_inserted_by_hand_is_named() {
    let mut h = ledger();
    // Append a well-formed, correctly chained second post of seq 3's pending, past `apply` and
    // the schema's unique index, as a buggy writer might.
    tamper(&h, "DROP INDEX ledger_transfers_resolution");
    h.run(|tx| {
        let (seq, prev) = tx.head().unwrap();
        let again = StoredTransfer::chain(seq + 1, prev, post("t6", "t3", 10));
        assert!(tx.insert_transfer(&again).unwrap(), "a new id is inserted");
        tx.add_to_balance(&again.transfer.debit, &Balance { debits_posted: 10, debits_pending: -300, ..Balance::default() }).unwrap();
        tx.add_to_balance(&again.transfer.credit, &Balance { credits_posted: 10, credits_pending: -300, ..Balance::default() }).unwrap();
    });
    let e = verify_error(&mut h);
    assert!(matches!(&e, VerifyError::Transfer { seq: 6, .. }), "{e}");
    assert!(e.to_string().ends_with("resolves pending transfer seq 3 a second time (first by seq 4)"), "{e}");
}

#[test]
fn an_unreadable_row_is_named_by_seq() {
    let mut h = ledger();
    tamper(&h, "UPDATE ledger_transfers SET debit_kind = 'customer' WHERE seq = 4");
    let e = verify_error(&mut h);
    assert!(e.to_string().starts_with("ledger storage: transfer seq 4 cannot be read: unknown account kind \"customer\""), "{e}");
}

#[test]
fn the_ledger_refuses_an_autocommit_connection() {
    let h = Sqlite::new();
    let conn = open_sqlite(h.path());
    assert!(matches!(SqliteTx::new(&conn), Err(LedgerError::Storage(_))));
}

/// Every column of every stored row, changed by hand: `verify` fails and names the row, by its
/// `seq` for a transfer, its account for a balance, and the head for the head.
#[test]
fn every_column_of_every_row_is_caught_and_named() {
    // A new value for a column of transfer `seq` that differs from any stored one and keeps
    // the row within the schema's checks.
    let transfer_edits: [(&str, &str); 15] = [
        ("seq", "seq + 1000"),
        ("id", "randomblob(16)"),
        ("cause", "cause || 'x'"),
        ("debit_kind", "CASE debit_kind WHEN 'partner_paid' THEN 'partner_pending' ELSE 'partner_paid' END"),
        ("debit_owner", "debit_owner || 'x'"),
        ("credit_kind", "CASE credit_kind WHEN 'partner_paid' THEN 'partner_pending' ELSE 'partner_paid' END"),
        ("credit_owner", "credit_owner || 'x'"),
        ("currency", "'EUR'"),
        ("amount_minor", "amount_minor + 1"),
        ("kind", "CASE kind WHEN 'single' THEN 'pending' ELSE 'single' END"),
        ("subject", "coalesce(subject || 'x', 'cm_forged')"),
        ("pending_id", "CASE WHEN pending_id IS NULL THEN randomblob(16) ELSE NULL END"),
        ("at_ms", "at_ms + 1"),
        ("prev_hash", "randomblob(32)"),
        ("hash", "randomblob(32)"),
    ];
    let mut checked = 0;
    for seq in 1..=5u64 {
        for (column, value) in transfer_edits {
            let mut h = ledger();
            tamper(&h, &format!("UPDATE ledger_transfers SET {column} = {value} WHERE seq = {seq}"));
            let e = verify_error(&mut h).to_string();
            assert!(e.contains(&format!("seq {seq}")), "changing {column} of seq {seq} gave: {e}");
            checked += 1;
        }
    }
    for column in ["debits_pending", "credits_pending", "debits_posted", "credits_posted"] {
        for (kind, owner) in [("program_expense", "demo"), ("partner_payable", "alice")] {
            let mut h = ledger();
            tamper(&h, &format!("UPDATE ledger_balances SET {column} = {column} + 1 WHERE kind = '{kind}' AND owner = '{owner}'"));
            let e = verify_error(&mut h).to_string();
            assert!(e.starts_with(&format!("account {kind}:{owner}:USD: {column} is")), "changing {column} of {kind}:{owner} gave: {e}");
            checked += 1;
        }
    }
    for (column, value) in [("seq", "seq - 1"), ("hash", "randomblob(32)")] {
        let mut h = ledger();
        tamper(&h, &format!("UPDATE ledger_head SET {column} = {value}"));
        let e = verify_error(&mut h).to_string();
        assert!(e.starts_with("chain head: "), "changing the head's {column} gave: {e}");
        checked += 1;
    }
    assert_eq!(checked, 5 * 15 + 4 * 2 + 2);
}
