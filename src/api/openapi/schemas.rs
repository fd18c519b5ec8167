//! The document's schema builders, and the schemas of the answers the handlers build as JSON by
//! hand (`json!`), each written field by field as its handler writes it.

use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;

pub(super) fn t(ty: Type) -> Schema {
    ObjectBuilder::new().schema_type(ty).build().into()
}

pub(super) fn string() -> Schema {
    t(Type::String)
}

pub(super) fn int() -> Schema {
    t(Type::Integer)
}

pub(super) fn boolean() -> Schema {
    t(Type::Boolean)
}

/// A value that may be `null`.
pub(super) fn nullable(ty: Type) -> Schema {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([ty, Type::Null])).build().into()
}

/// A schema of the components, by name.
pub(super) fn r(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

pub(super) fn array(items: impl Into<RefOr<Schema>>) -> Schema {
    ArrayBuilder::new().items(items.into()).build().into()
}

/// An object with string keys and values of one schema.
pub(super) fn map(values: impl Into<RefOr<Schema>>) -> Schema {
    ObjectBuilder::new().schema_type(Type::Object).additional_properties(Some(AdditionalProperties::RefOr(values.into()))).build().into()
}

/// Any JSON object.
pub(super) fn any_object() -> Schema {
    t(Type::Object)
}

/// An object with `required` fields and `optional` ones; others are allowed (answers grow).
pub(super) fn object(required: Vec<(&str, RefOr<Schema>)>, optional: Vec<(&str, RefOr<Schema>)>) -> Schema {
    let mut b = ObjectBuilder::new().schema_type(Type::Object);
    for (name, s) in required {
        b = b.property(name, s).required(name);
    }
    for (name, s) in optional {
        b = b.property(name, s);
    }
    b.build().into()
}

/// Shorthand for a property.
pub(super) fn p(name: &str, s: impl Into<RefOr<Schema>>) -> (&str, RefOr<Schema>) {
    (name, s.into())
}

/// A derived request body's schema as an answer shows the stored object: the same fields,
/// plus `status`, and other fields allowed (a body refuses unknown fields; an answer need not).
pub(super) fn stored<T: ToSchema>() -> Schema {
    let mut s = match T::schema() {
        RefOr::T(s) => s,
        RefOr::Ref(_) => unreachable!("a derived struct's schema is inline"),
    };
    if let Schema::Object(o) = &mut s {
        o.additional_properties = None;
        o.properties.insert("status".into(), r("Status"));
        o.required.push("status".into());
    }
    s
}

/// A list page: `{"<name>": [item...], "next_cursor": "..."}`, the cursor present only when
/// another page follows.
pub(super) fn page(name: &str, item: &str) -> Schema {
    object(vec![p(name, array(r(item)))], vec![p("next_cursor", string())])
}

/// The schemas of hand-built answers, each as its handler writes it.
pub(super) fn answers() -> Vec<(&'static str, Schema)> {
    let error = object(
        vec![p(
            "error",
            object(
                vec![p("code", string()), p("message", string())],
                vec![p("field", ObjectBuilder::new().schema_type(Type::String).description(Some("The field the error is about.")).build())],
            ),
        )],
        vec![],
    );
    let tally = object(vec![p("count", int()), p("amount_minor", int())], vec![]);
    let commission = object(
        vec![
            p("amount_minor", int()),
            p("conversion_id", string()),
            p("created_at", string()),
            p("currency", string()),
            p("id", string()),
            p("item", string()),
            p("lock_until", string()),
            p("partner", string()),
            p("period", string()),
            p("program", string()),
            p("remaining_minor", int()),
            p("reversed_minor", int()),
            p("rule_version", string()),
            p("status", string()),
            p("voided_minor", int()),
        ],
        vec![
            p("approved_at", string()),
            p("paid_at", string()),
            p("payout_id", string()),
            p("detail", any_object()),
            p("events", array(any_object())),
        ],
    );
    let conversion = object(
        vec![
            p("amount_minor", int()),
            p("commissions", array(r("Commission"))),
            p("currency", string()),
            p("events", array(object(vec![p("at", string()), p("kind", string())], vec![p("amount_minor", int())]))),
            p("id", string()),
            p("occurred_at", string()),
            p("order_id", string()),
            p("origin", string()),
            p("program", string()),
            p("received_at", string()),
            p("refunded_minor", int()),
            p("status", string()),
        ],
        vec![
            p("attribution", any_object()),
            p("click_id", string()),
            p("coupon_code", string()),
            p("customer_ref", string()),
            p("visitor_id", string()),
        ],
    );
    let run = object(
        vec![
            p("id", string()),
            p("program", nullable(Type::String)),
            p("currency", nullable(Type::String)),
            p("trigger", string()),
            p("finished", boolean()),
            p("started_ms", int()),
            p("finished_ms", nullable(Type::Integer)),
        ],
        vec![],
    );
    let payout = object(
        vec![
            p("id", string()),
            p("run_id", string()),
            p("partner", string()),
            p("currency", string()),
            p("amount_minor", int()),
            p("method", r("PayoutMethod")),
            p("destination", string()),
            p("status", string()),
            p("reference", nullable(Type::String)),
            p("failure", nullable(Type::String)),
            p("insufficient", boolean()),
            p("created_ms", int()),
            p("sent_ms", nullable(Type::Integer)),
            p("settled_ms", nullable(Type::Integer)),
        ],
        vec![],
    );
    let settled = object(
        vec![
            p("payout_id", string()),
            p("partner", string()),
            p("currency", string()),
            p("amount_minor", int()),
            p("commissions", int()),
            p("reference", string()),
        ],
        vec![],
    );
    let report = object(
        vec![
            p("run_id", string()),
            p("resumed", boolean()),
            p("dry_run", boolean()),
            p("plan", any_object()),
            p("paid", r("Tally")),
            p("sent", r("Tally")),
            p("failed", r("Tally")),
            p("insufficient", r("Tally")),
            p("files", array(string())),
        ],
        vec![p("settled", r("Settled")), p("finished_first", array(r("PayoutRunReport")))],
    );
    let endpoint_fields = || {
        vec![
            p("id", string()),
            p("url", string()),
            p("event_types", array(string())),
            p("partner", nullable(Type::String)),
            p("status", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["enabled", "disabled"])).build()),
            p("disabled_reason", nullable(Type::String)),
            p("status_changed_ms", int()),
            p("created_ms", int()),
            p("failing_since_ms", nullable(Type::Integer)),
            p("previous_secret_until_ms", nullable(Type::Integer)),
        ]
    };
    let mut with_secret = endpoint_fields();
    with_secret.push(p("secret", string()));
    let key_fields = || {
        vec![
            p("id", string()),
            p("prefix", string()),
            p("name", string()),
            p("scope", string()),
            p("created_at", string()),
            p("last_used_at", nullable(Type::String)),
            p("revoked_at", nullable(Type::String)),
        ]
    };
    let mut key_with_secret = key_fields();
    key_with_secret.push(p("secret", string()));
    let totals = object(
        vec![
            p("clicks", r("ReportClicks")),
            p("conversions", int()),
            p("conversion_rate", nullable(Type::Number)),
            p("revenue", array(r("ReportRevenue"))),
        ],
        // A link's or a channel's report has neither: commissions are a partner's.
        vec![p("commissions", array(r("ReportCommissions"))), p("epc", array(r("ReportEpc")))],
    );
    vec![
        ("Error", error),
        ("Health", object(vec![p("ok", boolean())], vec![])),
        ("OpenApiDocument", object(vec![p("openapi", string()), p("paths", any_object())], vec![])),
        (
            "EmptyObject",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
                .build()
                .into(),
        ),
        (
            "ProgramRules",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(
                    "`rules` for every partner and `partners`, whole-set overrides by partner id, as `docs/commissions.md` spells them.",
                ))
                .build()
                .into(),
        ),
        ("Conversion", conversion),
        ("Commission", commission),
        ("CommissionList", page("commissions", "Commission")),
        (
            "Balance",
            object(
                vec![
                    p("partner", string()),
                    p(
                        "balances",
                        array(object(
                            vec![
                                p("currency", string()),
                                p("pending_minor", int()),
                                p("approved_minor", int()),
                                p("paid_minor", int()),
                                p("in_transit_minor", int()),
                                p("commissions", map(r("StatusTotals"))),
                            ],
                            vec![],
                        )),
                    ),
                ],
                vec![],
            ),
        ),
        ("Approval", object(vec![p("approved", int()), p("amount_minor", int())], vec![])),
        ("CommissionRules", object(vec![p("program", string()), p("rules", any_object()), p("partners", map(any_object()))], vec![])),
        ("RuleVersion", object(vec![p("version", string()), p("rules", any_object())], vec![])),
        (
            "Click",
            object(
                vec![
                    p("click_id", string()),
                    p("ts", string()),
                    p("program", string()),
                    p("partner", string()),
                    p("link", string()),
                    p("channel", r("Channel")),
                    p("verdict", string()),
                    p("reasons", array(string())),
                ],
                vec![p("visitor_id", nullable(Type::String))],
            ),
        ),
        (
            "Report",
            object(
                vec![p("from", string()), p("to", string()), p("days", array(r("ReportDay"))), p("totals", totals)],
                vec![p("partner", string()), p("program", string()), p("link", string()), p("channel", r("Channel"))],
            ),
        ),
        (
            "LedgerEntry",
            object(
                vec![
                    p("seq", int()),
                    p("id", string()),
                    p("cause", string()),
                    p("kind", string()),
                    p("debit", string()),
                    p("credit", string()),
                    p("amount_minor", int()),
                    p("currency", string()),
                    p("at", string()),
                    p("prev_hash", string()),
                    p("hash", string()),
                ],
                vec![p("commission_id", string()), p("pending_id", string())],
            ),
        ),
        ("LedgerPage", object(vec![p("entries", array(r("LedgerEntry")))], vec![p("next_after_seq", int())])),
        ("Tally", tally),
        ("Settled", settled),
        ("PayoutRunReport", report),
        ("PayoutRun", run),
        ("PayoutRunList", object(vec![p("runs", array(r("PayoutRun"))), p("next_cursor", nullable(Type::String))], vec![])),
        (
            "PayoutRunDetail",
            object(
                vec![
                    p("run", r("PayoutRun")),
                    p("totals", map(r("Tally"))),
                    p("payouts", array(r("Payout"))),
                    p("next_cursor", nullable(Type::String)),
                ],
                vec![],
            ),
        ),
        ("Payout", payout),
        ("PayoutList", object(vec![p("payouts", array(r("Payout"))), p("next_cursor", nullable(Type::String))], vec![])),
        ("PayoutConfirmation", object(vec![p("run_id", string()), p("paid", r("Tally")), p("failed", r("Tally"))], vec![])),
        (
            "Settlement",
            object(
                vec![
                    p("partner", string()),
                    p("currency", string()),
                    p("paid", int()),
                    p("amount_minor", int()),
                    p("payout", OneOfBuilder::new().item(r("Settled")).item(t(Type::Null))),
                    p("report", r("PayoutRunReport")),
                ],
                vec![],
            ),
        ),
        ("WebhookEndpoint", object(endpoint_fields(), vec![p("disabled_since_ms", int())])),
        ("WebhookEndpointWithSecret", object(with_secret, vec![])),
        ("WebhookEndpointList", object(vec![p("endpoints", array(r("WebhookEndpoint")))], vec![])),
        (
            "WebhookDelivery",
            object(
                vec![
                    p("event_id", string()),
                    p("type", string()),
                    p("endpoint_id", string()),
                    p("seq", int()),
                    p("status", string()),
                    p("attempts", int()),
                    p("next_attempt_ms", nullable(Type::Integer)),
                    p("updated_ms", int()),
                    p("attempt_log", array(any_object())),
                ],
                vec![],
            ),
        ),
        ("WebhookDeliveryPage", page("events", "WebhookDelivery")),
        ("WebhookReplay", object(vec![p("event_id", string()), p("deliveries", int())], vec![])),
        ("Deleted", object(vec![p("id", string()), p("deleted", boolean())], vec![])),
        // Exactly one of the two; the handler refuses both or neither (`422`).
        ("ErasureRequest", object(vec![], vec![p("visitor_id", string()), p("customer_ref", string())])),
        (
            "ErasureReport",
            object(
                vec![
                    p("clicks", int()),
                    p("click_log_segments", int()),
                    p("conversions", int()),
                    p("stored_answers", int()),
                    p("target", string()),
                ],
                vec![],
            ),
        ),
        ("ApiKey", object(key_fields(), vec![])),
        ("ApiKeyWithSecret", object(key_with_secret, vec![])),
        ("ApiKeyList", object(vec![p("keys", array(r("ApiKey")))], vec![])),
        ("Program", stored::<crate::catalog::NewProgram>()),
        ("Partner", stored::<crate::catalog::NewPartner>()),
        ("Link", stored::<crate::catalog::NewLink>()),
        ("Coupon", stored::<crate::catalog::NewCoupon>()),
        ("ProgramList", page("programs", "Program")),
        ("PartnerList", page("partners", "Partner")),
        ("LinkList", page("links", "Link")),
        ("CouponList", page("coupons", "Coupon")),
        ("AuditEntry", audit_entry()),
        ("AuditPage", page("entries", "AuditEntry")),
    ]
}

/// One audit log entry, as `api::audit::view` writes it.
fn audit_entry() -> Schema {
    let actions: Vec<&str> = crate::audit::Action::ALL.iter().map(|a| a.as_str()).collect();
    let mut types: Vec<&str> = crate::audit::Action::ALL.iter().map(|a| a.object_type()).collect();
    types.dedup();
    let one_of = |values: Vec<&str>| -> Schema { ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).build().into() };
    let json = || -> Schema {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
            .description(Some("The object's JSON, its e-mail addresses, payout accounts, customer references and secrets `[redacted]`; null for a creation."))
            .build()
            .into()
    };
    object(
        vec![
            p("seq", int()),
            p("at", string()),
            p(
                "actor",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("A stored key's id, `admin` (the configured key) or `cli`."))
                    .build(),
            ),
            p("action", one_of(actions)),
            p("object", string()),
            p("object_type", one_of(types)),
            p("object_id", string()),
            p("before", json()),
            p("after", json()),
        ],
        vec![],
    )
}
