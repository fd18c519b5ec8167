use super::*;
use crate::payouts::provider::{Email, StripeAccount};

fn cur(code: &str) -> Currency {
    Currency::parse(code).unwrap()
}

fn paypal(id: &str, email: &str, code: &str, amount_minor: i64) -> PayoutRequest {
    let dest = Destination::Paypal(Email::parse("paypal_email", email).unwrap());
    PayoutRequest::new(id, "run1", "p", cur(code), amount_minor, dest).unwrap()
}

fn wise(id: &str, name: &str, amount_minor: i64) -> PayoutRequest {
    let dest = Destination::Wise { name: name.into(), email: Email::parse("email", "w@example.com").unwrap() };
    PayoutRequest::new(id, "run1", "p", cur("EUR"), amount_minor, dest).unwrap()
}

#[test]
fn amounts_format_in_major_units() {
    let check = |minor, exp, text: &str| {
        assert_eq!(format_amount(minor, exp), text, "{minor} {exp}");
        assert_eq!(parse_amount(text, exp), Some(minor), "{text} {exp}");
    };
    check(5000, 2, "50.00");
    check(1, 2, "0.01");
    check(123456, 2, "1234.56");
    check(500, 0, "500");
    check(1234, 3, "1.234");
    check(5, 3, "0.005");
    check(i64::MAX, 2, "92233720368547758.07");
    assert_eq!(format_amount(-150, 2), "-1.50");
    for (bad, exp) in [
        ("50", 2),
        ("50.0", 2),
        ("50.000", 2),
        ("50.00", 0),
        ("-1.00", 2),
        ("0.00", 2),
        ("1,00", 2),
        (" 1.00", 2),
        ("1.0a", 2),
        ("", 0),
        (".50", 2),
        ("92233720368547758.08", 2),
    ] {
        assert_eq!(parse_amount(bad, exp), None, "{bad:?} {exp}");
    }
}

#[test]
fn paypal_file_has_no_header_and_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let payouts = [paypal("po_1", "a@example.com", "USD", 5000), paypal("po_2", "b@example.com", "USD", 12345)];
    let export = write(dir.path(), ExportFormat::Paypal, "run1", cur("USD"), &payouts, "Commissions, \"March\"").unwrap();
    assert_eq!(export.path, dir.path().join("run1-paypal-USD.csv"));
    assert_eq!((export.count, export.total_minor), (2, 17345));
    let text = std::fs::read_to_string(&export.path).unwrap();
    assert_eq!(
        text,
        "a@example.com,50.00,USD,po_1,\"Commissions, \"\"March\"\"\"\r\nb@example.com,123.45,USD,po_2,\"Commissions, \"\"March\"\"\"\r\n"
    );
    let lines = read(&export.path, ExportFormat::Paypal).unwrap();
    assert_eq!(totals(&lines).unwrap(), (export.count, export.total_minor));
    assert_eq!(lines[1].payout_id, "po_2");
    assert_eq!(lines[1].email, "b@example.com");
    assert_eq!(lines[1].note.as_deref(), Some("Commissions, \"March\""));
    // No temporary file is left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn wise_file_follows_the_template_and_quotes_names() {
    let dir = tempfile::tempdir().unwrap();
    let payouts = [wise("po_1", "Smith, Bob \"Jr\"", 1000), wise("po_2", "Zoë", 1)];
    let export = write(dir.path(), ExportFormat::Wise, "run-7", cur("EUR"), &payouts, "").unwrap();
    let text = std::fs::read_to_string(&export.path).unwrap();
    let mut rows = text.split("\r\n");
    assert_eq!(rows.next(), Some("name,recipientEmail,paymentReference,receiverType,amountCurrency,amount,sourceCurrency,targetCurrency"));
    assert_eq!(rows.next(), Some("\"Smith, Bob \"\"Jr\"\"\",w@example.com,po_1,PRIVATE,target,10.00,EUR,EUR"));
    let lines = read(&export.path, ExportFormat::Wise).unwrap();
    assert_eq!(lines[0].name.as_deref(), Some("Smith, Bob \"Jr\""));
    assert_eq!(totals(&lines).unwrap(), (2, 1001));
}

#[test]
fn zero_and_three_decimal_currencies_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for (code, amounts) in [("JPY", [500, 7]), ("KWD", [1234, 5])] {
        let payouts = [paypal("po_a", "a@example.com", code, amounts[0]), paypal("po_b", "b@example.com", code, amounts[1])];
        let export = write(dir.path(), ExportFormat::Paypal, "r", cur(code), &payouts, "n").unwrap();
        assert_eq!(totals(&read(&export.path, ExportFormat::Paypal).unwrap()).unwrap(), (2, export.total_minor), "{code}");
    }
    let jpy = std::fs::read_to_string(dir.path().join("r-paypal-JPY.csv")).unwrap();
    assert!(jpy.starts_with("a@example.com,500,JPY,po_a,n\r\n"), "{jpy}");
}

#[test]
fn a_rerun_replaces_the_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ExportFormat::Paypal, "r", cur("USD"), &[paypal("po_1", "a@example.com", "USD", 1)], "").unwrap();
    let again = write(dir.path(), ExportFormat::Paypal, "r", cur("USD"), &[paypal("po_1", "a@example.com", "USD", 1)], "").unwrap();
    assert_eq!(std::fs::read_to_string(again.path).unwrap(), "a@example.com,0.01,USD,po_1,\r\n");
}

#[test]
fn refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let usd = cur("USD");
    let one = [paypal("po_1", "a@example.com", "USD", 1)];
    assert!(matches!(write(d, ExportFormat::Paypal, "r", usd, &[], ""), Err(ExportError::Empty)));
    for run in ["", "../x", "a/b", ".hidden", "a b"] {
        assert!(matches!(write(d, ExportFormat::Paypal, run, usd, &one, ""), Err(ExportError::FileName(_))), "{run:?}");
    }
    let eur = [paypal("po_1", "a@example.com", "EUR", 1)];
    assert!(matches!(write(d, ExportFormat::Paypal, "r", usd, &eur, ""), Err(ExportError::Currency { .. })));
    let twice = [paypal("po_1", "a@example.com", "USD", 1), paypal("po_1", "b@example.com", "USD", 2)];
    assert!(matches!(write(d, ExportFormat::Paypal, "r", usd, &twice, ""), Err(ExportError::Duplicate(_))));
    let err = write(d, ExportFormat::Wise, "r", usd, &one, "").unwrap_err();
    assert_eq!(err.to_string(), "payout po_1 goes by paypal, not wise");
    let stripe = PayoutRequest::new("po_s", "r", "p", usd, 1, Destination::Stripe(StripeAccount::parse("acct_1").unwrap())).unwrap();
    assert!(matches!(write(d, ExportFormat::Paypal, "r", usd, &[stripe], ""), Err(ExportError::Destination { .. })));
    for note in ["line\nbreak", "cr\r", "=HYPERLINK(\"x\")", "+1", "-1", "@SUM(A1)", "tab\t"] {
        assert!(matches!(write(d, ExportFormat::Paypal, "r", usd, &one, note), Err(ExportError::Cell { field: "note", .. })), "{note:?}");
    }
    let formula = [wise("po_1", "=cmd", 1)];
    assert!(matches!(write(d, ExportFormat::Wise, "r", cur("EUR"), &formula, ""), Err(ExportError::Cell { field: "name", .. })));
    let huge = [paypal("po_1", "a@example.com", "USD", i64::MAX), paypal("po_2", "a@example.com", "USD", 1)];
    assert!(matches!(write(d, ExportFormat::Paypal, "r", usd, &huge, ""), Err(ExportError::Overflow)));
    // Nothing was left behind by the refusals.
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);
}

#[test]
fn reader_refuses_what_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let check = |format, text: &str, why: &str| {
        let path = dir.path().join("x.csv");
        std::fs::write(&path, text).unwrap();
        let err = read(&path, format).unwrap_err().to_string();
        assert!(err.contains(why), "{text:?}: {err}");
    };
    check(ExportFormat::Paypal, "a@example.com,50.00,USD,po_1\r\n", "4 cells where 5 belong");
    check(ExportFormat::Paypal, "a@example.com,50.00,usd,po_1,n\r\n", "not an ISO 4217 code");
    check(ExportFormat::Paypal, "a@example.com,50,USD,po_1,n\r\n", "amount \"50\" is not a positive USD amount");
    check(ExportFormat::Paypal, "a@example.com,50.00,USD,po_1,n\r\nb@example.com,1,JPY,po_2,n\r\n", "a second currency");
    check(ExportFormat::Wise, "name,email\r\nx,y\r\n", "the header is not Wise's");
    let header = WISE_HEADER.join(",");
    check(ExportFormat::Wise, &format!("{header}\r\nBob,b@example.com,po_1,PRIVATE,target,1.00,USD,EUR\r\n"), "a second currency");
}
