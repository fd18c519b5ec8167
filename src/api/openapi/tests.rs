use super::*;

/// The router's table, as `api::route`, `catalog::route`, `webhooks::route` and
/// `keys::route` match: a route added there and not here, or here and not in `ROUTES`,
/// fails this test. `/dashboard/…` (`api::dashboard`) is left out on purpose: it answers
/// HTML pages under a cookie session, not the JSON API this document describes.
const ROUTER: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/postback"),
    ("POST", "/v1/conversions"),
    ("POST", "/v1/conversions/import"),
    ("GET", "/v1/conversions/{id}"),
    ("POST", "/v1/conversions/{id}/confirm"),
    ("POST", "/v1/conversions/{id}/cancel"),
    ("POST", "/v1/conversions/{id}/refund"),
    ("GET", "/v1/clicks/{click_id}"),
    ("GET", "/v1/reports/partners/{id}"),
    ("GET", "/v1/reports/programs/{id}"),
    ("GET", "/v1/reports/links/{code}"),
    ("GET", "/v1/reports/channels/{channel}"),
    ("GET", "/v1/commissions"),
    ("POST", "/v1/commissions/approve"),
    ("GET", "/v1/commissions/{id}"),
    ("GET", "/v1/partners/{id}/balance"),
    ("POST", "/v1/partners/{id}/payouts"),
    ("GET", "/v1/programs/{id}/commission"),
    ("PUT", "/v1/programs/{id}/commission"),
    ("GET", "/v1/commission-rules/{version}"),
    ("GET", "/v1/ledger/entries"),
    ("POST", "/v1/payout-runs"),
    ("GET", "/v1/payout-runs"),
    ("GET", "/v1/payout-runs/{id}"),
    ("POST", "/v1/payout-runs/{id}/confirm"),
    ("GET", "/v1/payouts"),
    ("POST", "/v1/privacy/erase"),
    ("POST", "/v1/webhook-endpoints"),
    ("GET", "/v1/webhook-endpoints"),
    ("GET", "/v1/webhook-endpoints/{id}"),
    ("DELETE", "/v1/webhook-endpoints/{id}"),
    ("POST", "/v1/webhook-endpoints/{id}/rotate-secret"),
    ("POST", "/v1/webhook-endpoints/{id}/enable"),
    ("GET", "/v1/webhook-events"),
    ("POST", "/v1/webhook-events/{id}/replay"),
    ("POST", "/v1/api-keys"),
    ("GET", "/v1/api-keys"),
    ("GET", "/v1/api-keys/{id}"),
    ("DELETE", "/v1/api-keys/{id}"),
    ("POST", "/v1/programs"),
    ("GET", "/v1/programs"),
    ("GET", "/v1/programs/{id}"),
    ("PATCH", "/v1/programs/{id}"),
    ("POST", "/v1/programs/{id}/pause"),
    ("POST", "/v1/programs/{id}/resume"),
    ("POST", "/v1/programs/{id}/expire"),
    ("POST", "/v1/partners"),
    ("GET", "/v1/partners"),
    ("GET", "/v1/partners/{id}"),
    ("PATCH", "/v1/partners/{id}"),
    ("POST", "/v1/partners/{id}/pause"),
    ("POST", "/v1/partners/{id}/resume"),
    ("POST", "/v1/partners/{id}/expire"),
    ("POST", "/v1/links"),
    ("GET", "/v1/links"),
    ("GET", "/v1/links/{code}"),
    ("PATCH", "/v1/links/{code}"),
    ("POST", "/v1/links/{code}/pause"),
    ("POST", "/v1/links/{code}/resume"),
    ("POST", "/v1/links/{code}/expire"),
    ("GET", "/v1/links/{code}/qr.svg"),
    ("GET", "/v1/links/{code}/qr.png"),
    ("POST", "/v1/coupons"),
    ("GET", "/v1/coupons"),
    ("GET", "/v1/coupons/{program}/{code}"),
    ("POST", "/v1/coupons/{program}/{code}/pause"),
    ("POST", "/v1/coupons/{program}/{code}/resume"),
    ("POST", "/v1/coupons/{program}/{code}/expire"),
    ("GET", "/v1/audit"),
];

fn documented() -> std::collections::BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_slice(&DOCUMENT).unwrap();
    let mut out = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn every_route_of_the_router_is_documented_and_nothing_else() {
    let router: std::collections::BTreeSet<(String, String)> = ROUTER.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let doc = documented();
    let missing: Vec<_> = router.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&router).collect();
    assert!(missing.is_empty(), "routes the router answers but the document lacks: {missing:?}");
    assert!(extra.is_empty(), "routes the document has but the router does not answer: {extra:?}");
    assert_eq!(ROUTES.len(), ROUTER.len(), "ROUTES lists an operation twice");
}

#[test]
fn the_dashboards_html_routes_are_not_in_the_document() {
    assert!(documented().iter().all(|(_, path)| !path.starts_with("/dashboard")), "{:?}", documented());
}

/// Each route's partner reach agrees with its documented `403`: a route only an admin may
/// call says so, and one a partner may call does not claim it.
#[test]
fn a_documented_403_is_where_scope_refuses_a_partner() {
    use super::super::scope::{reach, Reach};
    for route in ROUTES.iter().filter(|r| !r.public) {
        let segments: Vec<&str> = route.path.split('/').skip(1).map(|s| if s.starts_with('{') { "x" } else { s }).collect();
        let m: hyper::Method = route.method.parse().unwrap();
        let admin_only = reach(&m, &segments) == Reach::Admin;
        let partner_writes_links = matches!(reach(&m, &segments), Reach::LinkWrite(_) | Reach::NewLink);
        let documented = route.errors.contains(&403);
        assert_eq!(documented, admin_only || partner_writes_links, "{} {}", route.method, route.path);
    }
}

#[test]
fn the_document_is_openapi_3_1_with_a_bearer_scheme_and_the_error_shape() {
    let doc: serde_json::Value = serde_json::from_slice(&DOCUMENT).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
    assert_eq!(doc["components"]["schemas"]["Error"]["required"], serde_json::json!(["error"]));
    let create = &doc["paths"]["/v1/programs"]["post"];
    assert_eq!(create["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/NewProgram");
    for status in ["400", "401", "403", "409", "422", "429", "500"] {
        assert_eq!(create["responses"][status]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error", "{status}");
    }
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], serde_json::json!([]));
    // Every reference resolves.
    let text = String::from_utf8(DOCUMENT.to_vec()).unwrap();
    for name in text.split("\"#/components/schemas/").skip(1).map(|s| &s[..s.find('"').unwrap()]) {
        assert!(doc["components"]["schemas"].get(name).is_some(), "{name} is referred to but not defined");
    }
}
