//! The ledger from the command line, end to end, on both stores: conversions through the real
//! server, approval through `clickgate commissions`, a settlement by hand through `clickgate
//! payouts settle`, and `clickgate ledger verify`, clean and then edited by hand.

mod common;

use clickgate::payouts::PayoutStore;
use clickgate::storage::offline::StoreAt;
use clickgate::storage::payouts::PayoutDb;
use common::*;

on_both!(verify_passes_a_real_ledger_and_names_a_row_edited_by_hand);

const KEY: &str = "test-admin-key-0123";

/// The fixture config with an admin key, partner bob with his link and coupon, and the rules: 10%
/// with a 7-day lock.
fn config() -> String {
    fixture_config(&format!("[api]\nadmin_key = \"{KEY}\"\n"))
        .replace("country_deny = [\"GB\"]", "country_deny = [\"GB\"]\n[demo.programs.commission.rules]\npercent_bps = 1000\nlock_days = 7")
        + BOB
}

const DAY_MS: u64 = 86_400_000;

/// A day ago: inside the program's conversion window whenever the test runs (a fixed date
/// falls out of it 30 days later).
fn occurred_ms() -> u64 {
    let now = common::stream::now_ms();
    now - now % 1000 - DAY_MS
}

fn convert(s: &Server, order: &str, amount_minor: i64, occurred_ms: u64) -> serde_json::Value {
    let occurred = common::stream::rfc3339(occurred_ms);
    let body = format!(
        r#"{{"order_id":"{order}","program":"demo","amount_minor":{amount_minor},"currency":"USD","occurred_at":"{occurred}","coupon_code":"BOB10"}}"#
    );
    let a = http(s.api, "POST", "/v1/conversions", &[&format!("Authorization: Bearer {KEY}"), &format!("Idempotency-Key: {order}")], &body);
    assert_eq!(a.status, 201, "{}", a.body);
    a.json()
}

fn verify(s: &Server) -> (i32, String) {
    let (code, out, err) = s.cli(&["ledger", "verify"]);
    assert!(err.is_empty() || !err.contains("panicked"), "{err}");
    (code, out)
}

fn verify_passes_a_real_ledger_and_names_a_row_edited_by_hand(store: Store) {
    let mut s = Server::start_on(&config(), store);
    let occurred = occurred_ms();
    let first = convert(&s, "o-1", 10_000, occurred);
    convert(&s, "o-2", 20_000, occurred);
    convert(&s, "o-3", 30_000, occurred);
    let c = &first["commissions"][0];
    assert_eq!((c["partner"].as_str(), c["amount_minor"].as_i64(), c["status"].as_str()), (Some("bob"), Some(1_000), Some("pending")));
    let id = first["id"].as_str().unwrap();
    let refund = http(
        s.api,
        "POST",
        &format!("/v1/conversions/{id}/refund"),
        &[&format!("Authorization: Bearer {KEY}"), "Idempotency-Key: r-1"],
        r#"{"amount_minor":2500}"#,
    );
    assert_eq!(refund.status, 200, "{}", refund.body);
    assert_eq!(refund.json()["commissions"][0]["remaining_minor"], 750);
    assert!(s.terminate().success());

    // Before the 7-day lock ends nothing is approved; after it, all three are.
    let before = common::stream::rfc3339(occurred + 4 * DAY_MS);
    let (code, out, _) = s.cli(&["commissions", "approve", "--now", &before]);
    assert_eq!((code, out.trim()), (0, r#"{"amount_minor":0,"approved":0}"#));
    let after = common::stream::rfc3339(occurred + 8 * DAY_MS);
    let (code, out, _) = s.cli(&["commissions", "approve", "--now", &after]);
    assert_eq!((code, out.trim()), (0, r#"{"amount_minor":5750,"approved":3}"#));
    let settle = ["payouts", "settle", "--partner", "bob", "--currency", "USD", "--reference", "bank-1", "--now", &after];
    let (code, out, err) = s.cli(&settle);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let settled = &report["settled"];
    assert_eq!((settled["commissions"].as_u64(), settled["amount_minor"].as_i64()), (Some(3), Some(5_750)), "{report}");
    assert_eq!((settled["reference"].as_str(), report["paid"]["count"].as_u64()), (Some("bank-1"), Some(1)));
    // Settled again: nothing is left, and nothing is paid twice.
    let (code, out, err) = s.cli(&settle);
    assert_eq!(code, 0, "{out}{err}");
    let again: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((again.get("settled"), again["paid"]["count"].as_u64()), (None, Some(0)), "{again}");
    assert!(again["plan"]["skipped"][0]["why"].as_str().unwrap().contains("no approved commission"), "{again}");
    let (code, _, err) = s.cli(&["payouts", "settle", "--partner", "bob", "--currency", "USD", "--reference", "bank 1"]);
    assert!(code != 0 && err.contains("reference"), "{err}");
    let (code, _, err) = s.cli(&["commissions", "pay", "--partner", "bob", "--currency", "USD", "--payout-id", "po-1"]);
    assert!(code != 0 && err.contains("unrecognized subcommand"), "{err}");
    // While another run holds the lock, a settlement is refused and says why.
    let at = match &s.store {
        Store::Sqlite => StoreAt::File(s.data_dir()),
        Store::Pg(schema) => StoreAt::Pg(schema.url.clone()),
    };
    let (since, until) = (occurred as i64, (occurred + 365 * DAY_MS) as i64);
    let hold = |take: bool| {
        let mut db = PayoutDb::open(&at).unwrap();
        db.write(|tx| if take { tx.take_lock("another", "pr_0000000000000001", since, until) } else { tx.release_lock("another") }).unwrap()
    };
    hold(true);
    let (code, _, err) = s.cli(&settle);
    assert!(code != 0 && err.contains("another payout run is under way") && err.contains("holds the lock"), "{err}");
    hold(false);
    assert_eq!(s.cli(&settle).0, 0);

    let (code, out) = verify(&s);
    assert_eq!(code, 0, "{out}");
    let first_line = match &s.store {
        Store::Sqlite => "sqlite integrity_check: ok",
        Store::Pg(_) => "store: PostgreSQL",
    };
    assert!(out.starts_with(&format!("{first_line}\nledger clean: 13 transfers, 4 accounts, 0 pending open")), "{out}");

    // Someone with the file (or the database's owner) turns off the append-only triggers and
    // lowers one amount.
    match &s.store {
        Store::Sqlite => {
            let conn = rusqlite::Connection::open(s.data_dir().join("clickgate.db")).unwrap();
            conn.execute_batch(
                "DROP TRIGGER ledger_transfers_no_update; DROP TRIGGER ledger_transfers_no_delete;
                 UPDATE ledger_transfers SET amount_minor = amount_minor - 1 WHERE seq = 2;",
            )
            .unwrap();
        }
        Store::Pg(schema) => {
            schema
                .client()
                .batch_execute(
                    "ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_append_only;
                     UPDATE ledger_transfers SET amount_minor = amount_minor - 1 WHERE seq = 2;",
                )
                .unwrap();
        }
    }
    let (code, out) = verify(&s);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ledger verify FAILED: transfer seq 2 (id "), "{out}");
    assert!(out.contains("hash does not match its fields"), "{out}");
}
