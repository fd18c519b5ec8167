//! Who a request acts for, and what that lets it reach: the one place a partner key's scope is
//! decided. Every authenticated route passes through `authorize` before its handler runs.
//!
//! An admin key reaches everything. A partner key reaches:
//! - reads of its own partner: `GET /v1/partners/{self}`, `GET /v1/partners/{self}/balance`,
//!   `GET /v1/reports/partners/{self}`;
//! - reads of its links (their QR codes and reports too) and coupons;
//! - reads of objects it owns, each looked up here first: a conversion it is credited on, a
//!   click on one of its links, its commissions, its webhook endpoints;
//! - lists, each held to its rows: partners, links, coupons, commissions and payouts
//!   (`partner=` is set to its own, and any other partner named there is not found), its
//!   webhook endpoints and their deliveries; and a channel's report, held to its clicks and
//!   conversions the same way;
//! - writes to its own links (create, change, pause, resume, expire) in a program that lets
//!   partners create links (`partners_create_links`; `403` otherwise);
//! - writes to its own webhook endpoints (register, rotate, enable, remove) and replays of its
//!   events to them.
//!
//! Another partner's id, in a path or a filter, gets `404`, the same answer as an id that does
//! not exist, so a key cannot learn which ids exist. A route that only an admin may call gets
//! `403`.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::{read_blocking, ApiError, ApiState};
use crate::audit::Actor;
use crate::catalog::{NewLink, Program};

/// Whom an authenticated request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An admin: the configured bootstrap key (`key_id` none) or a stored admin key.
    Admin {
        key_id: Option<String>,
    },
    Partner {
        partner: String,
        key_id: String,
    },
}

impl Caller {
    /// The partner a partner key acts for; `None` for an admin.
    pub fn partner(&self) -> Option<&str> {
        match self {
            Caller::Admin { .. } => None,
            Caller::Partner { partner, .. } => Some(partner),
        }
    }

    /// Who the audit log says made a write: the stored key, or `admin` for the configured one.
    pub fn actor(&self) -> Actor {
        match self.key_id() {
            Some(id) => Actor::Key(id.to_string()),
            None => Actor::Admin,
        }
    }

    /// The stored key's id, for rate limits and the audit trail.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Caller::Admin { key_id } => key_id.as_deref(),
            Caller::Partner { key_id, .. } => Some(key_id),
        }
    }
}

/// What a route reaches, as far as a partner key is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach<'a> {
    /// Admin keys only.
    Admin,
    /// The partner named in the path.
    Partner(&'a str),
    Conversion(&'a str),
    Click(&'a str),
    Commission(&'a str),
    Endpoint(&'a str),
    /// A read of a link.
    Link(&'a str),
    /// A write to a link: its partner's, in a program that lets partners create links.
    LinkWrite(&'a str),
    /// A coupon, by program and code.
    Coupon(&'a str, &'a str),
    /// A new link, whose body `may_create_link` checks once the handler has read it.
    NewLink,
    /// A list or a registration that the handler holds to the caller's partner; a `partner=`
    /// filter naming another is not found.
    Own,
}

/// The reach of `method` on `segments` (the path split on `/`).
pub fn reach<'a>(method: &Method, segments: &[&'a str]) -> Reach<'a> {
    match (method, segments) {
        (&Method::GET, ["v1", "conversions", id]) => Reach::Conversion(id),
        (&Method::GET, ["v1", "clicks", id]) => Reach::Click(id),
        (&Method::GET, ["v1", "reports", "partners", id]) => Reach::Partner(id),
        (&Method::GET, ["v1", "reports", "links", code]) => Reach::Link(code),
        (&Method::GET, ["v1", "reports", "channels", _]) => Reach::Own,
        (&Method::GET, ["v1", "partners", id, "balance"]) => Reach::Partner(id),
        (&Method::GET, ["v1", "partners"]) => Reach::Own,
        (&Method::GET, ["v1", "partners", id]) => Reach::Partner(id),
        (&Method::GET, ["v1", "links"]) => Reach::Own,
        (&Method::POST, ["v1", "links"]) => Reach::NewLink,
        (&Method::GET, ["v1", "links", code] | ["v1", "links", code, "qr.svg" | "qr.png"]) => Reach::Link(code),
        (&Method::PATCH, ["v1", "links", code]) => Reach::LinkWrite(code),
        (&Method::POST, ["v1", "links", code, "pause" | "resume" | "expire"]) => Reach::LinkWrite(code),
        (&Method::GET, ["v1", "coupons"]) => Reach::Own,
        (&Method::GET, ["v1", "coupons", program, code]) => Reach::Coupon(program, code),
        (&Method::GET, ["v1", "commissions"]) => Reach::Own,
        (&Method::GET, ["v1", "commissions", id]) => Reach::Commission(id),
        (&Method::GET, ["v1", "payouts"]) => Reach::Own,
        (&Method::GET | &Method::POST, ["v1", "webhook-endpoints"]) => Reach::Own,
        (&Method::GET | &Method::DELETE, ["v1", "webhook-endpoints", id]) => Reach::Endpoint(id),
        (&Method::POST, ["v1", "webhook-endpoints", id, "rotate-secret" | "enable"]) => Reach::Endpoint(id),
        (&Method::GET, ["v1", "webhook-events"]) => Reach::Own,
        (&Method::POST, ["v1", "webhook-events", _, "replay"]) => Reach::Own,
        _ => Reach::Admin,
    }
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("{what} {id:?} not found"))
}

/// Lets the request through, or answers `403`/`404` for a partner key that may not reach what
/// it names. `query` is the request's query string, for the lists' `partner=` filter.
pub async fn authorize(state: &Arc<ApiState>, caller: &Caller, method: &Method, segments: &[&str], query: &str) -> Result<(), ApiError> {
    let Some(me) = caller.partner() else { return Ok(()) };
    match reach(method, segments) {
        Reach::Admin => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this route needs an admin key")),
        Reach::Partner(id) if id == me => Ok(()),
        Reach::Partner(id) => Err(not_found("partner", id)),
        Reach::Own => match form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "partner") {
            Some((_, p)) if p != me => Err(not_found("partner", &p)),
            _ => Ok(()),
        },
        Reach::Click(id) => {
            let owner = state.signer.verify(id, u64::MAX / 2, u64::MAX).ok().and_then(|c| state.ingest.click(&c)).map(|c| c.partner);
            owner.filter(|p| **p == *me).map(|_| ()).ok_or_else(|| not_found("click", id))
        }
        Reach::Commission(id) => {
            let (reader, key) = (state.reader.clone(), id.to_string());
            let found = read_blocking("commission", move || reader.commission(&key)).await?.ok().flatten();
            found.filter(|(c, _)| c.partner == me).map(|_| ()).ok_or_else(|| not_found("commission", id))
        }
        Reach::Conversion(id) => {
            let (reader, key) = (state.reader.clone(), id.to_string());
            let found = read_blocking("conversion", move || reader.get(&key)).await?.ok().flatten();
            let credited = found.and_then(|text| serde_json::from_str::<Value>(&text).ok()).is_some_and(|v| credited(&v, me));
            credited.then_some(()).ok_or_else(|| not_found("conversion", id))
        }
        Reach::Endpoint(id) => match state.webhooks.get(id).await {
            Ok(e) if e.partner.as_deref() == Some(me) => Ok(()),
            _ => Err(not_found("webhook endpoint", id)),
        },
        Reach::Link(code) => link_owner(state, code, me).await.map(|_| ()),
        Reach::LinkWrite(code) => {
            if link_owner(state, code, me).await? {
                Ok(())
            } else {
                Err(no_partner_links())
            }
        }
        Reach::Coupon(program, code) => {
            let (st, program_id, key) = (state.clone(), program.to_string(), code.to_string());
            let found = read_blocking("coupon", move || {
                let store = st.store.lock().unwrap_or_else(|e| e.into_inner());
                store.coupon(&program_id, &key)
            })
            .await?
            .ok()
            .flatten();
            found.filter(|c| c.spec.partner == me).map(|_| ()).ok_or_else(|| not_found("coupon", code))
        }
        Reach::NewLink => Ok(()),
    }
}

/// A link of `me`: whether its program lets partners create links; another partner's link
/// is not found.
async fn link_owner(state: &Arc<ApiState>, code: &str, me: &str) -> Result<bool, ApiError> {
    let (st, key) = (state.clone(), code.to_string());
    let found = read_blocking("link", move || {
        let store = st.store.lock().unwrap_or_else(|e| e.into_inner());
        let link = store.link(&key)?;
        let program = match &link {
            Some(l) => store.program(&l.spec.program)?,
            None => None,
        };
        Ok::<_, crate::catalog::CatalogError>(link.map(|l| (l, program)))
    })
    .await?
    .ok()
    .flatten();
    match found {
        Some((l, program)) if l.spec.partner == me => Ok(program.is_some_and(|p| p.spec.partners_create_links)),
        _ => Err(not_found("link", code)),
    }
}

fn no_partner_links() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this program does not let partners create or change links; ask its admin")
}

/// Whether partner `me` may create `link`: for itself only (another partner is not found), in
/// a program that lets partners create links. An unknown program is left to the store's
/// `404`.
pub fn may_create_link(me: &str, link: &NewLink, program: Option<&Program>) -> Result<(), ApiError> {
    if link.partner != me {
        return Err(not_found("partner", &link.partner));
    }
    match program {
        Some(p) if !p.spec.partners_create_links => Err(no_partner_links()),
        _ => Ok(()),
    }
}

/// Whether a conversion's view credits `partner` with a share.
fn credited(view: &Value, partner: &str) -> bool {
    view["attribution"]["shares"].as_array().is_some_and(|s| s.iter().any(|s| s["partner"] == partner))
}

/// A conversion's view as its partner sees it: its own share, touches and commissions, and no
/// customer reference; other partners' credit is not its business.
pub fn conversion_for(mut view: Value, partner: &str) -> Value {
    let mine = |v: &Value| v["partner"] == partner;
    for list in ["/attribution/shares", "/attribution/touches", "/commissions"] {
        if let Some(a) = view.pointer_mut(list).and_then(Value::as_array_mut) {
            a.retain(mine);
        }
    }
    if let Some(o) = view.as_object_mut() {
        o.remove("customer_ref");
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_route_has_one_reach_and_unknown_ones_are_admin() {
        let get = |p: &str| reach(&Method::GET, &p.split('/').skip(1).collect::<Vec<_>>()).to_owned_kind();
        assert_eq!(get("/v1/conversions/cv_1"), "conversion");
        assert_eq!(get("/v1/partners/bob/balance"), "partner");
        assert_eq!(get("/v1/commissions"), "own");
        assert_eq!(get("/v1/ledger/entries"), "admin");
        assert_eq!(get("/v1/api-keys"), "admin");
        assert_eq!(get("/v1/payout-runs"), "admin");
        assert_eq!(reach(&Method::POST, &["v1", "conversions"]), Reach::Admin);
        assert_eq!(reach(&Method::POST, &["v1", "partners", "bob", "payouts"]), Reach::Admin);
        assert_eq!(reach(&Method::PUT, &["v1", "programs", "p", "commission"]), Reach::Admin);
        assert_eq!(get("/v1/partners"), "own");
        assert_eq!(get("/v1/partners/bob"), "partner");
        assert_eq!(get("/v1/links"), "own");
        assert_eq!(get("/v1/links/spring/qr.png"), "link");
        assert_eq!(get("/v1/coupons/demo/BOB10"), "coupon");
        assert_eq!(get("/v1/programs"), "admin");
        assert_eq!(get("/v1/programs/demo"), "admin");
        assert_eq!(reach(&Method::POST, &["v1", "links"]), Reach::NewLink);
        assert_eq!(reach(&Method::PATCH, &["v1", "links", "x"]), Reach::LinkWrite("x"));
        assert_eq!(reach(&Method::POST, &["v1", "links", "x", "expire"]), Reach::LinkWrite("x"));
        for (method, path) in [
            (Method::POST, "/v1/programs"),
            (Method::PATCH, "/v1/programs/demo"),
            (Method::POST, "/v1/programs/demo/pause"),
            (Method::POST, "/v1/partners"),
            (Method::PATCH, "/v1/partners/bob"),
            (Method::POST, "/v1/partners/bob/expire"),
            (Method::POST, "/v1/coupons"),
            (Method::POST, "/v1/coupons/shop/BOB10/pause"),
            (Method::GET, "/v1/audit"),
        ] {
            assert_eq!(reach(&method, &path.split('/').skip(1).collect::<Vec<_>>()), Reach::Admin, "{method} {path}");
        }
    }

    impl Reach<'_> {
        fn to_owned_kind(self) -> &'static str {
            match self {
                Reach::Admin => "admin",
                Reach::Partner(_) => "partner",
                Reach::Conversion(_) => "conversion",
                Reach::Click(_) => "click",
                Reach::Commission(_) => "commission",
                Reach::Endpoint(_) => "endpoint",
                Reach::Link(_) => "link",
                Reach::LinkWrite(_) => "link write",
                Reach::Coupon(..) => "coupon",
                Reach::NewLink => "new link",
                Reach::Own => "own",
            }
        }
    }

    #[test]
    fn a_partner_sees_only_its_share_of_a_conversion() {
        let view = json!({
            "id": "cv_1", "customer_ref": "cust-9",
            "attribution": {"shares": [{"partner": "bob", "amount_minor": 60}, {"partner": "carol", "amount_minor": 40}],
                            "touches": [{"partner": "carol"}, {"partner": "bob"}]},
            "commissions": [{"partner": "carol", "amount_minor": 4}, {"partner": "bob", "amount_minor": 6}],
        });
        assert!(credited(&view, "bob") && credited(&view, "carol") && !credited(&view, "dave"));
        let bob = conversion_for(view, "bob");
        assert_eq!(bob["attribution"]["shares"], json!([{"partner": "bob", "amount_minor": 60}]));
        assert_eq!(bob["attribution"]["touches"], json!([{"partner": "bob"}]));
        assert_eq!(bob["commissions"], json!([{"partner": "bob", "amount_minor": 6}]));
        assert!(bob.get("customer_ref").is_none());
    }
}
