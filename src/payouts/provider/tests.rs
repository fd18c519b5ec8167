use super::*;

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

#[test]
fn methods_parse_strictly_and_round_trip() {
    for m in PayoutMethod::ALL {
        assert_eq!(PayoutMethod::parse(m.as_str()), Ok(m));
        assert_eq!(m.to_string().parse::<PayoutMethod>(), Ok(m));
        assert_eq!(serde_json::from_str::<PayoutMethod>(&serde_json::to_string(&m).unwrap()).unwrap(), m);
    }
    for bad in ["", "Stripe", "STRIPE", " stripe", "stripe ", "pay_pal", "bank", "manual\n"] {
        assert_eq!(PayoutMethod::parse(bad), Err(ProviderError::Method(bad.to_string())), "{bad:?}");
    }
    assert!(serde_json::from_str::<PayoutMethod>("\"Wise\"").is_err());
    assert_eq!(PayoutMethod::parse("x").unwrap_err().to_string(), "payout_method \"x\" is not one of stripe, paypal, wise, manual");
}

fn account(s: &str) -> bool {
    StripeAccount::parse(s).is_ok()
}

#[test]
fn stripe_accounts() {
    assert!(account("acct_1Nv0FGQ9RKHgCVdK"));
    assert!(account("acct_1"));
    assert_eq!(StripeAccount::parse("acct_ABC").unwrap().as_str(), "acct_ABC");
    for bad in ["", "acct_", "acct", "ACCT_123", "cus_123", "acct_12 3", "acct_12-3", "acct_12_3", " acct_1", "acct_1\n", "acct_é"] {
        assert!(!account(bad), "{bad:?}");
    }
    assert!(!account(&format!("acct_{}", "a".repeat(60))));
}

fn email(s: &str) -> bool {
    Email::parse("paypal_email", s).is_ok()
}

#[test]
fn emails() {
    for good in ["bob@example.com", "a.b+tag@mail.example.co.uk", "x_y-z@ex-ample.org", "o'neil@example.ie"] {
        assert!(email(good), "{good:?}");
    }
    for bad in [
        "",
        "bob",
        "bob@",
        "@example.com",
        "bob@example",
        "bob@@example.com",
        "bob@example..com",
        "bob@-example.com",
        "bob@example.c0m",
        ".bob@example.com",
        "bo..b@example.com",
        "bob smith@example.com",
        "bob,x@example.com",
        "\"bob\"@example.com",
        "bob@example.com\n",
        "bob\r@example.com",
        "bøb@example.com",
    ] {
        assert!(!email(bad), "{bad:?}");
    }
    assert!(!email(&format!("{}@example.com", "a".repeat(65))));
    let err = Email::parse("paypal_email", "nope").unwrap_err();
    assert_eq!(err.to_string(), "paypal_email \"nope\" is not an email address");
}

fn details<'a>(stripe: Option<&'a str>, paypal: Option<&'a str>, email: Option<&'a str>) -> PartnerDetails<'a> {
    PartnerDetails { name: "Bob Smith", email, stripe_account: stripe, paypal_email: paypal }
}

#[test]
fn destinations_need_their_details() {
    let d = Destination::from_details(PayoutMethod::Stripe, details(Some("acct_1"), None, None)).unwrap();
    assert_eq!(d, Destination::Stripe(StripeAccount::parse("acct_1").unwrap()));
    assert_eq!(d.method(), PayoutMethod::Stripe);
    let d = Destination::from_details(PayoutMethod::Paypal, details(None, Some("b@example.com"), None)).unwrap();
    assert_eq!(d.method(), PayoutMethod::Paypal);
    let d = Destination::from_details(PayoutMethod::Wise, details(None, None, Some("b@example.com"))).unwrap();
    assert_eq!(d, Destination::Wise { name: "Bob Smith".into(), email: Email::parse("email", "b@example.com").unwrap() });
    assert_eq!(Destination::from_details(PayoutMethod::Manual, details(None, None, None)), Ok(Destination::Manual));

    let missing = |method, field| Err(ProviderError::Missing { method, field });
    assert_eq!(
        Destination::from_details(PayoutMethod::Stripe, details(None, Some("b@example.com"), None)),
        missing(PayoutMethod::Stripe, "stripe_account")
    );
    assert_eq!(
        Destination::from_details(PayoutMethod::Paypal, details(Some("acct_1"), None, None)),
        missing(PayoutMethod::Paypal, "paypal_email")
    );
    assert_eq!(Destination::from_details(PayoutMethod::Wise, details(None, None, None)), missing(PayoutMethod::Wise, "email"));
    assert_eq!(
        Destination::from_details(PayoutMethod::Stripe, details(None, None, None)).unwrap_err().to_string(),
        "payout method stripe needs stripe_account"
    );
    // A malformed detail is refused even when the method does not use it.
    assert_eq!(
        Destination::from_details(PayoutMethod::Manual, details(Some("acct_x-1"), None, None)),
        Err(ProviderError::StripeAccount("acct_x-1".into()))
    );
    assert!(Destination::from_details(PayoutMethod::Stripe, details(Some("acct_1"), Some("bad"), None)).is_err());
    let no_name = PartnerDetails { name: " ", ..details(None, None, Some("b@example.com")) };
    assert_eq!(Destination::from_details(PayoutMethod::Wise, no_name), Err(ProviderError::Name(" ".into())));
}

#[test]
fn names() {
    assert!(check_name("Bob, \"the\" Builder").is_ok());
    assert!(check_name("Zoë Ñandú").is_ok());
    // A name a spreadsheet would run as a formula is refused here, as the exports refuse it.
    for bad in ["", "  ", "Bob\nSmith", "Bob\rSmith", "Bob\u{0}", "=HYPERLINK(\"x\")", "+1", "- Ann", " @studio"] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    assert!(check_name(&"é".repeat(NAME_CHARS_MAX)).is_ok());
    assert!(check_name(&"é".repeat(NAME_CHARS_MAX + 1)).is_err());
}

#[test]
fn requests_are_checked() {
    let dest = || Destination::Stripe(StripeAccount::parse("acct_1").unwrap());
    let r = PayoutRequest::new("po_run1_bob_USD", "run1", "bob", usd(), 5000, dest()).unwrap();
    assert_eq!((r.payout_id(), r.run_id(), r.partner(), r.amount_minor()), ("po_run1_bob_USD", "run1", "bob", 5000));
    assert_eq!(r.currency(), usd());
    assert_eq!(r.destination(), &dest());

    assert_eq!(PayoutRequest::new("p", "r", "bob", usd(), 0, dest()), Err(ProviderError::Amount(0)));
    assert_eq!(PayoutRequest::new("p", "r", "bob", usd(), -5, dest()), Err(ProviderError::Amount(-5)));
    for (payout, run, partner) in
        [("", "r", "b"), ("p", "", "b"), ("p", "r", ""), ("p q", "r", "b"), ("p", "r\n", "b"), ("p", "r", "b,c"), ("p", "r", "b\"")]
    {
        assert!(
            matches!(PayoutRequest::new(payout, run, partner, usd(), 1, dest()), Err(ProviderError::Id { .. })),
            "{payout:?} {run:?} {partner:?}"
        );
    }
    assert!(PayoutRequest::new(&"k".repeat(255), "r", "b", usd(), 1, dest()).is_ok());
    let err = PayoutRequest::new(&"k".repeat(256), "r", "b", usd(), 1, dest()).unwrap_err();
    assert!(matches!(err, ProviderError::Id { field: "payout_id", max: 255, .. }), "{err}");
}
